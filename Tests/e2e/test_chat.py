"""End to end over loopback with a pre-shared room key: real relay, real clients."""

import base64
import json
import os
import signal
import struct
import subprocess
import time

from conftest import (PROTOCOL_VERSION, Client, Proxy, Relay, assert_relay_back_to, binary_path, free_port, link,
                      relay_usage)


def start_all(clients, names, room=None):
    made = []
    for name in names:
        client = clients(name, room=room)
        client.ready()
        for earlier in made:
            earlier.events(event="joined", name=name)
        made.append(client)
    return made


def test_three_clients_each_receive_every_other_message_once_and_in_order(clients):
    alice, bob, carol = start_all(clients, ["alice", "bob", "carol"])
    everyone = [alice, bob, carol]
    for round_number in range(20):
        for sender in everyone:
            sender.say(f"{sender.name} message {round_number}")
    for receiver in everyone:
        got = {other.name: [] for other in everyone if other is not receiver}
        while any(len(texts) < 20 for texts in got.values()):
            event = receiver.events(event="message")
            got[event["from"]].append(event["text"])
        for sender_name, texts in got.items():
            assert texts == [f"{sender_name} message {n}" for n in range(20)]
    # Nothing extra arrives: leave cleanly and check that no further message was printed.
    for client in everyone:
        client.close_input()
    for client in everyone:
        assert client.wait() == 0
        extra = [line for line in client.out.seen if '"event":"message"' in line]
        assert len(extra) == 40


def test_large_and_unicode_messages_arrive_byte_for_byte(clients):
    alice, bob = start_all(clients, ["alice", "bob"])
    unicode_text = "Grüße, café, naïve — 你好，世界 — こんにちは — 🎉👩‍👩‍👧‍👦🇫🇷"
    medium = ("0123456789abcdef" * 12_800)[:200_000]
    large = ("é漢🙂x" * 110_000) + "é"
    assert len(large.encode()) > 1024 * 1024
    big = "A" * (1024 * 1024)
    for text in [unicode_text, medium, large, big]:
        alice.say(text)
    for expected in [unicode_text, medium, large, big]:
        event = bob.events(event="message", timeout=30)
        assert event["text"] == expected
        assert event["from"] == "alice"


def test_late_joiner_sees_only_later_messages_and_joins_and_leaves_are_announced(clients):
    alice, bob = start_all(clients, ["alice", "bob"])
    alice.say("before carol")
    assert bob.events(event="message")["text"] == "before carol"
    carol = clients("carol")
    ready = carol.ready()
    assert sorted(ready["members"]) == ["alice", "bob"]
    alice.events(event="joined", name="carol")
    bob.events(event="joined", name="carol")
    alice.say("after carol")
    assert carol.events(event="message")["text"] == "after carol"
    assert not any("before carol" in line for line in carol.out.seen)
    bob.close_input()
    assert bob.wait() == 0
    alice.events(event="left", name="bob")
    carol.events(event="left", name="bob")


def test_killed_client_leaves_the_others_chatting(clients, relay):
    alice, bob, carol = start_all(clients, ["alice", "bob", "carol"])
    bob.process.send_signal(signal.SIGKILL)
    bob.process.wait()
    alice.events(event="left", name="bob")
    carol.events(event="left", name="bob")
    alice.say("still here?")
    assert carol.events(event="message")["text"] == "still here?"
    carol.say("yes")
    assert alice.events(event="message")["text"] == "yes"
    relay.log.wait_for(lambda line: "bob left lobby" in line, what="bob's leave in the relay log")


def test_two_rooms_never_see_each_other(clients):
    alice = clients("alice", room="one")
    alice.ready()
    bob = clients("bob", room="one")
    bob.ready()
    carol = clients("carol", room="two")
    assert carol.ready()["members"] == []
    dave = clients("dave", room="two")
    assert dave.ready()["members"] == ["carol"]
    # With automatic keys a newcomer can read a sender only once the sender has seen it join (and sent it its key).
    alice.events(event="joined", name="bob")
    carol.events(event="joined", name="dave")
    alice.say("for room one")
    carol.say("for room two")
    assert bob.events(event="message")["text"] == "for room one"
    assert dave.events(event="message")["text"] == "for room two"
    for client in [alice, bob, carol, dave]:
        client.close_input()
    for client in [alice, bob, carol, dave]:
        assert client.wait() == 0
    assert not any("room two" in line or '"dave"' in line or '"carol"' in line for line in alice.out.seen + bob.out.seen)
    assert not any("room one" in line or '"alice"' in line or '"bob"' in line for line in carol.out.seen + dave.out.seen)


def test_wire_carries_no_plaintext_and_no_key(tmp_path, key_file, mode_key, relay):
    proxy = Proxy(relay.port)
    try:
        alice = Client("alice", proxy.port, mode_key, tmp_path / "a")
        alice.ready()
        bob = Client("bob", relay.port, mode_key, tmp_path / "b")
        bob.ready()
        alice.events(event="joined", name="bob")
        secrets = ["the eagle lands at midnight", "zxcv-unique-secret-" * 10, "Grüße 你好 🎉 secret"]
        for text in secrets:
            alice.say(text)
            bob.say("reply to " + text)
        for text in secrets:
            assert bob.events(event="message")["text"] == text
            assert alice.events(event="message")["text"] == "reply to " + text
        alice.close_input()
        assert alice.wait() == 0
        bob.kill()
        wire = bytes(proxy.recorded)
        assert len(wire) > 500
        for text in secrets:
            encoded = text.encode()
            assert encoded not in wire
            assert encoded[:12] not in wire
            assert ("reply to " + text).encode() not in wire
        keys = [bytes.fromhex(key_file.read_text().strip())]
        for identity in [tmp_path / "a-config" / "aeschat" / "identity", tmp_path / "b-config" / "aeschat" / "identity"]:
            if mode_key is None:
                keys.append(bytes.fromhex(identity.read_text().split()[1]))
        for key in keys:
            for form in [key, key.hex().encode(), key.hex().upper().encode(), base64.b64encode(key), key[:8], key[-8:]]:
                assert form not in wire
    finally:
        proxy.close()


def test_flipped_ciphertext_bit_is_reported_as_tampered(tmp_path, mode_key, relay):
    publish = 0x02

    def flip_last_byte(frame_type, body):
        if frame_type == publish and b"flip me" not in body:
            return body[:-20] + bytes([body[-20] ^ 0x01]) + body[-19:]
        return body

    proxy = Proxy(relay.port, tamper=flip_last_byte)
    try:
        alice = Client("alice", proxy.port, mode_key, tmp_path / "a")
        alice.ready()
        bob = Client("bob", relay.port, mode_key, tmp_path / "b")
        bob.ready()
        alice.events(event="joined", name="bob")
        alice.say("this will be corrupted")
        warning = bob.events(event="warning")
        assert warning["kind"] == "tampered"
        assert warning["name"] == "alice"
        assert not any("this will be corrupted" in line for line in bob.out.seen)
        bob.close_input()
        assert bob.wait() == 0
    finally:
        proxy.close()


def test_wrong_room_key_is_reported_as_tampered_never_shown(tmp_path, key_file, relay, clients):
    other_key = tmp_path / "other.key"
    subprocess.run([binary_path(), "keygen", "--out", str(other_key)], check=True, timeout=30)
    alice = clients("alice", key=other_key)
    alice.ready()
    bob = clients("bob", key=key_file)
    bob.ready()
    alice.say("secret under another key")
    warning = bob.events(event="warning")
    assert warning["kind"] == "tampered"
    # Said in words: a session that never opened here is what another room key produces.
    assert warning["cause"] == "different-room-key" and "different room key?" in warning["message"]
    assert not any("secret under another key" in line for line in bob.out.seen)


def test_name_already_in_use_is_refused_with_a_clear_error(clients, tmp_path):
    first = clients("alice")
    first.ready()
    # Another configuration folder: another identity (or name key), which cannot take the name over.
    second = clients("alice", config=tmp_path / "another-alice")
    error = second.events(event="error")
    assert "already in use in lobby; it frees up in about" in error["message"]
    assert second.wait() == 69
    first.say("still fine")
    third = clients("bob")
    third.ready()
    first.events(event="joined", name="bob")
    first.say("hello bob")
    assert third.events(event="message")["text"] == "hello bob"


def test_relay_shutdown_tells_clients_who_reconnect_when_it_returns(clients, relay):
    alice = clients("alice")
    alice.ready()
    bob = clients("bob")
    bob.ready()
    alice.events(event="joined", name="bob")
    relay.process.send_signal(signal.SIGTERM)
    assert relay.process.wait(timeout=10) == 0
    assert "shutting down" in alice.events(event="error")["message"]
    alice.events(event="reconnecting")
    alice.say("typed while the relay is away")
    assert "queued" in alice.events(event="info")["message"]
    alice.events(event="reconnecting", attempt=2)  # the relay stays away through a couple of attempts
    returned = Relay(relay.port, key_file=relay.key_file)  # the same relay: it keeps its key
    try:
        # carol registers at once; alice comes back on her next backoff step, so carol is there to receive the
        # line alice queued while the relay was away.
        carol = clients("carol")
        carol.ready()
        alice.events(event="reconnected", timeout=30)
        assert carol.events(event="message", timeout=15) == {
            "event": "message", "from": "alice", "text": "typed while the relay is away"}
        bob.events(event="reconnected", timeout=30)
        bob.say("and back again")
        assert carol.events(event="message", text="and back again")["from"] == "bob"
    finally:
        returned.stop()


def test_relay_killed_and_restarted_on_the_same_port_clients_chat_again(clients, relay):
    alice = clients("alice")
    alice.ready()
    bob = clients("bob")
    bob.ready()
    alice.events(event="joined", name="bob")
    relay.process.send_signal(signal.SIGKILL)
    relay.process.wait()
    alice.events(event="reconnecting")
    returned = Relay(relay.port, key_file=relay.key_file)  # the same relay: it keeps its key
    try:
        started = time.monotonic()
        alice.events(event="reconnected", timeout=30)
        bob.events(event="reconnected", timeout=30)
        deadline = time.monotonic() + 15
        while True:
            alice.say("hello again")
            try:
                assert bob.events(event="message", text="hello again", timeout=2)["from"] == "alice"
                break
            except AssertionError:
                if time.monotonic() > deadline:
                    raise
        assert time.monotonic() - started < 15
    finally:
        returned.stop()


def test_end_of_input_sends_everything_before_leaving(clients):
    bob = clients("bob")
    bob.ready()
    alice = clients("alice")
    lines = [f"line {n}" for n in range(500)]
    alice.process.stdin.write(("\n".join(lines) + "\n").encode())
    alice.close_input()
    assert alice.wait() == 0
    got = [bob.events(event="message")["text"] for _ in lines]
    assert got == lines
    bob.events(event="left", name="alice")


def test_terminal_output_shows_escape_sequences_visibly(tmp_path, key_file, relay, clients):
    bob = clients("bob", key=key_file)
    bob.ready()
    human = subprocess.Popen(
        [binary_path(), "join", "--name", "carol", "--inbox", str(tmp_path / "c"), "--port", str(relay.port), "--key", str(key_file),
         "--relay-key", relay.key],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    try:
        bob.events(event="joined", name="carol")
        bob.say("evil \x1b]0;owned\x07 \x1b[2J \rfake <alice> \u202e \u009b31m done")
        time.sleep(1.0)
        out, _ = human.communicate(input=b"", timeout=15)
    finally:
        if human.poll() is None:
            human.kill()
    text = out.decode()
    line = next(line for line in text.splitlines() if "<bob>" in line)
    assert "\x1b" not in text and "\r" not in text and "\u202e" not in text and "\u009b" not in text
    assert "\\x1B]0;owned\\x07" in line and "\\x1B[2J" in line and "\\rfake <alice>" in line
    assert "\\u{202E}" in line and "\\x9B31m" in line
    assert line.startswith("[") and "] <bob> evil" in line


def test_relay_logs_one_line_per_join_and_leave(clients, relay):
    alice = clients("alice")
    alice.ready()
    relay.log.wait_for(lambda line: "alice joined lobby" in line, what="join log line")
    alice.close_input()
    alice.wait()
    relay.log.wait_for(lambda line: "alice left lobby" in line, what="leave log line")


def raw_connection(port):
    """An encrypted link to the relay, handshake done: what follows is the plaintext frame stream."""
    return link(port)


def read_frames_until_close(sock, limit=1 << 20):
    data = bytearray()
    sock.settimeout(10)
    while len(data) < limit:
        chunk = sock.recv(65536)
        if not chunk:
            break
        data += chunk
    frames = []
    while len(data) >= 4:
        length = int.from_bytes(data[:4], "big")
        frames.append((data[4], bytes(data[5 : 4 + length])))
        del data[: 4 + length]
    return frames


def hello(name, room="lobby", version=PROTOCOL_VERSION):
    name = name if isinstance(name, bytes) else name.encode()
    room = room if isinstance(room, bytes) else room.encode()
    body = struct.pack(">H", version) + bytes([len(name)]) + name + bytes([len(room)]) + room + b"\x00\x00"
    return struct.pack(">I", len(body) + 1) + b"\x01" + body


def test_malformed_and_oversized_frames_close_only_that_connection(clients, relay):
    alice, bob = start_all(clients, ["alice", "bob"])
    baseline = relay_usage(relay)
    cases = [
        struct.pack(">I", 0xFFFFFFFF) + b"\x02",  # 4 GiB length prefix
        struct.pack(">I", 0),  # zero length
        struct.pack(">I", 3) + b"\x7f\x00\x00",  # unknown type
        struct.pack(">I", 2) + b"\x02x",  # publish before hello
        hello("bad name!"),  # invalid name
        hello("x" * 40),  # name too long
        hello(b"al\xffce"),  # invalid UTF-8 in the name
        hello("eve", room=b"lob\xc3"),  # invalid UTF-8 in the room (a cut-off two-byte sequence)
        hello("eve", version=99),  # unsupported version
        struct.pack(">I", 4) + b"\x01\x00\x01\x05",  # truncated hello
        hello("eve") + hello("eve"),  # hello twice
    ]
    for payload in cases:
        sock = raw_connection(relay.port)
        sock.sendall(payload)
        frames = read_frames_until_close(sock)
        sock.close()
        errors = [body for frame_type, body in frames if frame_type == 0x85]
        assert errors, f"no error frame for {payload[:16]!r}: {frames}"
        message = errors[-1][4:].decode()
        assert message, payload
        alice.say(f"after {payload[:8].hex()}")
        assert bob.events(event="message")["text"] == f"after {payload[:8].hex()}"
    assert_relay_back_to(relay, baseline)


def test_frame_cut_in_the_middle_and_abrupt_close_do_not_disturb_others(clients, relay):
    alice, bob = start_all(clients, ["alice", "bob"])
    sock = raw_connection(relay.port)
    sock.sendall(hello("eve"))
    alice.events(event="joined", name="eve")
    sock.sendall(struct.pack(">I", 1000) + b"\x02" + b"partial")
    sock.close()
    alice.events(event="left", name="eve")
    alice.say("fine")
    assert bob.events(event="message")["text"] == "fine"


def test_ctrl_c_leaves_cleanly_with_status_130(clients):
    bob = clients("bob")
    bob.ready()
    alice = clients("alice")
    alice.ready()
    alice.say("last words")
    assert bob.events(event="message")["text"] == "last words"
    alice.process.send_signal(signal.SIGINT)
    assert alice.wait() == 130
    bob.events(event="left", name="alice")


def test_relay_stops_cleanly_on_sigint(relay):
    relay.process.send_signal(signal.SIGINT)
    assert relay.process.wait(timeout=10) == 0
    relay.log.wait_for(lambda line: "relay stopped" in line, what="stop line")
