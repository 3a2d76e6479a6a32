import AESChatTesting
import Testing

@testable import AESChatCore

@Suite struct FrameFeedTests {
    /// Feeds `bytes` in chunks and collects (type, body) of every frame handed out.
    static func feedAll(
        _ bytes: [UInt8], maximumLength: Int = Frame.defaultMaximumLength, chunkSizes: (Int) -> Int
    ) throws -> (frames: [(UInt8, [UInt8])], decoder: FrameDecoder) {
        var decoder = FrameDecoder(maximumLength: maximumLength)
        var frames: [(UInt8, [UInt8])] = []
        var offset = 0
        var step = 0
        while offset < bytes.count {
            let size = min(max(1, chunkSizes(step)), bytes.count - offset)
            let failure: WireError? = bytes[offset..<offset + size].withUnsafeBytes { chunk -> WireError? in
                do {
                    try decoder.feed(chunk) { (type: UInt8, body: UnsafeRawBufferPointer) throws(WireError) -> Bool in
                        frames.append((type, Array(body)))
                        return true
                    }
                    return nil
                } catch {
                    return error as? WireError
                }
            }
            if let failure { throw failure }
            offset += size
            step += 1
        }
        return (frames, decoder)
    }

    @Test func feed_handsOutSameFrames_inAnyChunking_andKeepsNothingAfterwards() throws {
        let stream = Array(repeating: FrameDecoderTests.frames.flatMap { $0 }, count: 10).flatMap { $0 }
        var generator = SeededGenerator(seed: 7)
        for round in 0..<30 {
            let (frames, decoder) = try Self.feedAll(stream) { step in
                round == 0 ? 1 : round == 1 ? stream.count : Int.random(in: 1...900, using: &generator)
            }
            #expect(frames.count == 40)
            #expect(
                frames.map(\.0).prefix(4) == [FrameType.hello, FrameType.publish, FrameType.bye, FrameType.deliver])
            #expect(frames[1].1 == Array(repeating: 7, count: 3000))
            #expect(decoder.bufferedByteCount == 0)
        }
    }

    @Test func feed_keepsOnlyTheIncompleteTail() throws {
        let frame = ClientFrame.publish(payload: Array(repeating: 9, count: 100)[...]).encoded()
        let (frames, decoder) = try Self.feedAll(frame + frame[0..<30]) { _ in frame.count + 30 }
        #expect(frames.count == 1)
        #expect(decoder.bufferedByteCount == 30)
    }

    @Test func feed_refusesOversizedPrefix_andZeroLength() {
        #expect(throws: WireError.frameTooLarge(length: 0x0001_0000, maximum: 1024)) {
            _ = try Self.feedAll([0x00, 0x01, 0x00, 0x00, 0x02], maximumLength: 1024) { _ in 5 }
        }
        #expect(throws: WireError.emptyFrame) {
            _ = try Self.feedAll(ClientFrame.bye.encoded() + [0, 0, 0, 0]) { _ in 1 }
        }
    }

    @Test func feed_stops_whenTheHandlerSaysSo() throws {
        var decoder = FrameDecoder()
        var seen = 0
        let stream = Array(repeating: ClientFrame.bye.encoded(), count: 5).flatMap { $0 }
        let failure: WireError? = stream.withUnsafeBytes { bytes -> WireError? in
            do {
                try decoder.feed(bytes) { (_: UInt8, _: UnsafeRawBufferPointer) throws(WireError) -> Bool in
                    seen += 1
                    return seen < 2
                }
                return nil
            } catch {
                return error as? WireError
            }
        }
        #expect(failure == nil)
        #expect(seen == 2)
        #expect(decoder.bufferedByteCount == 0)
    }
}

@Suite struct SharedBufferTests {
    @Test func sharedBuffer_appendsFieldsInNetworkOrder() {
        let buffer = SharedBuffer(capacity: 32)
        // As a ByteSink, the way the Wire encoders write into it.
        var sink = buffer
        sink.write(UInt32(0x0102_0304))
        sink.write(UInt8(0x84))
        sink.writeShortString("bob")
        [UInt8](arrayLiteral: 9, 8).withUnsafeBytes { buffer.append($0) }
        #expect(buffer.count == 11)
        #expect(buffer.remainingCapacity == 21)
        #expect(buffer.withUnsafeBytes(in: 0..<11) { Array($0) } == [1, 2, 3, 4, 0x84, 3, 0x62, 0x6F, 0x62, 9, 8])
        buffer.reset()
        #expect(buffer.count == 0)
    }

    @Test func memoryConnection_copiesASharedRange() {
        let loop = MemoryEventLoop()
        let (client, server) = MemoryConnection.pair(loop: loop)
        client.recordsWrites = true
        let buffer = SharedBuffer(capacity: 16)
        [UInt8](1...10).withUnsafeBytes { buffer.append($0) }
        client.write(buffer, range: 2..<5)
        loop.runUntilIdle()
        #expect(client.writtenBytes == [3, 4, 5])
        _ = server
    }
}

@Suite struct FanOutTests {
    @Test func relay_sendsEachMemberOneRangePerIteration_coveringEveryFrame_inOrder() {
        // Many publishes in one iteration reach every other member whole and in order, joined and
        // left frames keep their place among them, and nobody gets its own messages.
        let harness = RelayHarness()
        let peers = (0..<6).map { harness.member("m\($0)") }
        for round in 0..<40 {
            for (index, peer) in peers.enumerated() where (index + round) % 3 != 0 {
                peer.send(.publish(payload: Array("\(index)/\(round)".utf8)[...]))
            }
            if round == 20 { peers[5].send(.bye) }
        }
        harness.loop.runUntilIdle()
        for (receiver, peer) in peers.enumerated().dropLast() {
            for (sender, _) in peers.enumerated() where sender != receiver {
                let expected = (0..<40).filter { (sender + $0) % 3 != 0 && (sender != 5 || $0 <= 20) }
                    .map { "m\(sender):\(sender)/\($0)" }
                #expect(peer.delivered.filter { $0.hasPrefix("m\(sender):") } == expected)
            }
            #expect(!peer.delivered.contains { $0.hasPrefix("m\(receiver):") })
            #expect(peer.frames.contains(.left(name: "m5")))
        }
    }

    @Test func relay_welcomesWithSortedRoster_whateverTheJoinOrder() {
        let harness = RelayHarness()
        for name in ["mike", "alice", "zed", "bob", "Carl", "a.b", "a-b"] {
            let peer = harness.peer()
            peer.send(
                .hello(
                    version: relayProtocolVersion, name: name, room: "lobby", profile: name == "bob" ? [1, 2, 3] : []))
            harness.loop.runUntilIdle()
        }
        let late = harness.member("late")
        guard case .welcome(_, _, _, let members)? = late.frames.first else {
            Issue.record("no welcome")
            return
        }
        #expect(members.map(\.name) == ["Carl", "a-b", "a.b", "alice", "bob", "mike", "zed"])
        #expect(members.first { $0.name == "bob" }?.profile == [1, 2, 3])
    }

    @Test func relay_parsesDirectAndMulticastInPlace_andRefusesBadRecipients() {
        let harness = RelayHarness()
        let alice = harness.member("alice")
        let bob = harness.member("bob")
        let carol = harness.member("carol")
        let dave = harness.member("dave")
        alice.send(.multicast(to: ["bob", "dave", "nobody"], payload: [7, 8][...]))
        alice.send(.direct(to: "carol", payload: [9][...]))
        harness.loop.runUntilIdle()
        #expect(bob.frames.last == .deliver(from: "alice", isDirect: false, payload: [7, 8][...]))
        #expect(dave.frames.last == .deliver(from: "alice", isDirect: false, payload: [7, 8][...]))
        #expect(carol.frames.last == .deliver(from: "alice", isDirect: true, payload: [9][...]))
        for bad: [UInt8] in [[0x03, 0x05, 0x62], [0x03, 0x01, 0xFF, 0x00], [0x07], [0x07, 0x02, 0x01, 0x62]] {
            let eve = harness.member("eve")
            var frame: [UInt8] = [0, 0, 0, UInt8(bad.count)]
            frame += bad
            eve.connection.write(frame)
            harness.loop.runUntilIdle()
            #expect(eve.errors == [RelayErrorCode.malformedFrame.rawValue], "\(bad)")
            #expect(eve.closed)
        }
        let stranger = harness.peer()
        stranger.send(.direct(to: "bob", payload: [1][...]))
        harness.loop.runUntilIdle()
        #expect(stranger.errors == [RelayErrorCode.notRegistered.rawValue])
    }

    @Test func relay_rosterForgetsMembers_thatLeave() {
        let harness = RelayHarness()
        let peers = ["a", "b", "c", "d"].map { harness.member($0) }
        peers[1].connection.close()
        peers[3].send(.bye)
        harness.loop.runUntilIdle()
        let late = harness.member("e")
        #expect(
            late.frames.first
                == .welcome(
                    version: relayProtocolVersion, name: "e", room: "lobby",
                    members: [
                        MemberEntry(name: "a"), MemberEntry(name: "c"),
                    ]))
    }
}

/// The presence window (`RelayConfiguration.presenceWindow`): a room's joined and left frames wait for more of their
/// kind, so that a burst reaches each member together, while everything else keeps its order and its promptness.
@Suite struct PresenceWindowTests {
    static func harness(window: Duration, perMember: Duration = .zero) -> RelayHarness {
        var configuration = RelayConfiguration()
        configuration.presenceWindow = window
        configuration.presenceWindowPerMember = perMember
        return RelayHarness(configuration: configuration)
    }

    static func presence(_ peer: RawPeer) -> [RelayFrame] {
        peer.frames.filter {
            if case .joined = $0 { return true }
            if case .left = $0 { return true }
            return false
        }
    }

    @Test func joinsAndLeaves_waitForTheWindow_thenArriveTogether_inOrder() {
        let harness = Self.harness(window: .milliseconds(50))
        let alice = harness.member("alice")
        let bob = harness.member("bob")
        harness.loop.advance(by: .milliseconds(10))
        let carol = harness.member("carol")
        carol.send(.bye)
        harness.loop.runUntilIdle()
        // Each join came in its own loop iteration; none has gone out yet.
        #expect(Self.presence(alice).isEmpty)
        harness.loop.advance(by: .milliseconds(39))
        #expect(Self.presence(alice).isEmpty)
        harness.loop.advance(by: .milliseconds(1))
        #expect(
            Self.presence(alice) == [
                .joined(MemberEntry(name: "bob")), .joined(MemberEntry(name: "carol")), .left(name: "carol"),
            ])
        #expect(Self.presence(bob) == [.joined(MemberEntry(name: "carol")), .left(name: "carol")])
        // The next join opens a new window of its own.
        _ = harness.member("dave")
        harness.loop.advance(by: .milliseconds(49))
        #expect(Self.presence(alice).count == 3)
        harness.loop.advance(by: .milliseconds(1))
        #expect(Self.presence(alice).last == .joined(MemberEntry(name: "dave")))
    }

    @Test func aMessage_endsTheWait_andComesAfterThePresenceBeforeIt() {
        let harness = Self.harness(window: .seconds(10))
        let alice = harness.member("alice")
        let bob = harness.member("bob")
        _ = harness.member("carol")
        bob.send(.publish(payload: Array("hi".utf8)[...]))
        harness.loop.runUntilIdle()
        // No time passed: the message sent the waiting joins with it, in the room's order.
        #expect(
            alice.frames.dropFirst() == [
                .joined(MemberEntry(name: "bob")), .joined(MemberEntry(name: "carol")),
                .deliver(from: "bob", isDirect: false, payload: Array("hi".utf8)[...]),
            ])
        #expect(bob.frames.dropFirst() == [.joined(MemberEntry(name: "carol"))])
    }

    @Test func aPrivateFrame_handsOverTheWaitingPresenceFirst() {
        let harness = Self.harness(window: .seconds(10))
        let alice = harness.member("alice")
        let bob = harness.member("bob")
        bob.send(.direct(to: "alice", payload: [7][...]))
        alice.send(.ping(token: 5))
        harness.loop.runUntilIdle()
        #expect(
            alice.frames.dropFirst() == [
                .joined(MemberEntry(name: "bob")), .deliver(from: "bob", isDirect: true, payload: [7][...]),
                .pong(token: 5),
            ])
    }

    @Test func aNewcomer_duringTheWindow_getsOnlyWhatCameAfterItsWelcome() {
        let harness = Self.harness(window: .milliseconds(50))
        let alice = harness.member("alice")
        _ = harness.member("bob")
        let carol = harness.member("carol")
        _ = harness.member("dave")
        harness.loop.advance(by: .milliseconds(50))
        guard case .welcome(_, _, _, let members)? = carol.frames.first else {
            Issue.record("no welcome for carol")
            return
        }
        #expect(members.map(\.name) == ["alice", "bob"])
        #expect(Self.presence(carol) == [.joined(MemberEntry(name: "dave"))])
        #expect(Self.presence(alice).count == 3)
    }

    @Test func theWindow_growsWithTheRoom() {
        let harness = Self.harness(window: .milliseconds(10), perMember: .milliseconds(2))
        let alice = harness.member("alice")
        harness.loop.advance(by: .seconds(1))
        for name in ["b", "c", "d"] { _ = harness.member(name) }
        harness.loop.advance(by: .seconds(1))
        #expect(Self.presence(alice).count == 3)
        // Four members when the next join opens the window: 10 ms + 4 × 2 ms.
        _ = harness.member("e")
        harness.loop.advance(by: .milliseconds(17))
        #expect(Self.presence(alice).count == 3)
        harness.loop.advance(by: .milliseconds(1))
        #expect(Self.presence(alice).count == 4)
    }

    @Test func withoutAWindow_presenceGoesOutAtTheEndOfTheIteration() {
        let harness = Self.harness(window: .zero)
        let alice = harness.member("alice")
        _ = harness.member("bob")
        #expect(Self.presence(alice) == [.joined(MemberEntry(name: "bob"))])
    }
}
