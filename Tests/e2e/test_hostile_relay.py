"""A hostile relay cannot hurt a client: a fake relay (a Python socket server) sends garbage, huge length prefixes,
impossible welcomes, floods of joined frames, names full of escapes, invalid UTF-8 and unknown frame types. Each gives
one clear line at the client, which keeps its memory under 64 MiB and either exits 65 (bad data before it ever
registered) or reconnects.

The fake relay holds a key of its own, which the client pins: it completes the encrypted link (PyPI
`noiseprotocol`, aeschat_link.py) and sends its garbage inside it, where only a relay the client trusts can."""

import json
import random
import os
import socket
import struct
import subprocess
import threading
import time

import pytest

from aeschat_link import LinkError, LinkSocket, StaticKey
from conftest import PROTOCOL_VERSION, binary_path

MEMORY_LIMIT_KIB = 64 * 1024


def frame(kind, body=b""):
    return struct.pack(">IB", len(body) + 1, kind) + body


def str8(text):
    return bytes([len(text)]) + text


def welcome(name=b"bob", room=b"lobby", members=()):
    body = struct.pack(">H", PROTOCOL_VERSION) + str8(name) + str8(room) + struct.pack(">H", len(members))
    for member in members:
        body += str8(member) + struct.pack(">H", 0)
    return frame(0x81, body)


class FakeRelay:
    """Accepts one connection at a time on 127.0.0.1, completes the link's handshake as a relay with its own key
    (`key`), reads the hello, then runs `script(link)`. `hellos` holds the first plaintext of each connection."""

    def __init__(self, script):
        self.server = socket.create_server(("127.0.0.1", 0))
        self.port = self.server.getsockname()[1]
        self.key = StaticKey()
        self.script = script
        self.hellos = []
        self.connections = 0
        self.thread = threading.Thread(target=self.serve, daemon=True)
        self.thread.start()

    def serve(self):
        self.server.settimeout(30)
        try:
            while True:
                sock, _ = self.server.accept()
                self.connections += 1
                try:
                    link, _ = LinkSocket.accept(sock, self.key, timeout=10)
                    self.hellos.append(link.recv(65536))
                    self.script(link)
                except (OSError, LinkError):
                    pass
                finally:
                    sock.close()
        except OSError:
            pass

    def close(self):
        self.server.close()


def start_client(relay, tmp_path, name="bob"):
    key = tmp_path / "room.key"
    if not key.exists():
        subprocess.run([binary_path(), "keygen", "--out", str(key)], check=True, capture_output=True, timeout=30)
    environment = dict(os.environ, XDG_CONFIG_HOME=str(tmp_path / "config"))
    return subprocess.Popen(
        [binary_path(), "join", "--name", name, "--port", str(relay.port), "--json", "--key", str(key), "--inbox",
         str(tmp_path / "inbox"), "--relay-key", relay.key.text],
        stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=environment)


def peak_rss_kib(pid):
    with open(f"/proc/{pid}/status") as status:
        for line in status:
            if line.startswith("VmHWM:"):
                return int(line.split()[1])
    return 0


def run_until_exit(process, timeout=20):
    peak = 0
    deadline = time.monotonic() + timeout
    while process.poll() is None and time.monotonic() < deadline:
        try:
            peak = max(peak, peak_rss_kib(process.pid))
        except OSError:
            pass
        time.sleep(0.02)
    if process.poll() is None:
        process.kill()
        raise AssertionError("client did not exit")
    process.stdin.close()
    process.stdin = None
    out, err = process.communicate(timeout=10)
    return process.returncode, out.decode(errors="replace"), err.decode(errors="replace"), peak


BEFORE_REGISTRATION = {
    "random bytes": b"\x00\x00\x00\x10" + random.Random(7).randbytes(4092),
    "4 GiB length prefix": b"\xff\xff\xff\xff\x81" + b"\x00" * 100,
    "welcome announcing 65,535 members": frame(0x81, struct.pack(">H", 1) + str8(b"bob") + str8(b"lobby")
                                               + b"\xff\xff" + b"\x00" * 16),
    "invalid UTF-8 name": welcome(name=b"b\xff\xfe"),
    "unknown frame type": frame(0x9f, b"hello"),
    "zero length": b"\x00\x00\x00\x00",
    "escape-laden member name": welcome(members=[b"\x1b[2J\x1b]0;pwned\x07" * 10]),
}


@pytest.mark.parametrize("case", list(BEFORE_REGISTRATION))
def test_bad_data_before_registration_gives_one_clear_line_and_exit_65(case, tmp_path):
    payload = BEFORE_REGISTRATION[case]

    def script(sock):
        sock.sendall(payload)
        time.sleep(2)

    relay = FakeRelay(script)
    try:
        process = start_client(relay, tmp_path)
        code, out, err, peak = run_until_exit(process)
        errors = [json.loads(line) for line in out.splitlines() if '"error"' in line]
        assert code == 65, (code, out, err)
        assert len(errors) == 1 and "invalid data" in errors[0]["message"], out
        assert "\x1b" not in out and "\x1b" not in err
        assert peak < MEMORY_LIMIT_KIB, f"peak RSS {peak} KiB"
    finally:
        relay.close()


def test_a_flood_of_joined_frames_is_capped_and_the_client_reconnects(tmp_path):
    def script(sock):
        if relay.connections > 1:
            sock.sendall(welcome())
            time.sleep(3)
            return
        sock.sendall(welcome())
        batch = b"".join(frame(0x82, str8(b"m%07d" % index) + b"\x00\x00") for index in range(1_000_000))
        try:
            sock.sendall(batch)
        except OSError:
            pass

    relay = FakeRelay(script)
    try:
        process = start_client(relay, tmp_path)
        peak = 0
        seen = []
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            line = process.stdout.readline().decode()
            if not line:
                break
            event = json.loads(line)
            if event.get("event") != "joined":
                seen.append(event)
            peak = max(peak, peak_rss_kib(process.pid))
            if event.get("event") == "reconnected":
                break
        errors = [event for event in seen if event.get("event") == "error"]
        assert errors and "more than 16384 members" in errors[0]["message"], seen
        assert any(event.get("event") == "reconnected" for event in seen), seen
        assert peak < MEMORY_LIMIT_KIB, f"peak RSS {peak} KiB"
        process.stdin.close()
        process.wait(timeout=15)
    finally:
        if process.poll() is None:
            process.kill()
        relay.close()


def test_a_10_kb_error_message_full_of_escapes_reaches_the_client_as_one_escaped_line(tmp_path):
    message = b"\x1b[31m\x1b]0;x\x07\r\n" * 1000

    def script(sock):
        sock.sendall(welcome() + frame(0x85, struct.pack(">HH", 1, len(message)) + message))
        time.sleep(2)

    relay = FakeRelay(script)
    try:
        process = start_client(relay, tmp_path)
        deadline = time.monotonic() + 20
        raw = b""
        while time.monotonic() < deadline and process.poll() is None:
            raw += process.stdout.read1(65536) if hasattr(process.stdout, "read1") else b""
            if b"reconnecting" in raw:
                break
        process.kill()
        process.wait()
        assert b"\x1b" not in raw
        assert b"reconnecting" in raw or b"error" in raw
    finally:
        relay.close()
