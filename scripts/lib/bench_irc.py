#!/usr/bin/env python3
"""Runs scripts/bench-irc: the aeschat relay (encrypted link) against InspIRCd and ngircd, side by side, with the
same aeschat-load workloads (`--protocol irc` for the IRC servers): join, idle memory per connection, W1 windowed
fan-out and (N = 1,000) W1-paced latency. Each round runs every server at every size, alternating which server goes
first; the table gives medians and the ratios aeschat / InspIRCd and aeschat / ngircd. Every server is configured in
a temporary folder, listens on 127.0.0.1 only on a free port, and is started and ended by its process id."""

import argparse
import datetime
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from bench import (  # noqa: E402
    FAULT_KEYS, Relay, free_port, load, loadavg, machine, median, merge_run, wait_until_listening)

SERVERS = ("aeschat", "inspircd", "ngircd")
LABELS = {"aeschat": "aeschat (link)", "inspircd": "InspIRCd", "ngircd": "ngircd"}

# InspIRCd 3: one connect class for 127.0.0.1 with every flood and clone limit lifted (no fakelag, a command rate
# and penalty threshold no benchmark reaches, send and receive queues of megabytes), no DNS or ident lookups.
INSPIRCD_CONF = """<server name="bench.irc.invalid" description="aeschat benchmark" network="bench">
<admin name="bench" nick="bench" email="bench@localhost">
<bind address="127.0.0.1" port="{port}" type="clients">
<connect name="bench" allow="127.0.0.1" maxchans="20" timeout="600" pingfreq="3600" hardsendq="67108864"
         softsendq="8388608" recvq="8388608" threshold="100000000" commandrate="4000000000" fakelag="no"
         localmax="1000000" globalmax="1000000" maxconnwarn="no" resolvehostnames="no" useident="no"
         limit="1000000">
<channels users="20" opers="60">
<dns server="127.0.0.1" timeout="1">
<performance netbuffersize="65536" somaxconn="4096" softlimit="1000000" clonesonconnect="no" quietbursts="yes">
<security hideserver="" userstats="Pu" maxtargets="20">
<options prefixquit="Quit: " syntaxhints="no" announcets="yes" hostintopic="yes" pingwarning="15">
<pid file="{folder}/inspircd.pid">
<files motd="{folder}/motd">
<log method="file" type="* -USERINPUT -USEROUTPUT" level="default" target="{folder}/inspircd.log">
"""

# ngircd 26: no connection limits (in all, per address, channels per user), no penalties (MaxPenaltyTime = 0) and
# relaxed flood protection (user mode F) for every user, so that one client may send fast; no DNS, ident or PAM.
# Started as root, ngircd runs as nobody (it refuses ServerUID 0); its pid stays the one started.
NGIRCD_CONF = """[Global]
    Name = bench.irc.invalid
    Info = aeschat benchmark
    Listen = 127.0.0.1
    Ports = {port}
    MotdPhrase = bench
[Limits]
    MaxConnections = 0
    MaxConnectionsIP = 0
    MaxJoins = 0
    MaxNickLength = 9
    MaxPenaltyTime = 0
    PingTimeout = 3600
    PongTimeout = 600
[Options]
    DNS = no
    Ident = no
    PAM = no
    DefaultUserModes = F
"""


class IRCServer:
    """InspIRCd or ngircd on 127.0.0.1:port, configured in a temporary folder, in the foreground (its pid is the
    server's own), ended by that pid."""

    def __init__(self, kind, port):
        self.kind = kind
        self.folder = tempfile.mkdtemp(prefix=f"aeschat-bench-{kind}-")
        self.log_path = os.path.join(self.folder, "server.log")
        if kind == "inspircd":
            config = os.path.join(self.folder, "inspircd.conf")
            with open(os.path.join(self.folder, "motd"), "w") as motd:
                motd.write("bench\n")
            with open(config, "w") as file:
                file.write(INSPIRCD_CONF.format(port=port, folder=self.folder))
            command = ["inspircd", "--nofork", "--config", config]
            if os.getuid() == 0:
                command.append("--runasroot")
        else:
            config = os.path.join(self.folder, "ngircd.conf")
            with open(config, "w") as file:
                file.write(NGIRCD_CONF.format(port=port))
            command = ["ngircd", "--nodaemon", "--config", config]
        with open(self.log_path, "w") as log:
            self.process = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
        self.pid = self.process.pid
        if wait_until_listening(self.process, port, seconds=15):
            return
        self.stop()
        raise SystemExit(f"bench-irc: {kind} did not start on 127.0.0.1:{port}: {self._log()[-2000:]}")

    def _log(self):
        with open(self.log_path, errors="replace") as log:
            return log.read()

    @staticmethod
    def load_arguments():
        return ["--protocol", "irc"]

    def stop(self):
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        shutil.rmtree(self.folder, ignore_errors=True)


def start(kind, binary, port):
    return Relay(binary, port) if kind == "aeschat" else IRCServer(kind, port)


# Members waiting for their welcome at once. 256 as in scripts/bench (the relay answers busy beyond 256 handshakes in
# progress); ngircd listens with a backlog of 10 (listen(2) in its conn.c), so more connects at once overflow its
# accept queue and wait for SYN retransmissions (1 s, 2 s, 4 s, ...): at 256 its join of 1,000 took 111 s with the
# server mostly idle, and some connects failed. 8 keeps it under that backlog.
JOIN_CONCURRENCY = {"aeschat": "256", "inspircd": "256", "ngircd": "8"}


def one_run(kind, binary, members, quick):
    """Join, idle memory and W1 at N = `members` against a fresh server of `kind`; then, at N = 1,000, W1-paced on
    another fresh one (one generator thread), as scripts/bench does for the relay."""
    deliveries = 2_000_000 if quick else 10_000_000
    messages = max(200, min(50_000, deliveries // (members - 1)))
    timeout = ("600" if kind == "ngircd" else "300") if members >= 5000 else "120"
    port = free_port()
    server = start(kind, binary, port)
    try:
        figures = load(binary, [
            "run", "--port", str(port), "--pid", str(server.pid), "--members", str(members), "--messages",
            str(messages), "--idle-seconds", "4.5", "--threads", "2", "--join-concurrency", JOIN_CONCURRENCY[kind],
            "--phase-timeout", timeout, *server.load_arguments()], timeout=int(timeout) * 3 + 60)
    finally:
        server.stop()
    if members == 1000:
        port = free_port()
        server = start(kind, binary, port)
        try:
            latency = load(binary, [
                "run", "--port", str(port), "--pid", str(server.pid), "--members", str(members), "--paced-seconds",
                "3" if quick else "10", "--idle-seconds", "0.5", "--threads", "1", "--phase-timeout", timeout,
                "--join-concurrency", JOIN_CONCURRENCY[kind],
                *server.load_arguments()])
        finally:
            server.stop()
        merge_run(figures, latency, ("paced_",))
    return figures


# (figure, key, format, scale): what the table shows, per size.
FIGURES = [
    ("join (s)", "join_seconds", ".2f", 1),
    ("server CPU during the join (s)", "join_relay_cpu_seconds", ".2f", 1),
    ("idle memory per connection (B)", "bytes_per_connection", ",.0f", 1),
    ("W1 deliveries/s", "w1_deliveries_per_second", ".2f", 1e-6),
    ("server CPU per delivery (µs)", "w1_relay_cpu_us_per_delivery", ".3f", 1),
    ("server CPU in W1 (of a core)", "w1_relay_cpu_share", ".0%", 1),
    ("load-tool CPU in W1 (of a core)", "w1_load_cpu_share", ".0%", 1),
    ("paced p50 (ms)", "paced_p50_ms", ".2f", 1),
    ("paced p99 (ms)", "paced_p99_ms", ".2f", 1),
    ("paced max (ms)", "paced_max_ms", ".2f", 1),
]


def faults(runs):
    return sum(sum(run.get(key, 0) for key in FAULT_KEYS) + (1 if "error" in run else 0) for run in runs)


def render(results, servers, sizes, info, command, started, load_before, load_after, repeats):
    header = "| N | figure | " + " | ".join(LABELS[kind] for kind in servers)
    ratios = [kind for kind in servers if kind != "aeschat" and "aeschat" in servers]
    header += "".join(f" | aeschat / {LABELS[kind]}" for kind in ratios) + " |"
    rows = [header, "|" + "---|" * (2 + len(servers) + len(ratios))]
    for members in sizes:
        for label, key, spec, scale in FIGURES:
            values = {kind: median(results[kind][members], key) for kind in servers}
            if all(value is None for value in values.values()):
                continue
            shown = label.replace("deliveries/s", "deliveries/s (M)")
            cells = ["—" if values[kind] is None else format(values[kind] * scale, spec) for kind in servers]
            for kind in ratios:
                a, b = values["aeschat"], values[kind]
                cells.append("—" if a is None or not b else f"{a / b:.2f}")
            rows.append(f"| {members:,} | {shown} | " + " | ".join(cells) + " |")
        cells = [str(faults(results[kind][members])) if results[kind][members] else "not run" for kind in servers]
        cells += ["" for _ in ratios]
        rows.append(f"| {members:,} | faults (lost, duplicated, out of order, errors) | " + " | ".join(cells) + " |")
    lines = [
        f"Recorded {started} by `{command}`: {repeats} round{'s' if repeats > 1 else ''}, each running every "
        "server at every size on a fresh server (the first server rotating from round to round), median shown.",
        "",
        f"Machine: {info['cores']} cores, {info['model']}, {info['memory']} memory, Linux {info['kernel']}; "
        f"load average {load_before} before, {load_after} after.",
        "",
        "\n".join(rows),
    ]
    return "\n".join(lines)


def main():
    parser = argparse.ArgumentParser(description="aeschat's relay against InspIRCd and ngircd, side by side")
    parser.add_argument("--bin", required=True, help="folder with the release aeschat and aeschat-load")
    parser.add_argument("--command", default="scripts/bench-irc")
    parser.add_argument("--sizes", default="1000,5000", help="member counts, comma-separated")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--servers", default=",".join(SERVERS), help="any of aeschat,inspircd,ngircd")
    parser.add_argument("--quick", action="store_true", help="2 million W1 deliveries per run instead of 10")
    parser.add_argument("--skip", default="", help="runs to leave out, as KIND:N pairs, e.g. ngircd:5000")
    parser.add_argument("--json", help="append every run's figures to this file, one JSON object a line")
    options = parser.parse_args()
    try:
        sizes = [int(size) for size in options.sizes.split(",")]
    except ValueError:
        raise SystemExit(f"bench-irc: --sizes needs numbers such as 1000,5000, got '{options.sizes}'")
    if any(size < 20 for size in sizes) or options.repeats < 1:
        raise SystemExit("bench-irc: every size must be at least 20 and --repeats at least 1")
    servers = [kind for kind in options.servers.split(",") if kind]
    unknown = [kind for kind in servers if kind not in SERVERS]
    if unknown or not servers:
        raise SystemExit(f"bench-irc: --servers takes aeschat, inspircd and ngircd, got '{options.servers}'")
    for kind in servers:
        if kind != "aeschat" and shutil.which(kind) is None:
            raise SystemExit(f"bench-irc: {kind} is not installed (Debian: apt-get install {kind})")
    try:
        skipped = {(kind, int(size)) for kind, size in (pair.split(":") for pair in options.skip.split(",") if pair)}
    except ValueError:
        raise SystemExit(f"bench-irc: --skip takes KIND:N pairs such as ngircd:5000, got '{options.skip}'")
    info = machine()
    started = datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    load_before = loadavg()
    results = {kind: {members: [] for members in sizes} for kind in servers}
    for round_index in range(options.repeats):
        order = servers[round_index % len(servers):] + servers[:round_index % len(servers)]
        for members in sizes:
            for kind in order:
                if (kind, members) in skipped:
                    continue
                print(f"bench-irc: round {round_index + 1}, N={members}, {kind} (load average {loadavg()})",
                      file=sys.stderr, flush=True)
                figures = one_run(kind, options.bin, members, options.quick)
                results[kind][members].append(figures)
                if options.json:
                    with open(options.json, "a") as file:
                        file.write(json.dumps({"server": kind, "round": round_index + 1, **figures}) + "\n")
                print(f"bench-irc:   join {figures.get('join_seconds')} s, W1 "
                      f"{figures.get('w1_deliveries_per_second')} deliveries/s, "
                      f"{figures.get('w1_relay_cpu_us_per_delivery')} µs per delivery, "
                      f"load tool {figures.get('w1_load_cpu_share')} of a core"
                      + (f", error: {figures['error']}" if "error" in figures else ""), file=sys.stderr, flush=True)
    load_after = loadavg()
    print(render(results, servers, sizes, info, options.command, started, load_before, load_after, options.repeats))
    bad = sum(faults(results[kind][members]) for kind in servers for members in sizes)
    bad += sum(1 for kind in servers for members in sizes for run in results[kind][members] if run.get("exit"))
    if bad:
        print(f"bench-irc: {bad} runs or faults went wrong (see above)", file=sys.stderr)
        sys.exit(1)


if __name__ == "__main__":
    main()
