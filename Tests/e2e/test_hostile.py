"""Hostile clients against the real relay: the limits of `serve` (handshake timeout, frame size, connection caps,
message rate, idle pings), malformed and random frames, churn and descriptor exhaustion. Each test checks that the
relay keeps serving and that its descriptors and memory come back."""

import os
import random
import resource
import socket
import struct
import subprocess
import time

from conftest import Relay, binary_path, descriptors, free_port, rss_kib
from test_relay_cap import Reader, frame, hello

ERROR = 0x85
PING = 0x05
PUBLISH = 0x02


def cpu_seconds(pid):
    with open(f"/proc/{pid}/stat") as stat:
        fields = stat.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def connect(port):
    sock = socket.create_connection(("127.0.0.1", port), timeout=10)
    return sock


def error_code(reader, timeout=10):
    """Reads frames until an error frame; returns its code (None at end of stream)."""
    while True:
        got = reader.next(timeout)
        if got is None:
            return None
        kind, body = got
        if kind == ERROR:
            return struct.unpack(">H", body[:2])[0]


def closes(sock, timeout=10):
    """True when the peer closes `sock` within `timeout` (anything still arriving is discarded)."""
    sock.settimeout(timeout)
    deadline = time.monotonic() + timeout
    try:
        while time.monotonic() < deadline:
            if not sock.recv(65536):
                return True
    except (ConnectionResetError, BrokenPipeError):
        return True
    except socket.timeout:
        return False
    return False


def member(port, name):
    sock = connect(port)
    sock.sendall(hello(name))
    reader = Reader(sock)
    kind, _ = reader.next()
    assert kind == 0x81, f"expected welcome, got {kind:#x}"
    return sock, reader


def settle(pid, baseline, slack=0, timeout=10):
    deadline = time.monotonic() + timeout
    while descriptors(pid) > baseline + slack and time.monotonic() < deadline:
        time.sleep(0.05)
    return descriptors(pid)


def assert_back_to(pid, baseline, rss, slack_kib=8 * 1024):
    """The relay's descriptors return to `baseline` and its memory stays within `slack_kib` of `rss`."""
    assert settle(pid, baseline) == baseline
    assert rss_kib(pid) < rss + slack_kib, f"RSS grew from {rss} KiB to {rss_kib(pid)} KiB"


def chat_works(port, a="alice", b="bob"):
    alice, _ = member(port, a)
    bob, bob_reader = member(port, b)
    alice.sendall(frame(PUBLISH, b"ping"))
    while True:
        kind, body = bob_reader.next()
        if kind == 0x84:
            assert body.endswith(b"ping")
            break
    alice.close()
    bob.close()


def test_a_connection_that_never_says_hello_is_closed_after_the_handshake_timeout():
    relay = Relay(free_port(), ["--handshake-timeout", "1"])
    try:
        pid = relay.process.pid
        baseline, rss = descriptors(pid), rss_kib(pid)
        silent = connect(relay.port)
        started = time.monotonic()
        assert error_code(Reader(silent), timeout=5) == 12
        assert closes(silent, timeout=5)
        assert 0.8 <= time.monotonic() - started < 4
        silent.close()
        assert_back_to(pid, baseline, rss)
        relay.log.wait_for(lambda line: "no hello within 1 seconds" in line, timeout=5, what="refusal log")
    finally:
        relay.stop()


def test_a_4_gib_length_prefix_and_a_frame_cut_in_the_middle_are_refused_without_buffering():
    relay = Relay(free_port(), ["--max-frame-size", "64K"])
    try:
        pid = relay.process.pid
        baseline = descriptors(pid)
        rss = rss_kib(pid)
        huge = connect(relay.port)
        huge.sendall(b"\xff\xff\xff\xff\x02" + b"x" * 1000)
        assert error_code(Reader(huge)) == 8
        assert closes(huge)
        huge.close()
        over = connect(relay.port)
        over.sendall(hello("over") + struct.pack(">IB", 65 * 1024 + 1, PUBLISH))
        reader = Reader(over)
        assert error_code(reader) == 8
        over.close()
        cut = connect(relay.port)
        cut.sendall(struct.pack(">IB", 1000, PUBLISH) + b"half")
        cut.close()
        assert_back_to(pid, baseline, rss)
        chat_works(relay.port)
    finally:
        relay.stop()


def test_connections_beyond_the_caps_are_refused_and_accepted_again_once_others_close():
    relay = Relay(free_port(), ["--max-connections", "6", "--max-connections-per-address", "4"])
    try:
        pid = relay.process.pid
        baseline, rss = descriptors(pid), rss_kib(pid)
        held = [connect(relay.port) for _ in range(4)]
        extra = connect(relay.port)
        assert error_code(Reader(extra)) == 13
        assert closes(extra)
        extra.close()
        relay.log.wait_for(lambda line: "too many connections from 127.0.0.1" in line, timeout=5, what="log")
        held.pop().close()
        time.sleep(0.2)
        again = connect(relay.port)
        again.sendall(hello("again"))
        kind, _ = Reader(again).next()
        assert kind == 0x81
        for sock in held + [again]:
            sock.close()
        assert_back_to(pid, baseline, rss)
    finally:
        relay.stop()


def test_a_member_over_the_message_rate_is_disconnected_with_flooding_and_others_chat_on():
    relay = Relay(free_port(), ["--message-rate", "5", "--message-burst", "10"])
    try:
        pid = relay.process.pid
        baseline, rss = descriptors(pid), rss_kib(pid)
        flooder, reader = member(relay.port, "flooder")
        for index in range(50):
            try:
                flooder.sendall(frame(PUBLISH, b"spam %d" % index))
            except (BrokenPipeError, ConnectionResetError):
                break
        assert error_code(reader) == 14
        flooder.close()
        relay.log.wait_for(lambda line: "flooding" in line, timeout=5, what="flooding log")
        chat_works(relay.port)
        assert_back_to(pid, baseline, rss)
    finally:
        relay.stop()


def test_an_idle_member_is_pinged_and_closed_when_it_does_not_answer_but_kept_when_it_does():
    relay = Relay(free_port(), ["--idle-timeout", "1"])
    try:
        pid = relay.process.pid
        baseline, rss = descriptors(pid), rss_kib(pid)
        silent, silent_reader = member(relay.port, "silent")
        polite, polite_reader = member(relay.port, "polite")
        deadline = time.monotonic() + 3
        while time.monotonic() < deadline:
            kind, body = polite_reader.next(5)
            if kind == PING:
                polite.sendall(frame(0x06, body))
                break
        else:
            raise AssertionError("no ping")
        codes = []
        while True:
            got = silent_reader.next(6)
            if got is None:
                break
            if got[0] == ERROR:
                codes.append(struct.unpack(">H", got[1][:2])[0])
        assert codes == [15]
        silent.close()
        polite.close()
        assert_back_to(pid, baseline, rss)
    finally:
        relay.stop()


def test_ten_thousand_random_and_mutated_frames_while_two_members_chat():
    relay = Relay(free_port(), ["--handshake-timeout", "2"])
    try:
        pid = relay.process.pid
        alice, _ = member(relay.port, "alice")
        bob, bob_reader = member(relay.port, "bob")
        baseline, rss = descriptors(pid), rss_kib(pid)
        generator = random.Random(7)
        valid = [hello("fuzz"), frame(PUBLISH, b"x"), frame(0x03, b"\x03bob" + b"y"), frame(0x05, b"\x00" * 8),
                 frame(0x04, b"\x01\x03bob" + b"z"), frame(0x07)]
        sent = 0
        chat = 0
        while sent < 10_000:
            sock = connect(relay.port)
            batch = b""
            for _ in range(generator.randint(1, 40)):
                choice = generator.random()
                if choice < 0.4:
                    body = bytes(generator.getrandbits(8) for _ in range(generator.randint(0, 64)))
                    item = struct.pack(">IB", len(body) + 1, generator.randint(0, 255)) + body
                elif choice < 0.8:
                    item = bytearray(generator.choice(valid))
                    for _ in range(generator.randint(1, 3)):
                        item[generator.randrange(len(item))] = generator.getrandbits(8)
                    item = bytes(item)
                else:
                    item = bytes(generator.getrandbits(8) for _ in range(generator.randint(1, 32)))
                batch += item
                sent += 1
            try:
                sock.sendall(batch)
            except (BrokenPipeError, ConnectionResetError):
                pass
            sock.close()
            if sent // 500 > chat:
                chat = sent // 500
                alice.sendall(frame(PUBLISH, b"message %d" % chat))
                while True:
                    kind, body = bob_reader.next()
                    if kind == 0x84 and body.startswith(b"\x05alice"):
                        assert body.endswith(b"message %d" % chat)
                        break
        assert relay.process.poll() is None
        assert settle(pid, baseline, timeout=15) == baseline
        assert rss_kib(pid) < rss + 8 * 1024, f"RSS grew from {rss} KiB to {rss_kib(pid)} KiB"
        alice.close()
        bob.close()
    finally:
        relay.stop()


def test_a_thousand_connect_disconnect_cycles_leave_descriptors_and_memory_where_they_were():
    relay = Relay(free_port())
    try:
        pid = relay.process.pid
        for index in range(50):
            sock, _ = member(relay.port, f"warm{index}")
            sock.close()
        time.sleep(0.5)
        baseline, rss = descriptors(pid), rss_kib(pid)
        for index in range(1000):
            sock = connect(relay.port)
            if index % 2:
                sock.sendall(hello(f"cycle{index}"))
                Reader(sock).next()
            sock.close()
        assert settle(pid, baseline) == baseline
        time.sleep(2.5)
        assert rss_kib(pid) < rss + 4 * 1024, f"RSS grew from {rss} KiB to {rss_kib(pid)} KiB"
    finally:
        relay.stop()


def test_descriptor_exhaustion_neither_spins_nor_kills_the_relay_and_it_serves_again_after():
    port = free_port()
    process = subprocess.Popen(
        [binary_path(), "serve", "--port", str(port)], stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL, preexec_fn=lambda: resource.setrlimit(resource.RLIMIT_NOFILE, (128, 128)))
    try:
        deadline = time.monotonic() + 10
        while True:
            try:
                socket.create_connection(("127.0.0.1", port), timeout=1).close()
                break
            except OSError:
                assert time.monotonic() < deadline, "relay did not listen"
                time.sleep(0.05)
        time.sleep(0.2)
        baseline, rss = descriptors(process.pid), rss_kib(process.pid)
        held = []
        for _ in range(200):
            try:
                held.append(socket.create_connection(("127.0.0.1", port), timeout=2))
            except OSError:
                pass
        # Counted once the relay is listening; the 200 held connections must all be released afterwards.
        before = cpu_seconds(process.pid)
        time.sleep(2)
        spent = cpu_seconds(process.pid) - before
        assert spent < 0.5, f"relay used {spent:.2f} s of CPU in 2 s while out of descriptors"
        assert process.poll() is None
        for sock in held:
            sock.close()
        time.sleep(0.5)
        chat_works(port)
        assert settle(process.pid, baseline) == baseline
        assert rss_kib(process.pid) < rss + 8 * 1024
    finally:
        process.terminate()
        process.wait(timeout=10)
