"""A relay whose commands Redis is slow to take stops reading every connection (issue 16, the 64 MiB high-water mark
of `ClusterTimings.engineOutputHighWater`), against a real redis-server: Redis is stopped (SIGSTOP) while two members
of one relay stream files to the room, so that their chunks queue in that relay toward Redis until the relay pauses;
it must then leave even a new connection unread (a key request goes unanswered there, and is answered at once by
another relay of the cluster), and, once Redis is continued (SIGCONT), read again at 16 MiB or less, lose nothing and
duplicate nothing: every file arrives with its SHA-256 at every member, every line typed during the pause arrives
once and in order. Redis stays stopped for about a second; the relays run with `--cluster-dead-after 20` (they give
up after 60 % of it, 12 s of silence; the default 5 s gives 3 s) so that a loaded machine does not turn the pause
into a lost cluster. Uses the redis-server and relay fixtures of test_cluster.py; skipped without redis-server unless
AESCHAT_REQUIRE_REDIS is set (CI sets it)."""
import json
import os
import re
import select
import signal
import socket
import time

from aeschat_link import KEY_REQUEST_ID, parse_answer, preamble, read_until_close
from conftest import Client
from test_cluster import cluster, joined_all, pytestmark, redis, wait_for_texts  # noqa: F401 (fixtures, skip mark)
from test_files import make_file, sha256_of

HIGH_WATER = 64 * 1024 * 1024
LOW_WATER = 16 * 1024 * 1024
PAUSED = re.compile(r"^the cluster is slow to take commands \((\d+) bytes queued\): stopped reading (\d+) "
                    r"connections? until it drains to 16777216 bytes$")
RESUMED = re.compile(r"^the cluster takes commands again \((\d+) bytes queued\): reading connections$")
# Each sender may be 32 chunks of 256 KiB (8 MiB) ahead of its slowest receiver per transfer, and a receiver takes 4
# transfers from one sender at once. A chunk goes through Redis once per relay that has a receiver, three here: with
# Redis stopped, the two senders' chunks can queue up to 2 x 4 x 8 MiB x 3 = 192 MiB in their relay (less what was
# in flight behind the last acknowledgements and what the kernel takes), three times the high-water mark (three
# transfers of one sender, 72 MiB, stayed under it here). Files twice the window, so that every transfer is still
# streaming when Redis stops.
FILES_PER_SENDER = 4
FILE_SIZE = 16 * 1024 * 1024 + 7
LINES = 20


def key_request(port):
    """A connection to the relay at `port` that has sent a key request (answered in clear, then closed)."""
    sock = socket.create_connection(("127.0.0.1", port), timeout=10)
    sock.sendall(preamble(KEY_REQUEST_ID))
    return sock


def event_of(client, timeout, **match):
    """The first event `client` printed (so far, or within `timeout`) with the fields `match`, in any order with other
    waits."""
    deadline = time.monotonic() + timeout
    while True:
        for line in client.out.seen:
            event = json.loads(line) if line.startswith("{") else {}
            if all(event.get(key) == value for key, value in match.items()):
                return event
        remaining = deadline - time.monotonic()
        assert remaining > 0, f"no {match} at {client.name}: {client.out.seen[-10:]}"
        client.out.next(min(remaining, 0.2))


def answered_within(sock, seconds):
    return bool(select.select([sock], [], [], seconds)[0])


def test_a_relay_stops_reading_while_redis_is_stopped_and_loses_nothing_once_it_is_continued(
        tmp_path, redis, cluster):
    one, two, three = cluster(3, extra=["--cluster-dead-after", "20"])
    placements = [("alice", one), ("erin", one), ("dave", one), ("bob", two), ("carol", three)]
    clients = []
    unanswered = None
    try:
        for name, relay in placements:
            clients.append(Client(name, relay.port, None, tmp_path / f"inbox-{name}"))
            clients[-1].ready(timeout=30)
        joined_all(clients)
        alice, erin, dave, bob, carol = clients
        senders = {sender: [make_file(tmp_path / f"{sender.name}-{n}.bin", FILE_SIZE, seed=60 + 10 * index + n)
                            for n in range(FILES_PER_SENDER)]
                   for index, sender in enumerate((alice, erin))}
        for sender, sources in senders.items():
            for source in sources:
                sender.say(f"/send {source}")
        # Every transfer streams (its first progress comes with its first chunk): Redis stops taking commands.
        for sender, sources in senders.items():
            for source in sources:
                event_of(sender, 60, event="file-progress", name=source.name)
        os.kill(redis.process.pid, signal.SIGSTOP)
        stopped = time.monotonic()
        try:
            paused = one.log.wait_for(PAUSED.match, timeout=10, what="the relay to stop reading its connections")
            paused_after = time.monotonic() - stopped
            queued, connections = map(int, PAUSED.match(paused).groups())
            # Just past the mark (the relay looks after every chunk it queues: at most one command, a frame of up to
            # 16 MiB and its envelope, beyond it), far from the 256 MiB hard cap; every connection of the relay is
            # held: its three members'.
            assert HIGH_WATER < queued <= HIGH_WATER + 17 * 1024 * 1024, paused
            assert connections == 3, paused
            # Typed while the relay holds them: they wait in the members' sockets (dave's) or in the queue of a
            # relay under the mark (bob's).
            for number in range(LINES):
                dave.say(f"dave {number}")
                bob.say(f"bob {number}")
            # Even a new connection is left unread: its key request waits, while a relay of the same cluster that
            # is not holding its connections answers one at once, Redis stopped or not.
            unanswered = key_request(one.port)
            with key_request(two.port) as control:
                assert answered_within(control, 5), "a relay with nothing queued did not answer a key request"
                assert parse_answer(read_until_close(control)).kind == "keys"
            assert not answered_within(unanswered, 0.5), "a paused relay read a new connection"
            assert not [line for line in one.log.seen if RESUMED.match(line)], one.log.seen[-5:]
        finally:
            os.kill(redis.process.pid, signal.SIGCONT)
        continued = time.monotonic()
        resumed = one.log.wait_for(RESUMED.match, timeout=20, what="the relay to read its connections again")
        assert int(RESUMED.match(resumed).group(1)) <= LOW_WATER, resumed
        assert answered_within(unanswered, 10), "the key request was not answered once the relay read again"
        assert parse_answer(read_until_close(unanswered)).kind == "keys"
        # Nothing lost, nothing twice: every file at every other member, byte for byte, and the lines in order.
        for sender, sources in senders.items():
            for receiver in clients:
                if receiver is sender:
                    continue
                for source in sources:
                    received = event_of(receiver, 120, event="file", name=source.name)
                    assert received["from"] == sender.name, received
                    assert received["sha256"] == sha256_of(source)
                    assert sha256_of(received["path"]) == sha256_of(source)
            for source in sources:
                sent = event_of(sender, 60, event="file-sent", name=source.name)
                assert sorted(sent["to"]) == sorted(c.name for c in clients if c is not sender), sent
        for receiver in clients:
            for sender, prefix in ((dave, "dave"), (bob, "bob")):
                if receiver is not sender:
                    expected = [f"{prefix} {n}" for n in range(LINES)]
                    assert wait_for_texts(receiver, prefix, expected, timeout=30) == expected
        # No relay gave up on the cluster, and only the senders' relay paused.
        for relay in (one, two, three):
            while relay.log.next(0.05) is not None:
                pass
            assert not [line for line in relay.log.seen if "lost contact" in line], relay.log.seen[-5:]
        pauses = [line for line in one.log.seen if PAUSED.match(line)]
        assert pauses[0] == paused, pauses
        assert not [line for relay in (two, three) for line in relay.log.seen if "slow to take commands" in line]
        print(f"\npaused at {queued} bytes queued, {paused_after:.2f} s after the stop; {resumed}; "
              f"{len(pauses)} pause(s); everything arrived {time.monotonic() - continued:.2f} s after the continue")
    finally:
        if unanswered is not None:
            unanswered.close()
        for client in clients:
            client.kill()
