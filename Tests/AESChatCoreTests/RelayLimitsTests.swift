import Testing

@testable import AESChatCore

/// The relay's limits against hostile clients (``RelayLimits``), on the in-memory transport with
/// virtual time.
@Suite struct RelayLimitsTests {
    private func configuration(_ change: (inout RelayLimits) -> Void) -> RelayConfiguration {
        var configuration = RelayConfiguration()
        change(&configuration.limits)
        return configuration
    }

    @Test func handshakeTimeout_closesAConnectionThatNeverSaysHello() {
        let harness = RelayHarness(configuration: configuration { $0.handshakeTimeout = .seconds(3) })
        let silent = harness.peer()
        let member = harness.member("alice")
        harness.loop.advance(by: .seconds(2))
        #expect(!silent.closed)
        harness.loop.advance(by: .seconds(2))
        #expect(silent.errors == [RelayErrorCode.handshakeTimeout.rawValue])
        #expect(silent.closed)
        #expect(!member.closed)
        #expect(harness.relay.connectionCount == 1)
    }

    @Test func maximumConnections_refusesTheConnectionBeyondIt_andAcceptsOnceOneCloses() {
        let harness = RelayHarness(configuration: configuration { $0.maximumConnections = 2 })
        let first = harness.member("a")
        _ = harness.member("b")
        let third = harness.peer()
        harness.loop.advance(by: .seconds(2))
        #expect(third.errors == [RelayErrorCode.tooManyConnections.rawValue])
        #expect(harness.relay.connectionCount == 2)
        first.connection.close()
        harness.loop.runUntilIdle()
        let fourth = harness.member("d")
        #expect(fourth.errors.isEmpty)
        #expect(!fourth.closed)
    }

    @Test func maximumConnectionsPerAddress_refusesTheConnectionBeyondIt() {
        let harness = RelayHarness(
            configuration: configuration {
                $0.maximumConnections = 0
                $0.maximumConnectionsPerAddress = 1
            })
        _ = harness.member("a")
        let second = harness.peer()
        harness.loop.advance(by: .seconds(2))
        #expect(second.errors == [RelayErrorCode.tooManyConnections.rawValue])
        #expect(harness.log.lines.contains { $0.contains("too many connections from memory-client") })
    }

    @Test func messageRate_allowsTheBurst_thenDisconnectsAFlooder() {
        let harness = RelayHarness(
            configuration: configuration {
                $0.messageRate = 10
                $0.messageBurst = 20
            })
        let flooder = harness.member("flooder")
        let listener = harness.member("listener")
        for index in 0..<20 { flooder.send(.publish(payload: ArraySlice("m\(index)".utf8))) }
        harness.loop.runUntilIdle()
        #expect(listener.delivered.count == 20)
        #expect(!flooder.closed)
        harness.loop.advance(by: .seconds(1))
        for index in 0..<10 { flooder.send(.publish(payload: ArraySlice("n\(index)".utf8))) }
        harness.loop.runUntilIdle()
        #expect(!flooder.closed)
        flooder.send(.publish(payload: ArraySlice("one too many".utf8)))
        harness.loop.runUntilIdle()
        #expect(flooder.errors == [RelayErrorCode.flooding.rawValue])
        #expect(flooder.closed)
        #expect(listener.delivered.count == 30)
    }

    @Test func idleTimeout_pingsASilentMember_andClosesItWhenNoPongComes() {
        let harness = RelayHarness(configuration: configuration { $0.idleTimeout = .seconds(5) })
        let silent = harness.member("silent")
        let answering = harness.member("answering")
        harness.loop.advance(by: .seconds(5))
        #expect(silent.frames.contains { if case .ping = $0 { true } else { false } })
        for frame in answering.frames { if case .ping(let token) = frame { answering.send(.pong(token: token)) } }
        harness.loop.advance(by: .seconds(5))
        #expect(silent.errors == [RelayErrorCode.idleTimeout.rawValue])
        #expect(silent.closed)
        #expect(!answering.closed)
    }

    @Test func peerAddress_dropsThePort() {
        #expect(RelayLimits.address(ofPeer: "127.0.0.1:5000") == "127.0.0.1")
        #expect(RelayLimits.address(ofPeer: "[::1]:5000") == "[::1]")
        #expect(RelayLimits.address(ofPeer: "memory-client") == "memory-client")
    }
}
