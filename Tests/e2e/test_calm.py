"""Calm everyday behaviour (issue 14): no false red errors when members come and go at once (item 1), lines queued
while the relay was down reach the members who come back or the author is told who missed them (item 4), calm
reconnects (item 9: back within about 2 s of the relay's return, one `reconnected`, `/reconnect`, a returning member
shown as back, the terminal's status row instead of red lines), and a server that is not an aeschat relay named as
such (item 11)."""

import json
import os
import signal
import subprocess
import time

import pytest

from aeschat_link import StaticKey
from conftest import Relay, binary_path, relay_key_for
from test_link import NotARelay, join_once
from test_terminal import Pane

# How much later than the backoff's 2 s the client may be back: connecting, the encrypted link and the registration,
# on a loaded machine (the tests share two cores with builds).
SLACK = 1.5


def seen_events(client, since=0):
    """Every JSON event the client wrote so far (as read by the test), from its line `since` on."""
    found = []
    for line in client.out.seen[since:]:
        try:
            found.append(json.loads(line))
        except ValueError:
            pass
    return found


def drain(client, seconds):
    """Reads whatever the client writes for `seconds`."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        client.out.next(max(0.01, deadline - time.monotonic()))


def listening_time(relay):
    """When the relay said it was listening (time.monotonic())."""
    index = next(i for i, line in enumerate(relay.log.seen) if "listening on" in line)
    return relay.log.arrivals[index]


# -- item 9: calm reconnects ------------------------------------------------------------------------------------------


def test_a_relay_back_after_10_seconds_is_rejoined_within_2_seconds_once_and_members_are_back(clients, relay):
    alice = clients("alice")
    alice.ready()
    bob = clients("bob")
    bob.ready()
    alice.events(event="joined", name="bob")
    marks = {alice: len(alice.out.seen), bob: len(bob.out.seen)}
    relay.process.send_signal(signal.SIGKILL)
    relay.process.wait()
    alice.events(event="reconnecting")
    # /reconnect while the relay is away: an attempt at once (or one is under way already).
    alice.say("/reconnect")
    alice.out.wait_for(lambda line: '"delay-ms":0,' in line or "already connecting" in line, timeout=10,
                       what="an attempt at once")
    time.sleep(10)
    returned = Relay(relay.port, key_file=relay.key_file)  # the same relay: it keeps its key
    try:
        back = listening_time(returned)
        alice.events(event="reconnected", timeout=15)
        alice_after = alice.out.last_arrival - back
        bob.events(event="reconnected", timeout=15)
        bob_after = bob.out.last_arrival - back
        print(f"back after the relay's return: alice {alice_after:.2f} s, bob {bob_after:.2f} s")
        assert alice_after <= 2 + SLACK, alice_after
        assert bob_after <= 2 + SLACK, bob_after
        # alice speaks once she knows bob is back: a line sent before its sender saw a member arrive goes out on keys
        # that member was never given (by design it is not for them), so saying it earlier would race bob's join.
        since_restart = [json.loads(line) for line in alice.out.seen[marks[alice]:] if line.startswith("{")]
        if not any(e["event"] == "ready" and "bob" in e["members"] for e in since_restart):
            if not any(e["event"] == "joined" and e["name"] == "bob" for e in since_restart):
                alice.events(event="joined", name="bob", timeout=10)
        alice.say("after the restart")
        assert bob.events(event="message", text="after the restart", timeout=10)["from"] == "alice"
        drain(alice, 1)
        drain(bob, 1)
        arrivals = []
        for client in (alice, bob):
            events = seen_events(client, since=marks[client])
            assert [e["event"] for e in events].count("reconnected") == 1, events
            waits = [e["delay-ms"] for e in events if e["event"] == "reconnecting"]
            assert waits and max(waits) <= 2000, waits
            arrivals += [e for e in events if e["event"] == "joined"]
        # Whoever registered first sees the other come back (the second finds the first in its `ready`): back, not
        # new.
        assert arrivals and all(e.get("back") is True for e in arrivals), arrivals
    finally:
        returned.stop()


def test_reconnect_makes_a_new_connection_and_the_others_see_the_member_back(clients):
    alice = clients("alice")
    alice.ready()
    bob = clients("bob")
    bob.ready()
    alice.events(event="joined", name="bob")
    alice.say("/reconnect")
    attempt = alice.events(event="reconnecting")
    assert attempt["delay-ms"] == 0 and "/reconnect" in attempt["reason"], attempt
    alice.events(event="reconnected", timeout=15)
    bob.events(event="left", name="alice")
    assert bob.events(event="joined", name="alice", timeout=15) == {"event": "joined", "name": "alice", "back": True}
    alice.say("still here")
    assert bob.events(event="message", text="still here")["from"] == "alice"
    alice.say("/reconnect now")
    assert alice.events(event="error")["message"] == "/reconnect takes no arguments"
    assert not [e for e in seen_events(alice) if e["event"] == "error" and "reconnect" not in e["message"]]


def test_a_member_away_for_good_is_new_again_only_with_another_identity(tmp_path, clients, mode):
    alice = clients("alice")
    alice.ready()
    bob = clients("bob")
    bob.ready()
    alice.events(event="joined", name="bob")
    bob.close_input()
    assert bob.wait() == 0
    alice.events(event="left", name="bob")
    again = clients("bob")  # the same configuration folder: the same identity key
    again.ready()
    assert alice.events(event="joined", name="bob") == {"event": "joined", "name": "bob", "back": True}
    if mode == "automatic":
        again.close_input()
        assert again.wait() == 0
        alice.events(event="left", name="bob")
        impostor = clients("bob", config=tmp_path / "another-bob")  # another identity key under the same name
        impostor.ready()
        assert alice.events(event="joined", name="bob") == {"event": "joined", "name": "bob"}


def test_the_terminal_shows_a_lost_relay_in_the_status_row_and_one_reconnected_line(tmp_path, clients, relay,
                                                                                     mode_key):
    bob = clients("bob")
    bob.ready()
    key = ["--key", str(mode_key)] if mode_key else []
    pane = Pane(tmp_path / "pane-alice", ["join", "--name", "alice", *key, "--port", str(relay.port), "--relay-key",
                                          relay.key, "--inbox", str(tmp_path / "inbox-alice")])
    returned = None
    try:
        pane.wait_for_text("you are alice in lobby")
        bob.events(event="joined", name="alice")
        relay.process.send_signal(signal.SIGKILL)
        relay.process.wait()
        pane.wait_for_text("offline — ")
        pane.wait_for_text("-- lost the relay (")
        time.sleep(4)  # several attempts
        text = pane.text()
        assert text.count("lost the relay") == 1, text
        assert "! error" not in text and "attempt" not in text, text
        status = pane.screen()[pane.rows() - 2]
        assert "others here" not in status and "other here" not in status, status
        assert "offline — retrying in" in status or "offline — reconnecting" in status, status
        returned = Relay(relay.port, key_file=relay.key_file)
        pane.wait_for_text("-- reconnected", timeout=15)
        pane.wait_for(lambda _: "1 other here" in pane.screen()[pane.rows() - 2], "the member count back")
        text = pane.text()
        assert text.count("you are alice in lobby") == 1, text
        assert "bob joined" not in text, text  # bob is in alice's new `ready`, or back: never new
        assert "! error" not in text, text
    finally:
        pane.close()
        if returned:
            returned.stop()


# -- item 11: not an aeschat relay ------------------------------------------------------------------------------------


def test_a_silent_server_with_a_pinned_key_is_probably_not_a_relay_one_line_and_exit_69(tmp_path):
    server = NotARelay("silent")
    try:
        started = time.monotonic()
        result = join_once(server.port, tmp_path / "config", relay_key=StaticKey().text, timeout=90)
        assert result.returncode == 69, result
        errors = [line for line in result.stderr.splitlines() if line.startswith("Error:")]
        assert len(errors) == 1, result.stderr
        assert "sent nothing at all: probably not an aeschat relay" in errors[0], errors
        assert [json.loads(line)["event"] for line in result.stdout.splitlines()] == ["error"], result.stdout
        assert time.monotonic() - started < 40  # the handshake's 15 s, not five minutes of retries
        assert server.accepted == 1  # never retried
    finally:
        server.close()


# -- item 1: no false red errors ----------------------------------------------------------------------------------------


def test_members_that_join_and_leave_at_once_bring_no_error_to_the_others(tmp_path, clients, relay, mode_key):
    alice = clients("alice")
    alice.ready()
    bob = clients("bob")
    bob.ready()
    command = [binary_path(), "join", "--name", "piper", "--port", str(relay.port), "--relay-key",
               relay_key_for(relay.port)]
    if mode_key is not None:
        command += ["--key", str(mode_key)]
    environment = dict(os.environ, XDG_CONFIG_HOME=str(tmp_path / "piper-config"))
    rounds = 8
    for number in range(rounds):
        result = subprocess.run(command, input=f"hi {number}\n".encode(), capture_output=True, timeout=30,
                                env=environment)
        assert result.returncode == 0, result.stderr
    for number in range(rounds):
        assert alice.events(event="message", text=f"hi {number}", timeout=15)["from"] == "piper"
    bob.events(event="message", text=f"hi {rounds - 1}", timeout=15)
    alice.say("and the room still works")
    assert bob.events(event="message", text="and the room still works")["from"] == "alice"
    drain(alice, 1)
    drain(bob, 1)
    for client in (alice, bob):
        errors = [e for e in seen_events(client) if e["event"] == "error"]
        assert errors == [], errors


# -- item 4: lines queued while the relay was down --------------------------------------------------------------------


def test_a_line_queued_while_the_relay_was_down_reaches_everyone_back_within_the_grace(clients, relay):
    alice = clients("alice")
    alice.ready()
    bob = clients("bob")
    bob.ready()
    carol = clients("carol")
    carol.ready()
    alice.events(event="joined", name="carol")
    relay.process.send_signal(signal.SIGKILL)
    relay.process.wait()
    alice.events(event="reconnecting")
    alice.say("typed while the relay was down")
    assert "queued" in alice.events(event="info")["message"]
    time.sleep(3)
    returned = Relay(relay.port, key_file=relay.key_file)
    try:
        for member in (bob, carol):
            assert member.events(event="message", text="typed while the relay was down", timeout=20)["from"] == "alice"
        drain(alice, 6)  # past the grace
        assert not [e for e in seen_events(alice) if e["event"] == "warning"], seen_events(alice)
    finally:
        returned.stop()


def test_a_member_not_back_within_the_grace_is_named_to_the_author(clients, relay):
    alice = clients("alice")
    alice.ready()
    bob = clients("bob")
    bob.ready()
    carol = clients("carol")
    carol.ready()
    alice.events(event="joined", name="carol")
    relay.process.send_signal(signal.SIGKILL)
    relay.process.wait()
    carol.kill()  # carol's laptop closes while the relay is down: she is not coming back
    alice.events(event="reconnecting")
    alice.say("typed while the relay was down")
    returned = Relay(relay.port, key_file=relay.key_file)
    try:
        waiting = alice.events(event="info", timeout=20, what="the wait for carol")
        while not (waiting["message"].startswith("waiting up to 5 s for") and "carol" in waiting["message"]):
            waiting = alice.events(event="info", timeout=20, what="the wait for carol")
        warning = alice.events(event="warning", timeout=15)
        assert warning["kind"] == "undelivered" and warning["name"] == "carol", warning
        assert "did not receive the 1 line(s) queued" in warning["message"], warning
        assert bob.events(event="message", text="typed while the relay was down", timeout=10)["from"] == "alice"
    finally:
        returned.stop()
