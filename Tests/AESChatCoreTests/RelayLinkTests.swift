import AESChatCrypto
import AESChatTesting
import Testing

@testable import AESChatCore

/// Holds handshake jobs until the test releases them: handshakes in progress, in memory.
final class ManualHandshakes: HandshakeExecutor {
    var waiting: [(job: HandshakeJob, completion: (HandshakeResult) -> Void)] = []

    func respond(to job: HandshakeJob, completion: @escaping (HandshakeResult) -> Void) {
        waiting.append((job, completion))
    }

    func releaseAll() {
        let jobs = waiting
        waiting = []
        for (job, completion) in jobs { completion(HandshakeResult.respond(to: job, ephemeralKey: nil)) }
    }
}

/// The relay's end of an in-memory connection, presented as coming from another address.
final class OtherAddressConnection: Connection, ConnectionHandler {
    let inner: MemoryConnection
    let peerDescription: String
    var handler: (any ConnectionHandler)?

    init(_ inner: MemoryConnection, peer: String) {
        self.inner = inner
        peerDescription = peer
        inner.handler = self
    }

    var pendingOutputByteCount: Int { inner.pendingOutputByteCount }
    var sentByteCount: Int { inner.sentByteCount }
    var isOpen: Bool { inner.isOpen }
    func write(_ bytes: [UInt8]) { inner.write(bytes) }
    func protect(with protection: any RecordProtection) { inner.protect(with: protection) }
    func closeAfterFlushing(timeout: Duration) { inner.closeAfterFlushing(timeout: timeout) }
    func close() { inner.close() }

    func connection(_ connection: any Connection, didRead bytes: UnsafeRawBufferPointer) {
        handler?.connection(self, didRead: bytes)
    }

    func connection(_ connection: any Connection, didCloseWith error: TransportError?) {
        let upper = handler
        handler = nil
        upper?.connection(self, didCloseWith: error)
    }
}

/// The relay's side of the encrypted link: answers, failures, limits and rotation, in memory with real crypto.
@Suite struct RelayLinkTests {
    /// A peer that sends `preamble` (and message 1 if asked) instead of the standard opening.
    func opening(_ preamble: [UInt8], sendsMessage1: Bool = false, to harness: RelayHarness) -> RawPeer {
        let memory = harness.listener.connect()
        let link = try! LinkTestClient(
            over: memory, relayKey: harness.relayKey, preamble: preamble, sendsMessage1: sendsMessage1)
        let peer = RawPeer(link: link, memory: memory)
        harness.loop.runUntilIdle()
        return peer
    }

    @Test func relay_answersAnOlderClient_withAProtocol1ErrorFrame() {
        let harness = RelayHarness()
        let hello = ClientFrame.hello(version: 1, name: "old", room: "lobby", profile: []).encoded()
        let old = opening(hello, to: harness)
        var decoder = FrameDecoder()
        let frames = decoder.frames(after: old.connection.clearBytes).frames.compactMap { try? RelayFrame($0) }
        #expect(
            frames == [.error(code: RelayErrorCode.unsupportedVersion.rawValue, message: LinkAnswer.olderClientMessage)]
        )
        #expect(old.closed)
        #expect(harness.log.lines.contains { $0.contains("it is not an aeschat 2 client") })
        let browser = opening(Array("GET / HTTP/1.1\r\n".utf8), to: harness)
        #expect(browser.connection.clearBytes == LinkAnswer.olderClientRefusal)
        #expect(harness.relay.connectionCount == 0)
    }

    @Test func relay_answersAnotherVersion_withItsOwn() {
        let harness = RelayHarness()
        let future = opening(LinkPreamble.magic + [3] + harness.relayKey.keyID, to: harness)
        #expect(future.connection.clearBytes == LinkPreamble.magic + [2, LinkAnswer.Kind.version])
        #expect(future.connection.answer == .version(2))
        #expect(future.closed)
    }

    @Test func relay_answersAKeyRequest_andAnUnknownKeyID_withItsKeys() throws {
        let current = try X25519PrivateKey(ephemeral: ())
        let previous = try X25519PrivateKey(ephemeral: ())
        let harness = RelayHarness(configuration: RelayConfiguration(relayKey: current, previousRelayKey: previous))
        let keys = [try RelayPublicKey(bytes: current.publicKey), try RelayPublicKey(bytes: previous.publicKey)]
        let probe = try LinkTestClient.keyRequest(over: harness.listener.connect())
        harness.loop.runUntilIdle()
        #expect(probe.answer == .keys(keys))
        #expect(!probe.isOpen)
        let stranger = try LinkTestClient(
            over: harness.listener.connect(), relayKey: try RelayPublicKey(bytes: X25519PrivateKey().publicKey))
        harness.loop.runUntilIdle()
        #expect(stranger.answer == .keys(keys))
        #expect(stranger.state == .closed)
        #expect(harness.relay.link.completedCount == 0)
        #expect(harness.relay.connectionCount == 0)
    }

    @Test func relay_closesSilently_onABrokenMessage1() throws {
        let harness = RelayHarness()
        let preamble = try LinkPreamble(relayFingerprint: harness.relayKey.fingerprintHash).bytes
        // The wrong length prefix.
        let wrongLength = opening(preamble + [0x00, 0x31] + [UInt8](repeating: 1, count: 49), to: harness)
        #expect(wrongLength.closed && wrongLength.connection.clearBytes.isEmpty)
        // 48 bytes that are not a handshake message: the tag cannot match.
        let garbage = opening(preamble + [0x00, 0x30] + SecureRandom.bytes(count: 48), to: harness)
        #expect(garbage.closed && garbage.connection.clearBytes.isEmpty)
        #expect(harness.relay.link.failedCount == 1)
        // A message 1 made for another key under this relay's key id.
        let memory = harness.listener.connect()
        let wrongKey = RawPeer(
            link: try LinkTestClient(
                over: memory, relayKey: try RelayPublicKey(bytes: X25519PrivateKey(ephemeral: ()).publicKey),
                preamble: preamble, sendsMessage1: true),
            memory: memory)
        harness.loop.runUntilIdle()
        #expect(wrongKey.closed && wrongKey.connection.clearBytes.isEmpty)
        #expect(harness.relay.link.failedCount == 2)
        #expect(harness.relay.link.completedCount == 0)
        // A message 1 cut short: the handshake timeout closes it, without a word.
        let cut = opening(preamble + [0x00, 0x30] + [UInt8](repeating: 7, count: 20), to: harness)
        #expect(!cut.closed)
        harness.loop.advance(by: harness.relay.configuration.limits.handshakeTimeout + .seconds(1))
        #expect(cut.closed && cut.connection.clearBytes.isEmpty)
        #expect(harness.relay.connectionCount == 0)
    }

    @Test func relay_closes_onBytesBeforeItsMessage2() throws {
        let harness = RelayHarness()
        let preamble = try LinkPreamble(relayFingerprint: harness.relayKey.fingerprintHash)
        let handshake = try NoiseHandshake.initiator(
            responderStaticKey: harness.relayKey.bytes, prologue: preamble.prologue)
        let eager = opening(
            preamble.bytes + LinkTestClient.messagePrefix + (try handshake.writeMessage())
                + ClientFrame.ping(token: 1).encoded(), to: harness)
        #expect(eager.closed && eager.connection.clearBytes.isEmpty)
        #expect(harness.relay.link.completedCount == 0)
        // The same while message 1 is with the executor.
        let held = ManualHandshakes()
        let slow = RelayHarness(handshakes: held)
        let impatient = slow.peer()
        slow.loop.runUntilIdle()
        #expect(held.waiting.count == 1)
        impatient.connection.writeRaw([0])
        slow.loop.runUntilIdle()
        held.releaseAll()
        slow.loop.runUntilIdle()
        #expect(impatient.closed)
        #expect(impatient.connection.state == .closed)
        #expect(slow.relay.link.inProgress == 0)
    }

    @Test func tamperedRecord_closesOnlyItsSender() throws {
        let harness = RelayHarness()
        let alice = harness.member("alice")
        let bob = harness.member("bob")
        let mallory = harness.member("mallory")
        var record = try mallory.connection.seal(ClientFrame.publish(payload: Array("forged".utf8)[...]).encoded())
        record[record.count - 3] ^= 0x40
        mallory.connection.writeRaw(record)
        harness.loop.runUntilIdle()
        #expect(mallory.closed)
        #expect(!alice.delivered.contains { $0.contains("forged") })
        alice.send(.publish(payload: Array("still here".utf8)[...]))
        harness.loop.runUntilIdle()
        #expect(bob.delivered == ["alice:still here"])
        #expect(!alice.closed && !bob.closed)
        #expect(alice.frames.contains(.left(name: "mallory")))
    }

    @Test func handshakeFlood_fromOneAddress_isAnsweredBusy_whileAnotherAddressJoinsAndChats() throws {
        var configuration = RelayConfiguration()
        configuration.limits.handshakeRate = 5
        configuration.limits.handshakeBurst = 10
        let harness = RelayHarness(configuration: configuration)
        let flood = (0..<30).map { _ in harness.peer() }
        harness.loop.runUntilIdle()
        #expect(flood.filter { $0.connection.state == .linked }.count == 10)
        #expect(flood.filter { $0.connection.answer == .busy }.count == 20)
        #expect(harness.relay.link.busyCount == 20)
        // Someone else, from another address, is not held back.
        func fromElsewhere(_ name: String) -> RawPeer {
            let (client, server) = MemoryConnection.pair(loop: harness.loop)
            harness.relay.accept(OtherAddressConnection(server, peer: "192.0.2.7:4000"))
            let peer = RawPeer(client, relayKey: harness.relayKey)
            peer.send(.hello(version: relayProtocolVersion, name: name, room: "lobby", profile: []))
            harness.loop.runUntilIdle()
            return peer
        }
        let carol = fromElsewhere("carol")
        let dave = fromElsewhere("dave")
        #expect(
            carol.frames.first == .welcome(version: relayProtocolVersion, name: "carol", room: "lobby", members: []))
        carol.send(.publish(payload: Array("hi".utf8)[...]))
        harness.loop.runUntilIdle()
        #expect(dave.delivered == ["carol:hi"])
        // The flooder's bucket refills at its rate.
        harness.loop.advance(by: .seconds(1))
        let later = (0..<6).map { _ in harness.peer() }
        harness.loop.runUntilIdle()
        #expect(later.filter { $0.connection.state == .linked }.count == 5)
    }

    @Test func handshakesInProgress_beyondTheCap_areAnsweredBusy_andAClosedOnesResultIsDropped() {
        var configuration = RelayConfiguration()
        configuration.limits.maximumHandshakesInProgress = 2
        let held = ManualHandshakes()
        let harness = RelayHarness(configuration: configuration, handshakes: held)
        let first = harness.peer()
        let second = harness.peer()
        let third = harness.peer()
        harness.loop.runUntilIdle()
        #expect(held.waiting.count == 2)
        #expect(third.connection.answer == .busy)
        first.connection.close()
        harness.loop.runUntilIdle()
        held.releaseAll()
        harness.loop.runUntilIdle()
        #expect(harness.relay.link.inProgress == 0)
        #expect(harness.relay.link.completedCount == 1)
        #expect(second.connection.state == .linked)
        second.send(.hello(version: relayProtocolVersion, name: "bob", room: "lobby", profile: []))
        harness.loop.runUntilIdle()
        #expect(second.frames.first == .welcome(version: relayProtocolVersion, name: "bob", room: "lobby", members: []))
    }

    @Test func rotation_aLinkUnderThePreviousKey_getsTheRelayKeys_afterWelcome() throws {
        let current = try X25519PrivateKey(ephemeral: ())
        let previous = try X25519PrivateKey(ephemeral: ())
        let harness = RelayHarness(configuration: RelayConfiguration(relayKey: current, previousRelayKey: previous))
        let keys = [try RelayPublicKey(bytes: current.publicKey), try RelayPublicKey(bytes: previous.publicKey)]
        let old = RawPeer(harness.listener.connect(), relayKey: keys[1])
        old.send(.hello(version: relayProtocolVersion, name: "old", room: "lobby", profile: []))
        harness.loop.runUntilIdle()
        #expect(
            old.frames == [
                .welcome(version: relayProtocolVersion, name: "old", room: "lobby", members: []),
                .relayKeys(keys.map(\.bytes)),
            ])
        let new = harness.member("new")
        #expect(
            new.frames == [
                .welcome(version: relayProtocolVersion, name: "new", room: "lobby", members: [MemberEntry(name: "old")])
            ])
    }

    @Test func workerThreadHandshakes_overRealSockets_linkAndDeliver() throws {
        let loop = try PosixEventLoop()
        let listener = try TCPListener(host: "127.0.0.1", port: 0, loop: loop)
        let worker = WorkerHandshakes(loop: loop, stockSize: 4)
        defer { worker.stop() }
        let relay = Relay(loop: loop, handshakes: worker) { _ in }
        relay.attach(to: listener)
        let sinks = [FrameSink(), FrameSink()]
        let links = try ["alice", "bob"].enumerated().map { index, name in
            let link = try LinkTestClient(
                over: try TCPConnection.connectNow(host: "127.0.0.1", port: listener.localPort, loop: loop),
                relayKey: relay.publicKey)
            link.handler = sinks[index]
            link.write(
                ClientFrame.hello(version: relayProtocolVersion, name: name, room: "lobby", profile: []).encoded())
            return link
        }
        var sent = false
        func poll() {
            let welcomed = sinks.allSatisfy { $0.frames.contains { $0.type == FrameType.welcome } }
            if welcomed && !sent {
                sent = true
                links[0].write(ClientFrame.publish(payload: Array("over the worker".utf8)[...]).encoded())
            }
            if sinks[1].frames.contains(where: { $0.type == FrameType.deliver }) {
                loop.stop()
            } else {
                loop.schedule(after: .milliseconds(5), poll)
            }
        }
        poll()
        var timedOut = false
        loop.schedule(after: .seconds(20)) {
            timedOut = true
            loop.stop()
        }
        try loop.run()
        #expect(!timedOut)
        #expect(links.allSatisfy { $0.state == .linked })
        #expect(relay.link.completedCount == 2)
        #expect(relay.link.inProgress == 0)
        let delivered = sinks[1].frames.compactMap { try? RelayFrame($0) }.last
        #expect(delivered == .deliver(from: "alice", isDirect: false, payload: Array("over the worker".utf8)[...]))
        for link in links { link.close() }
        listener.close()
    }

    @Test func relayKeysFrame_roundTrips_andRefusesBadCounts() throws {
        let keys = [[UInt8](repeating: 1, count: 32)]
        let encoded = RelayFrame.relayKeys(keys).encoded()
        #expect(encoded == [0, 0, 0, 34, 0x86, 1] + Array(repeating: 1, count: 32))
        var decoder = FrameDecoder()
        #expect(decoder.frames(after: encoded).frames.compactMap { try? RelayFrame($0) } == [.relayKeys(keys)])
        #expect(throws: WireError.self) { try RelayFrame(Frame(type: 0x86, body: [0][...])) }
        #expect(throws: WireError.self) {
            try RelayFrame(Frame(type: 0x86, body: ([2] + Array(repeating: 1, count: 32))[...]))
        }
    }

    @Test func linkAnswers_encodeAndParse() throws {
        let key = try RelayPublicKey(bytes: Array(repeating: 5, count: 32))
        for answer in [LinkAnswer.keys([key]), .keys([key, key]), .version(2), .busy] {
            let bytes = answer.encoded()
            #expect(try LinkAnswer.parse(bytes)?.answer == answer)
            #expect(try LinkAnswer.parse(bytes)?.length == bytes.count)
            #expect(try LinkAnswer.parse(bytes.dropLast()) == nil || answer == .version(2) || answer == .busy)
        }
        #expect(throws: WireError.self) { try LinkAnswer.parse(Array("AESCHAT".utf8) + [2, 9]) }
        #expect(throws: WireError.self) { try LinkAnswer.parse(Array("AESCHAT".utf8) + [2, 1, 3]) }
        #expect(throws: WireError.self) { try LinkAnswer.parse(Array("AESCHAX".utf8)) }
    }
}
