"""Relays in a cluster (`serve --cluster`, issue 16) with a real redis-server that each test starts on a free
loopback port (persistence off) and ends by its PID. Skipped without redis-server unless AESCHAT_REQUIRE_REDIS is
set (CI sets it)."""
import os
import shutil
import signal
import socket
import subprocess
import time

import pytest

from conftest import Client, Relay, binary_path, free_port

REDIS = shutil.which("redis-server")

pytestmark = pytest.mark.skipif(
    REDIS is None and not os.environ.get("AESCHAT_REQUIRE_REDIS"),
    reason="redis-server is not installed (apt-get install redis-server); set AESCHAT_REQUIRE_REDIS=1 to fail instead")


class RedisServer:
    def __init__(self, folder):
        assert REDIS, "redis-server is not installed and AESCHAT_REQUIRE_REDIS is set"
        self.port = free_port()
        self.process = subprocess.Popen(
            [REDIS, "--port", str(self.port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no",
             "--dir", str(folder), "--client-output-buffer-limit", "pubsub 256mb 64mb 30"],
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

    def start(count):
        for _ in range(count):
            relay = Relay(free_port(), extra=["--cluster", redis.url, "--cluster-prefix", "e2e"])
            relay.log.wait_for(lambda line: "joined the cluster" in line, timeout=15, what="relay to join the cluster")
            relays.append(relay)
        return relays

    yield start
    for relay in relays:
        relay.stop()


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
