#!/usr/bin/env python3
"""File-transfer benchmark: real `aeschat` processes on loopback (sender -> relay -> receivers).

Measures end-to-end throughput of one file to 1 and to 4 receivers, the CPU-seconds per GiB of every process, each
process's peak RSS, the delay of chat lines sent during the transfer, and the crypto layer against
`openssl speed -evp aes-256-gcm` at 16 KiB. In the same run, the same file goes over `ssh -c aes256-gcm@openssh.com`
to an sshd on a loopback port (one hop, no relay; started here with a temporary host key and authorized key, and
ended by its process id), before and after the aeschat runs, and aeschat's one-receiver MB/s is given as a ratio to
ssh's. If sshd cannot run, the output says why and the ratio is skipped. Prints a table; with --write, records it in
docs/BENCHMARKS.md.

Usage: scripts/bench_files.py [--size-mib N] [--quick] [--receivers N ...] [--no-crypto] [--no-ssh] [--write]
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
KEY_TEXT = re.compile(r"--relay-key\s+([a-z2-7]{52})\b")


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


def speaks_link():
    """Whether this aeschat speaks the encrypted link (its relay takes --relay-key)."""
    help_text = subprocess.run([str(BIN), "serve", "--help"], capture_output=True, text=True, timeout=30)
    return "--relay-key" in help_text.stdout + help_text.stderr


class Relay:
    """`aeschat serve` on 127.0.0.1:port, with a relay key made in `folder` when it speaks the link; `key` is the
    public key text of the join line it prints (None for a relay of before the link)."""

    def __init__(self, port, folder):
        command = [str(BIN), "serve", "--port", str(port)]
        link = speaks_link()
        if link:
            command += ["--relay-key", str(folder / "relay-key")]
        self.process = subprocess.Popen(command, stderr=subprocess.PIPE, text=True)
        self.pid = self.process.pid
        self.lines = []
        self.changed = threading.Condition()
        threading.Thread(target=self._pump, daemon=True).start()
        self.key = None
        deadline = time.monotonic() + 15
        while time.monotonic() < deadline:
            with self.changed:
                match = next((KEY_TEXT.search(line) for line in self.lines if KEY_TEXT.search(line)), None)
            if match:
                self.key = match.group(1)
            if self.key or not link:
                try:
                    with socket.create_connection(("127.0.0.1", port), timeout=0.2):
                        return
                except OSError:
                    pass
            if self.process.poll() is not None:
                break
            time.sleep(0.05)
        self.stop()
        raise SystemExit(f"bench-files: the relay did not start (or printed no join line): {''.join(self.lines)[-2000:]}")

    def _pump(self):
        for line in iter(self.process.stderr.readline, ""):
            with self.changed:
                self.lines.append(line)

    def join_arguments(self):
        return ["--relay-key", self.key] if self.key else []

    def stop(self):
        if self.process.poll() is None:
            self.process.terminate()
            self.process.wait()


class Member:
    def __init__(self, name, port, folder, inbox, relay):
        environment = dict(os.environ, XDG_CONFIG_HOME=str(folder / f"config-{name}"))
        self.name = name
        self.process = subprocess.Popen(
            [str(BIN), "join", "--name", name, "--inbox", str(inbox), "--port", str(port), "--json",
             *relay.join_arguments()],
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
    relay = Relay(port, folder)
    source = folder / "payload.bin"
    inbox_root = Path(tempfile.mkdtemp(prefix="aeschat-bench-", dir="/dev/shm" if Path("/dev/shm").is_dir() else None))
    members = []
    try:
        names = [f"r{n}" for n in range(receivers)]
        for name in names:
            member = Member(name, port, folder, inbox_root / name, relay)
            member.wait("ready")
            members.append(member)
        sender = Member("sender", port, folder, inbox_root / "sender", relay)
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
        relay.stop()
        shutil.rmtree(inbox_root, ignore_errors=True)


SSH_CIPHER = "aes256-gcm@openssh.com"


class SSHServer:
    """An sshd on a free 127.0.0.1 port for one benchmark: its own configuration, a temporary host key and an
    authorized client key in `folder`, in the foreground (`-D`), ended by its process id. `problem` says why it
    could not run (then nothing else is set)."""

    def __init__(self, folder):
        self.problem = None
        self.process = None
        self.folder = folder
        sshd = shutil.which("sshd") or ("/usr/sbin/sshd" if Path("/usr/sbin/sshd").exists() else None)
        if sshd is None or shutil.which("ssh") is None or shutil.which("ssh-keygen") is None:
            self.problem = ("sshd, ssh or ssh-keygen is not installed (apt-get install openssh-server "
                            "openssh-client)")
            return
        folder.mkdir(mode=0o700, exist_ok=True)
        for name in ("host_key", "client_key"):
            subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(folder / name)], check=True)
        (folder / "authorized_keys").write_text((folder / "client_key.pub").read_text())
        self.port = free_port()
        config = folder / "sshd_config"
        config.write_text("\n".join([
            f"Port {self.port}", "ListenAddress 127.0.0.1", f"HostKey {folder / 'host_key'}",
            f"AuthorizedKeysFile {folder / 'authorized_keys'}", f"PidFile {folder / 'sshd.pid'}",
            "StrictModes no", "UsePAM no", "PasswordAuthentication no", "KbdInteractiveAuthentication no",
            "PubkeyAuthentication yes", "PermitRootLogin prohibit-password", f"Ciphers {SSH_CIPHER}",
            "Compression no", "LogLevel ERROR", "",
        ]))
        if os.geteuid() == 0 and not Path("/run/sshd").is_dir():
            # sshd run as root needs its privilege separation directory, which its service would create.
            try:
                os.makedirs("/run/sshd", mode=0o755, exist_ok=True)
            except OSError as error:
                self.problem = f"sshd needs /run/sshd and it could not be made: {error}"
                return
        self.log = open(folder / "sshd.log", "w")
        self.process = subprocess.Popen([sshd, "-D", "-e", "-f", str(config)], stdout=self.log,
                                        stderr=subprocess.STDOUT)
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=0.2):
                    return
            except OSError:
                if self.process.poll() is not None:
                    break
                time.sleep(0.05)
        self.stop()
        self.problem = f"sshd did not start: {(folder / 'sshd.log').read_text()[-500:].strip() or 'no output'}"

    def ssh(self, remote_command, stdin):
        """Runs `remote_command` over ssh with the aes256-gcm cipher; returns (seconds, peak RSS of ssh in MiB)."""
        command = ["ssh", "-p", str(self.port), "-i", str(self.folder / "client_key"), "-c", SSH_CIPHER,
                   "-o", "BatchMode=yes", "-o", "StrictHostKeyChecking=no", "-o", "UserKnownHostsFile=/dev/null",
                   "-o", "Compression=no", "-o", "LogLevel=ERROR", "-o", "ControlMaster=no",
                   "-o", "ControlPath=none", "127.0.0.1", remote_command]
        start = time.monotonic()
        process = subprocess.Popen(command, stdin=stdin, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        _, status, usage = os.wait4(process.pid, 0)
        elapsed = time.monotonic() - start
        process.returncode = os.waitstatus_to_exitcode(status)
        if process.returncode != 0:
            raise RuntimeError(f"ssh exited {process.returncode}: {process.stderr.read().decode()[-500:]}")
        return elapsed, usage.ru_maxrss / 1024

    def stop(self):
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        if getattr(self, "log", None):
            self.log.close()


def run_ssh(size, folder, server):
    """One transfer of the payload over ssh to `cat` into a file on tmpfs (where aeschat's receivers write), timed
    from ssh's start to its exit, less the median time of three `ssh … true` connections (what aeschat's figure
    leaves out: its members are connected before the transfer starts)."""
    setup = sorted(server.ssh("true", subprocess.DEVNULL)[0] for _ in range(3))[1]
    target_root = Path(tempfile.mkdtemp(prefix="aeschat-bench-ssh-",
                                        dir="/dev/shm" if Path("/dev/shm").is_dir() else None))
    try:
        with open(folder / "payload.bin", "rb") as payload:
            elapsed, rss = server.ssh(f"cat > {target_root / 'received.bin'}", payload)
        received = (target_root / "received.bin").stat().st_size
        if received != size:
            raise RuntimeError(f"ssh delivered {received} of {size} bytes")
    finally:
        shutil.rmtree(target_root, ignore_errors=True)
    seconds = max(elapsed - setup, 1e-3)
    return {"seconds": seconds, "setup": setup, "mb_per_s": size / seconds / 1e6, "ssh_rss": rss}


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


def ssh_lines(results, ssh_runs, problem):
    """The ssh reference and aeschat's one-receiver MB/s as a ratio to it, or why it is missing."""
    if not ssh_runs or problem:
        return [f"ssh reference (`ssh -c {SSH_CIPHER}`, one hop on loopback): not measured: {problem}; no ratio."]
    ssh_mb = sum(run["mb_per_s"] for run in ssh_runs) / len(ssh_runs)
    each = ", ".join(f"{run['mb_per_s']:.0f}" for run in ssh_runs)
    lines = [
        "| same file, same run | MB/s | peak RSS (MiB) |",
        "|---|---|---|",
        f"| `ssh -c {SSH_CIPHER}` to `cat > file` on tmpfs, one hop, no relay (runs before and after aeschat: "
        f"{each}; connection setup of "
        f"{ssh_runs[0]['setup'] * 1000:.0f} ms left out) | {ssh_mb:.0f} | ssh {max(r['ssh_rss'] for r in ssh_runs):.0f} |",
    ]
    one = next((r for r in results if r["receivers"] == 1), None)
    if one:
        ratio = one["mb_per_s"] / ssh_mb
        biggest = max(one["sender_rss"], one["relay_rss"], one["receiver_rss"])
        lines.append(
            f"| aeschat, sender -> relay -> 1 receiver (two hops, link and end-to-end encryption, SHA-256) | "
            f"{one['mb_per_s']:.0f} | sender {one['sender_rss']:.0f} / relay {one['relay_rss']:.0f} / receiver "
            f"{one['receiver_rss']:.0f} |")
        lines.append(
            f"| **aeschat / ssh** (target ≥ 0.6) | **{ratio:.2f}** ({'met' if ratio >= 0.6 else 'not met'}) | "
            f"largest {biggest:.0f} (target < 64: {'met' if biggest < 64 else 'not met'}) |")
    return lines


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--size-mib", type=int, default=1024)
    parser.add_argument("--quick", action="store_true", help="a 256 MiB file and 1 s crypto figures")
    parser.add_argument("--write", action="store_true", help="record the table in docs/BENCHMARKS.md")
    parser.add_argument(
        "--receivers", type=int, action="append", help="run only with this many receivers (repeatable; default 1 and 4)"
    )
    parser.add_argument("--no-crypto", action="store_true", help="skip the crypto-layer figures (for profiling runs)")
    parser.add_argument("--no-ssh", action="store_true", help="skip the ssh reference transfer")
    options = parser.parse_args()
    size = (256 if options.quick else options.size_mib) * 1024 * 1024
    folder = Path(tempfile.mkdtemp(prefix="aeschat-files-"))
    try:
        with open(folder / "payload.bin", "wb") as out:
            block = os.urandom(1 << 20)
            for n in range(size >> 20):
                out.write(block[n % 7:] + block[: n % 7])
        server = None if options.no_ssh else SSHServer(folder / "ssh")
        ssh_runs = []
        ssh_problem = "skipped (--no-ssh)" if server is None else server.problem
        try:
            # ssh before and after the aeschat runs, so that drift on a busy machine falls on both.
            if server is not None and server.problem is None:
                try:
                    ssh_runs.append(run_ssh(size, folder, server))
                except (RuntimeError, OSError) as error:
                    ssh_problem = f"ssh failed: {error}"
            results = [run_transfer(size, receivers, folder) for receivers in (options.receivers or [1, 4])]
            if ssh_runs:
                try:
                    ssh_runs.append(run_ssh(size, folder, server))
                except (RuntimeError, OSError) as error:
                    ssh_problem = f"ssh failed: {error}"
        finally:
            if server is not None:
                server.stop()
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
    lines += [""] + ssh_lines(results, ssh_runs, ssh_problem)
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
