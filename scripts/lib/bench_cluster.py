"""`scripts/bench --cluster` (issue 16, docs/BENCHMARKS.md "Several relays (--cluster)"): one redis-server and
k = 1, 2, 3 relays sharing a room through it (`aeschat serve --cluster`), N members spread evenly over the relays by
`aeschat-load run --relays`, with one plain relay (no cluster) as the reference. For each k it reads, from
/proc/PID/stat, the CPU of every relay and of redis-server in each phase of the run (join, W1, W1-paced: the load
tool announces each phase on standard error, and this script samples every process's CPU when it does), and gives

- each relay's CPU per *local* delivery in W1 (its CPU over the deliveries to its own members),
- redis-server's CPU per W1 message,
- the paced latency (p50/p99) against the plain relay: in a cluster every payload goes through Redis, to members on
  the sender's relay as to the others, so the added latency is the hop through Redis for all of them,
- the join time of N members and of --cluster-join members (default 5,000) across the relays,

then a table of throughput projected from those costs (each relay and Redis on a core of its own), labelled so.
Every process listens on and connects to 127.0.0.1 only; every run is bounded. Exits 1 if any run lost, duplicated
or reordered a delivery, or failed."""

import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time

import bench

TICKS = os.sysconf("SC_CLK_TCK")


def cpu_seconds(pid):
    """User + system CPU seconds of process `pid` (/proc/PID/stat fields 14 and 15), None once it is gone."""
    try:
        with open(f"/proc/{pid}/stat") as file:
            text = file.read()
    except OSError:
        return None
    fields = text[text.rindex(")") + 2:].split()
    return (int(fields[11]) + int(fields[12])) / TICKS


def redis_cpu_seconds(port):
    """redis-server's own CPU seconds (used_cpu_user + used_cpu_sys of INFO cpu, microsecond resolution, where
    /proc/PID/stat counts 10 ms ticks), None if it does not answer."""
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=5) as connection:
            connection.sendall(b"INFO cpu\r\n")
            data = b""
            while True:
                # A bulk string: "$LENGTH\r\n", LENGTH bytes, "\r\n".
                header, _, rest = data.partition(b"\r\n")
                if header.startswith(b"$") and _ and len(rest) >= int(header[1:]) + 2:
                    data = rest
                    break
                chunk = connection.recv(65536)
                if not chunk:
                    return None
                data += chunk
    except OSError:
        return None
    values = dict(line.split(":", 1) for line in data.decode(errors="replace").split("\r\n") if ":" in line)
    try:
        return float(values["used_cpu_user"]) + float(values["used_cpu_sys"])
    except (KeyError, ValueError):
        return None


class RedisServer:
    """redis-server on a free 127.0.0.1 port: persistence off, nothing evicted, a pub/sub output limit that 16 MiB
    frames fit (the settings the relay checks at start). Ended by its PID."""

    def __init__(self):
        executable = shutil.which("redis-server")
        if not executable:
            raise SystemExit("bench: --cluster needs redis-server (Debian: apt-get install redis-server)")
        self.folder = tempfile.mkdtemp(prefix="aeschat-bench-redis-")
        self.port = bench.free_port()
        self.process = subprocess.Popen(
            [executable, "--port", str(self.port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no",
             "--dir", self.folder, "--maxmemory-policy", "noeviction",
             "--client-output-buffer-limit", "pubsub 256mb 64mb 30"],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        self.pid = self.process.pid
        if not bench.wait_until_listening(self.process, self.port, seconds=10):
            self.stop()
            raise SystemExit("bench: redis-server did not start")

    @property
    def url(self):
        return f"redis://127.0.0.1:{self.port}"

    def stop(self):
        if self.process.poll() is None:
            os.kill(self.process.pid, signal.SIGKILL)
        self.process.wait()
        shutil.rmtree(self.folder, ignore_errors=True)


class ClusterRelay(bench.Relay):
    """`aeschat serve --cluster URL` with the cluster's shared relay key file; ready once it logged joining the
    cluster."""

    def __init__(self, binary, port, url, key_file):
        self.folder = tempfile.mkdtemp(prefix="aeschat-bench-relay-")
        self.key = None
        command = [os.path.join(binary, "aeschat"), "serve", "--host", "127.0.0.1", "--port", str(port),
                   *bench.UNLIMITED, "--relay-key", key_file, "--handshake-rate", "0"]
        if url:
            command += ["--cluster", url, "--cluster-prefix", "bench"]
        self.log_path = os.path.join(self.folder, "serve.log")
        with open(self.log_path, "w") as log:
            self.process = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT)
        self.pid = self.process.pid
        deadline = time.monotonic() + 15
        ready = bench.wait_until_listening(self.process, port, seconds=10)
        while ready and url and "joined the cluster" not in self._log():
            if time.monotonic() > deadline or self.process.poll() is not None:
                ready = False
            time.sleep(0.05)
        if not ready:
            self.stop()
            raise SystemExit(f"bench: the relay did not start on 127.0.0.1:{port}: {self._log()[-2000:]}")
        self.key = self._key(binary)


PHASES = (("joining", "join"), ("W1-paced", "paced"), ("W1:", "w1"))


def load_with_phases(binary, arguments, pids, redis_port=None, timeout=bench.LOAD_TIMEOUT):
    """Runs aeschat-load and samples the CPU of every process in `pids` (and of the redis-server on `redis_port`,
    last) at each phase it announces on standard error and at its end. Returns (figures, {phase: [CPU seconds of
    each process in that phase]})."""
    command = [os.path.join(binary, "aeschat-load")] + arguments
    process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    marks = []
    errors = []
    output = []

    def sample():
        values = [cpu_seconds(pid) for pid in pids]
        return values + [redis_cpu_seconds(redis_port)] if redis_port else values

    def read_errors():
        for line in process.stderr:
            errors.append(line)
            for prefix, phase in PHASES:
                if line.startswith("aeschat-load: " + prefix):
                    marks.append((phase, sample()))
                    break

    readers = [threading.Thread(target=read_errors, daemon=True),
               threading.Thread(target=lambda: output.append(process.stdout.read()), daemon=True)]
    for reader in readers:
        reader.start()
    try:
        process.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()
        raise SystemExit(f"bench: aeschat-load {' '.join(arguments)} was still running after {timeout} s and "
                         f"was killed; its messages: {''.join(errors)[-2000:]}")
    for reader in readers:
        reader.join(timeout=10)
    marks.append(("end", sample()))
    stdout = "".join(output)
    lines = [line for line in stdout.splitlines() if line.startswith("{")]
    if not lines:
        raise SystemExit(f"bench: aeschat-load {' '.join(arguments)} printed no result (exit {process.returncode}): "
                         f"{''.join(errors)[-2000:]}")
    figures = bench.json.loads(lines[-1])
    figures["exit"] = process.returncode
    phases = {}
    for (phase, before), (_, after) in zip(marks, marks[1:]):
        if all(value is not None for value in before + after):
            phases[phase] = [a - b for a, b in zip(after, before)]
    return figures, phases


def members_on(relay, relays, members):
    """Members that aeschat-load puts on relay `relay` of `relays` (connection i goes to relay i mod relays)."""
    return len(range(relay, members, relays))


def one_cluster(binary, relays, members, messages, paced_seconds, join_members):
    """k = `relays` relays (0: one relay without a cluster) and, with k > 0, one redis-server: the run with N =
    `members` (join, W1, W1-paced), then a join of `join_members`. Returns the figures."""
    redis = RedisServer() if relays else None
    key_folder = tempfile.mkdtemp(prefix="aeschat-bench-key-")
    key_file = os.path.join(key_folder, "relay-key")
    started = []
    try:
        ports = []
        for _ in range(max(relays, 1)):
            port = bench.free_port()
            started.append(ClusterRelay(binary, port, redis.url if redis else None, key_file))
            ports.append(port)
        pids = [relay.pid for relay in started]
        redis_port = redis.port if redis else None
        where = ["--relays", ",".join(f"127.0.0.1:{port}" for port in ports), "--relay-key", started[0].key]
        figures, phases = load_with_phases(binary, [
            "run", *where, "--pid", str(started[0].pid), "--members", str(members), "--messages", str(messages),
            "--paced-seconds", str(paced_seconds), "--idle-seconds", "0.5", "--threads", "2",
            "--join-concurrency", bench.JOIN_CONCURRENCY, "--phase-timeout", "120"], pids, redis_port)
        figures["phases"] = phases
        # The big join in a room of its own, on the same relays and Redis.
        joined, _ = load_with_phases(binary, [
            "run", *where, "--members", str(join_members), "--messages", "0", "--idle-seconds", "0",
            "--threads", "2", "--join-concurrency", bench.JOIN_CONCURRENCY, "--room", "bigjoin",
            "--phase-timeout", "150"], pids, redis_port)
        figures["big_join_seconds"] = joined.get("join_seconds")
        figures["big_join_exit"] = joined["exit"]
        for key in bench.FAULT_KEYS:
            figures[key] = figures.get(key, 0) + joined.get(key, 0)
        if "error" in joined:
            figures["error"] = joined["error"]
        return figures
    finally:
        for relay in started:
            relay.stop()
        if redis:
            redis.stop()
        shutil.rmtree(key_folder, ignore_errors=True)


def per_component(figures, relays, members, messages):
    """W1 costs from the phase samples: each relay's µs per local delivery and per message, Redis's µs per message."""
    w1 = figures["phases"].get("w1")
    if not w1:
        return None
    count = max(relays, 1)
    local = []
    for index in range(count):
        receivers = members_on(index, count, members) - (1 if index == 0 else 0)
        local.append((w1[index] / (messages * receivers) * 1e6, w1[index] / messages * 1e6, receivers))
    redis = w1[count] / messages * 1e6 if relays else None
    return {"local": local, "redis": redis}


def fmt(value, spec):
    return "—" if value is None else format(value, spec)


def render(results, members, messages, paced_seconds, join_members, info, command, started, load_before, load_after):
    lines = [
        f"Measured {started} on {info['cores']} cores ({info['model']}, {info['memory']}, Linux {info['kernel']}), "
        f"release build, redis-server {redis_version()}, with `{command}`; load average before "
        f"{load_before}, after {load_after} (other sessions' builds and tests share the machine: the figures are "
        f"what they are on a busy machine). N = {members:,} members in one room, spread round-robin over the relays "
        f"by `aeschat-load run --relays`, all relays sharing one relay key; W1: {messages:,} messages from m0 "
        f"(on relay 1) to the {members - 1:,} others; W1-paced: {paced_seconds} s, 10 senders × 10 messages/s; "
        f"CPU from /proc/PID/stat of each relay and from redis-server's INFO cpu, sampled when the load tool starts each phase. Two generator "
        f"threads throughout (they compete with the relays for the two cores: latencies include that).",
        "",
        "| relays | join N (s) | join " + f"{join_members:,}" + " (s) | W1 deliveries/s | CPU per local delivery, "
        "each relay (µs) | CPU per W1 message, each relay (µs) | Redis CPU per W1 message (µs) | "
        "paced p50 / p99 (ms) | faults |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for relays, figures in results:
        parts = per_component(figures, relays, members, messages)
        local = " / ".join(fmt(cost, ".4f") for cost, _, _ in parts["local"]) if parts else "—"
        per_message = " / ".join(fmt(cost, ".1f") for _, cost, _ in parts["local"]) if parts else "—"
        redis = fmt(parts["redis"], ".2f") if parts and parts["redis"] is not None else "—"
        faults = sum(figures.get(key, 0) for key in bench.FAULT_KEYS)
        label = "1, no cluster" if relays == 0 else str(relays)
        rate = figures.get("w1_deliveries_per_second")
        lines.append(
            f"| {label} | {fmt(figures.get('join_seconds'), '.2f')} | {fmt(figures.get('big_join_seconds'), '.2f')} | "
            f"{bench.millions(rate)} | {local} | {per_message} | {redis} | "
            f"{fmt(figures.get('paced_p50_ms'), '.2f')} / {fmt(figures.get('paced_p99_ms'), '.2f')} | {faults} |")
    lines += ["", projection(results, members, messages)]
    return "\n".join(lines)


def projection(results, members, messages):
    """Deliveries/s if each relay and Redis had a core of its own, from the measured W1 costs: the relay with the
    highest CPU per message, or Redis, whichever is slower, sets the message rate; each message is N−1 deliveries."""
    rows = ["**Projected, not measured**: W1 throughput if every relay and redis-server had a core of its own "
            "(the generator elsewhere), computed from the CPU costs per W1 message measured above: messages/s = "
            "1 / max(the busiest relay's CPU per message, Redis's CPU per message), deliveries/s = messages/s × "
            f"{members - 1:,}. On this 2-core machine the relays, Redis and the generator share the same two cores, "
            "so wall-clock throughput cannot rise with relays beyond what two cores carry, and the total CPU per "
            "message (relays plus Redis) rises with every relay added; the measured W1 rates above are not capacity "
            "(W1 keeps a window of messages in flight and, on a shared machine, follows scheduling more than CPU). "
            "These rows say what the measured costs would give on separate cores.",
            "",
            "| relays | busiest relay (µs per message) | Redis (µs per message) | bound by | projected deliveries/s |",
            "|---|---|---|---|---|"]
    for relays, figures in results:
        parts = per_component(figures, relays, members, messages)
        if not parts:
            continue
        busiest = max(cost for _, cost, _ in parts["local"])
        redis = parts["redis"] or 0.0
        bound = max(busiest, redis)
        label = "1, no cluster" if relays == 0 else str(relays)
        rows.append(f"| {label} | {busiest:.1f} | {fmt(parts['redis'], '.2f')} | "
                    f"{'Redis' if redis > busiest else 'relays'} | {bench.millions(1e6 / bound * (members - 1))} |")
    return "\n".join(rows)


def redis_version():
    try:
        text = subprocess.run(["redis-server", "--version"], capture_output=True, text=True, timeout=10).stdout
        for word in text.split():
            if word.startswith("v="):
                return word[2:]
    except OSError:
        pass
    return "unknown"


BEGIN = "<!-- bench:cluster:begin -->"
END = "<!-- bench:cluster:end -->"


def main(options):
    members = 1000
    messages = 2000 if options.quick else 10000
    paced_seconds = 2 if options.quick else 5
    join_members = 1000 if options.quick else options.cluster_join
    started = bench.datetime.datetime.now(bench.datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    load_before = bench.loadavg()
    results = []
    for relays in (0, 1, 2, 3):
        print(f"bench: cluster of {relays} relays" if relays else "bench: one relay without a cluster",
              file=sys.stderr, flush=True)
        figures = one_cluster(options.bin, relays, members, messages, paced_seconds, join_members)
        print("bench:   " + bench.json.dumps(figures), file=sys.stderr, flush=True)
        results.append((relays, figures))
    table = render(results, members, messages, paced_seconds, join_members, bench.machine(), options.command,
                   started, load_before, bench.loadavg())
    print(table)
    if not options.quick or options.write:
        with open(bench.DOC) as file:
            text = file.read()
        if BEGIN not in text or END not in text:
            raise SystemExit(f"bench: {bench.DOC} lacks the {BEGIN} … {END} markers")
        before, rest = text.split(BEGIN, 1)
        _, after = rest.split(END, 1)
        with open(bench.DOC, "w") as file:
            file.write(before + BEGIN + "\n" + table + "\n" + END + after)
        print(f"bench: wrote {os.path.relpath(bench.DOC, bench.ROOT)}", file=sys.stderr)
    faulty = [(relays, figures) for relays, figures in results
              if figures.get("exit", 1) != 0 or figures.get("big_join_exit", 1) != 0 or "error" in figures
              or any(figures.get(key, 0) for key in bench.FAULT_KEYS)]
    for relays, figures in faulty:
        print(f"bench: {relays} relays: deliveries lost, duplicated or reordered, or the run failed: {figures}",
              file=sys.stderr)
    if faulty:
        sys.exit(1)
