import AESChatCrypto
import AESChatTesting
import Testing

@testable import AESChatCore

/// A raw protocol peer over the encrypted link (``LinkTestClient``) on an in-memory connection:
/// records every relay frame it gets.
final class RawPeer: ConnectionHandler {
    /// The link: what the peer writes goes out sealed in records, and the relay's records are opened.
    let connection: LinkTestClient
    /// The in-memory connection under the link.
    let memory: MemoryConnection
    var decoder = FrameDecoder()
    var frames: [RelayFrame] = []
    var closed = false

    /// A peer on `memory` whose link pins `relayKey`.
    convenience init(_ memory: MemoryConnection, relayKey: RelayPublicKey) {
        // A fresh link over a fresh connection cannot fail to start.
        self.init(link: try! LinkTestClient(over: memory, relayKey: relayKey), memory: memory)
    }

    /// A peer on a link the test started itself over `memory`.
    init(link: LinkTestClient, memory: MemoryConnection) {
        self.memory = memory
        connection = link
        connection.handler = self
    }

    /// A peer on `memory`, whose far end a relay has just accepted: the link pins that relay's key.
    convenience init(_ memory: MemoryConnection) {
        guard let relay = (memory.otherEnd?.handler as? RelayConnection)?.relay else {
            preconditionFailure("RawPeer(_:) needs a connection a relay has accepted")
        }
        self.init(memory, relayKey: relay.publicKey)
    }

    func send(_ frame: ClientFrame) { connection.write(frame.encoded()) }

    func connection(_ connection: any Connection, didRead bytes: UnsafeRawBufferPointer) {
        for frame in decoder.frames(after: bytes).frames {
            if let decoded = try? RelayFrame(frame) { frames.append(decoded) }
        }
    }

    func connection(_ connection: any Connection, didCloseWith error: TransportError?) { closed = true }

    var delivered: [String] {
        frames.compactMap {
            if case .deliver(let from, _, let payload) = $0 {
                return "\(from):" + String(decoding: payload, as: UTF8.self)
            }
            return nil
        }
    }

    var errors: [UInt16] {
        frames.compactMap {
            if case .error(let code, _) = $0 { return code }
            return nil
        }
    }
}

extension Relay {
    /// The relay's current public key, as a client pins it.
    var publicKey: RelayPublicKey { try! RelayPublicKey(bytes: configuration.relayKey.publicKey) }
}

final class LineCollector {
    var lines: [String] = []
}

final class RelayHarness {
    let loop = MemoryEventLoop()
    let listener: MemoryListener
    let relay: Relay
    let log = LineCollector()

    init(
        configuration: RelayConfiguration = RelayConfiguration(), handshakes: any HandshakeExecutor = InlineHandshakes()
    ) {
        listener = MemoryListener(loop: loop)
        relay = Relay(configuration: configuration, loop: loop, handshakes: handshakes) { [log] in
            log.lines.append($0)
        }
        relay.attach(to: listener)
    }

    /// The relay's current public key, as a client pins it.
    var relayKey: RelayPublicKey { relay.publicKey }

    /// A peer that has started the link; what it sends waits until the link is up.
    func peer(chunkSize: Int = 4096) -> RawPeer {
        RawPeer(listener.connect(chunkSize: chunkSize), relayKey: relayKey)
    }

    /// A connection over the link for a client of the test's own (a session, a hostile member).
    func linkedConnection(chunkSize: Int = 4096) -> LinkTestClient {
        try! LinkTestClient(over: listener.connect(chunkSize: chunkSize), relayKey: relayKey)
    }

    func member(_ name: String, room: String = "lobby") -> RawPeer {
        let peer = peer()
        peer.send(.hello(version: relayProtocolVersion, name: name, room: room, profile: []))
        loop.runUntilIdle()
        return peer
    }
}

@Suite struct RelayTests {
    @Test func relay_welcomesMembers_andAnnouncesJoinsAndLeaves() {
        let harness = RelayHarness()
        let alice = harness.member("alice")
        #expect(alice.frames == [.welcome(version: relayProtocolVersion, name: "alice", room: "lobby", members: [])])
        let bob = harness.member("bob")
        #expect(
            bob.frames == [
                .welcome(
                    version: relayProtocolVersion, name: "bob", room: "lobby", members: [MemberEntry(name: "alice")])
            ])
        #expect(alice.frames.last == .joined(MemberEntry(name: "bob")))
        bob.connection.close()
        harness.loop.runUntilIdle()
        #expect(alice.frames.last == .left(name: "bob"))
        #expect(harness.relay.memberCount == 1)
        #expect(harness.log.lines.count == 3)
        #expect(harness.log.lines[0].hasPrefix("alice joined lobby"))
        #expect(harness.log.lines[2].hasPrefix("bob left lobby"))
    }

    @Test func relay_forwardsToEveryOtherMember_inOrder_onlyOnce() {
        let harness = RelayHarness()
        let peers = ["alice", "bob", "carol"].map { harness.member($0) }
        for round in 0..<50 {
            for (index, peer) in peers.enumerated() {
                peer.send(.publish(payload: Array("\(index)-\(round)".utf8)[...]))
            }
        }
        harness.loop.runUntilIdle()
        let names = ["alice", "bob", "carol"]
        for (receiver, peer) in peers.enumerated() {
            for (sender, name) in names.enumerated() where sender != receiver {
                let fromSender = peer.delivered.filter { $0.hasPrefix(name + ":") }
                #expect(fromSender == (0..<50).map { "\(name):\(sender)-\($0)" })
            }
            #expect(peer.delivered.count == 100)
            #expect(!peer.delivered.contains { $0.hasPrefix(names[receiver] + ":") })
        }
    }

    @Test func relay_keepsRoomsApart() {
        let harness = RelayHarness()
        let alice = harness.member("alice", room: "one")
        let bob = harness.member("bob", room: "two")
        let carol = harness.member("carol", room: "one")
        alice.send(.publish(payload: [0x61][...]))
        harness.loop.runUntilIdle()
        #expect(carol.delivered == ["alice:a"])
        #expect(bob.delivered.isEmpty)
        #expect(!bob.frames.contains(.joined(MemberEntry(name: "carol"))))
        #expect(bob.frames == [.welcome(version: relayProtocolVersion, name: "bob", room: "two", members: [])])
    }

    @Test func relay_refusesTakenInvalidAndUnregistered() {
        let harness = RelayHarness()
        _ = harness.member("alice")
        let twin = harness.member("alice")
        #expect(twin.errors == [RelayErrorCode.nameTaken.rawValue])
        #expect(twin.closed)
        for name in ["", "a b", String(repeating: "x", count: 33), "é", "a\u{1B}"] {
            let bad = harness.member(name)
            #expect(bad.errors == [RelayErrorCode.invalidName.rawValue], "name \(name.debugDescription)")
            #expect(bad.closed)
        }
        let badRoom = harness.member("dave", room: "no room")
        #expect(badRoom.errors == [RelayErrorCode.invalidRoom.rawValue])
        let early = harness.peer()
        early.send(.publish(payload: [1][...]))
        harness.loop.runUntilIdle()
        #expect(early.errors == [RelayErrorCode.notRegistered.rawValue])
        let old = harness.peer()
        old.send(.hello(version: 9, name: "erin", room: "lobby", profile: []))
        harness.loop.runUntilIdle()
        #expect(old.errors == [RelayErrorCode.unsupportedVersion.rawValue])
        #expect(harness.relay.memberCount == 1)
        #expect(harness.relay.connectionCount == 1)
    }

    @Test func relay_closesOnlyTheConnection_thatSentGarbage() {
        let harness = RelayHarness(
            configuration: {
                var c = RelayConfiguration()
                c.maximumFrameLength = 1000
                return c
            }())
        let alice = harness.member("alice")
        let bob = harness.member("bob")
        let eve = harness.member("eve")
        eve.connection.write([0x00, 0x01, 0x00, 0x00, 0x02])  // 65,536-byte frame > 1000
        harness.loop.runUntilIdle()
        #expect(eve.errors == [RelayErrorCode.frameTooLarge.rawValue])
        #expect(eve.closed)
        alice.send(.publish(payload: [0x62][...]))
        harness.loop.runUntilIdle()
        #expect(bob.delivered == ["alice:b"])
        #expect(alice.frames.contains(.left(name: "eve")))
    }

    @Test func relay_routesDirectFramesToOneMember_only() {
        let harness = RelayHarness()
        let alice = harness.member("alice")
        let bob = harness.member("bob")
        let carol = harness.member("carol")
        let outsider = harness.member("dave", room: "elsewhere")
        alice.send(.direct(to: "bob", payload: [0x78][...]))
        alice.send(.direct(to: "dave", payload: [0x79][...]))
        harness.loop.runUntilIdle()
        #expect(bob.frames.last == .deliver(from: "alice", isDirect: true, payload: [0x78][...]))
        #expect(carol.delivered.isEmpty)
        #expect(outsider.delivered.isEmpty)
        #expect(alice.errors == [RelayErrorCode.unknownRecipient.rawValue])
        #expect(!alice.closed)
    }

    @Test func relay_answersPing_andHandlesBye() {
        let harness = RelayHarness()
        let alice = harness.member("alice")
        alice.send(.ping(token: 77))
        alice.send(.bye)
        harness.loop.runUntilIdle()
        #expect(alice.frames.contains(.pong(token: 77)))
        #expect(alice.closed)
        #expect(harness.relay.memberCount == 0)
    }

    @Test func relay_shutdown_tellsEveryClient_thenCompletes() {
        let harness = RelayHarness()
        let alice = harness.member("alice")
        let bob = harness.member("bob", room: "other")
        var done = false
        harness.relay.shutdown { done = true }
        harness.loop.runUntilIdle()
        #expect(alice.errors == [RelayErrorCode.shuttingDown.rawValue])
        #expect(bob.errors == [RelayErrorCode.shuttingDown.rawValue])
        #expect(alice.closed && bob.closed)
        #expect(done)
    }
}
