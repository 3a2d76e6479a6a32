#!/usr/bin/env python3
"""Runs the relay benchmarks for scripts/bench: starts `aeschat serve` on 127.0.0.1, drives it with
`aeschat-load`, prints a table and (full runs, or --write) records it in docs/BENCHMARKS.md between
the bench:results markers. Every process it starts listens on or connects to 127.0.0.1 only, and
every run is bounded in messages and seconds."""

import argparse
import datetime
import json
import os
import platform
import re
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time

# Every benchmark member connects from 127.0.0.1 as fast as it can: lift the relay's connection and rate limits.
UNLIMITED = ["--max-connections", "0", "--max-connections-per-address", "0", "--message-rate", "0",
             "--handshake-timeout", "600", "--idle-timeout", "86400"]

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
DOC = os.path.join(ROOT, "docs", "BENCHMARKS.md")
BEGIN = "<!-- bench:results:begin -->"
END = "<!-- bench:results:end -->"
SIZES = [100, 1000, 5000, 10000]


def free_port():
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


_SPEAKS_LINK = {}


def wait_until_listening(process, port, seconds):
    """True once something accepts connections on 127.0.0.1:port (then after a short pause, so the server is past
    its start-up); False if `process` exits first or `seconds` pass."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.2):
                pass
            time.sleep(0.2)
            return True
        except OSError:
            if process.poll() is not None:
                return False
            time.sleep(0.05)
    return False


def speaks_link(binary):
    """Whether the aeschat in `binary` speaks the encrypted link (protocol 2): its relay takes --relay-key.
    A build from before issue 13 speaks the plaintext protocol 1 and is driven by its own aeschat-load."""
    if binary not in _SPEAKS_LINK:
        help_text = subprocess.run([os.path.join(binary, "aeschat"), "serve", "--help"], capture_output=True,
                                   text=True, timeout=30)
        _SPEAKS_LINK[binary] = "--relay-key" in help_text.stdout + help_text.stderr
    return _SPEAKS_LINK[binary]


KEY_TEXT = re.compile(r"--relay-key\s+([a-z2-7]{52})\b")


class Relay:
    """`aeschat serve` on 127.0.0.1:port. A relay that speaks the link gets a relay key file in a temporary folder
    (made on its first start) and no per-address handshake limit (every benchmark member comes from 127.0.0.1);
    `key` is its public key text, read from the join line it prints."""

    def __init__(self, binary, port):
        self.folder = tempfile.mkdtemp(prefix="aeschat-bench-relay-")
        self.key = None
        command = [os.path.join(binary, "aeschat"), "serve", "--host", "127.0.0.1", "--port", str(port), *UNLIMITED]
        link = speaks_link(binary)
        if link:
            command += ["--relay-key", os.path.join(self.folder, "relay-key"), "--handshake-rate", "0"]
        self.log_path = os.path.join(self.folder, "serve.log")
        with open(self.log_path, "w") as log:
            self.process = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT)
        self.pid = self.process.pid
        if wait_until_listening(self.process, port, seconds=10):
            if link:
                self.key = self._key(binary)
            return
        self.process.kill()
        self.process.wait()
        raise SystemExit(f"bench: the relay did not start on 127.0.0.1:{port}: {self._log()[-2000:]}")

    def _log(self):
        with open(self.log_path, errors="replace") as log:
            return log.read()

    def _key(self, binary):
        deadline = time.monotonic() + 5
        match = KEY_TEXT.search(self._log())
        while not match and time.monotonic() < deadline and self.process.poll() is None:
            time.sleep(0.05)
            match = KEY_TEXT.search(self._log())
        if not match:
            shown = subprocess.run([os.path.join(binary, "aeschat"), "serve", "--show-key", "--relay-key",
                                    os.path.join(self.folder, "relay-key")], capture_output=True, text=True,
                                   timeout=30)
            match = KEY_TEXT.search(shown.stdout + shown.stderr)
        if not match:
            self.stop()
            raise SystemExit(f"bench: found no join line with --relay-key in the relay's output: {self._log()[-2000:]}")
        return match.group(1)

    def load_arguments(self):
        """What the generator needs to reach this relay: its key, when it speaks the link."""
        return ["--relay-key", self.key] if self.key else []

    def stop(self):
        self.process.send_signal(signal.SIGTERM)
        try:
            self.process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()
        import shutil
        shutil.rmtree(self.folder, ignore_errors=True)


# Wall-clock limit of one aeschat-load run. The tool gives up on any phase after 60 s by itself (150 s for the
# joins of 5,000 and 10,000 members, which take every handshake and N² joined frames, and tens of seconds on a
# busy machine) and says what it was waiting for; this catches whatever that misses, so a hang is a failure,
# never a stuck bench.
LOAD_TIMEOUT = 300


def load(binary, arguments, timeout=LOAD_TIMEOUT):
    command = [os.path.join(binary, "aeschat-load")] + arguments
    process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        stdout, stderr = process.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        process.kill()
        stdout, stderr = process.communicate()
        sys.stderr.write(stderr)
        raise SystemExit(
            f"bench: aeschat-load {' '.join(arguments)} was still running after {timeout} s and was killed "
            f"(pid {process.pid}); its last output: {stdout.strip()[-2000:] or 'none'}")
    lines = [line for line in stdout.splitlines() if line.startswith("{")]
    if not lines:
        sys.stderr.write(stderr)
        raise SystemExit(f"bench: aeschat-load {' '.join(arguments)} printed no result (exit {process.returncode})")
    figures = json.loads(lines[-1])
    figures["exit"] = process.returncode
    if "error" in figures:
        print(f"bench: aeschat-load {' '.join(arguments)} failed: {figures['error']}", file=sys.stderr, flush=True)
    return figures


FAULT_KEYS = ("out_of_order", "duplicates", "relay_errors", "unexpected_closes", "link_failures")


def merge_run(figures, other, prefixes):
    """Takes `other`'s figures whose names start with one of `prefixes`, and its faults, into `figures`."""
    for key, value in other.items():
        if key.startswith(prefixes):
            figures[key] = value
    for key in FAULT_KEYS:
        figures[key] = figures.get(key, 0) + other.get(key, 0)
    figures["exit"] = figures.get("exit", 0) or other.get("exit", 0)
    if "error" in other:
        figures["error"] = other["error"]


# Members waiting for their welcome at once, in both builds: the relay that speaks the link answers busy beyond 256
# handshakes in progress (RelayLimits.maximumHandshakesInProgress), so the join keeps under that; the join storm
# below is where busy answers are measured.
JOIN_CONCURRENCY = "256"


def one_size(binary, members, quick):
    """Every workload at N = `members` against the relay in `binary`, driven by the aeschat-load of the same
    build (a plaintext relay of before issue 13 needs its own generator; one that speaks the link gets its key)."""
    deliveries = 2_000_000 if quick else 10_000_000
    messages = max(200, min(50_000, deliveries // (members - 1)))
    paced = 0
    if members <= 1000:
        paced = (3 if quick else 10) if members == 1000 else (2 if quick else 5)
    # Join, idle memory and W1 with two generator threads (so the generator is not held to one core).
    port = free_port()
    relay = Relay(binary, port)
    try:
        figures = load(binary, [
            "run", "--port", str(port), "--pid", str(relay.pid), "--members", str(members),
            "--messages", str(messages), "--idle-seconds", "4.5", "--threads", "2", "--join-concurrency",
            JOIN_CONCURRENCY, "--phase-timeout", "150" if members >= 5000 else "60", *relay.load_arguments(),
        ])
    finally:
        relay.stop()
    # W1-paced on a fresh relay with one generator thread: a second one competes with the relay for the
    # two cores and adds scheduling outliers of its own to the latencies.
    if paced:
        port = free_port()
        relay = Relay(binary, port)
        try:
            latency = load(binary, [
                "run", "--port", str(port), "--pid", str(relay.pid), "--members", str(members),
                "--paced-seconds", str(paced), "--idle-seconds", "0.5", "--threads", "1", *relay.load_arguments(),
            ])
        finally:
            relay.stop()
        merge_run(figures, latency, ("paced_",))
    # The encrypted link's own costs, once per round (with N = 1,000): the relay's CPU per handshake (connections
    # that complete a handshake and close), then 40 members chatting paced (10 senders × 10 messages a second)
    # while 1,000 more members join another room all at once.
    if members == 1000 and speaks_link(binary):
        port = free_port()
        relay = Relay(binary, port)
        try:
            storm = load(binary, [
                "run", "--port", str(port), "--pid", str(relay.pid), "--members", "40",
                "--handshakes", "500" if quick else "2000", "--paced-seconds", "4" if quick else "6",
                "--storm-joins", "1000", "--idle-seconds", "0.2", "--threads", "2", *relay.load_arguments(),
            ])
        finally:
            relay.stop()
        merge_run(figures, storm, ("handshake", "storm_", "calm_"))
    if members == 1000:
        merge_run(figures, join_storm(binary, quick), ("stormab_",))
    return figures


class StormClients:
    """`count` members that connect all at once into room `room` with the names s0, s1, …, speaking the relay's
    protocol: plaintext protocol 1 for a relay from before the link, the encrypted link (with PyPI `noiseprotocol`,
    as the end-to-end tests do) for one that speaks it. They send hello, then read and discard everything until
    stop(). A busy answer is retried after 10–320 ms with a new handshake, as a client would. Runs on its own
    thread; `seconds` is the time until every one of them has had an answer to its hello (its welcome)."""

    def __init__(self, port, count, key_text, room="storm"):
        import selectors
        import threading
        self.port, self.count, self.room = port, count, room
        self.key = None
        if key_text:
            import base64
            import hashlib
            self.key = base64.b32decode(key_text.upper() + "=" * (-len(key_text) % 8))
            key_id = hashlib.sha256(b"aeschat/2 relay fingerprint" + self.key).digest()[:4]
            self.preamble = b"AESCHAT\x02" + key_id
        self.selector = selectors.DefaultSelector()
        self.welcomed = 0
        self.busy = 0
        self.failures = 0
        self.seconds = None
        self.stopping = False
        self.thread = threading.Thread(target=self._run, daemon=True)

    def start(self):
        self.thread.start()

    def stop(self):
        self.stopping = True
        self.thread.join(timeout=30)

    def _hello(self, index):
        name, room = f"s{index}".encode(), self.room.encode()
        body = (bytes([0x01]) + (2 if self.key else 1).to_bytes(2, "big") + bytes([len(name)]) + name
                + bytes([len(room)]) + room + (0).to_bytes(2, "big"))
        return len(body).to_bytes(4, "big") + body

    def _open(self, index):
        import selectors
        connection = socket.socket()
        connection.setblocking(False)
        connection.connect_ex(("127.0.0.1", self.port))
        state = {"index": index, "stage": "connecting", "buffer": b"", "noise": None}
        self.selector.register(connection, selectors.EVENT_WRITE, state)

    def _close(self, connection):
        self.selector.unregister(connection)
        connection.close()

    def _run(self):
        import selectors
        start = time.monotonic()
        for index in range(self.count):
            self._open(index)
        retries = []
        attempts = [0] * self.count
        answered = [False] * self.count
        while not self.stopping:
            now = time.monotonic()
            for entry in [entry for entry in retries if entry[0] <= now]:
                retries.remove(entry)
                self._open(entry[1])
            for key, _ in self.selector.select(timeout=0.01):
                connection, state = key.fileobj, key.data
                index = state["index"]
                try:
                    if state["stage"] == "connecting":
                        if connection.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR):
                            raise OSError("connect failed")
                        if self.key:
                            from noise.connection import NoiseConnection
                            noise = NoiseConnection.from_name(b"Noise_NK_25519_AESGCM_SHA256")
                            noise.set_as_initiator()
                            noise.set_keypair_from_public_bytes(__import__("noise.connection").connection.Keypair.REMOTE_STATIC,
                                                                self.key)
                            noise.set_prologue(b"aeschat/2 transport" + self.preamble)
                            noise.start_handshake()
                            message = noise.write_message()
                            state["noise"] = noise
                            connection.sendall(self.preamble + len(message).to_bytes(2, "big") + message)
                            state["stage"] = "handshake"
                        else:
                            connection.sendall(self._hello(index))
                            state["stage"] = "hello"
                        self.selector.modify(connection, selectors.EVENT_READ, state)
                        continue
                    data = connection.recv(1 << 16)
                    if not data:
                        raise OSError("closed")
                    if state["stage"] == "handshake":
                        state["buffer"] += data
                        if state["buffer"].startswith(b"AESCHAT") and len(state["buffer"]) >= 9:
                            self.busy += 1
                            self._close(connection)
                            wait = 0.01 * (1 << min(attempts[index], 5)) + (index % 16) / 1000
                            attempts[index] += 1
                            retries.append((time.monotonic() + wait, index))
                            continue
                        if len(state["buffer"]) < 50:
                            continue
                        noise = state["noise"]
                        noise.read_message(state["buffer"][2:50])
                        sealed = noise.encrypt(self._hello(index))
                        connection.sendall(len(sealed).to_bytes(2, "big") + sealed)
                        state["buffer"] = b""
                        state["stage"] = "hello"
                        if len(data) <= 50:
                            continue
                    if state["stage"] == "hello" and not answered[index]:
                        answered[index] = True
                        self.welcomed += 1
                        if self.welcomed == self.count:
                            self.seconds = time.monotonic() - start
                        state["stage"] = "member"
                except (OSError, ValueError) as error:
                    self.failures += 1
                    self._close(connection)
                    if not answered[index] and attempts[index] < 20:
                        attempts[index] += 1
                        retries.append((time.monotonic() + 0.05, index))
        for key in list(self.selector.get_map().values()):
            key.fileobj.close()


def join_storm(binary, quick):
    """Paced chat during a join storm, the same for every build (so that A/B compares them): the build's own
    generator has 40 members chat paced (10 senders × 10 messages/s) for 6 s (4 with --quick) while, 1.5 s after it
    starts, 1,000 more members (StormClients, in this process) connect all at once into another room and stay.
    Returns the generator's paced figures as stormab_*, and the storm's time to welcome all 1,000."""
    port = free_port()
    relay = Relay(binary, port)
    seconds = 4 if quick else 6
    storm = StormClients(port, 1000, relay.key)
    try:
        chat = subprocess.Popen([os.path.join(binary, "aeschat-load"), "run", "--port", str(port), "--pid",
                                 str(relay.pid), "--members", "40", "--paced-seconds", str(seconds), "--idle-seconds",
                                 "0.2", "--threads", "1", *relay.load_arguments()],
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        time.sleep(1.5)
        storm.start()
        try:
            stdout, stderr = chat.communicate(timeout=LOAD_TIMEOUT)
        except subprocess.TimeoutExpired:
            chat.kill()
            stdout, stderr = chat.communicate()
        storm.stop()
    finally:
        relay.stop()
    lines = [line for line in stdout.splitlines() if line.startswith("{")]
    result = json.loads(lines[-1]) if lines else {"error": f"no result: {stderr.strip()[-500:]}"}
    figures = {f"stormab_{key[len('paced_'):]}": value for key, value in result.items() if key.startswith("paced_")}
    figures["stormab_join_seconds"] = storm.seconds
    figures["stormab_busy"] = storm.busy
    figures["stormab_welcomed"] = storm.welcomed
    for key in FAULT_KEYS:
        figures[key] = result.get(key, 0)
    figures["exit"] = chat.returncode
    if "error" in result:
        figures["error"] = result["error"]
        print(f"bench: join storm: {result['error']}", file=sys.stderr, flush=True)
    return figures


def relay_pid_under(port, binary):
    """The pid of `aeschat serve --port PORT` started through a wrapper such as heaptrack."""
    target = os.path.join(binary, "aeschat")
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/cmdline", "rb") as file:
                arguments = file.read().split(b"\0")
        except OSError:
            continue
        if arguments and arguments[0].decode(errors="replace") == target and str(port).encode() in arguments:
            return int(entry)
    return None


def allocations(binary, messages, folder):
    """Runs a relay under heaptrack for join + W1 at N=100 and returns its count of allocation calls."""
    port = free_port()
    output = os.path.join(folder, f"relay-{messages}")
    key_arguments = []
    if speaks_link(binary):
        key_file = os.path.join(folder, f"relay-key-{messages}")
        shown = subprocess.run([os.path.join(binary, "aeschat"), "serve", "--show-key", "--relay-key", key_file],
                               capture_output=True, text=True, timeout=30)
        match = KEY_TEXT.search(shown.stdout + shown.stderr)
        if not match:
            return None
        key_arguments = ["--relay-key", match.group(1)]
        extra = ["--relay-key", key_file, "--handshake-rate", "0"]
    else:
        extra = []
    wrapper = subprocess.Popen(
        ["heaptrack", "-o", output, os.path.join(binary, "aeschat"), "serve", "--host", "127.0.0.1", "--port",
         str(port), *UNLIMITED, *extra], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    pid = None
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline and pid is None:
        time.sleep(0.2)
        pid = relay_pid_under(port, binary)
    if pid is None:
        wrapper.kill()
        return None
    try:
        for _ in range(100):
            try:
                with socket.create_connection(("127.0.0.1", port), timeout=0.2):
                    break
            except OSError:
                time.sleep(0.1)
        figures = load(binary, ["run", "--port", str(port), "--members", "100", "--messages", str(messages),
                                "--idle-seconds", "0.2", "--threads", "1", *key_arguments])
    finally:
        os.kill(pid, signal.SIGTERM)
        try:
            wrapper.wait(timeout=60)
        except subprocess.TimeoutExpired:
            wrapper.kill()
    if figures.get("exit") != 0:
        return None
    files = [name for name in os.listdir(folder) if name.startswith(f"relay-{messages}")]
    if not files:
        return None
    report = subprocess.run(["heaptrack_print", os.path.join(folder, files[0])], capture_output=True, text=True)
    match = re.search(r"calls to allocation functions: (\d+)", report.stdout)
    return int(match.group(1)) if match else None


def allocation_check(binary):
    """Allocation calls per published message in steady state: two runs that differ only in the number of
    W1 messages; the difference divided by the extra messages."""
    import shutil
    import tempfile
    if shutil.which("heaptrack") is None or shutil.which("heaptrack_print") is None:
        return None
    with tempfile.TemporaryDirectory() as folder:
        small = allocations(binary, 2_000, folder)
        large = allocations(binary, 102_000, folder)
    if small is None or large is None:
        return None
    return {"small": small, "large": large, "small_messages": 2_000, "large_messages": 102_000,
            "extra_deliveries": 100_000 * 99, "per_message": (large - small) / 100_000}


def median(runs, key):
    values = [run[key] for run in runs if run.get(key) is not None]
    return statistics.median(values) if values else None


def machine():
    model = "unknown"
    try:
        for line in subprocess.run(["lscpu"], capture_output=True, text=True).stdout.splitlines():
            if line.startswith("Model name:"):
                model = line.split(":", 1)[1].strip()
    except OSError:
        pass
    memory = "unknown"
    with open("/proc/meminfo") as meminfo:
        for line in meminfo:
            if line.startswith("MemTotal:"):
                memory = f"{int(line.split()[1]) / 1024 / 1024:.1f} GiB"
    return {"cores": os.cpu_count(), "model": model, "memory": memory, "kernel": platform.release()}


def loadavg():
    with open("/proc/loadavg") as file:
        return " ".join(file.read().split()[:3])


def fmt(value, spec, scale=1.0):
    return "—" if value is None else format(value * scale, spec)


def millions(value):
    return "—" if value is None else f"{value / 1e6:.2f} M"


def render(results, member, info, command, started, load_before, load_after, quick, repeats, allocation=None):
    rows = []
    rows.append("| N | join (s) | idle memory per connection (B) | W1 deliveries/s | relay CPU per delivery (µs) "
                "| relay CPU (of a core) | load-tool CPU (of a core) | paced p50 / p99 / max (ms) | faults |")
    rows.append("|---|---|---|---|---|---|---|---|---|")
    for members in SIZES:
        runs = results[members]
        if not runs:
            rows.append(f"| {members:,} | not run (too few descriptors, or not in --sizes) | | | | | | | |")
            continue
        faults = sum(sum(run.get(key, 0) for key in FAULT_KEYS) + (1 if "error" in run else 0) for run in runs)
        paced = "—"
        if median(runs, "paced_p99_ms") is not None:
            paced = (f"{median(runs, 'paced_p50_ms'):.2f} / {median(runs, 'paced_p99_ms'):.2f} / "
                     f"{median(runs, 'paced_max_ms'):.2f}")
        rows.append(
            f"| {members:,} | {fmt(median(runs, 'join_seconds'), '.2f')} "
            f"| {fmt(median(runs, 'bytes_per_connection'), ',.0f')} "
            f"| {millions(median(runs, 'w1_deliveries_per_second'))} "
            f"| {fmt(median(runs, 'w1_relay_cpu_us_per_delivery'), '.3f')} "
            f"| {fmt(median(runs, 'w1_relay_cpu_share'), '.0%')} "
            f"| {fmt(median(runs, 'w1_load_cpu_share'), '.0%')} "
            f"| {paced} | {faults} |")
    target_rows = target_table(absolute_checks(results))
    lines = [
        BEGIN,
        "",
        f"Recorded {started} by `{command}` ({'quick pass' if quick else 'full run'}, "
        f"{repeats} run{'s' if repeats > 1 else ''} per size, median shown).",
        "",
        f"Machine: {info['cores']} cores, {info['model']}, {info['memory']} memory, Linux {info['kernel']}; "
        f"load average {load_before} before, {load_after} after (other work on the machine makes the "
        "figures noisy).",
        "",
        "\n".join(rows),
        "",
        "\n".join(target_rows),
        "",
    ]
    link = link_lines(results)
    if link:
        lines += [link, ""]
    if member:
        lines.append(
            f"Member cost (one client, release build, real `AutomaticKeySecurity`): "
            f"**{member['us_per_message']:.0f} µs** to verify, ratchet, decrypt and format one "
            f"{member['envelope_bytes']}-byte group envelope as a JSON line, of which "
            f"{member['us_signature_check']:.0f} µs is the Ed25519 signature check: one member absorbs about "
            f"**{member['messages_per_second']:,.0f} messages/s**.")
        lines.append("")
    if allocation:
        lines.append(
            f"Allocations (heaptrack on the relay, N=100): {allocation['small']:,} allocation calls for join + "
            f"{allocation['small_messages']:,} W1 messages, {allocation['large']:,} for join + "
            f"{allocation['large_messages']:,}: **{allocation['per_message']:+.4f} per published message** over "
            f"{allocation['extra_deliveries']:,} extra deliveries (what differs comes from the join phase, whose "
            "allocations vary a little from run to run; the fan-out itself allocates nothing).")
        lines.append("")
    lines.append(END)
    return "\n".join(lines)


def absolute_checks(results):
    """The targets with a fixed value (issue 6, and issue 13 for the encrypted link): (label, value, test, show)."""
    k = results[1000]
    return [
        ("Relay CPU per delivery at N=1000 ≤ 0.23 µs (InspIRCd's plaintext figure, issue 6)",
         median(k, "w1_relay_cpu_us_per_delivery"), lambda v: v <= 0.23, lambda v: f"{v:.3f} µs"),
        ("W1 deliveries/s at N=1000 above 5.29 M", median(k, "w1_deliveries_per_second"),
         lambda v: v > 5.29e6, millions),
        ("W1 deliveries/s at N=5000 above 2.79 M (InspIRCd)", median(results[5000], "w1_deliveries_per_second"),
         lambda v: v > 2.79e6, millions),
        ("Paced p99 at N=1000 ≤ 3 ms", median(k, "paced_p99_ms"), lambda v: v <= 3.0, lambda v: f"{v:.2f} ms"),
        ("Paced maximum at N=1000 ≤ 10 ms", median(k, "paced_max_ms"), lambda v: v <= 10.0,
         lambda v: f"{v:.2f} ms"),
        ("10,000 members join in under 15 s, handshakes included", median(results[10000], "join_seconds"),
         lambda v: v < 15.0, lambda v: f"{v:.2f} s"),
        ("Relay CPU per handshake ≤ 1 ms", median(k, "handshake_relay_cpu_ms"), lambda v: v <= 1.0,
         lambda v: f"{v:.3f} ms"),
        ("Memory per idle connection at N=10,000 ≤ 1,500 B", median(results[10000], "bytes_per_connection"),
         lambda v: v <= 1500, lambda v: f"{v:,.0f} B"),
    ]


def target_table(checks):
    rows = ["| target | measured | met |", "|---|---|---|"]
    for label, value, test, show in checks:
        met = "—" if value is None else ("yes" if test(value) else "**no**")
        rows.append(f"| {label} | {'—' if value is None else show(value)} | {met} |")
    return rows


def link_lines(results):
    """The encrypted link's own figures (handshakes, the join storm, the generator's handshake CPU), in words."""
    k = results[1000]
    parts = []
    if median(k, "handshake_relay_cpu_ms") is not None:
        parts.append(
            f"Handshakes (N=1,000 rounds; connections that complete a handshake and close): the relay spends "
            f"**{median(k, 'handshake_relay_cpu_ms'):.3f} ms of CPU per handshake**, "
            f"{fmt(median(k, 'handshakes_per_second'), ',.0f')} handshakes/s; the generator "
            f"{fmt(median(k, 'handshake_load_cpu_ms'), '.3f')} ms per handshake to read message 2 and set up its "
            f"records (its message 1 is written before the timed phases: "
            f"{fmt(median(k, 'prepare_load_cpu_ms_per_handshake'), '.3f')} ms each).")
    if median(k, "storm_join_seconds") is not None:
        parts.append(
            f"Join storm: 1,000 members joined one room all at once in {median(k, 'storm_join_seconds'):.2f} s "
            f"({fmt(median(k, 'storm_busy'), ',.0f')} busy answers) while 40 members of another room chatted "
            f"(10 senders × 10 messages/s): paced latency p50 / p99 / max of the messages sent during the storm "
            f"**{fmt(median(k, 'storm_p50_ms'), '.2f')} / {fmt(median(k, 'storm_p99_ms'), '.2f')} / "
            f"{fmt(median(k, 'storm_max_ms'), '.2f')} ms**, of the others {fmt(median(k, 'calm_p50_ms'), '.2f')} / "
            f"{fmt(median(k, 'calm_p99_ms'), '.2f')} / {fmt(median(k, 'calm_max_ms'), '.2f')} ms.")
    for members in SIZES:
        runs = results[members]
        if median(runs, "join_load_handshake_cpu_seconds") is None:
            continue
        parts.append(
            f"Join at N={members:,}: relay CPU {fmt(median(runs, 'join_relay_cpu_seconds'), '.2f')} s "
            f"({fmt(median(runs, 'join_relay_cpu_ms_per_member'), '.3f')} ms per member, handshake and all the "
            f"`joined` frames); generator CPU {fmt(median(runs, 'join_load_cpu_seconds'), '.2f')} s, of which "
            f"{fmt(median(runs, 'join_load_handshake_cpu_seconds'), '.2f')} s reading message 2, plus "
            f"{fmt(median(runs, 'prepare_load_cpu_seconds'), '.2f')} s before the timer to write message 1 "
            f"({fmt(median(runs, 'prepare_seconds'), '.2f')} s on two threads).")
    return "\n".join(f"- {part}" for part in parts)


AB_FIGURES = [
    ("join (s)", "join_seconds", lambda v: f"{v:.2f}"),
    ("relay CPU during the join (s)", "join_relay_cpu_seconds", lambda v: f"{v:.2f}"),
    ("idle memory per connection (B)", "bytes_per_connection", lambda v: f"{v:,.0f}"),
    ("W1 deliveries/s", "w1_deliveries_per_second", millions),
    ("relay CPU per delivery (µs)", "w1_relay_cpu_us_per_delivery", lambda v: f"{v:.3f}"),
    ("load-tool CPU in W1 (of a core)", "w1_load_cpu_share", lambda v: f"{v:.0%}"),
    ("paced p50 (ms)", "paced_p50_ms", lambda v: f"{v:.2f}"),
    ("paced p99 (ms)", "paced_p99_ms", lambda v: f"{v:.2f}"),
    ("paced max (ms)", "paced_max_ms", lambda v: f"{v:.2f}"),
    ("paced p50 during a 1,000-member join storm (ms)", "stormab_p50_ms", lambda v: f"{v:.2f}"),
    ("paced p99 during a 1,000-member join storm (ms)", "stormab_p99_ms", lambda v: f"{v:.2f}"),
    ("paced max during a 1,000-member join storm (ms)", "stormab_max_ms", lambda v: f"{v:.2f}"),
    ("join storm: seconds for 1,000 members to join", "stormab_join_seconds", lambda v: f"{v:.2f}"),
]


def ratio_checks(baseline, current):
    """Issue 13's targets relative to the baseline relay, measured in the same run."""
    def ratio(members, key):
        old, new = median(baseline[members], key), median(current[members], key)
        return None if old in (None, 0) or new is None else new / old
    checks = [("Relay CPU per delivery at N=1000 ≤ 2.5 × the baseline's", ratio(1000, "w1_relay_cpu_us_per_delivery"),
               lambda v: v <= 2.5, lambda v: f"{v:.2f} ×")]
    for label, key in (("p50", "paced_p50_ms"), ("p99", "paced_p99_ms"), ("maximum", "paced_max_ms")):
        checks.append((f"Paced {label} at N=1000 ≤ 1.10 × the baseline's", ratio(1000, key), lambda v: v <= 1.10,
                       lambda v: f"{v:.2f} ×"))
    return checks


def render_ab(baseline, current, baseline_member, member, baseline_label, info, command, started, load_before,
              load_after, repeats):
    """Baseline and current relay side by side (each driven by its own build's load generator, runs alternating),
    with the ratio current / baseline of each median, the targets, and the link's own figures."""
    rows = [f"A/B recorded {started} by `{command}`: {repeats} alternating run{'s' if repeats > 1 else ''} per "
            f"size and relay, each driven by its own build's `aeschat-load`, median shown; baseline = "
            f"{baseline_label}.",
            "",
            f"Machine: {info['cores']} cores, {info['model']}, {info['memory']} memory, Linux {info['kernel']}; "
            f"load average {load_before} before, {load_after} after.",
            "",
            "| N | figure | baseline | current | current / baseline |",
            "|---|---|---|---|---|"]
    for members in SIZES:
        if not baseline[members] or not current[members]:
            continue
        for label, key, show in AB_FIGURES:
            old, new = median(baseline[members], key), median(current[members], key)
            if old is None or new is None:
                continue
            ratio = f"{new / old:.2f}" if old else "—"
            rows.append(f"| {members:,} | {label} | {show(old)} | {show(new)} | {ratio} |")
    if baseline_member and member:
        old, new = baseline_member["us_per_message"], member["us_per_message"]
        rows.append(f"| one client | member cost per group message (µs) | {old:.0f} | {new:.0f} | {new / old:.2f} |")
    rows += ["", *target_table(ratio_checks(baseline, current) + absolute_checks(current))]
    link = link_lines(current)
    if link:
        rows += ["", link]
    return "\n".join(rows)


def exit_if_faulty(*result_sets):
    """Exits 1, naming each run, if any run lost, duplicated or reordered a delivery or failed."""
    faulty = [(members, run) for results in result_sets for members in SIZES for run in results[members]
              if run.get("exit", 1) != 0 or "error" in run]
    if faulty:
        for members, run in faulty:
            print(f"bench: N={members}: deliveries lost, duplicated or reordered, or the run failed: {run}",
                  file=sys.stderr)
        sys.exit(1)


def main_ab(options, repeats, sizes):
    """--baseline: the same workloads against the baseline relay and the current one, alternating which goes
    first in each round so that drift on a noisy machine falls on both."""
    started = datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    load_before = loadavg()
    baseline = {members: [] for members in SIZES}
    current = {members: [] for members in SIZES}
    for round_number in range(repeats):
        for members in sizes:
            order = [("baseline", options.baseline, baseline), ("current", options.bin, current)]
            if round_number % 2:
                order.reverse()
            for label, relay_folder, into in order:
                print(f"bench: N={members:,} {label} relay (run {round_number + 1} of {repeats})", file=sys.stderr,
                      flush=True)
                figures = one_size(relay_folder, members, options.quick)
                into[members].append(figures)
                print("bench:   " + json.dumps(figures), file=sys.stderr, flush=True)
    print("bench: member cost, baseline and current", file=sys.stderr, flush=True)
    messages = "100" if options.quick else "500"
    baseline_member = load(options.baseline, ["member-cost", "--messages", messages], timeout=600)
    member = load(options.bin, ["member-cost", "--messages", messages], timeout=600)
    print(render_ab(baseline, current, baseline_member, member, options.baseline_label or options.baseline,
                    machine(), options.command, started, load_before, loadavg(), repeats))
    exit_if_faulty(baseline, current)


ROOM_KEY_SIZES = [10, 100]
ROOM_KEY_LARGE = 1000


def room_keys(binary, quick, large):
    """The automatic-key room in one process (aeschat-load room-keys): N = 10 with --quick (well under a second),
    else 10 and 100; with --room-keys-large also N = 1,000, whose room alone costs about 20 CPU-minutes to build
    before anything is timed (half a million pairs, each checking profiles and agreeing keys both ways: about 10
    minutes on two idle cores; docs/BENCHMARKS.md). Returns a small Markdown table."""
    rows = []
    sizes = ROOM_KEY_SIZES[:1] if quick else ROOM_KEY_SIZES
    for members in sizes + ([ROOM_KEY_LARGE] if large else []):
        print(f"bench: automatic-key room, N={members:,}", file=sys.stderr, flush=True)
        figures = load(binary, ["room-keys", "--members", str(members)],
                       timeout=5400 if members >= ROOM_KEY_LARGE else 900)
        print("bench:   " + json.dumps(figures), file=sys.stderr, flush=True)
        if "join_newcomer_cpu_ms" not in figures:
            rows.append(f"| {members:,} | failed (exit {figures['exit']}) | | | | | | | |")
            continue
        rows.append(f"| {members:,} | {figures['join_newcomer_cpu_ms']} | {figures['join_room_cpu_ms']} | "
                    f"{figures['senders']} | {figures['leave_room_cpu_ms']} | {figures['leave_relay_frames']:,} | "
                    f"{figures['leave_relay_bytes']:,} | {figures['us_per_received_message']} | "
                    f"{figures['build_seconds']} / {figures['build_cpu_seconds']} ({figures['build_threads']}) |")
    return "\n".join([
        "Automatic-key room in one process (real keys, the relay's fan-out in memory):",
        "",
        "| N | newcomer CPU to the room code (ms) | room CPU for the join (ms) | senders after the leave | "
        "room CPU, leave + one message per sender (ms) | relay frames | relay bytes | CPU per received message (µs) | "
        "untimed room build: wall / CPU s (threads) |",
        "|---|---|---|---|---|---|---|---|---|",
    ] + rows)


def main():
    parser = argparse.ArgumentParser(description="relay benchmarks (see docs/BENCHMARKS.md)")
    parser.add_argument("--bin", required=True, help="folder with the release aeschat and aeschat-load")
    parser.add_argument("--command", default="scripts/bench")
    parser.add_argument("--quick", action="store_true", help="about one minute, one run per size")
    parser.add_argument("--write", action="store_true", help="record a quick pass in docs/BENCHMARKS.md too")
    parser.add_argument("--repeats", type=int, default=None, help="runs per size (default 3, quick 1)")
    parser.add_argument("--baseline", help="folder with an earlier build's release aeschat and aeschat-load: "
                        "run both relays side by side (alternating) and print the ratios; writes nothing")
    parser.add_argument("--baseline-label", help="how to name the baseline in the table (default: its folder)")
    parser.add_argument("--sizes", help="comma-separated member counts (default 100,1000,5000,10000)")
    parser.add_argument("--room-keys-large", action="store_true",
                        help="the automatic-key room also at N = 1,000 (about 10 more minutes on two idle cores)")
    parser.add_argument("--cluster", action="store_true",
                        help="instead: 1, 2 and 3 relays sharing a room through one redis-server (serve --cluster)")
    parser.add_argument("--cluster-join", type=int, default=5000,
                        help="with --cluster: members of the join timed across the relays (default 5000)")
    options = parser.parse_args()
    if options.cluster:
        import bench_cluster
        bench_cluster.main(options)
        return
    repeats = options.repeats or (1 if options.quick else 3)
    started = datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    load_before = loadavg()
    results = {members: [] for members in SIZES}
    import resource
    descriptors = resource.getrlimit(resource.RLIMIT_NOFILE)[0]
    wanted = [int(size) for size in options.sizes.split(",")] if options.sizes else SIZES
    unknown = [size for size in wanted if size not in SIZES]
    if unknown:
        raise SystemExit(f"bench: --sizes takes some of {', '.join(map(str, SIZES))}, not {unknown}")
    sizes = [members for members in wanted if members + 64 <= descriptors]
    for members in wanted:
        if members not in sizes:
            print(f"bench: skipping N={members:,}: the descriptor limit is {descriptors} (raise ulimit -Hn)",
                  file=sys.stderr)
    if options.baseline:
        main_ab(options, repeats, sizes)
        return
    for round_number in range(repeats):
        for members in sizes:
            print(f"bench: N={members:,} (run {round_number + 1} of {repeats})", file=sys.stderr, flush=True)
            figures = one_size(options.bin, members, options.quick)
            results[members].append(figures)
            print("bench:   " + json.dumps(figures), file=sys.stderr, flush=True)
    print("bench: member cost", file=sys.stderr, flush=True)
    member = load(options.bin, ["member-cost", "--messages", "100" if options.quick else "500"], timeout=600)
    print(room_keys(options.bin, options.quick, options.room_keys_large))
    allocation = None
    if not options.quick:
        print("bench: allocation count (heaptrack, if installed)", file=sys.stderr, flush=True)
        allocation = allocation_check(options.bin)
    table = render(results, member, machine(), options.command, started, load_before, loadavg(),
                   options.quick, repeats, allocation)
    print(table.replace(BEGIN + "\n", "").replace("\n" + END, ""))
    if not options.quick or options.write:
        with open(DOC) as file:
            text = file.read()
        if BEGIN not in text or END not in text:
            raise SystemExit(f"bench: {DOC} lacks the {BEGIN} … {END} markers")
        before, rest = text.split(BEGIN, 1)
        _, after = rest.split(END, 1)
        with open(DOC, "w") as file:
            file.write(before + table + after)
        print(f"bench: wrote {os.path.relpath(DOC, ROOT)}", file=sys.stderr)
    exit_if_faulty(results)


if __name__ == "__main__":
    main()
