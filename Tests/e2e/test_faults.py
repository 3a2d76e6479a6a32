"""Network faults between clients and the relay: a proxy that stalls one connection for 30 s (the others chat on); a
proxy that cuts connections at random points (the client reconnects and every line arrives once); a line in flight
when the connection is cut (sent again, shown once); a client killed in the middle of a message; a relay that hangs
(SIGSTOP) with its connections open."""

import os
import random
import signal
import socket
import subprocess
import sys
import struct
import threading
import time

import pytest

from aeschat_link import LinkSocket
from conftest import Client, Relay, assert_relay_back_to, free_port, link, register_relay_key, relay_key_for, relay_usage
from test_relay_cap import Reader, frame, hello

E2E = os.path.dirname(os.path.abspath(__file__))

DELIVER = 0x84


class FaultyProxy:
    """Forwards 127.0.0.1 connections to the relay (its clients pin the relay's key: the link passes through).
    `stall` seconds: the first connection stops moving bytes in both directions for that long. `cuts`: the first
    connection is cut after a second, the next `cuts - 1` after a random number of bytes (1 to 400: in the
    handshake's 62 + 50 bytes, in the hello's record or in the middle of a later record)."""

    def __init__(self, target_port, stall=0.0, cuts=0, seed=3):
        self.target_port = target_port
        self.stall = stall
        self.cuts = cuts
        self.random = random.Random(seed)
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.port = self.listener.getsockname()[1]
        register_relay_key(self.port, relay_key_for(target_port))
        self.accepted = 0
        self.stalled = threading.Event()
        self.closed = False
        threading.Thread(target=self.accept_loop, daemon=True).start()

    def accept_loop(self):
        while not self.closed:
            try:
                downstream, _ = self.listener.accept()
            except OSError:
                return
            self.accepted += 1
            upstream = socket.create_connection(("127.0.0.1", self.target_port))
            stall_until = time.monotonic() + self.stall if self.accepted == 1 and self.stall else 0
            budget = self.random.randint(1, 400) if 1 < self.accepted <= self.cuts else None
            state = {"budget": budget}
            if self.accepted == 1 and self.cuts:
                threading.Timer(1.0, self.cut, args=(downstream, upstream)).start()
            for source, target in ((downstream, upstream), (upstream, downstream)):
                threading.Thread(target=self.pump, args=(source, target, stall_until, state), daemon=True).start()

    def pump(self, source, target, stall_until, state):
        try:
            while True:
                if stall_until:
                    self.stalled.set()
                    time.sleep(max(0.0, stall_until - time.monotonic()))
                    stall_until = 0
                data = source.recv(4096)
                if not data:
                    break
                if state["budget"] is not None:
                    if len(data) >= state["budget"]:
                        target.sendall(data[:state["budget"]])
                        break
                    state["budget"] -= len(data)
                target.sendall(data)
        except OSError:
            pass
        for sock in (source, target):
            try:
                sock.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
            sock.close()

    @staticmethod
    def cut(*sockets):
        for sock in sockets:
            try:
                sock.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass

    def close(self):
        self.closed = True
        self.listener.close()


def member(port, name):
    sock = link(port)
    sock.sendall(hello(name))
    reader = Reader(sock)
    assert reader.next(40)[0] == 0x81
    return sock, reader


def deliveries(reader, sender, count, timeout):
    got = []
    deadline = time.monotonic() + timeout
    while len(got) < count:
        kind, body = reader.next(max(0.1, deadline - time.monotonic()))
        if kind == DELIVER and body[1:1 + body[0]] == sender:
            got.append(body[2 + body[0]:])
    return got


def test_a_connection_stalled_for_30_seconds_does_not_slow_the_others():
    # The stalled member's preamble and message 1 arrive after 30 s, beyond the default handshake timeout.
    relay = Relay(free_port(), ["--handshake-timeout", "60"])
    proxy = FaultyProxy(relay.port, stall=30)
    baseline = relay_usage(relay)
    try:
        slow = LinkSocket.begin(proxy.port, relay.key, timeout=40)
        assert proxy.stalled.wait(5)
        alice, _ = member(relay.port, "alice")
        bob, bob_reader = member(relay.port, "bob")
        started = time.monotonic()
        for index in range(20):
            alice.sendall(frame(0x02, b"message %d" % index))
        assert deliveries(bob_reader, b"alice", 20, timeout=5) == [b"message %d" % i for i in range(20)]
        assert time.monotonic() - started < 2
        # Once the stall ends the slow member finishes its handshake, registers and chats like the others.
        slow.finish(timeout=40)
        slow.sendall(hello("slow"))
        slow_reader = Reader(slow)
        kind, _ = slow_reader.next(40)
        assert kind == 0x81
        alice.sendall(frame(0x02, b"after the stall"))
        assert deliveries(slow_reader, b"alice", 1, timeout=10) == [b"after the stall"]
        for sock in (slow, alice, bob):
            sock.close()
        assert_relay_back_to(relay, baseline)
    finally:
        proxy.close()
        relay.stop()


def test_connections_cut_at_random_points_make_the_client_reconnect_and_every_line_arrive_once(tmp_path, key_file):
    relay = Relay(free_port())
    proxy = FaultyProxy(relay.port, cuts=4, seed=11)
    bob = carol = None
    try:
        carol = Client("carol", relay.port, key_file, tmp_path / "inbox-carol")
        carol.ready()
        baseline = relay_usage(relay)
        bob = Client("bob", proxy.port, key_file, tmp_path / "inbox-bob")
        # Lines typed before, during and between the cuts: each arrives exactly once, in order.
        lines = [f"through the cuts {index}" for index in range(12)]
        for line in lines:
            bob.say(line)
            time.sleep(0.25)
        bob.events(timeout=60, event="reconnected")
        bob.say("done")
        assert messages_from(carol, "bob", "done", timeout=60) == lines + ["done"]
        assert proxy.accepted >= 2
        bob.close_input()
        assert bob.wait(timeout=20) == 0
        assert_relay_back_to(relay, baseline)
    finally:
        for client in (bob, carol):
            if client is not None:
                client.kill()
        proxy.close()
        relay.stop()


class CuttableProxy:
    """Forwards 127.0.0.1 connections to the relay. `swallow(direction)` makes the current connection read and
    discard what goes "up" (client to relay) or "down" (relay to client); `cut()` then closes it. Later connections
    forward normally."""

    def __init__(self, target_port):
        self.target_port = target_port
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.port = self.listener.getsockname()[1]
        register_relay_key(self.port, relay_key_for(target_port))
        self.current = None
        self.swallowing = set()
        self.accepted = 0
        threading.Thread(target=self.accept_loop, daemon=True).start()

    def accept_loop(self):
        while True:
            try:
                downstream, _ = self.listener.accept()
            except OSError:
                return
            self.accepted += 1
            upstream = socket.create_connection(("127.0.0.1", self.target_port))
            self.swallowing = set()
            self.current = (downstream, upstream)
            swallowing = self.swallowing
            threading.Thread(target=self.pump, args=(downstream, upstream, "up", swallowing), daemon=True).start()
            threading.Thread(target=self.pump, args=(upstream, downstream, "down", swallowing), daemon=True).start()

    @staticmethod
    def pump(source, target, direction, swallowing):
        try:
            while True:
                data = source.recv(65536)
                if not data:
                    break
                if direction not in swallowing:
                    target.sendall(data)
        except OSError:
            pass
        FaultyProxy.cut(source, target)

    def swallow(self, direction):
        self.swallowing.add(direction)

    def cut(self):
        FaultyProxy.cut(*self.current)

    def close(self):
        self.listener.close()


def messages_from(client, sender, until, timeout=30):
    """The texts of `sender`'s messages `client` shows, up to and including `until`."""
    texts = []
    while not texts or texts[-1] != until:
        texts.append(client.events(timeout=timeout, event="message", **{"from": sender})["text"])
    return texts


@pytest.mark.parametrize("lost", ["up", "down"])
def test_a_line_in_flight_when_the_connection_is_cut_arrives_exactly_once(tmp_path, mode_key, relay, lost):
    # "up": the relay never gets the line, so it must be sent again after reconnecting. "down": the relay delivers
    # it but its confirmation is lost, so it is sent again and members must drop the second copy.
    proxy = CuttableProxy(relay.port)
    bob = carol = None
    try:
        carol = Client("carol", relay.port, mode_key, tmp_path / "inbox-carol")
        carol.ready()
        baseline = relay_usage(relay)
        bob = Client("bob", proxy.port, mode_key, tmp_path / "inbox-bob")
        bob.ready()
        carol.events(event="joined", name="bob")
        bob.say("before the cut")
        assert messages_from(carol, "bob", "before the cut") == ["before the cut"]
        proxy.swallow(lost)
        bob.say("in flight one")
        bob.say("/me in flight two")
        time.sleep(0.5)
        proxy.cut()
        bob.events(timeout=30, event="reconnected")
        # Two, or three when the pong for "before the cut" was still on its way down when the proxy began to swallow.
        sent_again = bob.events(event="info")["message"]
        assert sent_again.startswith(("sent again 2 line(s)", "sent again 3 line(s)")), sent_again
        bob.say("after the cut")
        texts = messages_from(carol, "bob", "after the cut")
        assert texts == ["in flight one", "in flight two", "after the cut"], texts
        assert [line for line in carol.out.seen if '"in flight two"' in line and '"action":true' in line]
        bob.close_input()
        assert bob.wait(timeout=20) == 0
        assert proxy.accepted == 2
        assert_relay_back_to(relay, baseline)
    finally:
        for client in (bob, carol):
            if client is not None:
                client.kill()
        proxy.close()


HALF_A_MESSAGE = r"""
import socket, struct, sys, time
sys.path.insert(0, sys.argv[3])
from aeschat_link import LinkSocket
sock = LinkSocket.connect(int(sys.argv[1]), sys.argv[2])
name, room = b"dave", b"lobby"
hello = b"\x01" + struct.pack(">H", 2) + bytes([len(name)]) + name + bytes([len(room)]) + room + b"\x00\x00"
sock.sendall(struct.pack(">I", len(hello)) + hello)
sock.recv(65536)
# A publish of 1 MiB, of which only the first 300 KB leave before the process is killed.
sock.sendall(struct.pack(">I", 1 + 1024 * 1024) + b"\x02" + b"\xab" * 300_000)
print("half sent", flush=True)
time.sleep(60)
"""


def test_a_client_killed_mid_message_leaves_the_others_chatting_and_nothing_behind(tmp_path, key_file):
    relay = Relay(free_port())
    child = carol = erin = None
    try:
        carol = Client("carol", relay.port, key_file, tmp_path / "inbox-carol")
        carol.ready()
        erin = Client("erin", relay.port, key_file, tmp_path / "inbox-erin")
        erin.ready()
        carol.events(event="joined", name="erin")
        baseline = relay_usage(relay)
        child = subprocess.Popen([sys.executable, "-c", HALF_A_MESSAGE, str(relay.port), relay.key, E2E],
                                 stdout=subprocess.PIPE)
        assert child.stdout.readline() == b"half sent\n"
        carol.events(event="joined", name="dave")
        child.kill()
        child.wait()
        carol.events(event="left", name="dave")
        erin.say("still here")
        assert messages_from(carol, "erin", "still here") == ["still here"]
        assert not [line for line in carol.out.seen if '"from":"dave"' in line]
        assert_relay_back_to(relay, baseline)
    finally:
        if child is not None and child.poll() is None:
            child.kill()
        for client in (carol, erin):
            if client is not None:
                client.kill()
        relay.stop()


def test_a_hung_relay_is_noticed_and_the_line_arrives_once_when_it_recovers(tmp_path, key_file, relay):
    bob = carol = None
    try:
        carol = Client("carol", relay.port, key_file, tmp_path / "inbox-carol")
        carol.ready()
        bob = Client("bob", relay.port, key_file, tmp_path / "inbox-bob")
        bob.ready()
        carol.events(event="joined", name="bob")
        relay.process.send_signal(signal.SIGSTOP)
        try:
            # The connection stays open, but nothing answers: after 30 s bob counts it as lost.
            bob.say("while hung")
            error = bob.events(event="error", timeout=45)
            assert error["message"].startswith("the relay has not answered for 30 seconds"), error
            bob.events(event="reconnecting", timeout=5)
        finally:
            relay.process.send_signal(signal.SIGCONT)
        bob.events(event="reconnected", timeout=60)
        bob.say("after")
        # The relay may have read the first copy before it stopped; carol shows the line once either way.
        assert messages_from(carol, "bob", "after", timeout=30) == ["while hung", "after"]
    finally:
        for client in (bob, carol):
            if client is not None:
                client.kill()
