"""Relays in a cluster (`serve --cluster`, issue 16) with a real redis-server that each test starts on a free
loopback port (persistence off) and ends by its PID. Skipped without redis-server unless AESCHAT_REQUIRE_REDIS is
set (CI sets it)."""
import hashlib
import json
import os
import shutil
import signal
import socket
import subprocess
import time

import pytest

from conftest import Client, Relay, binary_path, free_port
from test_files import make_file, sha256_of

REDIS = shutil.which("redis-server")

pytestmark = pytest.mark.skipif(
    REDIS is None and not os.environ.get("AESCHAT_REQUIRE_REDIS"),
    reason="redis-server is not installed (apt-get install redis-server); set AESCHAT_REQUIRE_REDIS=1 to fail instead")


class RedisServer:
    def __init__(self, folder, port=None):
        assert REDIS, "redis-server is not installed and AESCHAT_REQUIRE_REDIS is set"
        self.folder = folder
        self.port = port or free_port()
        # Redis's own log (warnings such as a client cut for its output buffer), kept across restarts.
        self.log_path = os.path.join(str(folder), f"redis-{self.port}.log")
        self.start()

    def start(self):
        """Starts redis-server on `port` (again, after `stop`) and waits until it accepts connections."""
        self.process = subprocess.Popen(
            [REDIS, "--port", str(self.port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no",
             "--dir", str(self.folder), "--client-output-buffer-limit", "pubsub 256mb 64mb 30",
             "--logfile", self.log_path],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            try:
                socket.create_connection(("127.0.0.1", self.port), timeout=0.2).close()
                return
            except OSError:
                time.sleep(0.05)
        self.stop()
        raise AssertionError("redis-server did not start")

    def command(self, *words):
        """One command in RESP over a fresh connection; returns the first line of the reply."""
        with socket.create_connection(("127.0.0.1", self.port), timeout=10) as sock:
            return self.ask(sock, words).split(b"\r\n")[0].decode()

    def text(self, *words):
        """One command whose reply is a bulk string (INFO, CLIENT LIST); returns that text."""
        with socket.create_connection(("127.0.0.1", self.port), timeout=10) as sock:
            header, _, body = self.ask(sock, words).partition(b"\r\n")
            assert header.startswith(b"$"), f"not a bulk string reply to {words}: {header!r}"
            length = int(header[1:])
            while len(body) < length + 2:
                chunk = sock.recv(65536)
                assert chunk, f"Redis closed the connection in its reply to {words}"
                body += chunk
        return body[:length].decode()

    def ask(self, sock, words):
        """Sends one command in RESP on `sock` and reads until the reply's first line has arrived; returns what
        arrived."""
        sock.sendall(self.encode(words))
        reply = b""
        while b"\r\n" not in reply:
            chunk = sock.recv(65536)
            assert chunk, f"Redis closed the connection before replying to {words}"
            reply += chunk
        return reply

    @staticmethod
    def encode(words):
        return f"*{len(words)}\r\n".encode() + b"".join(
            f"${len(word.encode())}\r\n{word}\r\n".encode() for word in words)

    def log_lines(self):
        """The lines Redis has logged so far."""
        try:
            with open(self.log_path, encoding="utf-8", errors="replace") as log:
                return log.read().splitlines()
        except FileNotFoundError:
            return []

    @property
    def url(self):
        return f"redis://127.0.0.1:{self.port}"

    def stop(self):
        if self.process.poll() is None:
            os.kill(self.process.pid, signal.SIGKILL)
            self.process.wait()


@pytest.fixture
def redis(tmp_path):
    server = RedisServer(tmp_path)
    yield server
    server.stop()


@pytest.fixture
def cluster(redis):
    relays = []

    def start(count, extra=(), port=None, key_file=None):
        started = []
        for _ in range(count):
            relay = Relay(port or free_port(), extra=["--cluster", redis.url, "--cluster-prefix", "e2e", *extra],
                          key_file=key_file)
            relays.append(relay)
            relay.log.wait_for(lambda line: "joined the cluster" in line, timeout=30, what="relay to join the cluster")
            started.append(relay)
        return started

    yield start
    for relay in relays:
        if relay.process.poll() is None:
            # A relay stopped by SIGSTOP must be continued to take SIGTERM.
            os.kill(relay.process.pid, signal.SIGCONT)
        relay.stop()


@pytest.fixture
def cluster_members(tmp_path, mode_key, cluster):
    """Starts one client per (name, relay) pair, each with its own inbox, in the test's key mode, and waits until each
    is ready and every one has all the others in its room; returns them in the pairs' order. Every client started is
    killed at the end of the test (before the relays stop)."""
    started = []

    def start(placements):
        clients = []
        for name, relay in placements:
            client = Client(name, relay.port, mode_key, tmp_path / f"inbox-{name}")
            started.append(client)
            clients.append(client)
            client.ready(timeout=30)
        joined_all(clients)
        return clients

    yield start
    for client in started:
        client.kill()


def joined_all(clients, timeout=30):
    """Waits until every client has every other one in its room: in its `ready` members or a later `joined`."""
    names = {client.name for client in clients}
    for client in clients:
        deadline = time.monotonic() + timeout
        index = 0
        seen = set()
        while names - {client.name} - seen:
            while index < len(client.out.seen):
                try:
                    event = json.loads(client.out.seen[index])
                except ValueError:
                    event = {}
                index += 1
                if event.get("event") == "ready":
                    seen.update(event.get("members", []))
                elif event.get("event") == "joined":
                    seen.add(event.get("name"))
                elif event.get("event") == "left":
                    seen.discard(event.get("name"))
            remaining = deadline - time.monotonic()
            assert remaining > 0, f"{client.name} has {sorted(seen)} in its room, not all of {sorted(names)}"
            client.out.next(min(remaining, 0.2))


def texts_from(client, sender):
    """The texts of the room messages `client` has printed so far from `sender`, in order."""
    found = []
    for line in client.out.seen:
        try:
            event = json.loads(line)
        except ValueError:
            continue
        if event.get("event") == "message" and event.get("from") == sender:
            found.append(event["text"])
    return found


def events_of(client):
    """Every JSON event `client` printed so far, in order."""
    return [json.loads(line) for line in client.out.seen if line.startswith("{")]


def last_index(events, kind, name):
    """The index of the last `kind` event (`joined`, `left`) about `name` in `events`."""
    return max(i for i, event in enumerate(events) if event.get("event") == kind and event.get("name") == name)


def wait_for_texts(client, sender, expected, timeout=60):
    """Waits until `client` has printed every text in `expected` from `sender`; returns all texts from `sender`."""
    deadline = time.monotonic() + timeout
    while not set(expected) <= set(texts_from(client, sender)):
        remaining = deadline - time.monotonic()
        assert remaining > 0, f"{client.name} has from {sender} only {texts_from(client, sender)}"
        client.out.next(min(remaining, 0.2))
    return texts_from(client, sender)


def assert_once_in_order(texts, prefix):
    numbered = [int(text[len(prefix):]) for text in texts if text.startswith(prefix)]
    assert numbered == sorted(set(numbered)), f"duplicated or out of order: {numbered}"


def test_three_relays_chat_private_lines_and_a_file_across_relays(tmp_path, mode_key, cluster, cluster_members):
    one, two, three = cluster(3)
    clients = cluster_members([("alice", one), ("bob", two), ("carol", three)])
    alice, bob, carol = clients
    for number in range(5):
        for client in clients:
            client.say(f"{client.name} {number}")
    for receiver in clients:
        for sender in clients:
            if sender is not receiver:
                texts = wait_for_texts(receiver, sender.name, [f"{sender.name} {n}" for n in range(5)])
                assert texts == [f"{sender.name} {n}" for n in range(5)], texts
    # `/msg` from a member on one relay to a member on another: only the recipient gets it (automatic keys
    # only: with a shared room key `/msg` is refused at the client).
    private = mode_key is None
    if private:
        alice.say("/msg carol only for carol")
        carol_got = carol.events(event="message", text="only for carol", timeout=30)
        assert carol_got["private"] is True and carol_got["from"] == "alice"
        bob.say("/msg alice only for alice")
        assert alice.events(event="message", text="only for alice", timeout=30)["private"] is True
    # A file to the room reaches the members on the two other relays, byte for byte.
    source = make_file(tmp_path / "across.bin", 3 * 1024 * 1024 + 17, seed=16)
    alice.say(f"/send {source}")
    for receiver in (bob, carol):
        received = receiver.events(event="file", timeout=180)
        assert received["sha256"] == sha256_of(source)
        assert hashlib.sha256(open(received["path"], "rb").read()).hexdigest() == sha256_of(source)
    assert sorted(alice.events(event="file-sent", timeout=60)["to"]) == ["bob", "carol"]
    # A line after the file: bob never saw carol's private line.
    alice.say("after the file")
    bob.events(event="message", text="after the file", timeout=30)
    assert not any("only for carol" in line for line in bob.out.seen)
    assert not any("only for alice" in line for line in carol.out.seen)


def test_a_relay_killed_loses_its_members_within_2_s_and_they_come_back_when_it_restarts(cluster, cluster_members):
    one, two, three = cluster(3)
    clients = cluster_members([("alice", one), ("bob", two), ("dave", two), ("carol", three)])
    alice, bob, dave, carol = clients
    for number in range(5):
        alice.say(f"a{number}")
        bob.say(f"b{number}")
    wait_for_texts(carol, "bob", [f"b{n}" for n in range(5)])
    wait_for_texts(bob, "alice", [f"a{n}" for n in range(5)])
    killed = time.monotonic()
    os.kill(two.process.pid, signal.SIGKILL)
    two.process.wait(timeout=10)
    for survivor in (alice, carol):
        for name in ("bob", "dave"):
            survivor.events(event="left", name=name, timeout=10)
            took = survivor.out.last_arrival - killed
            assert took < 2.0, f"{survivor.name} saw {name} left after {took:.2f} s"
    # The surviving relays log the reaping, with counts.
    reaped = [line for relay in (one, three) for line in relay.log.seen if "reaped relay" in line]
    deadline = time.monotonic() + 5
    while not reaped and time.monotonic() < deadline:
        for relay in (one, three):
            line = relay.log.next(0.1)
            if line and "reaped relay" in line:
                reaped.append(line)
    assert reaped and "members left" in reaped[0], reaped
    # Lines typed during the outage are sent once the client is back.
    for number in range(5, 8):
        bob.say(f"b{number}")
    restarted = cluster(1, port=two.port, key_file=two.key_file)[0]
    for client in (bob, dave):
        client.events(event="reconnected", timeout=90)
    for survivor in (alice, carol):
        survivor.events(event="joined", name="bob", timeout=30)
    joined_all(clients)
    for number in range(5, 10):
        alice.say(f"a{number}")
    for number in range(8, 10):
        bob.say(f"b{number}")
    for receiver in (alice, carol, dave):
        texts = wait_for_texts(receiver, "bob", [f"b{n}" for n in range(10)])
        assert texts == [f"b{n}" for n in range(10)], f"{receiver.name}: {texts}"
    texts = wait_for_texts(bob, "alice", [f"a{n}" for n in range(5)] + [f"a{n}" for n in range(5, 10)])
    assert_once_in_order(texts, "a")
    assert restarted.process.poll() is None


def test_a_stopped_relay_is_declared_dead_and_ends_its_incarnation_when_continued(cluster, cluster_members):
    one, two, three = cluster(3, extra=["--cluster-dead-after", "2"])
    clients = cluster_members([("alice", one), ("bob", two), ("carol", three)])
    alice, bob, carol = clients
    bob.say("before the stop")
    for receiver in (alice, carol):
        receiver.events(event="message", text="before the stop", timeout=30)
    stopped = time.monotonic()
    os.kill(two.process.pid, signal.SIGSTOP)
    # The stopped relay's socket takes this line while it sleeps; it must not reach anyone from that incarnation.
    bob.say("while stopped")
    for survivor in (alice, carol):
        survivor.events(event="left", name="bob", timeout=15)
        took = survivor.out.last_arrival - stopped
        # 2 s of silence by Redis's clock, noticed at the next heartbeat tick (1 s) of either survivor.
        assert took < 2 + 1.5 + 1.5, f"{survivor.name} saw bob left after {took:.2f} s"
    time.sleep(1)
    os.kill(two.process.pid, signal.SIGCONT)
    two.log.wait_for(lambda line: "lost contact with the cluster" in line, timeout=15,
                     what="the continued relay to end its incarnation")
    bob.events(event="reconnected", timeout=60)
    for survivor in (alice, carol):
        survivor.events(event="joined", name="bob", timeout=30)
    bob.say("after the restart")
    for survivor in (alice, carol):
        survivor.events(event="message", text="after the restart", timeout=30)
        events = events_of(survivor)
        rejoined = last_index(events, "joined", "bob")
        left = last_index(events, "left", "bob")
        stopped_lines = [i for i, event in enumerate(events)
                         if event.get("event") == "message" and event.get("text") == "while stopped"]
        # The line reached the others at most once, and only through bob's new session (resent by the client):
        # never between bob's `left` and his new `joined`.
        assert len(stopped_lines) <= 1, stopped_lines
        assert all(not left < i < rejoined for i in stopped_lines), (left, stopped_lines, rejoined)
        assert texts_from(survivor, "bob").count("before the stop") == 1
    assert two.process.poll() is None


def test_redis_killed_and_restarted_brings_everyone_back_without_duplicates(redis, cluster, cluster_members):
    relays = cluster(3)
    clients = cluster_members(zip(["alice", "bob", "carol"], relays))
    for number in range(3):
        for client in clients:
            client.say(f"{client.name[0]}{number}")
    for receiver in clients:
        for sender in clients:
            if sender is not receiver:
                wait_for_texts(receiver, sender.name, [f"{sender.name[0]}{n}" for n in range(3)])
    redis.stop()
    for relay in relays:
        relay.log.wait_for(lambda line: "lost contact with the cluster" in line, timeout=15,
                           what="the relay to notice Redis gone")
    # Typed while Redis is down: the clients send them once they are back.
    for client in clients:
        client.say(f"{client.name[0]}3")
    time.sleep(1)
    redis.start()
    for relay in relays:
        relay.log.wait_for(lambda line: "joined the cluster" in line, timeout=30,
                           what="the relay to join the restarted cluster")
    for client in clients:
        client.events(event="reconnected", timeout=90)
    joined_all(clients, timeout=60)
    for number in range(4, 6):
        for client in clients:
            client.say(f"{client.name[0]}{number}")
    for receiver in clients:
        for sender in clients:
            if sender is not receiver:
                prefix = sender.name[0]
                texts = wait_for_texts(receiver, sender.name, [f"{prefix}{n}" for n in (0, 1, 2, 4, 5)])
                assert_once_in_order(texts, prefix)
                assert texts.count(f"{prefix}3") <= 1
    # The lines typed during the outage are resent: each reaches the others once the sender is back.
    for receiver in clients:
        for sender in clients:
            if sender is not receiver:
                wait_for_texts(receiver, sender.name, [f"{sender.name[0]}3"], timeout=30)


def test_members_on_two_relays_chat_in_one_room(tmp_path, mode_key, cluster):
    one, two = cluster(2)
    alice = Client("alice", one.port, mode_key, tmp_path / "inbox-alice")
    bob = None
    try:
        alice.ready(timeout=15)
        bob = Client("bob", two.port, mode_key, tmp_path / "inbox-bob")
        bob.ready(timeout=15)
        alice.events(event="joined", name="bob", timeout=15)
        for number in range(5):
            alice.say(f"hello bob {number}")
            bob.say(f"hello alice {number}")
        for number in range(5):
            assert bob.events(event="message", timeout=15)["text"] == f"hello bob {number}"
            assert alice.events(event="message", timeout=15)["text"] == f"hello alice {number}"
        # The same name on the other relay is refused: names are unique across the cluster.
        again = Client("alice", two.port, mode_key, tmp_path / "inbox-alice2")
        assert again.wait(timeout=20) == 69
        refusal = again.events(event="error", timeout=5)
        assert "already in use" in refusal["message"] and "this cluster" in refusal["message"], refusal
        bob.close_input()
        assert bob.wait() == 0
        alice.events(event="left", name="bob", timeout=15)
    finally:
        alice.kill()
        if bob:
            bob.kill()


def test_a_relay_that_cannot_reach_redis_does_not_start(tmp_path):
    port = free_port()
    result = subprocess.run(
        [binary_path(), "serve", "--port", str(free_port()), "--relay-key", str(tmp_path / "key"), "--cluster",
         f"redis://127.0.0.1:{port}"], capture_output=True, timeout=30)
    assert result.returncode == 69
    assert result.stderr.decode().splitlines()[-1] == (
        f"Error: cannot reach the cluster at redis://127.0.0.1:{port}: cannot reach Redis at 127.0.0.1:{port}: "
        "Connection refused")
