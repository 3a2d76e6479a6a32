"""`aeschat-load run --relays` W1 (and W1-paced) across three relays sharing one room through a real redis-server
(issue 16): every member sees all the others (its welcome plus a `joined` for each later one, across relays), then no
delivery is lost (each phase waits for every delivery), duplicated or reordered (per sender, at every member). The
redis-server is started on a free loopback port with persistence off and ended by its PID. Skipped without redis-server unless
AESCHAT_REQUIRE_REDIS is set (CI sets it)."""
import json
import os
import shutil
import signal
import socket
import subprocess
import time
from pathlib import Path

import pytest

from conftest import Relay, binary_path, free_port

REDIS = shutil.which("redis-server")

pytestmark = pytest.mark.skipif(
    REDIS is None and not os.environ.get("AESCHAT_REQUIRE_REDIS"),
    reason="redis-server is not installed (apt-get install redis-server); set AESCHAT_REQUIRE_REDIS=1 to fail instead")


@pytest.fixture
def redis_url(tmp_path):
    assert REDIS, "redis-server is not installed and AESCHAT_REQUIRE_REDIS is set"
    port = free_port()
    process = subprocess.Popen(
        [REDIS, "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no", "--dir", str(tmp_path),
         "--client-output-buffer-limit", "pubsub 256mb 64mb 30"],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 10
        while True:
            try:
                socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
                break
            except OSError:
                assert time.monotonic() < deadline, "redis-server did not start"
                time.sleep(0.05)
        yield f"redis://127.0.0.1:{port}"
    finally:
        os.kill(process.pid, signal.SIGKILL)
        process.wait()


def load_path():
    return str(Path(binary_path()).parent / "aeschat-load")


def test_w1_across_three_relays_loses_duplicates_and_reorders_nothing(redis_url):
    relays = []
    try:
        for _ in range(3):
            relay = Relay(free_port(), extra=["--cluster", redis_url, "--cluster-prefix", "load",
                                              "--max-connections-per-address", "0", "--handshake-rate", "0",
                                              "--message-rate", "0"])
            relay.log.wait_for(lambda line: "joined the cluster" in line, timeout=15, what="relay to join the cluster")
            relays.append(relay)
        # One key per relay (each has its own key file here), in the order of --relays.
        command = [load_path(), "run", "--relays", ",".join(f"127.0.0.1:{relay.port}" for relay in relays),
                   "--relay-key", ",".join(relay.key for relay in relays), "--members", "60", "--messages", "300",
                   "--paced-seconds", "1", "--senders", "6", "--rate", "10", "--idle-seconds", "0.2",
                   "--phase-timeout", "60"]
        run = subprocess.run(command, capture_output=True, text=True, timeout=180)
        results = [line for line in run.stdout.splitlines() if line.startswith("{")]
        assert results, f"aeschat-load printed no result (exit {run.returncode}): {run.stderr[-2000:]}"
        figures = json.loads(results[-1])
        assert run.returncode == 0 and "error" not in figures, (figures, run.stderr[-2000:])
        assert figures["relays"] == 3
        assert figures["w1_messages"] == 300
        for key in ("out_of_order", "duplicates", "relay_errors"):
            assert figures[key] == 0, (key, figures)
        # 6 senders x 10 messages/s for 1 s, each to the 59 others: every paced message reached everyone.
        assert figures["paced_deliveries"] == 6 * 10 * 59, figures
        for relay in relays:
            assert relay.process.poll() is None, "a relay ended during the run"
    finally:
        for relay in relays:
            relay.stop()
