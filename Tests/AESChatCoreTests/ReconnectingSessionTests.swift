import AESChatCLI
import AESChatTesting
import Testing

@testable import AESChatCore

/// A ``ReconnectingSession`` on the in-memory transport, with every connection running through a
/// ``TamperingLink`` the test can cut or make swallow frames.
final class SessionHarness {
    let chat = ChatHarness()
    var loop: MemoryEventLoop { chat.loop }
    let output = EventCollector()
    var links: [TamperingLink] = []
    var exitCode: ExitCode?
    var session: ReconnectingSession!
    let start = ContinuousClock.now

    init() {
        session = ReconnectingSession(
            output: output, loop: loop,
            connect: { [unowned self] completion in
                self.chat.relayHarness.listener.connect { relayEnd in
                    let (clientEnd, linkEnd) = MemoryConnection.pair(loop: self.loop)
                    let link = TamperingLink(relayEnd: try! relayEnd.get())
                    linkEnd.handler = link
                    link.towardRelay.connection.handler = ForwardToClient(clientSide: linkEnd)
                    self.links.append(link)
                    completion(.success(clientEnd))
                }
            },
            makeSecurity: { [unowned self] _ in RoomKeySecurity(roomKey: self.chat.key, room: "lobby", name: "alice") },
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
