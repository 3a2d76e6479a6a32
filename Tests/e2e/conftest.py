"""Shared fixtures for the end-to-end tests: they run the real `aeschat` binary on loopback.

The binary comes from $AESCHAT_BIN, or from the debug build folder (`scripts/test` builds it).
Every process started here is killed at the end of its test; every wait is bounded.

Every connection to a relay is the encrypted link (aeschat_link.py, PyPI `noiseprotocol`): each `Relay` is started
with its own key file and learns its public key from the join line it prints; `Client` pins it with `--relay-key`.
Which key belongs to which port is kept in `RELAY_KEYS`, so that a proxy in front of a relay can say "my clients pin
the relay's key" (a plain pipe) or "my clients pin my own key" (the tampering proxy, a relay of its own).
"""

import json
import os
import queue
import re
import select
import signal
import socket
import subprocess
import tempfile
import threading
import time
from pathlib import Path

import pytest

from aeschat_link import (KEY_REQUEST_ID, LinkError, LinkSocket, StaticKey, fingerprint, key_id, parse_answer,
                          parse_key_text, preamble, read_until_close)

ROOT = Path(__file__).resolve().parents[2]
# The protocol version hello and welcome carry.
PROTOCOL_VERSION = 2
# The relay key (base32 text) that clients of each local port pin: a relay's own, or a proxy's.
RELAY_KEYS = {}
JOIN_LINE_KEY = re.compile(r"--relay-key\s+([a-z2-7]{52})\b")


def register_relay_key(port, key_text):
    RELAY_KEYS[port] = key_text


def relay_key_for(port):
    """The key clients of `port` pin (a relay's, or the proxy's in front of it)."""
    assert port in RELAY_KEYS, f"no relay key known for port {port}"
    return RELAY_KEYS[port]


def link(port, **options):
    """An encrypted link to the relay (or proxy) at `port`, handshake done: a socket-like plaintext stream."""
    return LinkSocket.connect(port, relay_key_for(port), **options)


def key_from_join_line(text):
    """The 52-character relay key in a join line (`aeschat join ... --relay-key <key>`), or None."""
    found = JOIN_LINE_KEY.search(text)
    return found.group(1) if found else None


@pytest.fixture(autouse=True)
def private_configuration(tmp_path, monkeypatch):
    """No test writes to the real ~/.config: `serve` and `join` started without a folder of their own use one private
    to the test (relay keys, identities, known_relays and known_peers included)."""
    folder = tmp_path / "xdg-config"
    monkeypatch.setenv("XDG_CONFIG_HOME", str(folder))
    return folder


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
    """Collects a stream's lines on a thread so tests can wait for them with a deadline. `last_arrival` is when (on
    time.monotonic()) the line last returned was read from the stream."""

    def __init__(self, stream):
        self.lines = queue.Queue()
        self.seen = []
        # When each line of `seen` was read from the stream.
        self.arrivals = []
        self.last_arrival = None
        self.thread = threading.Thread(target=self._pump, args=(stream,), daemon=True)
        self.thread.start()

    def _pump(self, stream):
        for raw in iter(stream.readline, b""):
            self.lines.put((time.monotonic(), raw.decode("utf-8", "replace").rstrip("\n")))
        self.lines.put(None)

    def next(self, timeout):
        try:
            item = self.lines.get(timeout=timeout)
        except queue.Empty:
            return None
        if item is None:
            return None
        self.last_arrival, line = item
        self.seen.append(line)
        self.arrivals.append(self.last_arrival)
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
    """`aeschat serve` on 127.0.0.1:`port` with its own key file (made on first start, or `key_file` if given, so a
    restarted relay keeps its key). `key` is its public key's text, learnt from the join line it prints."""

    def __init__(self, port, extra=(), key_file=None, previous_key_file=None, preexec_fn=None):
        self.port = port
        if key_file is None:
            # Beside the test's private configuration folder (see private_configuration), so pytest cleans it up.
            beside = Path(os.environ.get("XDG_CONFIG_HOME", tempfile.gettempdir())).parent
            key_file = Path(tempfile.mkdtemp(prefix="relay-", dir=beside)) / "relay-key"
        self.key_file = Path(key_file)
        command = [binary_path(), "serve", "--port", str(port), "--relay-key", str(self.key_file)]
        if previous_key_file is not None:
            command += ["--previous-relay-key", str(previous_key_file)]
        self.process = subprocess.Popen(
            [*command, *extra],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            preexec_fn=preexec_fn,
        )
        self.log = LineReader(self.process.stderr)
        self.out = LineReader(self.process.stdout)
        self.log.wait_for(lambda line: "listening on" in line, timeout=15, what="relay to listen")
        # The fingerprint and the join line follow (on stderr, as every log line).
        self.key = next(filter(None, map(key_from_join_line, self.log.seen)), None)
        if self.key is None:
            try:
                self.key = key_from_join_line(self.log.wait_for(key_from_join_line, timeout=5, what="join line"))
            except AssertionError:
                self.key = next(filter(None, map(key_from_join_line, self._stdout_so_far())), None)
        assert self.key, f"no join line from the relay: {self.log.seen}"
        self.public = parse_key_text(self.key)
        # The join line shows the key the file holds ("aeschat-relay-key-v1 <64 hex digits of the scalar>"), and the
        # relay presents that key (first) when asked for it.
        assert self.public == StaticKey(bytes.fromhex(self.key_file.read_text().split()[1])).public
        before = descriptors(self.process.pid)
        presented = probe_keys(port)
        # The relay closes the probe's connection once it has seen this side close: wait for that, so that tests
        # counting the relay's descriptors from now on start from a settled figure.
        deadline = time.monotonic() + 2
        while descriptors(self.process.pid) > before and time.monotonic() < deadline:
            time.sleep(0.01)
        assert presented[0] == self.public, (
            f"the relay presents {fingerprint(presented[0])}, its join line shows {fingerprint(self.public)}")
        self.fingerprint = fingerprint(self.public)
        self.key_id = key_id(self.public)
        register_relay_key(port, self.key)

    def _stdout_so_far(self):
        lines = []
        while True:
            line = self.out.next(0.05 if not lines else 0.01)
            if line is None:
                return lines
            lines.append(line)

    def link(self, **options):
        """An encrypted link to this relay, handshake done."""
        return LinkSocket.connect(self.port, self.key, **options)

    def stop(self):
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()


def probe_keys(port):
    """The keys the relay at `port` presents to a key request (key id 00000000), current first."""
    sock = socket.create_connection(("127.0.0.1", port), timeout=10)
    try:
        sock.sendall(preamble(KEY_REQUEST_ID))
        answer = parse_answer(read_until_close(sock))
    finally:
        sock.close()
    assert answer.kind == "keys" and answer.keys, f"no keys answer: {answer.data!r}"
    return answer.keys


def show_key(key_file):
    """The key text `serve --show-key` prints for `key_file` (which it makes if missing)."""
    result = subprocess.run([binary_path(), "serve", "--show-key", "--relay-key", str(key_file)], capture_output=True,
                            text=True, timeout=30)
    assert result.returncode == 0, result.stderr
    key = key_from_join_line(result.stdout + result.stderr)
    assert key, f"no join line in: {result.stdout!r} {result.stderr!r}"
    return key


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


# The `time` field every `--json` event ends with: ISO 8601, UTC, milliseconds (docs/CLI.md).
EVENT_TIME = re.compile(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z")


def without_time(line):
    """The JSON event on `line` without its `time` field, after checking that the field is there, last, and well
    formed."""
    event = json.loads(line)
    assert list(event)[-1] == "time", f"the last field is not 'time': {line}"
    stamp = event.pop("time")
    assert EVENT_TIME.fullmatch(stamp), f"malformed time {stamp!r}: {line}"
    return event


class Client:
    """A `join --json` client fed through a pipe. It pins the key registered for `port` (`--relay-key`) unless
    `relay_key` says otherwise (a text, or None for no `--relay-key` at all)."""

    def __init__(self, name, port, key_file, inbox, room=None, extra=(), config=None, relay_key="registered",
                 send_only=False):
        self.name = name
        # Each member gets its own configuration folder (identity, known peers) unless told otherwise.
        environment = dict(os.environ)
        environment["XDG_CONFIG_HOME"] = str(config or Path(str(inbox) + "-config"))
        # A send-only client (a bot fed by a pipe) is started without --inbox.
        command = [binary_path(), "join", "--name", name] + ([] if send_only else ["--inbox", str(inbox)])
        command += ["--port", str(port), "--json"]
        if key_file is not None:
            command += ["--key", str(key_file)]
        if room is not None:
            command += ["--room", room]
        if relay_key == "registered":
            relay_key = relay_key_for(port)
        if relay_key is not None:
            command += ["--relay-key", relay_key]
        command += list(extra)
        self.process = subprocess.Popen(
            command, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=environment
        )
        self.out = LineReader(self.process.stdout)
        self.err = LineReader(self.process.stderr)

    def events(self, timeout=10.0, what="event", **match):
        """The next event that has the fields `match`, without its `time` field (checked here, for every event)."""
        def matches(line):
            try:
                event = json.loads(line)
            except ValueError:
                return False
            return all(event.get(key) == value for key, value in match.items())

        return without_time(self.out.wait_for(matches, timeout=timeout, what=f"{what} {match} at {self.name}"))

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
    """A TCP proxy in front of the relay at `target_port`.

    Without `tamper` it is a plain pipe that records every byte in both directions (`recorded`): what a network
    observer sees. Its clients pin the relay's own key, which the link carries through it untouched.

    With `tamper` it is a hostile relay: it ends the encrypted link on both sides (towards the client it is a relay
    with its own key, `key`, which its clients pin; towards the relay it is a client) and calls `tamper(frame_type,
    body)` on the plaintext client-to-relay frames, which returns the body to forward, or a list of bodies (empty to
    drop the frame, two to duplicate it). `recorded` then holds the client side's wire bytes.
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
        if tamper is None:
            self.key = None
            register_relay_key(self.port, relay_key_for(target_port))
        else:
            self.key = StaticKey()
            register_relay_key(self.port, self.key.text)
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
            if self.tamper is None:
                upstream = socket.create_connection(("127.0.0.1", self.target_port))
                threading.Thread(target=self._pipe, args=(downstream, upstream), daemon=True).start()
            else:
                threading.Thread(target=self._terminate, args=(downstream,), daemon=True).start()

    def _pipe(self, client, relay):
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
                (relay if sock is client else client).sendall(data)

    def _terminate(self, downstream):
        """One client: the relay's side of its link here, a client's link to the relay, and the frames between."""
        recording = RecordingSocket(downstream, self.recorded)
        try:
            client, _ = LinkSocket.accept(recording, self.key, timeout=30)
            relay = LinkSocket.connect(self.target_port, relay_key_for(self.target_port), timeout=30)
        except (OSError, LinkError):
            downstream.close()
            return
        client.settimeout(None)
        relay.settimeout(None)
        threading.Thread(target=self._relay_to_client, args=(relay, client), daemon=True).start()
        pending = bytearray()
        try:
            while not self.stopping:
                data = client.recv(1 << 20)
                if not data:
                    break
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
        except (OSError, LinkError):
            pass
        for side in (client, relay):
            try:
                side.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
            side.close()

    @staticmethod
    def _relay_to_client(relay, client):
        try:
            while True:
                data = relay.recv(1 << 20)
                if not data:
                    break
                client.sendall(data)
        except (OSError, LinkError):
            pass
        for side in (client, relay):
            try:
                side.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass

    def close(self):
        self.stopping = True
        self.listener.close()


class RecordingSocket:
    """A socket that appends every byte it receives and sends to `recorded`."""

    def __init__(self, sock, recorded):
        self.sock = sock
        self.recorded = recorded

    def recv(self, count):
        data = self.sock.recv(count)
        self.recorded += data
        return data

    def send(self, data):
        sent = self.sock.send(data)
        self.recorded += bytes(data[:sent])
        return sent

    def sendall(self, data):
        self.sock.sendall(data)
        self.recorded += data

    def __getattr__(self, name):
        return getattr(self.sock, name)


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

    def make(name, room=None, key="mode", port=None, extra=(), config=None, send_only=False):
        inbox = tmp_path / f"inbox-{name}"
        client = Client(name, port or relay.port, mode_key if key == "mode" else key, inbox, room=room, extra=extra,
                        config=config, send_only=send_only)
        made.append(client)
        return client

    yield make
    for client in made:
        client.kill()
