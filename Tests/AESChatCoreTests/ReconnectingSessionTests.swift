import AESChatCLI
import AESChatCrypto
import AESChatTesting
import Testing

@testable import AESChatCore

/// A ``ReconnectingSession`` on the in-memory transport, with every connection running through a
/// ``TamperingLink`` the test can cut or make swallow frames (the session pins the link's key,
/// ``TestRelayKeys/current``).
final class SessionHarness {
    let chat = ChatHarness()
    var loop: MemoryEventLoop { chat.loop }
    let output = EventCollector()
    var links: [TamperingLink] = []
    var exitCode: ExitCode?
    var session: ReconnectingSession!
    /// While set, every connection attempt fails at once (the relay is away).
    var relayDown = false
    var connectionsRefused = 0
    let start = ContinuousClock.now

    /// - Parameter makeSecurity: alice's end-to-end layer for each connection; a room key by default.
    init(makeSecurity: ((ChatHarness) throws -> any MessageSecurity)? = nil) {
        session = ReconnectingSession(
            output: output, loop: loop, link: TestRelayKeys.link(),
            connect: { [unowned self] completion in
                if self.relayDown {
                    self.connectionsRefused += 1
                    self.loop.enqueue { completion(.failure(.timedOut("connection refused"))) }
                    return
                }
                self.chat.relayHarness.listener.connect { relayEnd in
                    let (clientEnd, linkEnd) = MemoryConnection.pair(loop: self.loop)
                    let link = TamperingLink(relayEnd: try! relayEnd.get())
                    TestLinkResponder(linkEnd) { $0.handler = link }
                    link.towardRelay.connection.handler = ForwardToClient(clientSide: linkEnd)
                    self.links.append(link)
                    completion(.success(clientEnd))
                }
            },
            makeSecurity: { [unowned self] _ in
                try makeSecurity?(self.chat) ?? RoomKeySecurity(roomKey: self.chat.key, room: "lobby", name: "alice")
            },
            makeClient: { [unowned self] security, connection, recent, ended in
                ChatRoom(
                    name: "alice", room: "lobby", security: security, connection: connection, output: self.output,
                    loop: self.loop, recentMessageIDs: recent, onFinish: ended)
            },
            random: { 1.0 }, now: { [unowned self] in self.start + self.loop.now }, fatal: { _ in },
            onFinish: { [unowned self] in self.exitCode = JoinMode.exitCode(for: $0) })
        session.start()
        loop.runUntilIdle()
    }

    /// Cuts the current connection as a network failure would.
    func cut() {
        links.last?.towardRelay.connection.close()
        loop.runUntilIdle()
    }

    var reconnectDelays: [Int] {
        output.events.compactMap {
            if case .reconnecting(_, let delay, _) = $0 { return delay }
            return nil
        }
    }
}

@Suite struct ReconnectingSessionTests {
    @Test func quickDropsBackOffExponentially_andAConnectionThatLastedResetsTheBackoff() {
        let harness = SessionHarness()
        // Each new connection is cut within seconds of registering.
        for _ in 0..<4 {
            harness.cut()
            harness.loop.advance(by: .seconds(5))
        }
        #expect(harness.reconnectDelays == [500, 1000, 2000, 4000])
        // The last connection lasted 60 s: the next loss starts from the first delay again.
        harness.loop.advance(by: .seconds(60))
        harness.cut()
        #expect(harness.reconnectDelays.last == 500)
        #expect(harness.output.events.filter { $0 == .reconnected }.count == 4)
        #expect(harness.exitCode == nil)
    }

    @Test func linesInFlightAndLinesTypedWhileAway_arriveOnceAndInOrder() {
        let harness = SessionHarness()
        let (_, bobOutput, _) = harness.chat.client("bob")
        harness.session.submit(line: "first")
        harness.loop.runUntilIdle()
        // "second" reaches the relay but its confirmation does not; "third" never leaves.
        harness.links.last!.rewrite = {
            if case .ping = $0 { return [] }
            return [$0]
        }
        harness.session.submit(line: "second")
        harness.loop.runUntilIdle()
        harness.links.last!.rewrite = { _ in [] }
        harness.session.submit(line: "third")
        harness.loop.runUntilIdle()
        harness.cut()
        harness.session.submit(line: "typed while away")
        harness.loop.advance(by: .seconds(1))
        harness.session.submit(line: "after")
        harness.session.endOfInput()
        harness.loop.advance(by: .seconds(1))
        #expect(bobOutput.messages == ["first", "second", "third", "typed while away", "after"].map { "alice: \($0)" })
        #expect(
            harness.output.events.contains(
                .info("sent again 2 line(s) the relay had not confirmed when the connection was lost")))
        #expect(harness.exitCode == .success)
    }
}

/// A ``ReconnectingSession`` whose every connection reaches a scripted relay (``TestLinkResponder``).
final class ScriptedRelaySession {
    let loop = MemoryEventLoop()
    let output = EventCollector()
    var responders: [TestLinkResponder] = []
    var fatal: [String] = []
    var outcome: ReconnectingSession.Outcome?
    var session: ReconnectingSession!
    let start = ContinuousClock.now

    init(relayKey: X25519PrivateKey, script: TestLinkResponder.Script) {
        session = ReconnectingSession(
            output: output, loop: loop, link: TestRelayKeys.link(),
            connect: { [unowned self] completion in
                let (client, server) = MemoryConnection.pair(loop: self.loop, chunkSize: 5)
                self.responders.append(TestLinkResponder(server, key: relayKey, script: script))
                self.loop.enqueue { completion(.success(client)) }
            },
            makeSecurity: { _ in RoomKeySecurity(roomKey: RoomKey(bytes: Array(0..<32)), room: "lobby", name: "alice")
            },
            makeClient: { [unowned self] security, connection, recent, ended in
                ChatRoom(
                    name: "alice", room: "lobby", security: security, connection: connection, output: self.output,
                    loop: self.loop, recentMessageIDs: recent, onFinish: ended)
            },
            random: { 1.0 }, now: { [unowned self] in self.start + self.loop.now },
            fatal: { [unowned self] in self.fatal.append($0) }, onFinish: { [unowned self] in self.outcome = $0 })
        session.start()
        session.submit(line: "a line that must not leave")
        loop.advance(by: .seconds(600))
    }
}

@Suite struct ReconnectingSessionLinkTests {
    static let pinned = TestRelayKeys.pinned(TestRelayKeys.current)

    static let endings: [(X25519PrivateKey, TestLinkResponder.Script, RelayLinkFailure.Kind, ExitCode)] = [
        (
            TestRelayKeys.other, .complete,
            .keyMismatch(pinned: pinned, presented: [TestRelayKeys.pinned(TestRelayKeys.other)]), .notPermitted
        ),
        (TestRelayKeys.other, .impersonate, .handshakeFailed(pinned: pinned), .notPermitted),
        (TestRelayKeys.current, .tamperMessage2, .handshakeFailed(pinned: pinned), .notPermitted),
        (TestRelayKeys.current, .answer(LinkAnswerBytes.olderRelayRefusal), .olderRelay, .unavailable),
        (TestRelayKeys.current, .answer(LinkAnswerBytes.version(3)), .versionMismatch(relayVersion: 3), .unavailable),
        (TestRelayKeys.current, .answer(Array("HTTP/1.0 400\r\n".utf8)), .notAESChat, .unavailable),
    ]

    @Test(arguments: endings)
    func aLinkFailureThatRetryingCannotFix_endsTheSessionAtOnce_andSendsNothing(
        relayKey: X25519PrivateKey, script: TestLinkResponder.Script, kind: RelayLinkFailure.Kind, code: ExitCode
    ) throws {
        let harness = ScriptedRelaySession(relayKey: relayKey, script: script)
        #expect(harness.responders.count == 1)
        let outcome = try #require(harness.outcome)
        #expect(outcome == .linkFailed(RelayLinkFailure(relay: "memory:7777", kind: kind)))
        #expect(JoinMode.exitCode(for: outcome) == code)
        #expect(harness.responders[0].received.count == LinkPreamble.length + 2 + NoiseHandshake.emptyMessageLength)
        #expect(!harness.output.events.contains { if case .reconnecting = $0 { true } else { false } })
        // The session does not report it: the caller shows the failure once.
        #expect(harness.fatal.isEmpty)
    }

    @Test func aBusyRelay_isRetriedLikeALostConnection() {
        let harness = ScriptedRelaySession(relayKey: TestRelayKeys.current, script: .answer(LinkAnswerBytes.busy))
        #expect(harness.responders.count > 3)
        #expect(harness.outcome == .unavailable)
        #expect(
            harness.output.events.contains {
                if case .reconnecting(_, _, let reason) = $0 {
                    reason == "the relay at memory:7777 is busy with other connections"
                } else {
                    false
                }
            })
        for responder in harness.responders {
            #expect(responder.received.count == LinkPreamble.length + 2 + NoiseHandshake.emptyMessageLength)
        }
    }
}

@Suite struct BusyRelayTests {
    @Test func aRelayBusyAtFirst_isTriedAgain_andTheLineTypedMeanwhileArrives() {
        let chat = ChatHarness()
        let (_, bobOutput, _) = chat.client("bob")
        let loop = chat.loop
        let output = EventCollector()
        var attempts = 0
        var busyRelay: TestLinkResponder?
        var outcome: ReconnectingSession.Outcome?
        let session = ReconnectingSession(
            output: output, loop: loop,
            link: RelayLinkConfiguration(relayKey: chat.relayHarness.relayKey, relay: "r:1"),
            connect: { completion in
                attempts += 1
                if attempts == 1 {
                    let (client, server) = MemoryConnection.pair(loop: loop)
                    busyRelay = TestLinkResponder(
                        server, key: chat.relayHarness.relay.configuration.relayKey,
                        script: .answer(LinkAnswerBytes.busy))
                    loop.enqueue { completion(.success(client)) }
                } else {
                    chat.relayHarness.listener.connect { completion($0.map { $0 }) }
                }
            },
            makeSecurity: { _ in RoomKeySecurity(roomKey: chat.key, room: "lobby", name: "alice") },
            makeClient: { security, connection, recent, ended in
                ChatRoom(
                    name: "alice", room: "lobby", security: security, connection: connection, output: output,
                    loop: loop, recentMessageIDs: recent, onFinish: ended)
            },
            random: { 1.0 }, fatal: { _ in }, onFinish: { outcome = $0 })
        session.start()
        loop.runUntilIdle()
        session.submit(line: "typed while the relay was busy")
        #expect(
            output.events.first
                == .reconnecting(
                    attempt: 1, delayMilliseconds: 500, reason: "the relay at r:1 is busy with other connections"))
        #expect(busyRelay?.received.count == LinkPreamble.length + 2 + NoiseHandshake.emptyMessageLength)
        loop.advance(by: .seconds(1))
        #expect(attempts == 2)
        #expect(output.events.contains(.reconnected))
        #expect(bobOutput.messages == ["alice: typed while the relay was busy"])
        #expect(outcome == nil)
    }
}

@Suite struct RelayKeyRotationTests {
    @Test func aRelayAnnouncingItsNewKey_overTheOldOnesLink_isPinnedForTheNextConnections() {
        let old = TestRelayKeys.current
        let new = TestRelayKeys.other
        let relay = RelayHarness(configuration: RelayConfiguration(relayKey: new, previousRelayKey: old))
        let loop = relay.loop
        let output = EventCollector()
        var clientEnds: [MemoryConnection] = []
        var announcements: [([RelayPublicKey], RelayPublicKey)] = []
        let session = ReconnectingSession(
            output: output, loop: loop, link: TestRelayKeys.link(old),
            connect: { completion in
                relay.listener.connect { result in
                    let end = try! result.get()
                    end.recordsWrites = true
                    clientEnds.append(end)
                    completion(.success(end))
                }
            },
            makeSecurity: { _ in RoomKeySecurity(roomKey: RoomKey(bytes: Array(0..<32)), room: "lobby", name: "alice")
            },
            makeClient: { security, connection, recent, ended in
                ChatRoom(
                    name: "alice", room: "lobby", security: security, connection: connection, output: output,
                    loop: loop, recentMessageIDs: recent, onFinish: ended)
            },
            random: { 1.0 }, fatal: { _ in }, onFinish: { _ in })
        session.onRelayKeysAnnounced = { announcements.append(($0, $1)) }
        session.start()
        loop.runUntilIdle()
        let newKey = TestRelayKeys.pinned(new)
        let oldKey = TestRelayKeys.pinned(old)
        #expect(announcements.count == 1)
        #expect(announcements.first?.0 == [newKey, oldKey])
        #expect(announcements.first?.1 == oldKey)
        #expect(session.link.relayKey == newKey)
        #expect(output.events.contains { if case .ready = $0 { true } else { false } })
        // The next connection names the new key.
        clientEnds.last?.close()
        loop.advance(by: .seconds(2))
        #expect(clientEnds.count == 2)
        #expect(Array(clientEnds[0].writtenBytes[8..<12]) == oldKey.keyID)
        #expect(Array(clientEnds[1].writtenBytes[8..<12]) == newKey.keyID)
        #expect(output.events.contains(.reconnected))
        // A link made under the current key hears no announcement.
        #expect(announcements.count == 1)
    }
}
