"""The encrypted link to the relay (issue 13; docs/PROTOCOL.md, protocol version 2), end to end.

- PyPI `noiseprotocol` (aeschat_link.py) is an implementation independent of aeschat's: it must reproduce the public
  Noise vectors, and interoperate with `aeschat serve` and `aeschat join` both ways, rekeying included.
- What a network observer sees: a capture of the whole wire holds no member name, room name, identity key or text.
- The relay's answers to clients of another kind (another version, garbage, an aeschat 0.1 client, a key request, a
  key id it does not hold) and the client's lines for relays of another kind.
- Pinning: a relay whose key differs from the pin gets nothing after message 1 and the client exits 77;
  `--accept-new-relay-key`, the refusal without a terminal, the prompt on a terminal, rotation with
  `serve --previous-relay-key`.
- A handshake flood from one address is answered "busy" while members chat on.
"""

import json
import os
import socket
import stat
import struct
import subprocess
import threading
import time
import warnings
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat
from noise.connection import Keypair, NoiseConnection

import aeschat_link
from aeschat_link import (
    HANDSHAKE_PREFIX, MAGIC, MAX_PLAINTEXT, PROTOCOL_NAME, V1_REFUSAL_TEXT, LinkError, LinkRefused, LinkSocket,
    StaticKey, fingerprint, key_id, key_text, parse_answer, preamble, prologue, read_exactly, read_until_close,
    v1_error)
from conftest import (
    PROTOCOL_VERSION, ROOT, Client, Proxy, Relay, binary_path, free_port, register_relay_key, relay_usage)
from test_interop import open_envelope, seal, str8
from test_relay_cap import Reader, frame, hello

NOISE_VECTORS = ROOT.parent / "shared" / "noise" / "Noise_NK_25519_AESGCM_SHA256.txt"
KEY_MISMATCH = 77  # EX_NOPERM: the relay's key was not the pinned one, or was not confirmed
WELCOME, JOINED, DELIVER, ERROR, RELAY_KEYS_FRAME = 0x81, 0x82, 0x84, 0x85, 0x86


# -- helpers ----------------------------------------------------------------------------------------------------------


def read_vectors(path):
    vectors, current = [], None
    for line in path.read_text().splitlines():
        parts = line.split()
        if not parts:
            continue
        if parts[0] == "source":
            current = {"messages": []}
        elif parts[0] == "end":
            vectors.append(current)
        elif parts[0] == "payload":
            current["messages"].append([bytes.fromhex(parts[1]) if len(parts) > 1 else b"", None])
        elif parts[0] == "ciphertext":
            current["messages"][-1][1] = bytes.fromhex(parts[1])
        else:
            current[parts[0]] = bytes.fromhex(parts[1]) if len(parts) > 1 else b""
    return vectors


def socket_pair_link(key, rekey_interval=aeschat_link.REKEY_INTERVAL):
    """A Python initiator and a Python responder over a socket pair, handshake done."""
    client_side, relay_side = socket.socketpair()
    accepted = {}
    thread = threading.Thread(target=lambda: accepted.update(link=LinkSocket.accept(relay_side, key)[0]))
    thread.start()
    noise = NoiseConnection.from_name(PROTOCOL_NAME)
    noise.set_as_initiator()
    noise.set_keypair_from_public_bytes(Keypair.REMOTE_STATIC, key.public)
    opening = preamble(key.key_id)
    noise.set_prologue(prologue(opening))
    noise.start_handshake()
    client_side.sendall(opening + HANDSHAKE_PREFIX + bytes(noise.write_message(b"")))
    client = LinkSocket(client_side, noise).finish(timeout=10)
    thread.join(10)
    relay = accepted["link"]
    client.rekey_interval = relay.rekey_interval = rekey_interval
    return client, relay


def raw(port, source=None):
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    if source is not None:
        sock.bind((source, 0))
    sock.settimeout(10)
    sock.connect(("127.0.0.1", port))
    return sock


def join_once(port, config, relay_key=None, extra=(), name="alice", room=None, timeout=30, json_output=True):
    """`aeschat join --json` (or in line mode) with no input: it registers and leaves at once, or fails. Returns the
    completed process (text)."""
    command = [binary_path(), "join", "--name", name, "--inbox", str(config) + "-inbox", "--port", str(port)]
    if json_output:
        command.append("--json")
    if relay_key is not None:
        command += ["--relay-key", relay_key]
    if room is not None:
        command += ["--room", room]
    environment = dict(os.environ, XDG_CONFIG_HOME=str(config))
    return subprocess.run([*command, *extra], stdin=subprocess.DEVNULL, capture_output=True, text=True,
                          timeout=timeout, env=environment)


def events(output):
    found = []
    for line in output.splitlines():
        try:
            found.append(json.loads(line))
        except ValueError:
            pass
    return found


def known_relays(config):
    """The pins of `config`'s known_relays: {host:port: (key text, how)}."""
    path = Path(config) / "aeschat" / "known_relays"
    if not path.exists():
        return {}
    pins = {}
    for line in path.read_text().splitlines():
        parts = line.split()
        if len(parts) >= 4 and not line.startswith("#"):
            pins[parts[0]] = (parts[1], " ".join(parts[3:]))
    return pins


class RecordingPipe:
    """A plain TCP pipe to `target_port` that keeps what each client sent upstream (`upstream[i]`) and what came
    back (`downstream[i]`), per connection. Its clients pin whatever key they are told."""

    def __init__(self, target_port):
        self.target_port = target_port
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.port = self.listener.getsockname()[1]
        self.upstream = []
        self.downstream = []
        threading.Thread(target=self.accept_loop, daemon=True).start()

    def accept_loop(self):
        while True:
            try:
                client, _ = self.listener.accept()
            except OSError:
                return
            relay = socket.create_connection(("127.0.0.1", self.target_port))
            up, down = bytearray(), bytearray()
            self.upstream.append(up)
            self.downstream.append(down)
            threading.Thread(target=self.pump, args=(client, relay, up), daemon=True).start()
            threading.Thread(target=self.pump, args=(relay, client, down), daemon=True).start()

    @staticmethod
    def pump(source, target, seen):
        try:
            while True:
                data = source.recv(65536)
                if not data:
                    break
                seen += data
                target.sendall(data)
        except OSError:
            pass
        for sock in (source, target):
            try:
                sock.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass

    def close(self):
        self.listener.close()


class StubRelay:
    """A relay written with `noiseprotocol` alone: it checks each client's preamble and handshake, reads the hello
    from the first record, and runs `script(link, hello)` (default: welcome, then read until the client leaves).
    `answer(sock, opening)` may replace the handshake (return True when it handled the connection)."""

    def __init__(self, script=None, answer=None):
        self.key = StaticKey()
        self.server = socket.create_server(("127.0.0.1", 0))
        self.port = self.server.getsockname()[1]
        register_relay_key(self.port, self.key.text)
        self.script = script or self.welcome_and_listen
        self.answer = answer
        self.preambles = []
        self.hellos = []
        self.frames = []
        self.upstream = []
        self.failures = []
        threading.Thread(target=self.serve, daemon=True).start()

    def serve(self):
        while True:
            try:
                sock, _ = self.server.accept()
            except OSError:
                return
            threading.Thread(target=self.handle, args=(sock,), daemon=True).start()

    def handle(self, sock):
        try:
            sock.settimeout(10)
            if self.answer is not None:
                opening = read_exactly(sock, 12, time.monotonic() + 10)
                self.preambles.append(opening)
                if opening[8:] == b"\x00\x00\x00\x00":  # a key request: this relay presents its own key
                    sock.sendall(MAGIC + bytes([2, aeschat_link.ANSWER_KEYS, 1]) + self.key.public)
                    self.upstream.append(opening + read_until_close(sock, timeout=5))
                    return
                opening += read_exactly(sock, 50, time.monotonic() + 10)
                self.upstream.append(opening)
                if self.answer(sock, opening):
                    return
            link, opening = LinkSocket.accept(sock, self.key, timeout=10)
            self.preambles.append(opening)
            reader = Reader(link)
            kind, body = reader.next(10)
            self.hellos.append((kind, body))
            self.script(link, reader, body)
        except (OSError, LinkError, AssertionError) as failure:
            self.failures.append(repr(failure))
        finally:
            sock.close()

    def welcome_and_listen(self, link, reader, hello_body):
        name_length = hello_body[2]
        name = hello_body[3:3 + name_length]
        room = hello_body[4 + name_length:4 + name_length + hello_body[3 + name_length]]
        link.sendall(frame(WELCOME, struct.pack(">H", PROTOCOL_VERSION) + str8(name.decode()) + str8(room.decode())
                           + struct.pack(">H", 0)))
        while True:
            got = reader.next(30)
            if got is None:
                return
            self.frames.append(got)

    def close(self):
        self.server.close()


def hello_fields(body):
    version = struct.unpack(">H", body[:2])[0]
    name_length = body[2]
    name = body[3:3 + name_length].decode()
    room_length = body[3 + name_length]
    room = body[4 + name_length:4 + name_length + room_length].decode()
    return version, name, room


# -- the independent implementation itself ----------------------------------------------------------------------------


def test_noiseprotocol_reproduces_the_public_vectors_so_it_can_stand_as_the_second_implementation():
    if not NOISE_VECTORS.exists():
        if os.environ.get("AESCHAT_REQUIRE_WYCHEPROOF") == "1":
            pytest.fail(f"{NOISE_VECTORS} is missing and AESCHAT_REQUIRE_WYCHEPROOF=1 requires it")
        pytest.skip(f"Noise vectors not found at {NOISE_VECTORS}")
    vectors = read_vectors(NOISE_VECTORS)
    assert len(vectors) == 2
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # noiseprotocol warns when ephemeral keys are set, as vectors need
        for vector in vectors:
            initiator = NoiseConnection.from_name(PROTOCOL_NAME)
            initiator.set_as_initiator()
            initiator.set_keypair_from_public_bytes(Keypair.REMOTE_STATIC, vector["init_remote_static"])
            initiator.set_keypair_from_private_bytes(Keypair.EPHEMERAL, vector["init_ephemeral"])
            initiator.set_prologue(vector["init_prologue"])
            initiator.start_handshake()
            responder = NoiseConnection.from_name(PROTOCOL_NAME)
            responder.set_as_responder()
            responder.set_keypair_from_private_bytes(Keypair.STATIC, vector["resp_static"])
            responder.set_keypair_from_private_bytes(Keypair.EPHEMERAL, vector["resp_ephemeral"])
            responder.set_prologue(vector["resp_prologue"])
            responder.start_handshake()
            for index, (payload, ciphertext) in enumerate(vector["messages"]):
                sender, receiver = (initiator, responder) if index % 2 == 0 else (responder, initiator)
                if index < 2:
                    assert bytes(sender.write_message(payload)) == ciphertext, index
                    assert bytes(receiver.read_message(ciphertext)) == payload
                else:
                    assert sender.encrypt(payload) == ciphertext, index
                    assert receiver.decrypt(ciphertext) == payload
            if "handshake_hash" in vector:
                assert initiator.get_handshake_hash() == vector["handshake_hash"]
                assert responder.get_handshake_hash() == vector["handshake_hash"]


def test_python_link_splits_records_at_65519_bytes_rekeys_in_step_and_refuses_a_changed_byte():
    key = StaticKey()
    assert key.key_id != b"\x00\x00\x00\x00" and len(key.text) == 52 and key_text(key.public) == key.text
    assert fingerprint(key.public).startswith("relay ") and len(fingerprint(key.public).split()) == 9
    client, relay = socket_pair_link(key, rekey_interval=3)
    try:
        data = bytes(range(256)) * 1000  # 256,000 bytes: 3 full records and a part
        sender = threading.Thread(target=client.sendall, args=(data,))
        sender.start()
        got = b""
        while len(got) < len(data):
            got += relay.recv()
        sender.join(10)
        assert got == data and client.sent_records == 4 == relay.received_records
        for index in range(10):  # past three rekeys in each direction
            relay.sendall(b"r%d" % index)
            assert client.recv() == b"r%d" % index
            client.sendall(b"c%d" % index)
            assert relay.recv() == b"c%d" % index
        record = bytearray(client.seal(b"flip me"))
        record[5] ^= 1
        client.sock.sendall(record)
        with pytest.raises(LinkError):
            relay.recv()
    finally:
        client.close()
        relay.close()
    assert MAX_PLAINTEXT == 65_519


# -- interoperability with the real binary ----------------------------------------------------------------------------


def test_a_noiseprotocol_client_joins_aeschat_serve_and_chats_with_an_aeschat_client(tmp_path, relay, key_file):
    room_key = bytes.fromhex(key_file.read_text().strip())
    alice = Client("alice", relay.port, key_file, tmp_path / "inbox-alice")
    alice.ready()
    py = relay.link()
    reader = Reader(py)
    py.sendall(hello("pyclient"))
    kind, body = reader.next()
    assert kind == WELCOME
    version, name, room = hello_fields(body)
    assert (version, name, room) == (2, "pyclient", "lobby")
    alice.events(event="joined", name="pyclient")
    session = os.urandom(16)
    py.sendall(frame(0x02, seal(room_key, session, 0, "lobby", "pyclient", "over noiseprotocol")))
    assert alice.events(event="message")["text"] == "over noiseprotocol"
    alice.say("and back over libgcrypt")
    while True:
        kind, body = reader.next()
        if kind == DELIVER:
            break
    sender = body[1:1 + body[0]].decode()
    assert sender == "alice"
    assert open_envelope(room_key, "lobby", "alice", body[2 + body[0]:]) == "and back over libgcrypt"
    py.close()
    alice.events(event="left", name="pyclient")


def test_both_directions_rekey_after_2_to_the_20_records_in_step_with_noiseprotocol(tmp_path, relay, key_file):
    """2^20 + 2 records each way at the protocol's own interval: empty ones, then a frame that only the next key
    opens. Relay side: a Python member sends them to `aeschat serve`; client side: a stub relay sends them to
    `aeschat join`."""
    room_key = bytes.fromhex(key_file.read_text().strip())
    alice = Client("alice", relay.port, key_file, tmp_path / "inbox-alice")
    alice.ready()
    py = relay.link(timeout=60)
    reader = Reader(py)
    py.sendall(hello("rekeyer"))
    assert reader.next()[0] == WELCOME
    alice.events(event="joined", name="rekeyer")
    empty_records = b"".join(py.seal(b"") for _ in range(aeschat_link.REKEY_INTERVAL))
    py.settimeout(300)  # a debug relay opens a million records in about ten seconds
    py.sock.sendall(empty_records)
    assert py.sent_records == aeschat_link.REKEY_INTERVAL + 1  # the hello, then 2^20 empty: rekeyed once
    py.sendall(frame(0x02, seal(room_key, os.urandom(16), 0, "lobby", "rekeyer", "after the rekey")))
    assert alice.events(event="message", timeout=120)["text"] == "after the rekey"
    py.close()

    def flood_then_join(link, reader, hello_body):
        link.sendall(frame(WELCOME, struct.pack(">H", PROTOCOL_VERSION) + str8("bob") + str8("lobby")
                           + struct.pack(">H", 0)))
        link.settimeout(300)
        link.sock.sendall(b"".join(link.seal(b"") for _ in range(aeschat_link.REKEY_INTERVAL)))
        link.sendall(frame(JOINED, str8("after-rekey") + struct.pack(">H", 0)))
        while reader.next(60) is not None:
            pass

    stub = StubRelay(flood_then_join)
    try:
        bob = Client("bob", stub.port, key_file, tmp_path / "inbox-bob")
        bob.ready(timeout=30)
        bob.events(event="joined", name="after-rekey", timeout=120)
        bob.close_input()
        assert bob.wait(timeout=30) == 0
    finally:
        stub.close()


def test_aeschat_join_speaks_the_link_to_a_noiseprotocol_relay(tmp_path, key_file):
    stub = StubRelay()
    try:
        bob = Client("bob", stub.port, key_file, tmp_path / "inbox-bob", room="den")
        assert bob.ready()["members"] == []
        bob.close_input()
        assert bob.wait() == 0
        assert stub.failures == []
        assert stub.preambles == [MAGIC + b"\x02" + stub.key.key_id]
        kind, body = stub.hellos[0]
        assert kind == 0x01 and hello_fields(body) == (2, "bob", "den")
        assert stub.frames and stub.frames[-1][0] == 0x04  # bye, inside the link
        pins = known_relays(tmp_path / "inbox-bob-config")
        assert pins[f"127.0.0.1:{stub.port}"] == (stub.key.text, "join-line")
    finally:
        stub.close()


def identity_public_key(config):
    seed = bytes.fromhex((Path(config) / "aeschat" / "identity").read_text().split()[1])
    public = Ed25519PrivateKey.from_private_bytes(seed).public_key().public_bytes(Encoding.Raw, PublicFormat.Raw)
    return seed, public


def test_a_capture_of_the_whole_wire_holds_no_names_room_keys_or_text(tmp_path, relay):
    proxy = Proxy(relay.port)
    room = "the-secret-garden-room"
    try:
        alice = Client("alice-wonderland", proxy.port, None, tmp_path / "inbox-a", room=room)
        alice.ready()
        bob = Client("bob-the-builder", proxy.port, None, tmp_path / "inbox-b", room=room)
        bob.ready()
        alice.events(event="joined", name="bob-the-builder")
        alice.say("meet me at the fountain")
        assert bob.events(event="message")["text"] == "meet me at the fountain"
        bob.say("/msg alice-wonderland bring the map")
        alice.events(event="message", text="bring the map")
        for client in (alice, bob):
            client.close_input()
            assert client.wait() == 0
        wire = bytes(proxy.recorded)
        assert wire.startswith(MAGIC + b"\x02" + relay.key_id)
        forbidden = [b"alice-wonderland", b"bob-the-builder", room.encode(), b"meet me at the fountain",
                     b"bring the map", b"lobby", b"AESCHAT\x02\x00\x00\x00\x00"]
        for config in (tmp_path / "inbox-a-config", tmp_path / "inbox-b-config"):
            seed, public = identity_public_key(config)
            forbidden += [seed, public, public[:8], public[-8:], public.hex().encode()]
        for item in forbidden:
            assert item not in wire, item
    finally:
        proxy.close()


# -- the relay's answers to clients of another kind -------------------------------------------------------------------


def test_the_relay_answers_another_version_garbage_and_v1_clients_as_documented(relay):
    # Another version of the link: "AESCHAT" 0x02 0x02 (the version the relay speaks, then "version"), then close.
    sock = raw(relay.port)
    sock.sendall(MAGIC + b"\x03" + relay.key_id)
    answer = read_until_close(sock)
    assert answer == MAGIC + b"\x02\x02", answer
    sock.close()
    # An aeschat 0.1 client (a v1 hello) and anything else: a v1 error frame, code 5, readable by an old client.
    for first in (frame(0x01, struct.pack(">H", 1) + str8("oldie") + str8("lobby") + b"\x00\x00"),
                  b"GET / HTTP/1.1\r\nHost: x\r\n\r\n", b"SSH-2.0-OpenSSH_9.6\r\n", b"AESC" + b"\xff" * 8):
        sock = raw(relay.port)
        sock.sendall(first)
        answer = read_until_close(sock)
        sock.close()
        assert parse_answer(answer).kind == "v1-error", (first, answer)
        assert v1_error(answer) == (5, V1_REFUSAL_TEXT.decode()), answer
    # A key request (key id 00000000): the relay's key, in clear, then close.
    sock = raw(relay.port)
    sock.sendall(MAGIC + b"\x02" + b"\x00\x00\x00\x00")
    refusal = parse_answer(read_until_close(sock))
    sock.close()
    assert refusal.kind == "keys" and refusal.keys == [relay.public], refusal.data
    # A key id the relay does not hold: the same answer, so the client can say what is presented.
    with pytest.raises(LinkRefused) as refused:
        LinkSocket.connect(relay.port, StaticKey())
    assert refused.value.kind == "keys" and refused.value.keys == [relay.public]


def test_an_aeschat_0_1_client_shows_the_relays_line_and_gives_up(tmp_path, relay, key_file):
    """The real 0.1 binary (plaintext protocol 1), when $AESCHAT_V1_BIN names one."""
    old = os.environ.get("AESCHAT_V1_BIN")
    if not old:
        pytest.skip("set AESCHAT_V1_BIN to an aeschat 0.1 binary to run this")
    environment = dict(os.environ, XDG_CONFIG_HOME=str(tmp_path / "config"))
    result = subprocess.run([old, "join", "--name", "oldtimer", "--inbox", str(tmp_path / "inbox"), "--port",
                             str(relay.port), "--key", str(key_file), "--json"], stdin=subprocess.DEVNULL,
                            capture_output=True, text=True, timeout=60, env=environment)
    assert result.returncode != 0
    assert V1_REFUSAL_TEXT.decode() in result.stdout + result.stderr, result
    assert not any("oldtimer joined" in line for line in relay.log.seen)


def test_the_relay_closes_on_a_bad_message_1_early_bytes_and_a_record_that_does_not_authenticate(relay):
    baseline = relay_usage(relay)
    # A message 1 that does not authenticate (random bytes for e and the tag): no message 2, the end.
    sock = raw(relay.port)
    sock.sendall(preamble(relay.key_id) + HANDSHAKE_PREFIX + os.urandom(48))
    assert read_until_close(sock) == b""
    sock.close()
    # Bytes after message 1, before message 2 (an honest client waits): closed, no welcome.
    early = LinkSocket.begin(relay.port, relay.key, then=b"\x00\x20" + b"x" * 32)
    assert read_until_close(early.sock) == b""
    early.close()
    # A record under no key the relay holds, and a record length below the tag's 16 bytes: closed.
    for record in (struct.pack(">H", 40) + os.urandom(40), b"\x00\x0f" + b"z" * 15):
        link = relay.link()
        link.sock.sendall(record)
        read_until_close(link.sock)  # closed within its timeout (raises if not)
        link.close()
    # A member still chats, and nothing is left behind.
    alice = relay.link()
    alice.sendall(hello("alice"))
    assert Reader(alice).next()[0] == WELCOME
    alice.close()
    deadline = time.monotonic() + 10
    while relay_usage(relay)[0] > baseline[0] and time.monotonic() < deadline:
        time.sleep(0.05)
    assert relay_usage(relay)[0] <= baseline[0]


def test_a_hello_of_version_1_inside_the_link_gets_error_5(relay):
    link = relay.link()
    link.sendall(frame(0x01, struct.pack(">H", 1) + str8("oldhello") + str8("lobby") + b"\x00\x00"))
    reader = Reader(link)
    kind, body = reader.next()
    assert kind == ERROR and struct.unpack(">H", body[:2])[0] == 5
    assert reader.next() is None and link.truncated == 0


# -- the client's lines for relays of another kind --------------------------------------------------------------------


class Answering:
    """A TCP server that answers every connection's first bytes with `reply`, then closes."""

    def __init__(self, reply):
        self.reply = reply
        self.server = socket.create_server(("127.0.0.1", 0))
        self.port = self.server.getsockname()[1]
        self.received = []
        threading.Thread(target=self.serve, daemon=True).start()

    def serve(self):
        while True:
            try:
                sock, _ = self.server.accept()
            except OSError:
                return
            try:
                sock.settimeout(5)
                self.received.append(read_exactly(sock, 62, time.monotonic() + 5))
                sock.sendall(self.reply)
                time.sleep(0.2)
            except OSError:
                pass
            finally:
                sock.close()

    def close(self):
        self.server.close()


V1_ERROR_FRAME = struct.pack(">IB", 1 + 2 + 2 + 12, 0x85) + struct.pack(">HH", 5, 12) + b"wrong version"[:12]


@pytest.mark.parametrize("case, reply, fragment", [
    ("not aeschat", b"SSH-2.0-OpenSSH_9.6\r\n", "is not an aeschat relay"),
    ("aeschat 0.1 relay", V1_ERROR_FRAME, "runs an older aeschat (protocol 1)"),
    ("another version", MAGIC + b"\x03\x02", "3"),
])
def test_join_says_in_one_line_what_answered_instead_of_a_relay(tmp_path, case, reply, fragment):
    server = Answering(reply)
    try:
        result = join_once(server.port, tmp_path / "config", relay_key=StaticKey().text,
                           extra=["--key", str(make_room_key(tmp_path))], timeout=60)
        assert result.returncode != 0, result
        errors = [event for event in events(result.stdout) if event.get("event") == "error"]
        text = " ".join(event["message"] for event in errors) + result.stderr
        assert fragment in text, (case, result.stdout, result.stderr)
        assert f"127.0.0.1:{server.port}" in text, text
        # Nothing but the preamble and message 1 ever left the client.
        assert all(len(first) <= 62 for first in server.received)
    finally:
        server.close()


class NotARelay:
    """A server of another kind on loopback: `ssh` speaks first, as sshd does (its banner on accept, whatever the
    client sends); `http` answers the client's first bytes with 400 Bad Request and closes, as an HTTP server that
    checks the request line does; `silent` reads and says nothing, as an HTTP server waiting for a request line."""

    def __init__(self, kind):
        self.kind = kind
        self.server = socket.create_server(("127.0.0.1", 0))
        self.port = self.server.getsockname()[1]
        self.accepted = 0
        threading.Thread(target=self.serve, daemon=True).start()

    def serve(self):
        while True:
            try:
                sock, _ = self.server.accept()
            except OSError:
                return
            self.accepted += 1
            threading.Thread(target=self.talk, args=(sock,), daemon=True).start()

    def talk(self, sock):
        try:
            sock.settimeout(30)
            if self.kind == "ssh":
                sock.sendall(b"SSH-2.0-OpenSSH_9.6p1 Ubuntu-3ubuntu13\r\n")
                sock.recv(4096)
                time.sleep(1)
            elif self.kind == "http":
                sock.recv(4096)
                sock.sendall(b"HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\nConnection: close\r\n\r\n")
            else:
                while sock.recv(4096):
                    pass
        except OSError:
            pass
        finally:
            sock.close()

    def close(self):
        self.server.close()


@pytest.mark.parametrize("kind", ["ssh", "http"])
@pytest.mark.parametrize("pin", ["full key", "fingerprint", "first use"])
def test_join_pointed_at_an_ssh_or_http_port_says_it_is_not_an_aeschat_relay(tmp_path, kind, pin):
    server = NotARelay(kind)
    try:
        options = {"full key": ["--relay-key", StaticKey().text], "fingerprint": ["--relay-key", "4f1c93a0" * 4],
                   "first use": ["--accept-new-relay-key"]}[pin]
        started = time.monotonic()
        result = join_once(server.port, tmp_path / "config", extra=options, timeout=60)
        assert result.returncode == 69, result
        text = result.stdout + result.stderr
        assert f"127.0.0.1:{server.port} is not an aeschat relay" in text, text
        assert "frame of" not in text, text
        assert time.monotonic() - started < 5, "it should know at once"
        assert server.accepted <= 2  # never retried: at most a key probe and the handshake
    finally:
        server.close()


def test_join_pointed_at_a_server_that_says_nothing_says_it_may_not_be_an_aeschat_relay(tmp_path):
    server = NotARelay("silent")
    try:
        result = join_once(server.port, tmp_path / "config", extra=["--accept-new-relay-key"], timeout=60)
        assert result.returncode == 69, result
        assert "sent nothing at all: probably not an aeschat relay" in result.stderr, result.stderr
    finally:
        server.close()


def make_room_key(tmp_path):
    path = tmp_path / "room.key"
    if not path.exists():
        subprocess.run([binary_path(), "keygen", "--out", str(path)], check=True, capture_output=True, timeout=30)
    return path


# -- pinning ----------------------------------------------------------------------------------------------------------


def assert_nothing_after_message_1(pipe, pinned_key_id):
    """Every connection through `pipe` carried at most the preamble (for the pinned key) and message 1."""
    assert pipe.upstream, "the client never connected"
    for sent in pipe.upstream:
        assert len(sent) <= 62, f"{len(sent)} bytes sent: {bytes(sent[:80]).hex()}"
        assert bytes(sent[:12]) in (MAGIC + b"\x02" + pinned_key_id, MAGIC + b"\x02\x00\x00\x00\x00")


def test_a_relay_whose_key_differs_from_the_pin_gets_no_hello_and_join_exits_77(tmp_path):
    config = tmp_path / "config"
    first = Relay(free_port())
    port, pinned = first.port, first.key
    try:
        assert join_once(port, config, relay_key=first.key).returncode == 0
    finally:
        first.stop()
    assert known_relays(config)[f"127.0.0.1:{port}"][0] == pinned
    # Another relay on the same address, with another key (an attacker, or a lost key file).
    impostor = Relay(port)
    pipe = RecordingPipe(port)
    try:
        result = join_once(pipe.port, config, relay_key=pinned)  # pinned as the address the client uses
        assert result.returncode == KEY_MISMATCH, result
        assert_nothing_after_message_1(pipe, key_id(aeschat_link.parse_key_text(pinned)))
        assert len(pipe.upstream) <= 2, len(pipe.upstream)  # never retried: the handshake, at most a key request
        text = result.stdout + result.stderr
        assert impostor.fingerprint in text, text  # what is presented now
        assert fingerprint(aeschat_link.parse_key_text(pinned)) in text  # what was pinned
        assert "nothing was sent" in text.lower(), text
        assert not any("alice joined" in line for line in impostor.log.seen)
        # Through the address it was pinned for, in line mode: the screen, from the pin in known_relays alone.
        again = join_once(port, config, json_output=False)
        assert again.returncode == KEY_MISMATCH, again
        screen = again.stdout + again.stderr
        assert impostor.fingerprint in screen and fingerprint(aeschat_link.parse_key_text(pinned)) in screen, screen
        assert "end-to-end" in screen and "--relay-key" in screen, screen
        assert known_relays(config)[f"127.0.0.1:{port}"][0] == pinned  # the pin is kept
        time.sleep(0.2)
        assert not any("alice joined" in line for line in impostor.log.seen)
    finally:
        pipe.close()
        impostor.stop()


def test_a_man_in_the_middle_holding_the_key_id_but_not_the_key_gets_nothing_after_message_1(tmp_path, relay):
    def fake_message_2(sock, opening):
        sock.sendall(HANDSHAKE_PREFIX + os.urandom(48))
        try:
            rest = read_until_close(sock, timeout=3)
        except socket.timeout:
            rest = b"(still open)"
        stub.after_message_2.append(rest)
        return True

    stub = StubRelay(answer=fake_message_2)
    stub.after_message_2 = []
    try:
        result = join_once(stub.port, tmp_path / "config", relay_key=relay.key)
        assert result.returncode == KEY_MISMATCH, result
        # The handshake, then at most a key request (to show what is presented): nothing else, before or after.
        assert MAGIC + b"\x02" + relay.key_id in stub.preambles
        assert all(p in (MAGIC + b"\x02" + relay.key_id, MAGIC + b"\x02\x00\x00\x00\x00") for p in stub.preambles)
        assert all(rest == b"" for rest in stub.after_message_2), stub.after_message_2
        assert all(len(sent) in (12, 62) for sent in stub.upstream), [bytes(sent).hex() for sent in stub.upstream]
        text = result.stdout + result.stderr
        assert fingerprint(relay.public) in text, text  # what was pinned
        assert f"127.0.0.1:{stub.port}" not in known_relays(tmp_path / "config") or \
            known_relays(tmp_path / "config")[f"127.0.0.1:{stub.port}"][0] == relay.key
    finally:
        stub.close()


def test_accept_new_relay_key_pins_on_first_use_and_the_next_join_uses_the_pin(tmp_path, relay):
    config = tmp_path / "config"
    first = join_once(relay.port, config, extra=["--accept-new-relay-key"])
    assert first.returncode == 0, first
    key, how = known_relays(config)[f"127.0.0.1:{relay.port}"]
    assert key == relay.key and how == "first-use"
    path = config / "aeschat" / "known_relays"
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert stat.S_IMODE(path.parent.stat().st_mode) == 0o700
    second = join_once(relay.port, config)
    assert second.returncode == 0, second
    assert known_relays(config)[f"127.0.0.1:{relay.port}"] == (key, how)


def test_without_a_terminal_and_without_a_key_join_refuses_and_sends_nothing(tmp_path, relay):
    pipe = RecordingPipe(relay.port)
    try:
        config = tmp_path / "config"
        result = join_once(pipe.port, config)
        assert result.returncode == KEY_MISMATCH, result
        assert "--relay-key" in result.stdout + result.stderr and "--accept-new-relay-key" in result.stdout + result.stderr
        assert known_relays(config) == {}
        assert len(pipe.upstream) <= 1
        for sent in pipe.upstream:  # at most a key request
            assert bytes(sent) == MAGIC + b"\x02\x00\x00\x00\x00", bytes(sent).hex()
        assert not any("alice joined" in line for line in relay.log.seen)
    finally:
        pipe.close()


def test_join_relay_key_accepts_the_fingerprint_and_pins_the_key_it_matches(tmp_path, relay):
    config = tmp_path / "config"
    result = join_once(relay.port, config, relay_key=relay.fingerprint)
    assert result.returncode == 0, result
    key, how = known_relays(config)[f"127.0.0.1:{relay.port}"]
    assert key == relay.key and how == "typed-fingerprint"
    wrong = join_once(relay.port, tmp_path / "other", relay_key=StaticKey().fingerprint)
    assert wrong.returncode == KEY_MISMATCH, wrong
    assert known_relays(tmp_path / "other") == {}


def test_the_prompt_on_a_terminal_accepts_a_pasted_fingerprint_and_no_pins_nothing(tmp_path, relay):
    from test_terminal import Pane

    config = tmp_path / "config"
    environment = {"XDG_CONFIG_HOME": str(config)}
    refused = Pane(tmp_path / "pane-no", ["join", "--name", "alice", "--port", str(relay.port), "--inbox",
                                          str(tmp_path / "inbox")], environment)
    try:
        refused.wait_for_text(relay.fingerprint, timeout=15)
        refused.type("no")
        refused.keys("Enter")
        assert refused.exit_status() == KEY_MISMATCH
        assert known_relays(config) == {}
    finally:
        refused.close()
    pane = Pane(tmp_path / "pane-yes", ["join", "--name", "alice", "--port", str(relay.port), "--inbox",
                                        str(tmp_path / "inbox")], environment)
    try:
        pane.wait_for_text(relay.fingerprint, timeout=15)
        pane.type(relay.fingerprint.upper().replace("RELAY ", "relay "))
        pane.keys("Enter")
        pane.wait_for_text("you are alice in lobby", timeout=20)
        key, how = known_relays(config)[f"127.0.0.1:{relay.port}"]
        assert key == relay.key and how == "typed-fingerprint"
    finally:
        pane.close()


def test_rotation_with_previous_relay_key_repins_with_one_info_line(tmp_path):
    config = tmp_path / "config"
    port = free_port()
    old = Relay(port)
    try:
        assert join_once(port, config, relay_key=old.key).returncode == 0
    finally:
        old.stop()
    new_key_file = Path(tempfile_folder(tmp_path)) / "relay-key-new"
    rotating = Relay(port, key_file=new_key_file, previous_key_file=old.key_file)
    try:
        assert rotating.key != old.key
        # The old key still completes the handshake; the relay announces the new one inside the link.
        link = LinkSocket.connect(port, old.key)
        link.sendall(hello("checker"))
        reader = Reader(link)
        assert reader.next()[0] == WELCOME
        kind, body = reader.next()
        assert kind == RELAY_KEYS_FRAME and body[0] in (1, 2) and body[1:33] == rotating.public, body.hex()
        link.close()
        # A client pinned to the old key re-pins, with one info line.
        result = join_once(port, config)
        assert result.returncode == 0, result
        infos = [event for event in events(result.stdout) if event.get("event") == "info"
                 and rotating.fingerprint in event.get("message", "")]
        assert len(infos) == 1, result.stdout
        key, how = known_relays(config)[f"127.0.0.1:{port}"]
        assert key == rotating.key and how == "announced-by-" + "".join(old.fingerprint.split()[1:3]), how
    finally:
        rotating.stop()
    # Once the old key is retired, the new pin is the one that works.
    retired = Relay(port, key_file=new_key_file)
    try:
        result = join_once(port, config)
        assert result.returncode == 0, result
        assert not [event for event in events(result.stdout) if event.get("event") == "info"
                    and rotating.fingerprint in event.get("message", "")]
    finally:
        retired.stop()


def tempfile_folder(tmp_path):
    folder = tmp_path / "keys"
    folder.mkdir(mode=0o700, exist_ok=True)
    return folder


# -- the relay's own key ----------------------------------------------------------------------------------------------


def test_serve_show_key_prints_the_key_the_relay_handshakes_with_and_never_remakes_it(tmp_path):
    folder = tmp_path / "relay"
    key_file = folder / "relay-key"
    shown = subprocess.run([binary_path(), "serve", "--show-key", "--relay-key", str(key_file)], capture_output=True,
                           text=True, timeout=30)
    assert shown.returncode == 0, shown
    assert stat.S_IMODE(key_file.stat().st_mode) == 0o600
    before = key_file.read_bytes()
    relay = Relay(free_port(), key_file=key_file)
    try:
        assert relay.key in shown.stdout and relay.fingerprint in shown.stdout
        assert key_file.read_bytes() == before
        link = relay.link()
        link.sendall(hello("keyed"))
        assert Reader(link).next()[0] == WELCOME
        link.close()
    finally:
        relay.stop()


def test_serve_refuses_to_start_with_a_key_file_it_cannot_parse_and_leaves_it_alone(tmp_path):
    key_file = tmp_path / "relay-key"
    key_file.write_text("not a key\n")
    key_file.chmod(0o600)
    result = subprocess.run([binary_path(), "serve", "--port", str(free_port()), "--relay-key", str(key_file)],
                            capture_output=True, text=True, timeout=30)
    assert result.returncode == 74
    assert str(key_file) in result.stderr and len(result.stderr.strip().splitlines()) == 1, result.stderr
    assert key_file.read_text() == "not a key\n"


# -- handshake floods -------------------------------------------------------------------------------------------------


def test_a_handshake_flood_from_one_address_is_answered_busy_while_members_chat(tmp_path, key_file):
    relay = Relay(free_port(), ["--handshake-rate", "5", "--handshake-burst", "10"])
    alice = bob = None
    try:
        alice = Client("alice", relay.port, key_file, tmp_path / "inbox-alice")
        alice.ready()
        bob = Client("bob", relay.port, key_file, tmp_path / "inbox-bob")
        bob.ready()
        alice.events(event="joined", name="bob")
        # 127.0.0.2 is loopback too, and another address to the relay: 200 handshakes as fast as they go.
        outcomes = {"done": 0, "busy": 0, "other": 0}
        held = []
        started = time.monotonic()
        for _ in range(200):
            try:
                link = LinkSocket.connect(relay.port, relay.key, timeout=10, source="127.0.0.2")
                outcomes["done"] += 1
                held.append(link)
            except LinkRefused as refused:
                outcomes["busy" if refused.kind == "busy" else "other"] += 1
        flood_seconds = time.monotonic() - started
        assert outcomes["busy"] >= 150, outcomes
        assert outcomes["done"] <= 10 + 5 * (flood_seconds + 1), (outcomes, flood_seconds)
        assert outcomes["other"] == 0, outcomes
        # The members chat on, and a newcomer from the members' address joins at once.
        alice.say("still here during the flood")
        assert bob.events(event="message", timeout=10)["text"] == "still here during the flood"
        carol = Client("carol", relay.port, key_file, tmp_path / "inbox-carol")
        carol.ready(timeout=10)
        carol.kill()
        for link in held:
            link.close()
    finally:
        for client in (alice, bob):
            if client is not None:
                client.kill()
        relay.stop()


def test_a_client_answered_busy_tries_again_like_after_a_lost_connection(tmp_path, key_file):
    relay = Relay(free_port(), ["--handshake-rate", "1", "--handshake-burst", "1"])
    alice = bob = None
    try:
        alice = Client("alice", relay.port, key_file, tmp_path / "inbox-alice")
        alice.ready()  # the one token
        bob = Client("bob", relay.port, key_file, tmp_path / "inbox-bob")
        bob.ready(timeout=20)
        retried = [json.loads(line) for line in bob.out.seen if '"reconnecting"' in line]
        assert retried and "busy" in retried[0]["reason"], bob.out.seen
        alice.events(event="joined", name="bob")
    finally:
        for client in (alice, bob):
            if client is not None:
                client.kill()
        relay.stop()
