"""Name reclaim (docs/PROTOCOL.md section 3.1), with the real binary in both key modes: a client frozen with SIGSTOP
holds its name; a new `aeschat join` of the same identity (automatic keys) or of the same configuration folder
(pre-shared key: its `relay-name-key`) takes the name over at once, while a client of another identity is refused
with the time at which the name frees up. The frozen client, once it runs again, reads why it was cut and stops
instead of taking the name back."""

import os
import re
import signal
import time


def test_a_frozen_clients_name_is_reclaimed_at_once_by_the_same_identity_and_refused_to_another(
        clients, relay, tmp_path):
    carol = clients("carol")
    carol.ready()
    frozen = clients("bob")
    frozen.ready()
    carol.events(event="joined", name="bob")
    os.kill(frozen.process.pid, signal.SIGSTOP)
    try:
        # Another identity (another configuration folder) is refused, and told when the name frees up.
        other = clients("bob", config=tmp_path / "someone-else")
        error = other.events(event="error")
        found = re.fullmatch(
            r"the name 'bob' is already in use in lobby; it frees up in about (\d+) s if its holder stays silent, "
            r"or choose another with --name", error["message"])
        assert found, error["message"]
        # The relay's default idle timeout is 60 s: silent at most a few seconds so far, so 2 × 60 s minus that.
        assert 100 <= int(found.group(1)) <= 120
        assert other.wait() == 69

        # The same identity (the frozen client's configuration folder) gets the name at once.
        started = time.monotonic()
        again = clients("bob")
        again.ready(timeout=10)
        assert time.monotonic() - started < 5
        carol.events(event="left", name="bob")
        carol.events(event="joined", name="bob")
        again.say("back on a new connection")
        assert carol.events(event="message", **{"from": "bob"})["text"] == "back on a new connection"
    finally:
        os.kill(frozen.process.pid, signal.SIGCONT)

    # The frozen client runs again: it reads why its connection was cut, and stops without reconnecting.
    cut = frozen.events(event="error")
    assert "reclaimed by a new connection of the same key" in cut["message"]
    assert frozen.wait() == 69
    # The new connection keeps the name: nothing took it back.
    again.say("still here")
    assert carol.events(event="message", **{"from": "bob"})["text"] == "still here"
    assert not any('"event":"reconnecting"' in line.replace(" ", "") for line in frozen.out.seen)
    again.close_input()
    assert again.wait() == 0


def test_two_live_clients_of_one_identity_do_not_take_the_name_from_each_other(clients, relay):
    carol = clients("carol")
    carol.ready()
    first = clients("bob")
    first.ready()
    second = clients("bob")
    second.ready()
    error = first.events(event="error")
    assert "reclaimed by a new connection of the same key" in error["message"]
    assert first.wait() == 69
    # A while later, the name is still the second's, and it was taken over once.
    time.sleep(2)
    assert second.process.poll() is None
    second.say("only me")
    assert carol.events(event="message", **{"from": "bob"})["text"] == "only me"
    joins = [line for line in carol.out.seen if '"joined"' in line and '"bob"' in line]
    assert len(joins) == 2, joins
