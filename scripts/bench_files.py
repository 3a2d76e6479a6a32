#!/usr/bin/env python3
"""File-transfer benchmark: real `aeschat` processes on loopback (sender -> relay -> receivers).

Measures end-to-end throughput of one file to 1 and to 4 receivers, the CPU-seconds per GiB of every process, each
process's peak RSS, the delay of chat lines sent during the transfer, and the crypto layer against
`openssl speed -evp aes-256-gcm` at 16 KiB. Prints a table; with --write, records it in docs/BENCHMARKS.md.

Usage: scripts/bench_files.py [--size-mib N] [--quick] [--receivers N ...] [--no-crypto] [--write]
"""

import argparse
import datetime
import json
import os
import platform
import re
import shutil
import socket
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
BIN = Path(os.environ.get("AESCHAT_BIN") or ROOT / ".build" / "release" / "aeschat")
BENCH = Path(os.environ.get("AESCHAT_BENCH_BIN") or ROOT / ".build" / "release" / "aeschat-bench")
TICKS = os.sysconf("SC_CLK_TCK")


def free_port():
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def cpu_seconds(pid):
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / TICKS


def peak_rss_mib(pid):
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return 0.0


class Member:
    def __init__(self, name, port, folder, inbox):
        environment = dict(os.environ, XDG_CONFIG_HOME=str(folder / f"config-{name}"))
        self.name = name
        self.process = subprocess.Popen(
            [str(BIN), "join", "--name", name, "--inbox", str(inbox), "--port", str(port), "--json"],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, env=environment,
        )
        self.seen = []
        self.changed = threading.Condition()
        threading.Thread(target=self._pump, daemon=True).start()

    def _pump(self):
        for raw in iter(self.process.stdout.readline, b""):
            with self.changed:
                self.seen.append((time.monotonic(), json.loads(raw)))
                self.changed.notify_all()

    def wait(self, event, timeout=600, **match):
        """The first event of this kind (seen before or later) that matches."""
        deadline = time.monotonic() + timeout
        with self.changed:
            while True:
                for stamp, item in self.seen:
                    if item.get("event") == event and all(item.get(k) == v for k, v in match.items()):
                        return stamp, item
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    raise RuntimeError(f"{self.name}: no {event} {match} within {timeout} s")
                self.changed.wait(min(remaining, 1.0))

    def say(self, text):
        self.process.stdin.write(text.encode() + b"\n")
        self.process.stdin.flush()

    def stop(self):
        if self.process.poll() is None:
            self.process.kill()
            self.process.wait()


def run_transfer(size, receivers, folder):
    port = free_port()
    relay = subprocess.Popen([str(BIN), "serve", "--port", str(port)], stderr=subprocess.PIPE)
    relay.stderr.readline()
    source = folder / "payload.bin"
    inbox_root = Path(tempfile.mkdtemp(prefix="aeschat-bench-", dir="/dev/shm" if Path("/dev/shm").is_dir() else None))
    members = []
    try:
        names = [f"r{n}" for n in range(receivers)]
        for name in names:
            member = Member(name, port, folder, inbox_root / name)
            member.wait("ready")
            members.append(member)
        sender = Member("sender", port, folder, inbox_root / "sender")
        sender.wait("ready")
        members.append(sender)
        for member in members[:-1]:
            member.wait("joined", name="sender")
        cpu_before = {m.name: cpu_seconds(m.process.pid) for m in members}
        relay_before = cpu_seconds(relay.pid)
        start = time.monotonic()
        sender.say(f"/send {source}")
        # Chat lines during the transfer: the delay until the first receiver shows them.
        delays = []
        members[0].wait("file-incoming")
        for n in range(10):
            sent = time.monotonic()
            sender.say(f"ping {n}")
            stamp, _ = members[0].wait("message", text=f"ping {n}")
            delays.append((stamp - sent) * 1000)
            time.sleep(0.05)
        done = [member.wait("file", timeout=900)[0] for member in members[:-1]]
        sender.wait("file-sent")
        elapsed = max(done) - start
        cpu = {m.name: cpu_seconds(m.process.pid) - cpu_before[m.name] for m in members}
        relay_cpu = cpu_seconds(relay.pid) - relay_before
        rss = {m.name: peak_rss_mib(m.process.pid) for m in members}
        relay_rss = peak_rss_mib(relay.pid)
        gib = size / (1 << 30)
        return {
            "receivers": receivers,
            "seconds": elapsed,
            "mb_per_s": size / elapsed / 1e6,
            "sender_cpu_per_gib": cpu["sender"] / gib,
            "relay_cpu_per_gib": relay_cpu / gib,
            "receiver_cpu_per_gib": max(cpu[n] for n in names) / gib,
            "sender_rss": rss["sender"],
            "relay_rss": relay_rss,
            "receiver_rss": max(rss[n] for n in names),
            "chat_delay_median_ms": sorted(delays)[len(delays) // 2],
            "chat_delay_max_ms": max(delays),
        }
    finally:
        for member in members:
            member.stop()
        relay.terminate()
        relay.wait()
        shutil.rmtree(inbox_root, ignore_errors=True)


def crypto_figures(seconds):
    ours = subprocess.run([str(BENCH), str(seconds)], capture_output=True, text=True, check=True).stdout
    figures = {line.split()[0]: float(line.split()[1]) for line in ours.splitlines()}
    openssl = None
    if shutil.which("openssl"):
        out = subprocess.run(
            ["openssl", "speed", "-evp", "aes-256-gcm", "-seconds", str(seconds), "-bytes", "16384"],
            capture_output=True, text=True,
        ).stdout
        match = re.search(r"AES-256-GCM\s+([0-9.]+)k", out)
        if match:
            openssl = float(match.group(1)) * 1000 / 1e6
    return figures, openssl


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--size-mib", type=int, default=1024)
    parser.add_argument("--quick", action="store_true", help="a 256 MiB file and 1 s crypto figures")
    parser.add_argument("--write", action="store_true", help="record the table in docs/BENCHMARKS.md")
    parser.add_argument(
        "--receivers", type=int, action="append", help="run only with this many receivers (repeatable; default 1 and 4)"
    )
    parser.add_argument("--no-crypto", action="store_true", help="skip the crypto-layer figures (for profiling runs)")
    options = parser.parse_args()
    size = (256 if options.quick else options.size_mib) * 1024 * 1024
    folder = Path(tempfile.mkdtemp(prefix="aeschat-files-"))
    try:
        with open(folder / "payload.bin", "wb") as out:
            block = os.urandom(1 << 20)
            for n in range(size >> 20):
                out.write(block[n % 7:] + block[: n % 7])
        results = [run_transfer(size, receivers, folder) for receivers in (options.receivers or [1, 4])]
    finally:
        shutil.rmtree(folder, ignore_errors=True)
    if options.write and (options.no_crypto or options.receivers):
        parser.error("--write records the full run: drop --receivers and --no-crypto")

    lines = [
        f"File transfer of {size >> 20} MiB (sender -> relay -> receivers, release build, inbox on tmpfs):",
        "",
        "| receivers | time (s) | MB/s | sender CPU-s/GiB | relay CPU-s/GiB | receiver CPU-s/GiB | peak RSS sender / relay / receiver (MiB) | chat delay median / max (ms) |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for r in results:
        lines.append(
            f"| {r['receivers']} | {r['seconds']:.2f} | {r['mb_per_s']:.0f} | {r['sender_cpu_per_gib']:.2f} | "
            f"{r['relay_cpu_per_gib']:.2f} | {r['receiver_cpu_per_gib']:.2f} | "
            f"{r['sender_rss']:.0f} / {r['relay_rss']:.0f} / {r['receiver_rss']:.0f} | "
            f"{r['chat_delay_median_ms']:.1f} / {r['chat_delay_max_ms']:.1f} |"
        )
    if options.no_crypto:
        print("\n".join(lines))
        return 0
    figures, openssl = crypto_figures(1 if options.quick else 3)
    gcm = figures.get("aes-256-gcm-seal-16KiB", 0)
    lines += [
        "",
        "| crypto layer | MB/s |",
        "|---|---|",
        f"| aeschat AES-256-GCM seal, 16 KiB blocks | {gcm:.0f} |",
        f"| `openssl speed -evp aes-256-gcm`, 16 KiB blocks | {openssl:.0f} |" if openssl else "| openssl | not installed |",
        f"| aeschat / openssl | {gcm / openssl * 100:.0f} % |" if openssl else "",
        f"| aeschat SHA-256, 256 KiB blocks | {figures.get('sha-256-256KiB', 0):.0f} |",
    ]
    table = "\n".join(line for line in lines if line is not None)
    print(table)
    if options.write:
        cpu = "unknown"
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
        header = (
            f"Measured {datetime.datetime.now(datetime.timezone.utc):%Y-%m-%d %H:%M} UTC on {platform.node()}: "
            f"{os.cpu_count()} cores ({cpu}), Linux {platform.release()}; command: "
            f"`scripts/bench-files{' --quick' if options.quick else ''}`."
        )
        path = ROOT / "docs" / "BENCHMARKS.md"
        text = path.read_text() if path.exists() else "# Benchmarks\n"
        start, end = "<!-- files:start -->", "<!-- files:end -->"
        block = f"{start}\n{header}\n\n{table}\n{end}"
        if start in text:
            text = re.sub(re.escape(start) + ".*?" + re.escape(end), lambda _: block, text, flags=re.S)
        else:
            text = text.rstrip() + "\n\n## File transfer\n\n" + block + "\n"
        path.write_text(text)


if __name__ == "__main__":
    sys.exit(main())
