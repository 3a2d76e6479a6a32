"""Shared fixtures for the end-to-end tests: they run the real `aeschat` binary on loopback.

The binary comes from $AESCHAT_BIN, or from the debug build folder (`scripts/test` builds it).
Every process started here is killed at the end of its test; every wait is bounded.
"""

import json
import os
import queue
import select
import signal
import socket
import subprocess
import threading
import time
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


def binary_path():
    explicit = os.environ.get("AESCHAT_BIN")
    if explicit:
        return explicit
    return str(ROOT / ".build" / "debug" / "aeschat")


def free_port():
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


class LineReader:
    """Collects a stream's lines on a thread so tests can wait for them with a deadline."""

    def __init__(self, stream):
        self.lines = queue.Queue()
        self.seen = []
        self.thread = threading.Thread(target=self._pump, args=(stream,), daemon=True)
        self.thread.start()

    def _pump(self, stream):
        for raw in iter(stream.readline, b""):
            self.lines.put(raw.decode("utf-8", "replace").rstrip("\n"))
        self.lines.put(None)

    def next(self, timeout):
        try:
            line = self.lines.get(timeout=timeout)
        except queue.Empty:
            return None
        if line is not None:
            self.seen.append(line)
        return line

    def wait_for(self, predicate, timeout=10.0, what="line"):
        deadline = time.monotonic() + timeout
        while True:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise AssertionError(f"timed out waiting for {what}; seen: {self.seen[-20:]}")
            line = self.next(remaining)
            if line is None:
                if self.thread.is_alive() or not self.lines.empty():
                    continue
                raise AssertionError(f"stream ended while waiting for {what}; seen: {self.seen[-20:]}")
            if predicate(line):
                return line


class Relay:
    def __init__(self, port, extra=()):
        self.port = port
        self.process = subprocess.Popen(
            [binary_path(), "serve", "--port", str(port), *extra],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
        )
        self.log = LineReader(self.process.stderr)
        self.log.wait_for(lambda line: "listening on" in line, timeout=15, what="relay to listen")

    def stop(self):
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()


def descriptors(pid):
    """How many descriptors process `pid` has open."""
    return len(os.listdir(f"/proc/{pid}/fd"))


def rss_kib(pid):
    """The resident memory of process `pid`, in KiB."""
    with open(f"/proc/{pid}/status") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    raise AssertionError("no VmRSS")


def relay_usage(relay):
    """The relay's open descriptors and resident memory (KiB)."""
    return descriptors(relay.process.pid), rss_kib(relay.process.pid)


def assert_relay_back_to(relay, baseline, rss_slack_kib=8192, timeout=10):
    """Descriptors return to the baseline (connections closed are released) and memory to near it (the relay gives
    freed memory back every two seconds)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        descriptors, rss = relay_usage(relay)
        if descriptors <= baseline[0] and rss <= baseline[1] + rss_slack_kib:
            break
        time.sleep(0.05)
    descriptors, rss = relay_usage(relay)
    assert descriptors <= baseline[0], (descriptors, baseline)
    assert rss <= baseline[1] + rss_slack_kib, (rss, baseline)
    assert relay.process.poll() is None


class Client:
    """A `join --json` client fed through a pipe."""

    def __init__(self, name, port, key_file, inbox, room=None, extra=(), config=None):
        self.name = name
        # Each member gets its own configuration folder (identity, known peers) unless told otherwise.
        environment = dict(os.environ)
        environment["XDG_CONFIG_HOME"] = str(config or Path(str(inbox) + "-config"))
        command = [binary_path(), "join", "--name", name, "--inbox", str(inbox), "--port", str(port), "--json"]
        if key_file is not None:
            command += ["--key", str(key_file)]
        if room is not None:
            command += ["--room", room]
        command += list(extra)
        self.process = subprocess.Popen(
            command, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=environment
        )
        self.out = LineReader(self.process.stdout)
        self.err = LineReader(self.process.stderr)

    def events(self, timeout=10.0, what="event", **match):
        def matches(line):
            try:
                event = json.loads(line)
            except ValueError:
                return False
            return all(event.get(key) == value for key, value in match.items())

        return json.loads(self.out.wait_for(matches, timeout=timeout, what=f"{what} {match} at {self.name}"))

    def ready(self, timeout=10.0):
        return self.events(timeout=timeout, event="ready")

    def say(self, text):
        self.process.stdin.write(text.encode("utf-8") + b"\n")
        self.process.stdin.flush()

    def close_input(self):
        self.process.stdin.close()

    def wait(self, timeout=15):
        return self.process.wait(timeout=timeout)

    def kill(self):
        if self.process.poll() is None:
            self.process.kill()
            self.process.wait()


class Proxy:
    """A TCP proxy that records every byte in both directions and can corrupt chosen frames.

    `tamper(frame_type, body)` returns the body to forward for client-to-relay frames, or a list of bodies (empty to
    drop the frame, two to duplicate it).
    """

    def __init__(self, target_port, tamper=None):
        self.target_port = target_port
        self.tamper = tamper
        self.listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.listener.bind(("127.0.0.1", 0))
        self.listener.listen(8)
        self.port = self.listener.getsockname()[1]
        self.recorded = bytearray()
        self.stopping = False
        self.thread = threading.Thread(target=self._serve, daemon=True)
        self.thread.start()

    def _serve(self):
        self.listener.settimeout(0.2)
        while not self.stopping:
            try:
                downstream, _ = self.listener.accept()
            except socket.timeout:
                continue
            except OSError:
                return
            upstream = socket.create_connection(("127.0.0.1", self.target_port))
            threading.Thread(target=self._pipe, args=(downstream, upstream), daemon=True).start()

    def _pipe(self, client, relay):
        pending = bytearray()
        sockets = [client, relay]
        deadline = time.monotonic() + 120
        while not self.stopping and time.monotonic() < deadline:
            readable, _, _ = select.select(sockets, [], [], 0.2)
            for sock in readable:
                try:
                    data = sock.recv(65536)
                except OSError:
                    data = b""
                if not data:
                    for other in sockets:
                        try:
                            other.close()
                        except OSError:
                            pass
                    return
                self.recorded += data
                if sock is client:
                    if self.tamper is None:
                        relay.sendall(data)
                        continue
                    pending += data
                    while len(pending) >= 4:
                        length = int.from_bytes(pending[:4], "big")
                        if len(pending) < 4 + length:
                            break
                        frame_type = pending[4]
                        body = bytes(pending[5 : 4 + length])
                        del pending[: 4 + length]
                        result = self.tamper(frame_type, body)
                        for out in result if isinstance(result, list) else [result]:
                            relay.sendall(len(out + b"x").to_bytes(4, "big") + bytes([frame_type]) + out)
                else:
                    client.sendall(data)

    def close(self):
        self.stopping = True
        self.listener.close()


@pytest.fixture
def key_file(tmp_path):
    path = tmp_path / "room.key"
    result = subprocess.run([binary_path(), "keygen", "--out", str(path)], capture_output=True, timeout=30)
    assert result.returncode == 0, result.stderr
    return path


@pytest.fixture
def relay():
    started = Relay(free_port())
    yield started
    started.stop()


@pytest.fixture(params=["room-key", "automatic"])
def mode(request):
    """Runs a test in both key modes: with a pre-shared room key, and with automatic keys."""
    return request.param


@pytest.fixture
def mode_key(mode, key_file):
    return key_file if mode == "room-key" else None


@pytest.fixture
def clients(tmp_path, mode_key, relay):
    made = []

    def make(name, room=None, key="mode", port=None, extra=(), config=None):
        inbox = tmp_path / f"inbox-{name}"
        client = Client(name, port or relay.port, mode_key if key == "mode" else key, inbox, room=room, extra=extra, config=config)
        made.append(client)
        return client

    yield make
    for client in made:
        client.kill()
