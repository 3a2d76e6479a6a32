"""Hostile clients against the real relay: the limits of `serve` (handshake timeout, frame size, connection caps,
message rate, idle pings), malformed and random frames, churn and descriptor exhaustion. Each test checks that the
relay keeps serving and that its descriptors and memory come back.

Every hostile frame travels inside the encrypted link (aeschat_link.LinkSocket), as a real attacker's would: the
relay must hold its limits after paying for a handshake. Garbage in place of the link itself is tested too."""

import os
import random
import resource
import select
import socket
import statistics
import struct
import subprocess
import sys
import time

from aeschat_link import LinkRefused, LinkSocket
from conftest import Relay, descriptors, free_port, link, rss_kib
from test_relay_cap import Reader, frame, hello

E2E = os.path.dirname(os.path.abspath(__file__))

ERROR = 0x85
PING = 0x05
PUBLISH = 0x02


def cpu_seconds(pid):
    with open(f"/proc/{pid}/stat") as stat:
        fields = stat.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def connect(port, **options):
    """An encrypted link to the relay at `port`, handshake done."""
    return link(port, **options)


def connect_raw(port):
    """A plain TCP connection to the relay at `port`: no preamble, no handshake."""
    return socket.create_connection(("127.0.0.1", port), timeout=10)


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


def member(port, name, room="lobby"):
    sock = connect(port)
    sock.sendall(hello(name, room))
    reader = Reader(sock)
    kind, _ = reader.next()
    assert kind == 0x81, f"expected welcome, got {kind:#x}"
    return sock, reader


def settle(pid, baseline, slack=0, timeout=10):
    deadline = time.monotonic() + timeout
    while descriptors(pid) > baseline + slack and time.monotonic() < deadline:
        time.sleep(0.05)
    return descriptors(pid)


def assert_back_to(pid, baseline, rss, slack_kib=8 * 1024, timeout=10):
    """The relay's descriptors return to `baseline` and its memory to within `slack_kib` of `rss` (the relay gives
    freed memory back every two seconds after members came or went)."""
    assert settle(pid, baseline) == baseline
    deadline = time.monotonic() + timeout
    while rss_kib(pid) >= rss + slack_kib and time.monotonic() < deadline:
        time.sleep(0.1)
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
        # The handshake done, no hello: error 12 inside the link, then the end.
        silent = connect(relay.port)
        started = time.monotonic()
        assert error_code(Reader(silent), timeout=5) == 12
        assert closes(silent, timeout=5)
        assert 0.8 <= time.monotonic() - started < 4
        silent.close()
        relay.log.wait_for(lambda line: "no hello within 1 seconds" in line, timeout=5, what="refusal log")
        # Not even a preamble, or a preamble without message 1: closed within the same timeout.
        for opening in (b"", b"AESCHAT\x02" + relay.key_id):
            mute = connect_raw(relay.port)
            mute.sendall(opening)
            started = time.monotonic()
            assert closes(mute, timeout=5)
            assert 0.8 <= time.monotonic() - started < 4
            mute.close()
        assert_back_to(pid, baseline, rss)
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
        # Before the link exists the relay cannot send an error frame: it answers "busy" in clear, and closes.
        assert refusal(relay.port) == "busy"
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


def refusal(port):
    """How the relay refuses a connection: the kind of its cleartext answer in place of message 2 ("busy"), or the
    code of the error frame inside the link. Either way the relay closes the connection."""
    try:
        sock = connect(port)
    except LinkRefused as refused:
        return refused.kind
    code = error_code(Reader(sock))
    assert closes(sock)
    sock.close()
    return code


def mutated(data, generator):
    data = bytearray(data)
    for _ in range(generator.randint(1, 3)):
        data[generator.randrange(len(data))] = generator.getrandbits(8)
    return bytes(data)


def test_ten_thousand_random_and_mutated_frames_while_two_members_chat():
    # Inside the link: random and mutated frames. In its place (one connection in five): random bytes, v1 frames, a
    # mutated preamble and message 1, records that do not authenticate. Handshakes are not rate-limited here.
    relay = Relay(free_port(), ["--handshake-timeout", "2", "--handshake-rate", "0"])
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
            if generator.random() < 0.2:
                choice = generator.random()
                if choice < 0.2:
                    # A finished handshake, then records that were never sealed with its keys.
                    sock = connect(relay.port).sock
                    garbage = b"".join(struct.pack(">H", size) + bytes(generator.getrandbits(8) for _ in range(size))
                                       for size in [generator.randint(0, 80) for _ in range(generator.randint(1, 4))])
                else:
                    sock = connect_raw(relay.port)
                    if choice < 0.45:
                        garbage = mutated(b"AESCHAT\x02" + relay.key_id + b"\x00\x30" + bytes(48), generator)
                    elif choice < 0.7:
                        garbage = mutated(generator.choice(valid), generator)
                    else:
                        garbage = bytes(generator.getrandbits(8) for _ in range(generator.randint(1, 80)))
                try:
                    sock.sendall(garbage)
                except (BrokenPipeError, ConnectionResetError):
                    pass
                sock.close()
                sent += 1
                continue
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
    # Handshakes are not rate-limited here: this is about what a connection leaves behind at each stage.
    relay = Relay(free_port(), ["--handshake-rate", "0"])
    try:
        pid = relay.process.pid
        for index in range(50):
            sock, _ = member(relay.port, f"warm{index}")
            sock.close()
        time.sleep(0.5)
        baseline, rss = descriptors(pid), rss_kib(pid)
        for index in range(1000):
            stage = index % 4
            if stage == 0:  # closed before the preamble
                sock = connect_raw(relay.port)
            elif stage == 1:  # closed after message 1, before or while the relay answers
                sock = LinkSocket.begin(relay.port, relay.key)
            else:  # closed after the handshake, with or without a hello
                sock = connect(relay.port)
                if stage == 3:
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
    relay = Relay(port, preexec_fn=lambda: resource.setrlimit(resource.RLIMIT_NOFILE, (128, 128)))
    process = relay.process
    try:
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
        relay.stop()


MULTICAST = 0x07
DIRECT = 0x03
DELIVER = 0x84


def multicast(names, payload):
    body = bytes([len(names)]) + b"".join(bytes([len(name)]) + name.encode() for name in names)
    return frame(MULTICAST, body + payload)


def direct(name, payload):
    return frame(DIRECT, bytes([len(name)]) + name.encode() + payload)


def still_chatting(port, reader, sender_name="carol"):
    """A member that joins now publishes; `reader`'s member receives it (its connection is whole)."""
    sender, _ = member(port, sender_name)
    sender.sendall(frame(PUBLISH, b"are you still here?"))
    while True:
        got = reader.next(10)
        assert got is not None, "the member's connection ended"
        kind, body = got
        assert kind != ERROR, f"the member got error {struct.unpack('>H', body[:2])[0]}"
        if kind == DELIVER and body.endswith(b"are you still here?"):
            break
    sender.close()


def test_a_multicast_naming_one_member_255_times_refuses_the_sender_and_the_member_stays():
    relay = Relay(free_port())
    try:
        pid = relay.process.pid
        baseline, rss = descriptors(pid), rss_kib(pid)
        bob, bob_reader = member(relay.port, "bob")
        attacker, attacker_reader = member(relay.port, "mallory")
        # 255 copies of 1 MiB would be 255 MiB queued for bob, four times the relay's cap of 64 MiB.
        attacker.sendall(multicast(["bob"] * 255, b"x" * (1 << 20)))
        assert error_code(attacker_reader) == 1
        assert closes(attacker)
        attacker.close()
        relay.log.wait_for(lambda line: "'bob' more than once" in line, timeout=5, what="refusal log")
        still_chatting(relay.port, bob_reader)
        bob.close()
        assert_back_to(pid, baseline, rss)
    finally:
        relay.stop()


def test_direct_frames_flooding_a_member_that_stopped_reading_refuse_the_sender_not_the_member():
    relay = Relay(free_port())
    try:
        pid = relay.process.pid
        baseline, rss = descriptors(pid), rss_kib(pid)
        bob = connect(relay.port, rcvbuf=4096)
        bob.sendall(hello("bob"))
        bob_reader = Reader(bob)
        assert bob_reader.next()[0] == 0x81
        attacker, attacker_reader = member(relay.port, "mallory")
        # bob reads nothing while 100 MiB of direct frames are sent to him: beyond the cap of 64 MiB
        # that would drop him, and beyond the 32 MiB one sender may fill.
        attacker.settimeout(10)
        try:
            for _ in range(100):
                attacker.sendall(direct("bob", b"y" * (1 << 20)))
        except (BrokenPipeError, ConnectionResetError, socket.timeout):
            pass
        assert error_code(attacker_reader) == 16
        attacker.close()
        relay.log.wait_for(lambda line: "too much of your output waiting for bob" in line, timeout=5, what="log")
        # bob now reads what was queued for him, and is still a member.
        still_chatting(relay.port, bob_reader)
        bob.close()
        assert_back_to(pid, baseline, rss, slack_kib=16 * 1024)
    finally:
        relay.stop()


FLOODER = r"""
import socket, struct, sys, time
port, name, seconds, key = int(sys.argv[1]), sys.argv[2], float(sys.argv[3]), sys.argv[4]
sys.path.insert(0, sys.argv[5])
from aeschat_link import LinkSocket
def frame(kind, body=b""):
    return struct.pack(">IB", len(body) + 1, kind) + body
def hello(name):
    return frame(0x01, struct.pack(">H", 2) + bytes([len(name)]) + name.encode() + b"\x05flood\x00\x00")
pings = b"".join(frame(0x05, struct.pack(">Q", token)) for token in range(10_000))
deadline = time.monotonic() + seconds
connections = 0
while time.monotonic() < deadline:
    sock = None
    try:
        sock = LinkSocket.connect(port, key, timeout=1)
        sock.settimeout(None)
        sock.sendall(hello(f"{name}-{connections}"))
        connections += 1
        while time.monotonic() < deadline:
            sock.sendall(pings)
    except Exception:
        time.sleep(0.05)
    finally:
        if sock is not None:
            sock.close()
"""


def publish_latencies(pairs, seconds):
    """Publishes one message at a time for `seconds`, from each (sender, receiver's reader) of `pairs` in turn;
    returns, for each pair, every message's time until its receiver has it."""
    latencies = [[] for _ in pairs]
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        for (sender, reader), measured in zip(pairs, latencies):
            text = b"latency %d" % len(measured)
            started = time.perf_counter()
            sender.sendall(frame(PUBLISH, text))
            while True:
                got = reader.next(10)
                assert got is not None, "a receiver's connection ended"
                if got[0] == DELIVER and got[1].endswith(text):
                    break
            measured.append(time.perf_counter() - started)
            time.sleep(0.002)
    return latencies


def test_a_ping_flood_is_cut_off_and_leaves_the_others_latency_within_twice_an_unflooded_relays():
    # The others' latency under the flood is compared with that on a second relay, which nobody floods, measured at
    # the same moments (each round publishes on one relay, then on the other): a quiet phase before the flood, as
    # this test once used, can meet a machine that is busier or slower than during the flood, for reasons of its
    # own. The flooders' own CPU weighs on both relays alike.
    relay = Relay(free_port())
    control = Relay(free_port())
    flooders = []
    sockets = []
    try:
        pairs = []
        for port in (relay.port, control.port):
            alice, _ = member(port, "alice")
            bob, bob_reader = member(port, "bob")
            sockets += [alice, bob]
            pairs.append((alice, bob_reader))
        publish_latencies(pairs, 0.2)
        # Four connections ping as fast as they can, for the whole measurement, connecting again when cut off
        # (the relay closes a cut-off connection after its close timeout of 5 s, so each connects again once).
        flooders = [subprocess.Popen([sys.executable, "-c", FLOODER, str(relay.port), f"flood{index}", "60", relay.key,
                                      E2E]) for index in range(4)]
        time.sleep(0.5)
        # A stall of the machine that happens to fall on the flooded relay's samples can double a mean of 0.2 ms on
        # its own, so the measurement is repeated, up to three rounds, and one round within twice passes. Without
        # the cut-off every round is hundreds of times slower.
        reports = []
        for _ in range(3):
            flooded, calm = publish_latencies(pairs, 6.5)
            figures = {name: (function(calm), function(flooded))
                       for name, function in (("median", statistics.median), ("mean", statistics.mean))}
            reports.append(f"publish-to-deliver, {len(flooded)} under a ping flood and {len(calm)} on a relay beside "
                           "it: " + ", ".join(f"{name} {busy * 1e3:.3f} and {quiet * 1e3:.3f} ms (ratio "
                                              f"{busy / quiet:.2f})" for name, (quiet, busy) in figures.items()))
            print(reports[-1])
            # The mean counts the stalls a flood causes, which the median of mostly unaffected samples hides.
            if all(busy <= 2 * quiet for quiet, busy in figures.values()):
                break
        else:
            raise AssertionError("more than twice in every round: " + "; ".join(reports))
        assert all(flooder.poll() is None for flooder in flooders), "the flood ended before the measurement did"
        # Each flooder was cut off, connected again and was cut off again.
        for _ in range(8):
            relay.log.wait_for(lambda line: "flooding: more than 5000 frames a second" in line, timeout=5,
                               what="a flooder cut off")
    finally:
        for flooder in flooders:
            flooder.kill()
            flooder.wait()
        for sock in sockets:
            sock.close()
        relay.stop()
        control.stop()


def send_all_or_refused(connections, data, timeout=60):
    """Sends `data` on every (socket, reader) at once, until each has sent it all or has been sent an error frame;
    returns each one's error code (None when it sent everything)."""
    sent = {sock: 0 for sock, _ in connections}
    view = memoryview(data)
    codes = {}
    readers = dict(connections)
    for sock in sent:
        sock.setblocking(False)
    deadline = time.monotonic() + timeout
    while len(codes) < len(connections) and time.monotonic() < deadline:
        waiting = [sock for sock in sent if sock not in codes]
        readable, writable, _ = select.select(
            waiting, [sock for sock in waiting if sent[sock] < len(data) or not sock.all_sent], [], 0.5)
        for sock in readable:
            sock.setblocking(True)
            codes[sock] = error_code(readers[sock], timeout=5)
        for sock in writable:
            if sock in codes:
                continue
            try:
                sent[sock] += sock.send(view[sent[sock]:sent[sock] + (1 << 20)])
            except OSError:
                sock.setblocking(True)
                codes[sock] = error_code(readers[sock], timeout=5)
        for sock in waiting:
            if sock not in codes and sent[sock] == len(data) and sock.all_sent and sock not in readable:
                codes[sock] = None
    for sock in sent:
        sock.setblocking(True)
    return [codes.get(sock, "unfinished") for sock, _ in connections]


def test_frames_held_incomplete_by_many_connections_stay_within_the_budget_for_one_address():
    relay = Relay(free_port())
    held = []
    try:
        pid = relay.process.pid
        baseline, rss = descriptors(pid), rss_kib(pid)
        # 48 connections each declare a 16 MiB frame and send all but 4 KiB of it (issue 11: 787 MiB). Each is alone
        # in its room, so that what arrives for it is an error or nothing.
        held = [member(relay.port, f"pin{index}", room=f"room{index}") for index in range(48)]
        codes = send_all_or_refused(held, struct.pack(">IB", 16 << 20, PUBLISH) + b"z" * ((16 << 20) - 1 - 4096))
        # Then one byte every half second from each, which resets the idle clock but not the frame's deadline.
        peak = rss_kib(pid)
        for _ in range(4):
            time.sleep(0.5)
            for sock, _ in held:
                try:
                    sock.send(b"z")
                except OSError:
                    pass
            peak = max(peak, rss_kib(pid))
        grown = (peak - rss) / 1024
        print(f"relay RSS under 48 incomplete 16 MiB frames: {grown:.1f} MiB above the {rss / 1024:.1f} MiB baseline")
        # The documented figure: the per-address budget (64 MiB) plus 16 MiB for the rest.
        assert peak < rss + 80 * 1024, f"RSS grew from {rss} KiB to {peak} KiB"
        assert codes.count(18) >= 44 and codes.count(None) == 48 - codes.count(18), codes
        relay.log.wait_for(lambda line: "partly received frames from 127.0.0.1" in line, timeout=5, what="log")
        for sock, _ in held:
            sock.close()
        held = []
        assert_back_to(pid, baseline, rss)
    finally:
        for sock, _ in held:
            sock.close()
        relay.stop()


def test_a_frame_trickled_in_byte_by_byte_is_cut_off_at_its_deadline_while_a_steady_one_arrives():
    # A 1 MiB frame may take 1 s plus 1 s per MiB.
    relay = Relay(free_port(), ["--frame-grace", "1", "--min-frame-rate", "1M"])
    try:
        pid = relay.process.pid
        baseline, rss = descriptors(pid), rss_kib(pid)
        slow, slow_reader = member(relay.port, "slow")
        steady, _ = member(relay.port, "steady")
        bob, bob_reader = member(relay.port, "bob")
        payload = b"s" * (1 << 20)
        whole = frame(PUBLISH, payload)
        slow.sendall(whole[:-4096])
        steady.sendall(whole[:-4096])
        started = time.monotonic()
        # One byte every half second resets the idle clock, not the frame's deadline.
        for index in range(4):
            time.sleep(0.5)
            slow.sendall(whole[-4096 + index:-4096 + index + 1])
            if index == 1:
                steady.sendall(whole[-4096:])
        assert error_code(slow_reader, timeout=5) == 17
        assert time.monotonic() - started < 5
        relay.log.wait_for(lambda line: "still incomplete after" in line, timeout=5, what="refusal log")
        while True:
            kind, body = bob_reader.next(5)
            if kind == DELIVER:
                assert body == b"\x06steady\x00" + payload
                break
        for sock in (slow, steady, bob):
            sock.close()
        assert_back_to(pid, baseline, rss)
    finally:
        relay.stop()


def test_an_optional_frame_type_is_skipped_and_an_unknown_other_one_refused():
    """PROTOCOL.md section 2: types with bit 6 set (0x40-0x7F from a client) are optional, for later versions."""
    relay = Relay(free_port())
    try:
        newer, _ = member(relay.port, "newer")
        watcher, watcher_reader = member(relay.port, "watcher")
        newer.sendall(frame(0x41, b"a frame of a later version") + frame(0x7F) + frame(PUBLISH, b"after"))
        while True:
            kind, body = watcher_reader.next()
            if kind == 0x84:
                assert body.endswith(b"after")
                break
        older, older_reader = member(relay.port, "older")
        older.sendall(frame(0x21, b"not optional"))
        assert error_code(older_reader) == 1
        newer.close()
        watcher.close()
        older.close()
    finally:
        relay.stop()
