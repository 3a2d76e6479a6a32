"""A second client, written from docs/PROTOCOL.md alone with Python's `cryptography` package and PyPI
`noiseprotocol` (the encrypted link), talks to the real relay and the real aeschat client. If the document and the
code ever disagree, this fails."""

import os
import struct
import time

import pytest

cryptography = pytest.importorskip("cryptography")
from cryptography.hazmat.primitives import hashes  # noqa: E402
from cryptography.hazmat.primitives.ciphers.aead import AESGCM  # noqa: E402
from cryptography.hazmat.primitives.kdf.hkdf import HKDF  # noqa: E402

from conftest import PROTOCOL_VERSION, link  # noqa: E402


def str8(text):
    data = text.encode()
    return bytes([len(data)]) + data


def frame(frame_type, body):
    return struct.pack(">I", len(body) + 1) + bytes([frame_type]) + body


def message_key(room_key, session, room, sender):
    info = b"aeschat/1 room-key message" + b"\x00" + str8(room) + str8(sender)
    return HKDF(algorithm=hashes.SHA256(), length=32, salt=session, info=info).derive(room_key)


def now_ms():
    return int(time.time() * 1000)


def seal(room_key, session, counter, room, sender, text, message_id=None, sent_at=None, recipient=""):
    sent_at = now_ms() if sent_at is None else sent_at
    header = b"\x05" + session + struct.pack(">QQ", counter, sent_at)
    nonce = b"\x00" * 4 + struct.pack(">Q", counter)
    aad = b"aeschat/1" + header + str8(room) + str8(sender) + str8(recipient)
    plaintext = b"\x01" + text.encode()
    if message_id is not None:
        plaintext = b"\x03" + struct.pack(">Q", message_id) + plaintext
    return header + AESGCM(message_key(room_key, session, room, sender)).encrypt(nonce, plaintext, aad)


def open_envelope(room_key, room, sender, envelope, recipient=""):
    header, sealed = envelope[:33], envelope[33:]
    assert header[0] == 0x05
    session, (counter, sent_at) = header[1:17], struct.unpack(">QQ", header[17:33])
    assert abs(sent_at - now_ms()) < 60_000
    nonce = b"\x00" * 4 + struct.pack(">Q", counter)
    aad = b"aeschat/1" + header + str8(room) + str8(sender) + str8(recipient)
    plaintext = AESGCM(message_key(room_key, session, room, sender)).decrypt(nonce, sealed, aad)
    if plaintext[0] == 0x03:  # message id, then the text
        plaintext = plaintext[9:]
    assert plaintext[0] == 0x01
    return plaintext[1:].decode()


class FrameSocket:
    """Frames over an encrypted link to the relay at `port`."""

    def __init__(self, port):
        self.sock = link(port)
        self.buffer = b""

    def send(self, frame_type, body):
        self.sock.sendall(frame(frame_type, body))

    def receive(self):
        while True:
            if len(self.buffer) >= 4:
                length = struct.unpack(">I", self.buffer[:4])[0]
                if len(self.buffer) >= 4 + length:
                    frame_type, body = self.buffer[4], self.buffer[5 : 4 + length]
                    self.buffer = self.buffer[4 + length :]
                    return frame_type, body
            chunk = self.sock.recv(65536)
            assert chunk, "relay closed the connection"
            self.buffer += chunk


def test_independent_client_interoperates_with_aeschat(clients, relay, key_file):
    room_key = bytes.fromhex(key_file.read_text().strip())
    alice = clients("alice", key=key_file)
    alice.ready()

    py = FrameSocket(relay.port)
    py.send(0x01, struct.pack(">H", PROTOCOL_VERSION) + str8("pyclient") + str8("lobby") + struct.pack(">H", 0))
    frame_type, body = py.receive()
    assert frame_type == 0x81
    version = struct.unpack(">H", body[:2])[0]
    assert version == 2
    alice.events(event="joined", name="pyclient")

    session = os.urandom(16)
    for counter, text in enumerate(["hello from python", "zweite Nachricht ✓"]):
        py.send(0x02, seal(room_key, session, counter, "lobby", "pyclient", text))
        event = alice.events(event="message")
        assert event == {"event": "message", "from": "pyclient", "text": text}

    alice.say("hello back from swift")
    while True:
        frame_type, body = py.receive()
        if frame_type == 0x84:
            break
    sender_length = body[0]
    sender = body[1 : 1 + sender_length].decode()
    flags = body[1 + sender_length]
    envelope = body[2 + sender_length :]
    assert (sender, flags) == ("alice", 0)
    assert open_envelope(room_key, "lobby", "alice", envelope) == "hello back from swift"

    # A replay of the Python client's first message is refused by aeschat.
    py.send(0x02, seal(room_key, session, 0, "lobby", "pyclient", "hello from python"))
    assert alice.events(event="warning")["kind"] == "replay"

    # A line with a message id, confirmed by the relay's pong to the ping sent after it (PROTOCOL section 4,
    # "Confirming lines"); sent again under a new session, as after a reconnect, it is shown once.
    py.send(0x02, seal(room_key, session, 2, "lobby", "pyclient", "with an id", message_id=0x1234))
    py.send(0x05, struct.pack(">Q", 7))
    while True:
        frame_type, body = py.receive()
        if frame_type == 0x06:
            assert struct.unpack(">Q", body)[0] == 7
            break
    assert alice.events(event="message") == {"event": "message", "from": "pyclient", "text": "with an id"}
    again = os.urandom(16)
    py.send(0x02, seal(room_key, again, 0, "lobby", "pyclient", "with an id", message_id=0x1234))
    py.send(0x02, seal(room_key, again, 1, "lobby", "pyclient", "next line", message_id=0x5678))
    assert alice.events(event="message") == {"event": "message", "from": "pyclient", "text": "next line"}

    # Sent eleven minutes ago (a recording played to a receiver that just started): refused as a replay.
    stale = os.urandom(16)
    py.send(0x02, seal(room_key, stale, 0, "lobby", "pyclient", "old news", sent_at=now_ms() - 11 * 60_000))
    warning = alice.events(event="warning")
    assert warning["kind"] == "replay" and "10-minute window" in warning["message"]

    py.send(0x04, b"")
    # The relay announces the leave at once, without waiting for this socket to close.
    alice.events(event="left", name="pyclient", timeout=2)
    py.sock.close()
