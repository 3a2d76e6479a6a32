"""A relay cut by Redis for its pub/sub output buffer while a file flows to it (issue 16): Redis runs with a small
`client-output-buffer-limit pubsub` (set with CONFIG SET once the cluster stands), and the relay of one receiver is
stopped (SIGSTOP) while a file from a member on another relay streams to it, so that its subscription's backlog
grows in Redis until Redis cuts it. Its members are announced `left` to everyone else, the transfer to the member on
the third relay completes with the right SHA-256, the cut relay ends its incarnation once continued (error 7, its
members reconnect), and nothing it forwards after its members' `left` reaches anyone. Redis's own log must show the
output-limit cut of that relay's subscriber connection. Both key modes. Also: the start-up check of those Redis
settings warns, and the relay still joins. Uses the redis-server and relay fixtures of
test_cluster.py; skipped without redis-server unless AESCHAT_REQUIRE_REDIS is set (CI sets it)."""
import hashlib
import os
import signal
import time
from datetime import datetime

from test_cluster import (  # noqa: F401 (fixtures, skip mark)
    cluster, cluster_members, events_of, joined_all, last_index, pytestmark, redis, texts_from)
from test_files import make_file, sha256_of

# Small enough that a stopped relay passes it within the transfer's window (32 chunks of 256 KiB ahead of the slowest
# receiver, less what the kernel's socket buffers take: about 7 MiB reach Redis's buffer when the relay stops as the
# chunks begin), large enough that a relay reading its subscription stays under it during that first burst. Once the
# cut is seen the limit goes back up, so that the rest of the file (bursting at full speed once the departed members
# no longer hold the window) cannot cut a busy relay on a loaded machine.
CUT_LIMIT = "pubsub 4mb 0 0"
USUAL_LIMIT = "pubsub 256mb 64mb 30"


def subscriber_name(relay_log):
    """The Redis client name of a relay's subscriber connection (`aeschat.<prefix>.<incarnation>`), from its log."""
    for line in relay_log.seen:
        if "joined the cluster as relay " in line:
            incarnation = line.split("joined the cluster as relay ")[1].split(":")[0]
            return f"aeschat.e2e.{incarnation}"
    raise AssertionError(f"no incarnation in the relay's log: {relay_log.seen[-10:]}")


def stamp(event):
    """An event's `time` field in seconds."""
    return datetime.fromisoformat(event["time"].replace("Z", "+00:00")).timestamp()


def wait_for_return(client, name, timeout=60):
    """Waits until `client` has seen `name` join again after its last `left` (in any order with other waits)."""
    deadline = time.monotonic() + timeout
    while True:
        events = events_of(client)
        left = max((i for i, event in enumerate(events)
                    if event.get("event") == "left" and event.get("name") == name), default=-1)
        if any(event.get("event") == "joined" and event.get("name") == name for event in events[left + 1:]):
            return
        remaining = deadline - time.monotonic()
        assert remaining > 0, f"{client.name} did not see {name} again: {client.out.seen[-20:]}"
        client.out.next(min(remaining, 0.2))


def test_a_relay_cut_by_the_pubsub_output_limit_loses_its_members_and_the_transfer_to_the_others_completes(
        tmp_path, redis, cluster, cluster_members):
    one, two, three = cluster(3)
    cut_name = subscriber_name(three.log)
    clients = cluster_members([("alice", one), ("bob", two), ("carol", three), ("dave", three)])
    alice, bob, carol, dave = clients
    assert redis.command("CONFIG", "SET", "client-output-buffer-limit", CUT_LIMIT) == "+OK"
    source = make_file(tmp_path / "cut.bin", 24 * 1024 * 1024 + 5, seed=23)
    alice.say(f"/send {source}")
    # Once the chunks flow (every reply to the offer is in), carol's relay stops reading: Redis's backlog for it
    # grows by the chunks the transfer's window lets through, less what the kernel's socket buffers take.
    alice.events(event="file-progress", timeout=120)
    os.kill(three.process.pid, signal.SIGSTOP)
    try:
        # Typed into the stopped relay's socket: it must reach the others once, through carol's next session.
        carol.say("while cut")
        deadline = time.monotonic() + 60
        cut_lines = []
        while not cut_lines:
            assert time.monotonic() < deadline, (
                f"Redis did not cut {cut_name}; its log ends: {redis.log_lines()[-10:]}")
            cut_lines = [line for line in redis.log_lines()
                         if "output buffer limits" in line and f"name={cut_name} " in line]
            time.sleep(0.05)
        assert redis.command("CONFIG", "SET", "client-output-buffer-limit", USUAL_LIMIT) == "+OK"
        # It was the output-limit cut of the relay's subscriber connection (flags=P), which is gone now.
        assert "flags=P" in cut_lines[0], cut_lines[0]
        assert f"name={cut_name} " not in redis.text("CLIENT", "LIST", "TYPE", "pubsub")
        for survivor in (alice, bob):
            for name in ("carol", "dave"):
                survivor.events(event="left", name=name, timeout=15)
        # Nobody else was cut: the two other relays still hold their subscriptions.
        listed = redis.text("CLIENT", "LIST", "TYPE", "pubsub")
        for relay in (one, two):
            assert f"name={subscriber_name(relay.log)} " in listed
        assert len([line for line in redis.log_lines() if "output buffer limits" in line]) == 1
    finally:
        os.kill(three.process.pid, signal.SIGCONT)
    # Continued, the cut relay ends its incarnation: error 7 to its two members, who reconnect.
    lost = three.log.wait_for(lambda line: "lost contact with the cluster: " in line, timeout=30,
                              what="the cut relay to end its incarnation")
    # Its log says why, and how many members it dropped; the relay that reaped it says how many it announced; its
    # next incarnation says what it found (the others' two members, and no trace of the cut one).
    assert lost.endswith("; dropped 2 members (2 connections closed)"), lost
    assert "the subscription ended" in lost or "declared dead by the cluster" in lost, lost
    old_id = cut_name.rsplit(".", 1)[1]
    deadline = time.monotonic() + 10
    while f"reaped relay {old_id}: 2 members left" not in one.log.seen + two.log.seen:
        assert time.monotonic() < deadline, [line for line in one.log.seen + two.log.seen if "reaped" in line]
        one.log.next(0.05)
        two.log.next(0.05)
    joined = three.log.wait_for(lambda line: line.startswith("joined the cluster as relay "), timeout=30,
                                what="the cut relay to join again")
    assert joined.endswith(": 3 relays alive, 2 members in 1 room"), joined
    for member in (carol, dave):
        member.events(event="error", message="lost contact with the cluster; reconnect", timeout=30)
        member.events(event="reconnected", timeout=90)
    # The transfer to bob, on the third relay, completes byte for byte; carol's was cut short.
    received = bob.events(event="file", timeout=240)
    assert received["sha256"] == sha256_of(source)
    assert hashlib.sha256(open(received["path"], "rb").read()).hexdigest() == sha256_of(source)
    sent = alice.events(event="file-sent", timeout=60)
    assert sent["to"] == ["bob"], sent
    assert not any(event.get("event") == "file" for event in events_of(carol)), "carol got the whole file"
    # The window moved when carol and dave left: the rest (about 16 MiB) went to bob at once, not after the
    # sender's 5-second watchdog round.
    events = events_of(alice)
    last_left = max(stamp(event) for event in events
                    if event.get("event") == "left" and event.get("name") in ("carol", "dave"))
    finished = stamp(next(event for event in events if event.get("event") == "file-sent"))
    assert finished - last_left < 3.0, f"the transfer to bob paused {finished - last_left:.1f} s"
    # After the restart everyone is back in one room, and carol's line arrived once, through her new session:
    # never between her `left` and her new `joined`.
    for survivor in (alice, bob):
        wait_for_return(survivor, "carol")
    joined_all(clients, timeout=60)
    carol.say("after the cut")
    for survivor in (alice, bob, dave):
        survivor.events(event="message", text="after the cut", timeout=60)
    for survivor in (alice, bob):
        events = events_of(survivor)
        left = last_index(events, "left", "carol")
        back = last_index(events, "joined", "carol")
        lines = [i for i, event in enumerate(events)
                 if event.get("event") == "message" and event.get("text") == "while cut"]
        assert len(lines) == 1 and lines[0] > back, (left, lines, back)
        assert texts_from(survivor, "carol") == ["while cut", "after the cut"]


def test_a_relay_warns_at_start_about_redis_settings_that_are_off_and_still_joins(tmp_path, redis, cluster):
    # Redis's own defaults for pub/sub (32 MiB hard, 8 MiB soft for 60 s) and an evicting memory policy.
    assert redis.command("CONFIG", "SET", "client-output-buffer-limit", "pubsub 33554432 8388608 60") == "+OK"
    assert redis.command("CONFIG", "SET", "maxmemory-policy", "allkeys-lru") == "+OK"
    relay = cluster(1)[0]
    warnings = [line for line in relay.log.seen if line.startswith("warning: Redis's")]
    assert len(warnings) == 2, relay.log.seen
    assert warnings[0].startswith("warning: Redis's maxmemory-policy is 'allkeys-lru', not 'noeviction'")
    assert warnings[1].startswith(
        "warning: Redis's client-output-buffer-limit for pubsub is 33554432 bytes hard, 8388608 bytes soft")
    # Set right, a relay starts without a warning.
    assert redis.command("CONFIG", "SET", "client-output-buffer-limit", "pubsub 256mb 64mb 30") == "+OK"
    assert redis.command("CONFIG", "SET", "maxmemory-policy", "noeviction") == "+OK"
    quiet = cluster(1)[0]
    assert not any(line.startswith("warning: Redis's") for line in quiet.log.seen), quiet.log.seen
