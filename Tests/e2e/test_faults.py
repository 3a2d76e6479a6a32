"""Network faults between clients and the relay: a proxy that stalls one connection for 30 s (the others chat on),
and a proxy that cuts connections at random points (the client reconnects and its messages arrive)."""

import random
import socket
import struct
import threading
import time

from conftest import Client, Relay, free_port
from test_relay_cap import Reader, frame, hello

DELIVER = 0x84


class FaultyProxy:
    """Forwards 127.0.0.1 connections to the relay. `stall` seconds: the first connection stops moving bytes in
    both directions for that long. `cuts`: the first connection is cut after a second, the next `cuts - 1` after a
    random number of bytes (1 to 60, so during registration or in the middle of a frame)."""

    def __init__(self, target_port, stall=0.0, cuts=0, seed=3):
        self.target_port = target_port
        self.stall = stall
        self.cuts = cuts
        self.random = random.Random(seed)
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.port = self.listener.getsockname()[1]
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
            budget = self.random.randint(1, 60) if 1 < self.accepted <= self.cuts else None
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
    sock = socket.create_connection(("127.0.0.1", port), timeout=10)
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
    # The stalled member's hello arrives after 30 s, beyond the default handshake timeout.
    relay = Relay(free_port(), ["--handshake-timeout", "60"])
    proxy = FaultyProxy(relay.port, stall=30)
    try:
        slow = socket.create_connection(("127.0.0.1", proxy.port), timeout=40)
        slow.sendall(hello("slow"))
        assert proxy.stalled.wait(5)
        alice, _ = member(relay.port, "alice")
        bob, bob_reader = member(relay.port, "bob")
        started = time.monotonic()
        for index in range(20):
            alice.sendall(frame(0x02, b"message %d" % index))
        assert deliveries(bob_reader, b"alice", 20, timeout=5) == [b"message %d" % i for i in range(20)]
        assert time.monotonic() - started < 2
        # Once the stall ends the slow member registers and chats like the others.
        slow_reader = Reader(slow)
        kind, _ = slow_reader.next(40)
        assert kind == 0x81
        alice.sendall(frame(0x02, b"after the stall"))
        assert deliveries(slow_reader, b"alice", 1, timeout=10) == [b"after the stall"]
        for sock in (slow, alice, bob):
            sock.close()
    finally:
        proxy.close()
        relay.stop()


def test_connections_cut_at_random_points_make_the_client_reconnect_and_its_messages_arrive(tmp_path, key_file):
    relay = Relay(free_port())
    proxy = FaultyProxy(relay.port, cuts=4, seed=11)
    client = None
    try:
        alice, alice_reader = member(relay.port, "alice")
        client = Client("bob", proxy.port, key_file, tmp_path / "inbox")
        client.events(timeout=60, event="reconnected")
        # A line sent on a connection that is then cut may be lost (the relay never got all of it); keep saying
        # until one arrives, once the proxy has stopped cutting.
        deadline = time.monotonic() + 30
        while True:
            client.say("through the cuts")
            try:
                deliveries(alice_reader, b"bob", 1, timeout=1)
                break
            except TimeoutError:
                assert time.monotonic() < deadline, "no message arrived through the proxy"
        assert proxy.accepted >= 2
        client.close_input()
        assert client.wait(timeout=20) == 0
        alice.close()
    finally:
        if client is not None:
            client.kill()
        proxy.close()
        relay.stop()
