import AESChatCLI
import AESChatCrypto
import AESChatTesting
import Testing

@testable import AESChatCore

/// A client's link start against a scripted relay on the in-memory transport.
final class LinkStartHarness {
    let loop = MemoryEventLoop()
    let client: MemoryConnection
    let relay: TestLinkResponder
    let relayPlaintext = PlaintextCollector()
    var result: Result<any Connection, RelayLinkFailure>?

    init(
        relayKey: X25519PrivateKey = TestRelayKeys.current, script: TestLinkResponder.Script = .complete,
        pinned: X25519PrivateKey = TestRelayKeys.current, chunkSize: Int = 4096
    ) {
        let (client, server) = MemoryConnection.pair(loop: loop, chunkSize: chunkSize)
        self.client = client
        relay = TestLinkResponder(server, key: relayKey, script: script) { [relayPlaintext] in
            $0.handler = relayPlaintext
        }
        RelayLinkStarter.start(on: client, configuration: TestRelayKeys.link(pinned), loop: loop) { [unowned self] in
            self.result = $0
        }
        loop.runUntilIdle()
    }

    var failure: RelayLinkFailure.Kind? {
        guard case .failure(let failure) = result else { return nil }
        return failure.kind
    }

    /// What a client sends before the relay answers: the preamble for `pinned`, then `0x00 0x30` and message 1.
    func expectOnlyPreambleAndMessage1(pinned: X25519PrivateKey = TestRelayKeys.current) {
        #expect(relay.received.count == LinkPreamble.length + 2 + NoiseHandshake.emptyMessageLength)
        #expect(Array(relay.received.prefix(7)) == Array("AESCHAT".utf8))
        #expect(Array(relay.received[7..<12]) == [0x02] + TestRelayKeys.pinned(pinned).keyID)
        #expect(Array(relay.received[12..<14]) == [0x00, 0x30])
    }
}

@Suite struct RelayLinkStartTests {
    @Test(arguments: [1, 7, 4096])
    func linkStart_withThePinnedKey_protectsTheConnection_andFramesFlowBothWays(chunkSize: Int) throws {
        let harness = LinkStartHarness(chunkSize: chunkSize)
        let connection = try #require(try? harness.result?.get())
        let clientPlaintext = PlaintextCollector()
        connection.handler = clientPlaintext
        let hello = ClientFrame.hello(version: relayProtocolVersion, name: "alice", room: "lobby", profile: [])
        connection.write(hello.encoded())
        harness.loop.runUntilIdle()
        #expect(harness.relayPlaintext.bytes == hello.encoded())
        #expect(harness.relay.received.count == LinkPreamble.length + 2 + NoiseHandshake.emptyMessageLength)
        // The hello travels sealed: its bytes are not on the wire.
        harness.relay.connection.write(RelayFrame.left(name: "bob").encoded())
        harness.loop.runUntilIdle()
        #expect(clientPlaintext.bytes == RelayFrame.left(name: "bob").encoded())
    }

    @Test(arguments: [1, 4096])
    func linkStart_relayWithAnotherKey_isAKeyMismatch_andNothingFollowsMessage1(chunkSize: Int) {
        let harness = LinkStartHarness(relayKey: TestRelayKeys.other, chunkSize: chunkSize)
        #expect(
            harness.failure
                == .keyMismatch(
                    pinned: TestRelayKeys.pinned(TestRelayKeys.current),
                    presented: [TestRelayKeys.pinned(TestRelayKeys.other)]))
        harness.expectOnlyPreambleAndMessage1()
        #expect(!harness.client.isOpen)
    }

    @Test(arguments: [1, 4096])
    func linkStart_tamperedMessage2_isAHandshakeFailure_andNothingIsSent(chunkSize: Int) {
        let harness = LinkStartHarness(script: .tamperMessage2, chunkSize: chunkSize)
        #expect(harness.failure == .handshakeFailed(pinned: TestRelayKeys.pinned(TestRelayKeys.current)))
        harness.expectOnlyPreambleAndMessage1()
        #expect(harness.relay.closed)
    }

    @Test func linkStart_impostorAnsweringUnderThePinnedKeyID_failsTheHandshake_andNothingIsSent() {
        // A machine in the path runs the handshake with a key of its own: message 2 cannot authenticate.
        let harness = LinkStartHarness(relayKey: TestRelayKeys.other, script: .impersonate)
        #expect(harness.failure == .handshakeFailed(pinned: TestRelayKeys.pinned(TestRelayKeys.current)))
        harness.expectOnlyPreambleAndMessage1()
        #expect(harness.relayPlaintext.bytes.isEmpty)
    }

    /// Answers a relay may give instead of message 2, and what the client makes of each.
    static let otherAnswers: [([UInt8], RelayLinkFailure.Kind)] = [
        (LinkAnswerBytes.olderRelayRefusal, .olderRelay),
        (LinkAnswerBytes.version(3), .versionMismatch(relayVersion: 3)),
        (LinkAnswerBytes.version(1), .versionMismatch(relayVersion: 1)),
        (LinkAnswerBytes.busy, .busy),
        (Array("HTTP/1.1 400 Bad Request\r\n\r\n".utf8), .notAESChat),
        (Array("SSH-2.0-OpenSSH_9.6\r\n".utf8), .notAESChat),
        ([0x00, 0x00, 0x01, 0x00, 0x85], .notAESChat),
        ([0x00, 0x00, 0x00, 0x10, 0x81] + [UInt8](repeating: 0, count: 16), .notAESChat),
        (Array("AESCHAT".utf8) + [0x02, 0x01, 0x03] + [UInt8](repeating: 7, count: 96), .notAESChat),
        (Array("AESCHAT".utf8) + [0x02, 0x01, 0x00], .notAESChat),
        (Array("AESCHAT".utf8) + [0x02, 0x09], .notAESChat),
        ([0x00, 0x31] + [UInt8](repeating: 1, count: 49), .notAESChat),
    ]

    @Test(arguments: otherAnswers)
    func linkStart_relayAnswersOtherThanMessage2_areTyped(answer: [UInt8], expected: RelayLinkFailure.Kind) {
        for chunkSize in [1, 4096] {
            let harness = LinkStartHarness(script: .answer(answer), chunkSize: chunkSize)
            #expect(harness.failure == expected, "chunk size \(chunkSize)")
            harness.expectOnlyPreambleAndMessage1()
        }
    }

    @Test func linkStart_relayThatClosesWithoutAnswering_isALostConnection() {
        let harness = LinkStartHarness(script: .answer([]))
        guard case .connectionLost(let reason) = harness.failure else {
            Issue.record("expected a lost connection, got \(String(describing: harness.failure))")
            return
        }
        #expect(reason.contains("memory:7777"))
    }

    @Test func linkStart_relayThatNeverAnswers_timesOut() {
        let loop = MemoryEventLoop()
        let (client, server) = MemoryConnection.pair(loop: loop)
        let silent = PlaintextCollector()
        server.handler = silent
        var result: Result<any Connection, RelayLinkFailure>?
        RelayLinkStarter.start(on: client, configuration: TestRelayKeys.link(), loop: loop) { result = $0 }
        loop.advance(by: .seconds(14))
        #expect(result == nil)
        loop.advance(by: .seconds(2))
        // It sent nothing at all: probably not a relay (a session's first connection ends on it).
        guard case .failure(let failure) = result, case .silent(let reason) = failure.kind else {
            Issue.record("expected a timeout")
            return
        }
        #expect(reason.contains("within 15 seconds"))
        #expect(
            failure.description.hasSuffix(
                "and sent nothing at all: probably not an aeschat relay (an HTTP server waiting for a request, say)"))
        #expect(failure.isRetryable)
        #expect(silent.closed)
    }

    @Test func linkStart_bytesWithMessage2_refuseTheRelay() {
        // An honest relay waits for the hello: bytes that come with message 2 are not from one. (Bytes that come
        // later are records, and the session refuses any frame before welcome.)
        let harness = LinkStartHarness(script: .message2FollowedBy([0x00, 0x20] + [UInt8](repeating: 1, count: 32)))
        #expect(harness.failure == .notAESChat)
        harness.expectOnlyPreambleAndMessage1()
    }

    @Test func failures_sayWhatToDo_inOneLine() {
        let pinned = TestRelayKeys.pinned(TestRelayKeys.current)
        let presented = TestRelayKeys.pinned(TestRelayKeys.other)
        let kinds: [RelayLinkFailure.Kind] = [
            .keyMismatch(pinned: pinned, presented: [presented]), .handshakeFailed(pinned: pinned), .olderRelay,
            .versionMismatch(relayVersion: 3), .notAESChat, .busy,
        ]
        for kind in kinds {
            let text = RelayLinkFailure(relay: "relay.example.org:7777", kind: kind).description
            #expect(!text.contains("\n"))
            #expect(text.contains("relay.example.org:7777"))
        }
        let mismatch = RelayLinkFailure(relay: "r:1", kind: .keyMismatch(pinned: pinned, presented: [presented]))
        #expect(mismatch.description.contains(pinned.fingerprint))
        #expect(mismatch.description.contains(presented.fingerprint))
        #expect(mismatch.isPinFailure && !mismatch.isRetryable)
        #expect(RelayLinkFailure(relay: "r:1", kind: .handshakeFailed(pinned: pinned)).isPinFailure)
        #expect(RelayLinkFailure(relay: "r:1", kind: .busy).isRetryable)
        #expect(!RelayLinkFailure(relay: "r:1", kind: .olderRelay).isRetryable)
        #expect(
            RelayLinkFailure(relay: "r:1", kind: .olderRelay).description
                == "the relay at r:1 runs an older aeschat (protocol 1) without the encrypted link; "
                + "ask its operator to upgrade")
        #expect(RelayLinkFailure(relay: "r:1", kind: .notAESChat).description == "r:1 is not an aeschat relay")
    }

    @Test func exitCodes_pinFailuresAre77_otherLinkFailures69() {
        let pinned = TestRelayKeys.pinned(TestRelayKeys.current)
        let cases: [(RelayLinkFailure.Kind, ExitCode)] = [
            (.keyMismatch(pinned: pinned, presented: [pinned]), .notPermitted),
            (.handshakeFailed(pinned: pinned), .notPermitted), (.olderRelay, .unavailable),
            (.versionMismatch(relayVersion: 3), .unavailable), (.notAESChat, .unavailable),
        ]
        for (kind, code) in cases {
            #expect(JoinMode.exitCode(for: .linkFailed(RelayLinkFailure(relay: "r:1", kind: kind))) == code)
        }
        #expect(ExitCode.notPermitted.rawValue == 77)
    }
}

@Suite struct RelayKeyProbeTests {
    @Test(arguments: [1, 4096])
    func probe_sendsTheKeyRequestOnly_andReturnsTheRelaysKeys(chunkSize: Int) {
        let loop = MemoryEventLoop()
        let (client, server) = MemoryConnection.pair(loop: loop, chunkSize: chunkSize)
        let relay = TestLinkResponder(server, key: TestRelayKeys.other)
        var result: Result<[RelayPublicKey], RelayLinkFailure>?
        RelayKeyProbe.fetch(on: client, relay: "memory:7777", loop: loop) { result = $0 }
        loop.runUntilIdle()
        #expect(result == .success([TestRelayKeys.pinned(TestRelayKeys.other)]))
        #expect(relay.received == Array("AESCHAT".utf8) + [0x02, 0, 0, 0, 0])
        #expect(!client.isOpen)
    }

    @Test func probe_readsBothKeysDuringARotation() {
        let keys = [TestRelayKeys.pinned(TestRelayKeys.current), TestRelayKeys.pinned(TestRelayKeys.other)]
        #expect(probe(answer: LinkAnswerBytes.keys(keys)) == .success(keys))
    }

    @Test func probe_reportsOtherAnswersAsTypedFailures() {
        #expect(kind(probe(answer: LinkAnswerBytes.busy)) == .busy)
        #expect(kind(probe(answer: LinkAnswerBytes.version(3))) == .versionMismatch(relayVersion: 3))
        #expect(kind(probe(answer: LinkAnswerBytes.olderRelayRefusal)) == .olderRelay)
        #expect(kind(probe(answer: Array("220 smtp.example.org ESMTP\r\n".utf8))) == .notAESChat)
        // A key whose id is the key request's is no relay key.
        var zeroID: RelayPublicKey?
        for byte in UInt8(0)...255 where zeroID == nil {
            let key = try! RelayPublicKey(bytes: [UInt8](repeating: byte, count: 32))
            if key.keyID == RelayPublicKey.keyRequestID { zeroID = key }
        }
        if let zeroID {
            #expect(kind(probe(answer: LinkAnswerBytes.keys([zeroID]))) == .notAESChat)
        }
    }

    private func kind(_ result: Result<[RelayPublicKey], RelayLinkFailure>?) -> RelayLinkFailure.Kind? {
        guard case .failure(let failure) = result else { return nil }
        return failure.kind
    }

    /// What a probe makes of a relay that answers `answer` to anything.
    private func probe(answer: [UInt8]) -> Result<[RelayPublicKey], RelayLinkFailure>? {
        let loop = MemoryEventLoop()
        let (client, server) = MemoryConnection.pair(loop: loop, chunkSize: 3)
        let relay = PlaintextCollector()
        server.handler = relay
        var result: Result<[RelayPublicKey], RelayLinkFailure>?
        RelayKeyProbe.fetch(on: client, relay: "memory:7777", loop: loop) { result = $0 }
        server.write(answer)
        server.closeAfterFlushing(timeout: .seconds(1))
        loop.runUntilIdle()
        return result
    }
}
