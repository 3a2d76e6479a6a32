"""The relay's per-member output cap (`serve --max-pending-output`), driven over encrypted links on loopback."""

import struct
import subprocess
import threading
import time

from conftest import PROTOCOL_VERSION, Relay, assert_relay_back_to, binary_path, free_port, relay_usage


def frame(kind, body=b""):
    return struct.pack(">IB", len(body) + 1, kind) + body


def hello(name, room="lobby"):
    return frame(0x01, struct.pack(">H", PROTOCOL_VERSION) + bytes([len(name)]) + name.encode() + bytes([len(room)])
                 + room.encode() + b"\x00\x00")


class Reader:
    """Splits a socket's (or a link's plaintext) stream into (type, body) frames."""

    def __init__(self, sock):
        self.sock = sock
        self.buffer = b""

    def next(self, timeout=10):
        self.sock.settimeout(timeout)
        while True:
            if len(self.buffer) >= 4:
                (length,) = struct.unpack(">I", self.buffer[:4])
                if len(self.buffer) >= 4 + length:
                    kind, body = self.buffer[4], self.buffer[5:4 + length]
                    self.buffer = self.buffer[4 + length:]
                    return kind, body
            chunk = self.sock.recv(1 << 20)
            if not chunk:
                return None
            self.buffer += chunk


def test_serve_refuses_a_cap_below_the_frame_limit():
    result = subprocess.run([binary_path(), "serve", "--max-pending-output", "1M"], capture_output=True, text=True,
                            timeout=30)
    assert result.returncode == 64
    assert "invalid byte count '1M'" in result.stderr


def test_member_that_stops_reading_is_dropped_and_the_others_get_everything():
    port = free_port()
    relay = Relay(port, extra=("--max-pending-output", "17M"))
    try:
        baseline = relay_usage(relay)
        sloth = relay.link(rcvbuf=4096)
        sloth.sendall(hello("sloth"))
        assert Reader(sloth).next()[0] == 0x81
        bob = relay.link()
        bob.sendall(hello("bob"))
        alice = relay.link()
        alice.sendall(hello("alice"))
        bob_reader = Reader(bob)
        seen = {"deliveries": 0, "left": []}
        done = threading.Event()

        def drain_bob():
            while not done.is_set():
                item = bob_reader.next(timeout=30)
                if item is None:
                    return
                kind, body = item
                if kind == 0x84:
                    assert body[1 + body[0] + 1:][:4] == struct.pack(">I", seen["deliveries"])
                    seen["deliveries"] += 1
                elif kind == 0x83:
                    seen["left"].append(body[1:].decode())
                if seen["deliveries"] == messages and seen["left"]:
                    done.set()

        messages = 600  # 600 × 60,000 bytes = 36 MB: beyond the sloth's kernel buffers plus the 17 MiB cap
        thread = threading.Thread(target=drain_bob, daemon=True)
        thread.start()
        filler = b"x" * (60_000 - 4)
        for sequence in range(messages):
            alice.sendall(frame(0x02, struct.pack(">I", sequence) + filler))
        assert done.wait(timeout=60), seen
        assert seen["left"] == ["sloth"]
        # The sloth's stream: whole deliveries in order, then too-slow (code 11), then the end.
        reader = Reader(sloth)
        last = None
        count = 0
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            item = reader.next(timeout=30)
            if item is None:
                break
            last = item
            if item[0] == 0x84:
                assert item[1][1 + item[1][0] + 1:][:4] == struct.pack(">I", count)
                count += 1
        # The too-slow cut-off ends the stream on a whole record (every record authenticated) and a whole frame.
        assert reader.buffer == b"" and sloth.truncated == 0
        assert last is not None and last[0] == 0x85
        assert struct.unpack(">H", last[1][:2])[0] == 11
        assert count < messages
        relay.log.wait_for(lambda line: "dropping sloth" in line and "too slow" in line, what="drop line")
        for sock in (sloth, alice, bob):
            sock.close()
        assert_relay_back_to(relay, baseline)
    finally:
        relay.stop()
