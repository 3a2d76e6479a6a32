"""The encrypted link to the relay (docs/PROTOCOL.md, protocol version 2), spoken with PyPI `noiseprotocol`: an
implementation independent of aeschat's Swift one, so that every raw-socket test also checks interoperability.

Wire (both directions are TCP byte streams):

    C→R  preamble  "AESCHAT" 0x02 ‖ key id (4)          12 bytes, cleartext
    C→R  0x00 0x30 ‖ Noise message 1 (e ‖ tag)           Noise_NK_25519_AESGCM_SHA256, empty payload
    R→C  0x00 0x30 ‖ Noise message 2 (e ‖ tag)
    both len:u16 BE ‖ AES-256-GCM record                 16 ≤ len ≤ 65,535; ≤ 65,519 bytes of plaintext each

The prologue is "aeschat/2 transport" ‖ preamble. Each direction rekeys after every 2^20 records. Instead of
message 2 a relay may answer in clear with "AESCHAT" 0x02 ‖ kind (0x01 keys, 0x02 version, 0x03 busy) and close.

`LinkSocket` is a socket-like object (sendall, send, recv, settimeout, fileno, close, ...) over the plaintext stream,
so the tests' frame readers work on it unchanged. `LinkSocket.connect` is the client side (initiator);
`LinkSocket.accept` the relay side (responder), for fake relays and the tampering proxy.

This module needs no pytest: the FLOODER-style child scripts import it too.
"""

import base64
import hashlib
import socket
import struct
import time

from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey
from cryptography.hazmat.primitives.serialization import Encoding, NoEncryption, PrivateFormat, PublicFormat
from noise.connection import Keypair, NoiseConnection

PROTOCOL_NAME = b"Noise_NK_25519_AESGCM_SHA256"
MAGIC = b"AESCHAT"
VERSION = 2
PROLOGUE_LABEL = b"aeschat/2 transport"
FINGERPRINT_LABEL = b"aeschat/2 relay fingerprint"
KEY_REQUEST_ID = b"\x00\x00\x00\x00"
HANDSHAKE_PREFIX = b"\x00\x30"  # the length prefix of both 48-byte handshake messages
HANDSHAKE_MESSAGE_LENGTH = 48
TAG_LENGTH = 16
MAX_RECORD = 65_535
MAX_PLAINTEXT = MAX_RECORD - TAG_LENGTH  # 65,519
REKEY_INTERVAL = 1 << 20

ANSWER_KEYS = 0x01
ANSWER_VERSION = 0x02
ANSWER_BUSY = 0x03

# The relay's answer to first bytes that are not "AESCHAT" (a v1 client): a v1 error frame, code 5.
V1_REFUSAL_TEXT = b"this relay speaks aeschat protocol 2 (encrypted link); upgrade aeschat"


# -- keys -------------------------------------------------------------------------------------------------------------


def fingerprint_hash(public_key):
    return hashlib.sha256(FINGERPRINT_LABEL + bytes(public_key)).digest()


def key_id(public_key):
    """The 4-byte key id the preamble carries: the first 4 bytes of the fingerprint hash."""
    return fingerprint_hash(public_key)[:4]


def fingerprint(public_key):
    """`relay xxxx xxxx …` (8 groups of 4 hex digits), as the relay and the client print it."""
    digits = fingerprint_hash(public_key)[:16].hex()
    return "relay " + " ".join(digits[index:index + 4] for index in range(0, 32, 4))


def key_text(public_key):
    """The 52-character lower-case base32 text of a key, as the join line carries it."""
    return base64.b32encode(bytes(public_key)).decode().rstrip("=").lower()


def parse_key_text(text):
    """The 32 bytes of a key's base32 text (either case, padding optional)."""
    cleaned = text.strip().replace(" ", "").replace("-", "").upper()
    decoded = base64.b32decode(cleaned + "=" * (-len(cleaned) % 8))
    assert len(decoded) == 32, f"a relay key is 32 bytes, not {len(decoded)}"
    return decoded


class StaticKey:
    """An X25519 key pair for a Python relay (fake relays, the tampering proxy). Redrawn while its key id is the
    reserved 00000000, as the relay's key generation does."""

    def __init__(self, private=None):
        while True:
            key = X25519PrivateKey.from_private_bytes(private) if private else X25519PrivateKey.generate()
            self.private = key.private_bytes(Encoding.Raw, PrivateFormat.Raw, NoEncryption())
            self.public = key.public_key().public_bytes(Encoding.Raw, PublicFormat.Raw)
            if private or key_id(self.public) != KEY_REQUEST_ID:
                break

    @property
    def text(self):
        return key_text(self.public)

    @property
    def fingerprint(self):
        return fingerprint(self.public)

    @property
    def key_id(self):
        return key_id(self.public)


def preamble(relay_key_id, version=VERSION, magic=MAGIC):
    return magic + bytes([version]) + bytes(relay_key_id)


def prologue(preamble_bytes):
    return PROLOGUE_LABEL + preamble_bytes


# -- errors -----------------------------------------------------------------------------------------------------------


class LinkError(Exception):
    """The link failed: a record did not authenticate, a length was impossible, the handshake failed."""


class LinkRefused(LinkError):
    """The relay answered the preamble in clear instead of with message 2 (or closed, or sent something else).

    `kind` is "keys", "version", "busy", "v1-error", "closed" or "other"; `keys` holds the public keys of a keys
    answer; `version` the version byte of a version answer; `data` everything that arrived."""

    def __init__(self, kind, data=b"", keys=(), version=None):
        super().__init__(f"relay answered {kind}: {bytes(data[:64]).hex()}")
        self.kind = kind
        self.data = bytes(data)
        self.keys = list(keys)
        self.version = version


# -- reading exactly --------------------------------------------------------------------------------------------------


def read_exactly(sock, count, deadline=None):
    """Reads `count` bytes; fewer if the peer closes first."""
    data = bytearray()
    while len(data) < count:
        if deadline is not None:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise socket.timeout("timed out")
            sock.settimeout(remaining)
        try:
            chunk = sock.recv(count - len(data))
        except ConnectionResetError:
            chunk = b""
        if not chunk:
            break
        data += chunk
    return bytes(data)


def read_until_close(sock, limit=1 << 16, timeout=10):
    """Everything the peer sends until it closes (at most `limit` bytes)."""
    data = bytearray()
    deadline = time.monotonic() + timeout
    while len(data) < limit:
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            raise socket.timeout("the peer did not close")
        sock.settimeout(remaining)
        try:
            chunk = sock.recv(limit - len(data))
        except ConnectionResetError:
            break
        if not chunk:
            break
        data += chunk
    return bytes(data)


def parse_answer(data):
    """What a relay's cleartext answer (anything but message 2) says, as a LinkRefused."""
    if not data:
        return LinkRefused("closed", data)
    if data.startswith(MAGIC) and len(data) >= 9:
        version, kind = data[7], data[8]
        if kind == ANSWER_KEYS and len(data) >= 10:
            count = data[9]
            keys = [data[10 + 32 * index:42 + 32 * index] for index in range(count)]
            return LinkRefused("keys", data, keys=keys, version=version)
        if kind == ANSWER_VERSION:
            return LinkRefused("version", data, version=version)
        if kind == ANSWER_BUSY:
            return LinkRefused("busy", data, version=version)
    if len(data) >= 5 and data[:3] == b"\x00\x00\x00" and data[4] == 0x85:
        return LinkRefused("v1-error", data)
    return LinkRefused("other", data)


def v1_error(data):
    """(code, text) of a v1 error frame `len u32 ‖ 0x85 ‖ code u16 ‖ str16 text`."""
    (length,) = struct.unpack(">I", data[:4])
    assert data[4] == 0x85 and len(data) >= 4 + length, data
    body = data[5:4 + length]
    code, text_length = struct.unpack(">HH", body[:4])
    return code, body[4:4 + text_length].decode()


# -- the link ---------------------------------------------------------------------------------------------------------


class LinkSocket:
    """The plaintext stream of an established link, with the socket methods the tests use.

    Each direction counts its records and rekeys after every `rekey_interval`. `recv` returns the plaintext of the
    records that have arrived (it blocks until at least one whole record has, or the peer closes: then b"");
    `truncated` is how many bytes of an unfinished record were left when the peer closed. `sendall` cuts its data into
    records of at most `record_size` bytes; `send` seals at most one record and also works on a non-blocking socket
    (it returns how much plaintext it took, possibly 0 while an earlier record is still going out)."""

    def __init__(self, sock, noise, rekey_interval=REKEY_INTERVAL):
        self.sock = sock
        self.noise = noise
        self.rekey_interval = rekey_interval
        self.sent_records = 0
        self.received_records = 0
        self.incoming = bytearray()  # ciphertext not yet a whole record
        self.plaintext = bytearray()  # opened, not yet returned by recv
        self.outgoing = bytearray()  # sealed, not yet taken by the kernel (non-blocking send)
        self.truncated = 0
        self.closed_by_peer = False
        self.record_size = MAX_PLAINTEXT
        self.timeout = sock.gettimeout()

    # -- handshakes --

    @classmethod
    def begin(cls, port, relay_key, host="127.0.0.1", timeout=10, rcvbuf=None, sndbuf=None, key_id_bytes=None,
              version=VERSION, source=None, then=b""):
        """Connects (from address `source`, if given) and sends the preamble and message 1 (and `then`, in the same
        write: what an impatient client would send before message 2); `finish()` then reads message 2."""
        family = socket.AF_INET6 if ":" in host else socket.AF_INET
        sock = socket.socket(family, socket.SOCK_STREAM)
        if source is not None:
            sock.bind((source, 0))
        if rcvbuf is not None:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, rcvbuf)
        if sndbuf is not None:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, sndbuf)
        sock.settimeout(timeout)
        sock.connect((host, port))
        relay_public = relay_key.public if isinstance(relay_key, StaticKey) else (
            parse_key_text(relay_key) if isinstance(relay_key, str) else bytes(relay_key))
        wire_preamble = preamble(key_id_bytes if key_id_bytes is not None else key_id(relay_public), version)
        noise = NoiseConnection.from_name(PROTOCOL_NAME)
        noise.set_as_initiator()
        noise.set_keypair_from_public_bytes(Keypair.REMOTE_STATIC, relay_public)
        noise.set_prologue(prologue(wire_preamble))
        noise.start_handshake()
        message1 = bytes(noise.write_message(b""))
        assert len(message1) == HANDSHAKE_MESSAGE_LENGTH
        sock.sendall(wire_preamble + HANDSHAKE_PREFIX + message1 + then)
        link = cls(sock, noise)
        link.timeout = timeout
        return link

    def finish(self, timeout=None):
        """Reads message 2 (or the relay's cleartext answer: raises LinkRefused) and completes the handshake."""
        deadline = time.monotonic() + (timeout if timeout is not None else self.timeout)
        first = read_exactly(self.sock, 2, deadline)
        if first != HANDSHAKE_PREFIX:
            rest = b""
            if first:
                try:
                    rest = read_until_close(self.sock, timeout=max(0.1, deadline - time.monotonic()))
                except socket.timeout:
                    pass
            raise parse_answer(first + rest)
        message2 = read_exactly(self.sock, HANDSHAKE_MESSAGE_LENGTH, deadline)
        if len(message2) != HANDSHAKE_MESSAGE_LENGTH:
            raise LinkRefused("closed", first + message2)
        try:
            payload = self.noise.read_message(message2)
        except Exception as error:  # noiseprotocol raises several kinds for a failed tag
            raise LinkError(f"message 2 did not authenticate: {error}") from error
        if payload:
            raise LinkError(f"message 2 carries a payload of {len(payload)} bytes")
        assert self.noise.handshake_finished
        self.sock.settimeout(self.timeout)
        return self

    @classmethod
    def connect(cls, port, relay_key, host="127.0.0.1", timeout=10, **options):
        """A client link to the relay at `port` whose public key is `relay_key` (bytes, base32 text or StaticKey)."""
        link = cls.begin(port, relay_key, host=host, timeout=timeout, **options)
        try:
            return link.finish()
        except BaseException:
            link.sock.close()
            raise

    @classmethod
    def accept(cls, sock, static_key, timeout=10, check_preamble=True):
        """The relay side of a handshake on an accepted socket: reads the preamble and message 1, sends message 2.

        Returns (link, preamble bytes). A key request (key id 00000000) is answered with this key and raises
        LinkRefused("keys")."""
        deadline = time.monotonic() + timeout
        wire_preamble = read_exactly(sock, 12, deadline)
        if len(wire_preamble) < 12:
            raise LinkRefused("closed", wire_preamble)
        if check_preamble:
            if wire_preamble[:7] != MAGIC:
                raise LinkError(f"not an aeschat preamble: {wire_preamble.hex()}")
            if wire_preamble[7] != VERSION:
                raise LinkError(f"preamble of version {wire_preamble[7]}")
            if wire_preamble[8:] == KEY_REQUEST_ID:
                sock.sendall(MAGIC + bytes([VERSION, ANSWER_KEYS, 1]) + static_key.public)
                raise LinkRefused("keys", wire_preamble)
            if wire_preamble[8:] != static_key.key_id:
                raise LinkError(f"preamble for key id {wire_preamble[8:].hex()}, not {static_key.key_id.hex()}")
        first = read_exactly(sock, 2 + HANDSHAKE_MESSAGE_LENGTH, deadline)
        if first[:2] != HANDSHAKE_PREFIX or len(first) != 2 + HANDSHAKE_MESSAGE_LENGTH:
            raise LinkError(f"not a message 1: {first.hex()}")
        noise = NoiseConnection.from_name(PROTOCOL_NAME)
        noise.set_as_responder()
        noise.set_keypair_from_private_bytes(Keypair.STATIC, static_key.private)
        noise.set_prologue(prologue(wire_preamble))
        noise.start_handshake()
        try:
            payload = noise.read_message(first[2:])
        except Exception as error:
            raise LinkError(f"message 1 did not authenticate: {error}") from error
        if payload:
            raise LinkError(f"message 1 carries a payload of {len(payload)} bytes")
        message2 = bytes(noise.write_message(b""))
        sock.sendall(HANDSHAKE_PREFIX + message2)
        assert noise.handshake_finished
        link = cls(sock, noise)
        link.timeout = timeout
        sock.settimeout(timeout)
        return link, wire_preamble

    # -- records --

    def seal(self, plaintext):
        """One record (length prefix included) of at most 65,519 bytes of plaintext."""
        assert len(plaintext) <= MAX_PLAINTEXT
        record = self.noise.encrypt(bytes(plaintext))
        self.sent_records += 1
        if self.sent_records % self.rekey_interval == 0:
            self.noise.rekey_outbound_cipher()
        return struct.pack(">H", len(record)) + record

    def seal_all(self, data):
        size = self.record_size
        return b"".join(self.seal(data[offset:offset + size]) for offset in range(0, len(data), size))

    def _open_records(self):
        """Opens every whole record in `incoming` into `plaintext`."""
        offset = 0
        view = self.incoming
        while len(view) - offset >= 2:
            (length,) = struct.unpack_from(">H", view, offset)
            if length < TAG_LENGTH:
                raise LinkError(f"record length {length} is below the tag's 16 bytes")
            if len(view) - offset - 2 < length:
                break
            record = bytes(view[offset + 2:offset + 2 + length])
            try:
                self.plaintext += self.noise.decrypt(record)
            except Exception as error:
                raise LinkError(f"record {self.received_records} did not authenticate: {error}") from error
            self.received_records += 1
            if self.received_records % self.rekey_interval == 0:
                self.noise.rekey_inbound_cipher()
            offset += 2 + length
        del self.incoming[:offset]

    # -- socket methods --

    def sendall(self, data):
        self._flush_outgoing_blocking()
        if data:
            self.sock.sendall(self.seal_all(memoryview(data)))

    def send_record(self, plaintext):
        """Sends exactly one record holding `plaintext` (may be empty)."""
        self.sock.sendall(self.seal(plaintext))

    def send(self, data):
        if self.outgoing:
            self._flush_outgoing()
            if self.outgoing:
                return 0
        if not data:
            return 0
        taken = min(len(data), self.record_size)
        self.outgoing += self.seal(bytes(data[:taken]))
        self._flush_outgoing()
        return taken

    def _flush_outgoing(self):
        try:
            sent = self.sock.send(self.outgoing)
        except BlockingIOError:
            return
        del self.outgoing[:sent]

    def _flush_outgoing_blocking(self):
        if self.outgoing:
            blocking = self.sock.gettimeout()
            self.sock.settimeout(None if blocking == 0 else blocking)
            self.sock.sendall(self.outgoing)
            self.outgoing.clear()
            self.sock.settimeout(blocking)

    @property
    def all_sent(self):
        return not self.outgoing

    def recv(self, count=1 << 20):
        while not self.plaintext:
            if self.closed_by_peer:
                return b""
            try:
                chunk = self.sock.recv(1 << 20)
            except ConnectionResetError:
                chunk = b""
            if not chunk:
                self.closed_by_peer = True
                self.truncated = len(self.incoming)
                return b""
            self.incoming += chunk
            self._open_records()
        data = bytes(self.plaintext[:count])
        del self.plaintext[:count]
        return data

    def settimeout(self, timeout):
        self.timeout = timeout
        self.sock.settimeout(timeout)

    def gettimeout(self):
        return self.sock.gettimeout()

    def setblocking(self, flag):
        self.sock.setblocking(flag)

    def setsockopt(self, *arguments):
        self.sock.setsockopt(*arguments)

    def fileno(self):
        return self.sock.fileno()

    def shutdown(self, how):
        self.sock.shutdown(how)

    def close(self):
        self.sock.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()
