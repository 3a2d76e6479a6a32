import AESChatCLI
import AESChatTesting
import Testing

@testable import AESChatCore

/// The relay's limits against hostile clients (``RelayLimits``), on the in-memory transport with
/// virtual time.
@Suite struct RelayLimitsTests {
    @Test func defaults_areThoseOfServe() {
        let serve = ServeOptions()
        let limits = RelayLimits()
        #expect(limits.handshakeTimeout == .seconds(serve.handshakeTimeout))
        #expect(limits.maximumConnections == serve.maxConnections)
        #expect(limits.maximumConnectionsPerAddress == serve.maxConnectionsPerAddress)
        #expect(limits.messageRate == serve.messageRate)
        #expect(limits.messageBurst == serve.messageBurst)
        #expect(limits.idleTimeout == .seconds(serve.idleTimeout))
        #expect(limits.byteRate == serve.byteRate)
        #expect(limits.byteBurst == serve.byteBurst)
        #expect(limits.incompleteFrameGrace == .seconds(serve.frameGrace))
        #expect(limits.minimumFrameRate == serve.minFrameRate)
        #expect(limits.incompleteFrameBudget == serve.frameBudget)
        #expect(limits.incompleteFrameBudgetPerAddress == serve.frameBudgetPerAddress)
        #expect(RelayConfiguration().maximumPendingOutput == serve.maxPendingOutput)
        #expect(RelayConfiguration().maximumFrameLength == serve.maxFrameSize)
    }

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
        // No link yet, so no error frame: the busy answer, in the clear (the reason goes to the log).
        #expect(third.connection.answer == .busy)
        #expect(harness.log.lines.contains { $0.contains("too many connections: the relay holds 2") })
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
        #expect(second.connection.answer == .busy)
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

    @Test func multicast_namingAMemberTwice_refusesTheSenderAsMalformed_andDeliversNothing() {
        let harness = RelayHarness()
        let sender = harness.member("sender")
        let bob = harness.member("bob")
        sender.send(.multicast(to: ["bob", "bob"], payload: ArraySlice("twice".utf8)))
        harness.loop.runUntilIdle()
        #expect(sender.errors == [RelayErrorCode.malformedFrame.rawValue])
        #expect(sender.closed)
        #expect(bob.delivered.isEmpty)
        #expect(!bob.closed)
    }

    @Test func multicast_costsItsPayloadOncePerRecipient_againstTheByteRate() {
        let harness = RelayHarness(
            configuration: configuration {
                $0.byteRate = 1_000
                $0.byteBurst = 2_000
            })
        let direct = harness.member("direct")
        let fanning = harness.member("fanning")
        let others = ["a", "b", "c"].map { harness.member($0) }
        let payload = ArraySlice([UInt8](repeating: 0x61, count: 600))
        // 3 × 600 bytes once per recipient: 1,800 of the 2,000 allowed.
        for _ in 0..<3 { direct.send(.direct(to: "a", payload: payload)) }
        fanning.send(.multicast(to: ["a", "b", "c"], payload: payload))
        harness.loop.runUntilIdle()
        #expect(direct.errors.isEmpty)
        #expect(fanning.errors.isEmpty)
        // The second multicast would bring it to 3,600.
        fanning.send(.multicast(to: ["a", "b", "c"], payload: payload))
        harness.loop.runUntilIdle()
        #expect(fanning.errors == [RelayErrorCode.flooding.rawValue])
        #expect(fanning.closed)
        #expect(!direct.closed)
        #expect(others.allSatisfy { !$0.closed })
        #expect(others[1].delivered.count == 1)
    }

    @Test func directFrames_toAMemberThatStoppedReading_refuseTheSender_notTheMember() {
        var configuration = RelayConfiguration()
        configuration.maximumFrameLength = 64 * 1024
        configuration.maximumPendingOutput = 1024 * 1024
        let harness = RelayHarness(configuration: configuration)
        let victim = harness.member("victim")
        let attacker = harness.member("attacker")
        let friend = harness.member("friend")
        victim.memory.otherEnd?.holdsOutput = true
        // 30 frames of 40,000 bytes: 1.2 MB, beyond the cap of 1 MiB; one sender's share is 512 KiB.
        let payload = ArraySlice([UInt8](repeating: 0x62, count: 40_000))
        for _ in 0..<30 { attacker.send(.direct(to: "victim", payload: payload)) }
        harness.loop.runUntilIdle()
        #expect(attacker.errors == [RelayErrorCode.recipientBacklog.rawValue])
        #expect(attacker.closed)
        // Another sender's frames still reach the member, which is still here.
        friend.send(.direct(to: "victim", payload: ArraySlice("still here?".utf8)))
        harness.loop.runUntilIdle()
        victim.memory.otherEnd?.releaseHeldOutput()
        harness.loop.runUntilIdle()
        #expect(victim.errors.isEmpty)
        #expect(!victim.closed)
        #expect(victim.delivered.filter { $0.hasPrefix("attacker:") }.count == 13)
        #expect(victim.delivered.last == "friend:still here?")
        #expect(harness.relay.memberCount == 2)
    }

    @Test func directFrames_toAMemberThatReads_areNeverRefused() {
        var configuration = RelayConfiguration()
        configuration.maximumFrameLength = 64 * 1024
        configuration.maximumPendingOutput = 1024 * 1024
        let harness = RelayHarness(configuration: configuration)
        let receiver = harness.member("receiver")
        let sender = harness.member("sender")
        let payload = ArraySlice([UInt8](repeating: 0x62, count: 40_000))
        for _ in 0..<10 {
            for _ in 0..<10 { sender.send(.direct(to: "receiver", payload: payload)) }
            harness.loop.runUntilIdle()
        }
        #expect(sender.errors.isEmpty)
        #expect(receiver.delivered.count == 100)
    }

    @Test func pings_takeAFrameToken_andAPingFlooderIsCutOff() {
        let harness = RelayHarness(
            configuration: configuration {
                $0.messageRate = 10
                $0.messageBurst = 20
            })
        let pinger = harness.member("pinger")
        let listener = harness.member("listener")
        for token in 0..<20 { pinger.send(.ping(token: UInt64(token))) }
        harness.loop.runUntilIdle()
        #expect(pinger.frames.filter { if case .pong = $0 { true } else { false } }.count == 20)
        #expect(!pinger.closed)
        pinger.send(.ping(token: 99))
        harness.loop.runUntilIdle()
        #expect(pinger.errors == [RelayErrorCode.flooding.rawValue])
        #expect(pinger.closed)
        #expect(!listener.closed)
    }

    @Test func pingsThatArriveTogether_getOnePong_withTheLastToken_afterTheFramesBeforeIt() {
        let harness = RelayHarness()
        let pinger = harness.member("pinger")
        let listener = harness.member("listener")
        var batch: [UInt8] = []
        for token in 1...5 {
            batch += ClientFrame.publish(payload: ArraySlice("line \(token)".utf8)).encoded()
            batch += ClientFrame.ping(token: UInt64(token)).encoded()
        }
        pinger.connection.write(batch)
        harness.loop.runUntilIdle()
        #expect(pinger.frames.filter { if case .pong = $0 { true } else { false } } == [.pong(token: 5)])
        #expect(listener.delivered == (1...5).map { "pinger:line \($0)" })
    }

    @Test func frameInProgress_isRefusedAfterItsDeadline_butNotBefore() {
        let harness = RelayHarness(
            configuration: configuration {
                $0.incompleteFrameGrace = .seconds(2)
                $0.minimumFrameRate = 1024
                $0.idleTimeout = .seconds(3600)
            })
        let slow = harness.member("slow")
        let steady = harness.member("steady")
        // A publish of 4,096 + 5 bytes has 2 s + 4 s to arrive. The slow sender sends all but 5
        // bytes, then one a second: each byte resets the idle clock, but not the frame's deadline.
        let frame = ClientFrame.publish(payload: ArraySlice([UInt8](repeating: 0x63, count: 4096))).encoded()
        slow.connection.write(Array(frame.dropLast(5)))
        steady.connection.write(Array(frame.dropLast()))
        harness.loop.runUntilIdle()
        for index in 0..<4 {
            harness.loop.advance(by: .seconds(1))
            slow.connection.write([frame[frame.count - 5 + index]])
            harness.loop.runUntilIdle()
        }
        harness.loop.advance(by: .seconds(1))
        #expect(!slow.closed && !steady.closed)
        steady.connection.write([frame.last!])
        harness.loop.runUntilIdle()
        harness.loop.advance(by: .seconds(2))
        #expect(slow.errors == [RelayErrorCode.slowFrame.rawValue])
        #expect(slow.closed)
        #expect(!steady.closed)
        #expect(steady.errors.isEmpty)
    }

    @Test func largeFramesInProgress_beyondTheBudget_areRefused_andAdmittedOnceOthersEnd() {
        let harness = RelayHarness(
            configuration: configuration {
                $0.incompleteFrameBudget = 0
                $0.incompleteFrameBudgetPerAddress = 300 * 1024
            })
        // Each starts a publish of 100 KiB (a large frame, read into a buffer of its own).
        let frame = ClientFrame.publish(payload: ArraySlice([UInt8](repeating: 0x64, count: 100 * 1024))).encoded()
        let senders = (0..<4).map { harness.member("s\($0)") }
        for sender in senders { sender.connection.write(Array(frame.prefix(50 * 1024))) }
        harness.loop.runUntilIdle()
        #expect(senders[0..<2].allSatisfy { $0.errors.isEmpty && !$0.closed })
        #expect(senders[2].errors == [RelayErrorCode.frameBudget.rawValue])
        #expect(senders[3].errors == [RelayErrorCode.frameBudget.rawValue])
        senders[0].connection.write(Array(frame.dropFirst(50 * 1024)))
        harness.loop.runUntilIdle()
        let again = harness.member("again")
        again.connection.write(frame)
        harness.loop.runUntilIdle()
        #expect(again.errors.isEmpty)
        #expect(senders[1].errors.isEmpty)
    }

    @Test func smallFramesInProgress_countAgainstTheBudgetOfTheirAddress() {
        let harness = RelayHarness(
            configuration: configuration {
                $0.incompleteFrameBudget = 0
                $0.incompleteFrameBudgetPerAddress = 100 * 1024
            })
        // Each starts a publish of 40,000 bytes (kept by the decoder, which reserves all of it).
        let frame = ClientFrame.publish(payload: ArraySlice([UInt8](repeating: 0x65, count: 40_000))).encoded()
        let senders = (0..<3).map { harness.member("s\($0)") }
        for sender in senders { sender.connection.write(Array(frame.prefix(1024))) }
        harness.loop.runUntilIdle()
        #expect(senders[0..<2].allSatisfy { $0.errors.isEmpty && !$0.closed })
        #expect(senders[2].errors == [RelayErrorCode.frameBudget.rawValue])
        senders[0].connection.write(Array(frame.dropFirst(1024)))
        harness.loop.runUntilIdle()
        let again = harness.member("again")
        again.connection.write(Array(frame.prefix(1024)))
        harness.loop.runUntilIdle()
        #expect(again.errors.isEmpty)
    }

    @Test func peerAddress_dropsThePort() {
        #expect(RelayLimits.address(ofPeer: "127.0.0.1:5000") == "127.0.0.1")
        #expect(RelayLimits.address(ofPeer: "[::1]:5000") == "[::1]")
        #expect(RelayLimits.address(ofPeer: "memory-client") == "memory-client")
    }
}
