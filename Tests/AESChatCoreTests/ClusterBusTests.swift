import AESChatCrypto
import AESChatTesting
import Testing

@testable import AESChatCore

/// Several relays on one in-memory loop, sharing rooms through an ``InMemoryCluster``.
final class ClusterHarness {
    let loop = MemoryEventLoop()
    let cluster: InMemoryCluster
    private(set) var relays: [ClusterRelay] = []

    /// `count` relays sharing one relay key (as relays behind one address do).
    init(relays count: Int = 2, timings: ClusterTimings = ClusterTimings()) {
        cluster = InMemoryCluster(loop: loop)
        var configuration = RelayConfiguration()
        configuration.cluster = timings
        for _ in 0..<count { relays.append(ClusterRelay(harness: self, configuration: configuration)) }
        loop.runUntilIdle()
    }

    subscript(index: Int) -> ClusterRelay { relays[index] }
}

/// One relay of a ``ClusterHarness``, with its engine and its log.
final class ClusterRelay {
    let engine: InMemoryClusterEngine
    let listener: MemoryListener
    let relay: Relay
    let log = LineCollector()
    private let loop: MemoryEventLoop

    init(harness: ClusterHarness, configuration: RelayConfiguration) {
        loop = harness.loop
        engine = harness.cluster.engine()
        listener = MemoryListener(loop: harness.loop)
        relay = Relay(configuration: configuration, loop: harness.loop, cluster: engine) { [log] in
            log.lines.append($0)
        }
        relay.attach(to: listener)
    }

    /// A peer whose hello went out; the loop is not run.
    func hello(_ name: String, room: String = "lobby") -> RawPeer {
        let peer = RawPeer(listener.connect(chunkSize: 4096), relayKey: relay.publicKey)
        peer.send(.hello(version: relayProtocolVersion, name: name, room: room, profile: Array(name.utf8)))
        return peer
    }

    /// A member whose hello claims `name` with `key` (signed for its own link).
    func claiming(_ name: String, key: NameClaimKey, room: String = "lobby") -> RawPeer {
        let peer = RawPeer(listener.connect(chunkSize: 4096), relayKey: relay.publicKey)
        loop.runUntilIdle()
        let claim = try! key.claim(handshakeHash: peer.connection.handshakeHash)
        peer.send(.hello(version: relayProtocolVersion, name: name, room: room, profile: [], claim: claim))
        loop.runUntilIdle()
        return peer
    }

    /// A registered member (the loop run until idle).
    func member(_ name: String, room: String = "lobby") -> RawPeer {
        let peer = hello(name, room: room)
        loop.runUntilIdle()
        return peer
    }
}

extension RawPeer {
    /// The room events this peer saw, in order: `+name`, `-name`, `from:payload` (`from>payload` for a direct or
    /// multicast one).
    var events: [String] {
        frames.compactMap {
            switch $0 {
            case .joined(let entry): "+" + entry.name
            case .left(let name): "-" + name
            case .deliver(let from, let isDirect, let payload):
                from + (isDirect ? ">" : ":") + String(decoding: payload, as: UTF8.self)
            default: nil
            }
        }
    }

    /// The names its welcome listed (nil if the first frame is not a welcome).
    var welcomed: [String]? {
        guard case .welcome(_, _, _, let members) = frames.first else { return nil }
        return members.map(\.name)
    }

    func publish(_ text: String) { send(.publish(payload: Array(text.utf8)[...])) }
}

@Suite struct ClusterBusTests {
    @Test func twoRelays_oneRoom_carryEveryFrameKind() {
        let harness = ClusterHarness()
        let alice = harness[0].member("alice")
        let bob = harness[1].member("bob")
        let carol = harness[1].member("carol")
        #expect(alice.welcomed == [])
        #expect(bob.welcomed == ["alice"])
        #expect(carol.welcomed == ["alice", "bob"])
        #expect(bob.frames.contains(.joined(MemberEntry(name: "carol", profile: Array("carol".utf8)))))
        #expect(alice.events == ["+bob", "+carol"])

        alice.publish("hello")
        bob.publish("hi")
        alice.send(.direct(to: "bob", payload: Array("key".utf8)[...]))
        alice.publish("after-key")
        alice.send(.multicast(to: ["bob", "carol", "nobody"], payload: Array("chunk".utf8)[...]))
        carol.send(.direct(to: "alice", payload: Array("psst".utf8)[...]))
        alice.send(.direct(to: "zed", payload: [1][...]))
        harness.loop.runUntilIdle()
        #expect(alice.events == ["+bob", "+carol", "bob:hi", "carol>psst"])
        #expect(alice.errors == [RelayErrorCode.unknownRecipient.rawValue])
        #expect(bob.events == ["+carol", "alice:hello", "alice>key", "alice:after-key", "alice:chunk"])
        #expect(carol.events.filter { $0.hasPrefix("alice") } == ["alice:hello", "alice:after-key", "alice:chunk"])
        #expect(carol.events.contains("bob:hi"))

        bob.send(.bye)
        harness.loop.runUntilIdle()
        #expect(alice.events.last == "-bob")
        #expect(carol.events.last == "-bob")
        #expect(bob.closed)
        #expect(harness.cluster.names.keys.sorted() == ["alice", "carol"])
        #expect(harness.cluster.rooms["lobby"]?.count == 2)
    }

    @Test func aPublishComesBackThroughTheEngine_evenOnTheSendersRelay() {
        let harness = ClusterHarness()
        let alice = harness[0].member("alice")
        let bob = harness[0].member("bob")
        _ = harness[1].member("carol")
        harness[0].engine.commands.isHeld = true
        alice.publish("one")
        harness.loop.runUntilIdle()
        // Not delivered locally until the engine has ordered it.
        #expect(bob.events == ["+carol"])
        harness[0].engine.commands.isHeld = false
        harness.loop.runUntilIdle()
        #expect(bob.events == ["+carol", "alice:one"])
        #expect(!alice.events.contains("alice:one"))
    }

    @Test func aLateJoinerOnAnotherRelay_whileAMemberPublishes_getsWelcomeFirstAndNothingEarlier() {
        let harness = ClusterHarness()
        harness[0].engine.commands.delay = .microseconds(300)
        harness[1].engine.commands.delay = .microseconds(700)
        harness[1].engine.stream.delay = .milliseconds(2)
        harness[1].engine.replies.delay = .milliseconds(1)
        let alice = harness[0].member("alice")
        harness.loop.advance(by: .milliseconds(10))
        let bob = harness[0].member("bob")
        let dave = harness[1].member("dave")
        harness.loop.advance(by: .milliseconds(10))
        var carol: RawPeer?
        for index in 0..<200 {
            alice.publish("\(index)")
            if index == 60 {
                carol = harness[1].hello("carol")
                // Sent before its welcome: held, then published after it.
                carol!.publish("first")
            }
            harness.loop.advance(by: .microseconds(100))
        }
        harness.loop.advance(by: .milliseconds(50))
        guard let carol else { return }
        #expect(carol.welcomed == ["alice", "bob", "dave"])
        // The payloads carol gets are exactly those after her joined in the order bob (on alice's relay) saw.
        guard let joinedAt = bob.events.firstIndex(of: "+carol") else {
            Issue.record("bob never saw carol join")
            return
        }
        let afterJoin = bob.events[(joinedAt + 1)...].filter { $0.hasPrefix("alice:") }
        let carolGot = carol.events.filter { $0.hasPrefix("alice:") }
        #expect(carolGot == Array(afterJoin))
        #expect(!carolGot.isEmpty && carolGot.count < 200)
        let numbers = carolGot.map { Int($0.dropFirst(6))! }
        #expect(numbers == Array(numbers.first!...199))
        // Everyone sees carol's joined before her payload, and one order of room events.
        for peer in [alice, bob, dave] {
            let events = peer.events
            guard let joined = events.firstIndex(of: "+carol"), let first = events.firstIndex(of: "carol:first") else {
                Issue.record("carol's joined or payload missing")
                continue
            }
            #expect(joined < first)
        }
        let common = Set(alice.events).intersection(bob.events).intersection(dave.events)
        #expect(bob.events.filter(common.contains) == dave.events.filter(common.contains))
        #expect(alice.events.filter(common.contains) == dave.events.filter(common.contains))
        #expect(bob.events.filter { $0.hasPrefix("alice:") }.count == 200)
        #expect(dave.events.filter { $0.hasPrefix("alice:") }.count == 200)
    }

    @Test func bootstrapRaces_delayedSubscription_lateSnapshot_twoJoinsWhileBootstrapping() {
        let harness = ClusterHarness()
        let alice = harness[0].member("alice")
        alice.publish("a0")
        harness.loop.runUntilIdle()
        let second = harness[1].engine
        // The subscription's confirmation waits: nothing of the room reaches relay 1 meanwhile.
        second.stream.isHeld = true
        let bob = harness[1].hello("bob")
        harness.loop.runUntilIdle()
        alice.publish("a1")
        harness.loop.runUntilIdle()
        #expect(bob.frames.isEmpty)
        // Confirmation through, then the join's reply (its snapshot) waits while later stream messages come.
        second.replies.isHeld = true
        second.stream.pass(second.stream.count)
        second.stream.isHeld = false
        harness.loop.runUntilIdle()
        let carol = harness[1].hello("carol")
        harness.loop.runUntilIdle()
        alice.publish("a2")
        let erin = harness[0].member("erin")
        alice.publish("a3")
        harness.loop.runUntilIdle()
        #expect(bob.frames.isEmpty)
        #expect(carol.frames.isEmpty)
        second.replies.isHeld = false
        harness.loop.runUntilIdle()
        #expect(bob.welcomed == ["alice"])
        #expect(carol.welcomed == ["alice", "bob"])
        #expect(bob.events == ["+carol", "alice:a2", "+erin", "alice:a3"])
        #expect(carol.events == ["alice:a2", "+erin", "alice:a3"])
        #expect(alice.events == ["+bob", "+carol", "+erin"])
        #expect(erin.welcomed == ["alice", "bob", "carol"])
        bob.publish("b")
        harness.loop.runUntilIdle()
        #expect(alice.events.last == "bob:b")
        #expect(erin.events.last == "bob:b")
        #expect(carol.events.last == "bob:b")
    }

    @Test func snapshotBeforeItsJoined_andJoinedBeforeItsSnapshot_bothWelcomeAtTheSamePoint() {
        for replyFirst in [true, false] {
            let harness = ClusterHarness()
            let alice = harness[0].member("alice")
            let olga = harness[0].member("olga")
            let second = harness[1].engine
            if replyFirst { second.stream.delay = .milliseconds(5) } else { second.replies.delay = .milliseconds(5) }
            let bob = harness[1].hello("bob")
            harness.loop.advance(by: .microseconds(100))
            for index in 0..<30 {
                alice.publish("\(index)")
                harness.loop.advance(by: .microseconds(500))
            }
            harness.loop.advance(by: .milliseconds(20))
            #expect(bob.welcomed == ["alice", "olga"])
            guard let joinedAt = olga.events.firstIndex(of: "+bob") else {
                Issue.record("olga never saw bob join")
                continue
            }
            let expected = Array(olga.events[(joinedAt + 1)...])
            #expect(bob.events == expected, "reply first: \(replyFirst)")
            #expect(expected.count > 5 && expected.count <= 30, "reply first: \(replyFirst)")
            #expect(expected.last == "alice:29")
        }
    }

    @Test func theSameNameOnTwoRelaysAtOnce_exactlyOneWins() {
        let harness = ClusterHarness(relays: 3)
        let observer = harness[2].member("observer")
        let first = harness[0].hello("alice")
        let second = harness[1].hello("alice")
        harness.loop.runUntilIdle()
        let welcomed = [first, second].filter { $0.welcomed != nil }
        let refused = [first, second].filter { $0.errors == [RelayErrorCode.nameTaken.rawValue] }
        #expect(welcomed.count == 1)
        #expect(refused.count == 1)
        #expect(refused.first?.closed == true)
        #expect(observer.events == ["+alice"])
        #expect(harness.cluster.names.count == 2)
        // The name frees up when its holder leaves, and may then be taken on the other relay.
        welcomed.first?.send(.bye)
        harness.loop.runUntilIdle()
        let again = harness[1].member("alice")
        #expect(again.welcomed == ["observer"])
        #expect(observer.events == ["+alice", "-alice", "+alice"])
    }

    @Test func aPongIsHeld_untilTheEngineAcknowledgedEveryEarlierFrame() {
        let harness = ClusterHarness()
        let alice = harness[0].member("alice")
        let bob = harness[1].member("bob")
        alice.send(.ping(token: 1))
        harness.loop.runUntilIdle()
        #expect(alice.frames.last == .pong(token: 1))
        harness[0].engine.replies.isHeld = true
        alice.publish("confirm me")
        alice.send(.ping(token: 2))
        harness.loop.runUntilIdle()
        // The publish was executed (bob has it), but its acknowledgement has not come back.
        #expect(bob.events.last == "alice:confirm me")
        #expect(!alice.frames.contains(.pong(token: 2)))
        // Another member's ping with nothing of its own in flight is answered at once.
        bob.send(.ping(token: 7))
        harness.loop.runUntilIdle()
        #expect(bob.frames.last == .pong(token: 7))
        harness[0].engine.replies.isHeld = false
        harness.loop.runUntilIdle()
        #expect(alice.frames.last == .pong(token: 2))
    }

    /// Redis cut a stopped relay's subscription (its output limit), the others reaped it; continued, the relay still
    /// has its command connection, and Redis executes a member's PUBLISH, which every receiver drops (the sender
    /// left). The pong must not confirm that line: the fence after it fails, and the incarnation ends.
    @Test func aPongAfterTheRelayWasReaped_isNeverSent_theFenceEndsTheIncarnation() {
        let harness = ClusterHarness()
        let alice = harness[0].member("alice")
        let bob = harness[1].member("bob")
        alice.send(.ping(token: 1))
        harness.loop.runUntilIdle()
        #expect(alice.frames.last == .pong(token: 1))
        // The subscription goes; relay 0 has not noticed yet. Relay 1 reaps it at its next round.
        let incarnation = harness[0].engine.incarnation!
        harness.cluster.disconnect(harness[0].engine, incarnation: incarnation)
        while !bob.events.contains("-alice") { harness.loop.advance(by: .milliseconds(100)) }
        alice.publish("lost")
        alice.send(.ping(token: 2))
        harness.loop.runUntilIdle()
        #expect(
            harness.cluster.published.contains {
                $0.channel == "r:lobby" && $0.message.count > 1 && $0.message[1] == ClusterMessage.Kind.publish
            })
        #expect(!alice.frames.contains(.pong(token: 2)))
        #expect(alice.errors == [RelayErrorCode.shuttingDown.rawValue])
        #expect(harness[0].log.lines.contains { $0.hasPrefix("lost contact with the cluster: FENCED") })
        #expect(bob.events == ["-alice"])
    }

    @Test func aPayloadFromAReapedRelay_isDropped_andItsLeftReachesEveryRelayOnce() {
        let harness = ClusterHarness(relays: 3)
        let alice = harness[0].member("alice")
        let bob = harness[1].member("bob")
        let carol = harness[2].member("carol")
        // Relay 0's link to the engine stalls: what it sends waits on the wire.
        harness[0].engine.commands.isHeld = true
        alice.publish("zombie")
        harness.loop.advance(by: .seconds(8))
        // It ended its incarnation before the others reaped it.
        #expect(alice.errors == [RelayErrorCode.shuttingDown.rawValue])
        #expect(alice.closed)
        #expect(harness[0].log.lines.contains { $0.hasPrefix("lost contact with the cluster: no heartbeat") })
        #expect(bob.events == ["+carol", "-alice"])
        #expect(carol.events == ["-alice"])
        #expect(harness[1].log.lines.contains { $0.hasPrefix("reaped relay ") && $0.hasSuffix(": 1 member left") })
        // The stalled bytes arrive at last: the publish is executed after alice's left, and nobody delivers it.
        harness[0].engine.commands.isHeld = false
        harness.loop.advance(by: .seconds(1))
        #expect(bob.events == ["+carol", "-alice"])
        #expect(carol.events == ["-alice"])
        #expect(
            harness.cluster.published.contains {
                $0.channel == "r:lobby" && $0.message.count > 1 && $0.message[1] == ClusterMessage.Kind.publish
            })
        #expect(harness[1].relay.clusterBus?.droppedFromStrangers == 1)
        #expect(harness[2].relay.clusterBus?.droppedFromStrangers == 1)
        // Relay 0 serves again under a new incarnation.
        let alice2 = harness[0].member("alice")
        #expect(alice2.welcomed == ["bob", "carol"])
        #expect(bob.events.last == "+alice")
    }

    @Test func losingTheEngine_sendsError7ToEveryMember_andTheOthersSeeThemLeft() {
        let harness = ClusterHarness()
        let alice = harness[0].member("alice")
        let erin = harness[0].member("erin", room: "other")
        let bob = harness[1].member("bob")
        let pending = harness[0].hello("frank")
        harness[0].engine.commands.isHeld = true
        harness.loop.runUntilIdle()
        let lost = harness[0].engine.incarnation!
        harness[0].engine.fail("connection reset by peer")
        harness.loop.runUntilIdle()
        for peer in [alice, erin, pending] {
            #expect(peer.errors == [RelayErrorCode.shuttingDown.rawValue])
            #expect(peer.closed)
        }
        // One line, with the members dropped (frank was still waiting for his welcome: a connection, no member).
        #expect(
            harness[0].log.lines.filter { $0.hasPrefix("lost contact with the cluster") } == [
                "lost contact with the cluster: connection reset by peer; dropped 2 members (3 connections closed)"
            ])
        // The others reap the dead incarnation (its subscriber connection is gone) within a heartbeat: one line.
        harness.loop.advance(by: .milliseconds(1500))
        #expect(bob.events == ["-alice"])
        #expect(
            harness[1].log.lines.filter { $0.hasPrefix("reaped relay") } == ["reaped relay \(lost): 2 members left"])
        #expect(harness.cluster.names.keys.sorted() == ["bob"])
        // Until relay 0 has a new incarnation, a hello gets error 7; then it serves again.
        harness[0].engine.commands.isHeld = false
        harness.loop.advance(by: .seconds(1))
        let back = harness[0].member("alice")
        #expect(back.welcomed == ["bob"])
    }

    /// The engine takes commands slower than a member sends: past the high-water mark the relay stops reading its
    /// connections (what members send waits in them, TCP holding the senders back), and reads again once the queue
    /// drained to the low-water mark; nothing is lost or reordered.
    @Test func anEngineSlowToTakeCommands_stopsReadingConnections_untilItDrains() {
        var timings = ClusterTimings()
        timings.engineOutputHighWater = 4096
        timings.engineOutputLowWater = 1024
        let harness = ClusterHarness(timings: timings)
        let alice = harness[0].member("alice")
        let bob = harness[1].member("bob")
        harness[0].engine.commands.isHeld = true
        let line = String(repeating: "x", count: 1000)
        for number in 0..<40 { alice.publish("\(number) \(line)") }
        harness.loop.runUntilIdle()
        // Reading stopped once about 4 KiB waited for the engine (plus what the last read held): the rest waits in
        // alice's connection, not in the relay.
        let queued = harness[0].engine.pendingOutputByteCount
        #expect(queued > 4096 && queued < 3 * 4096, "\(queued)")
        let paused = "the cluster is slow to take commands (\(queued) bytes queued): stopped reading 1 connection"
        #expect(harness[0].log.lines.contains { $0.hasPrefix(paused) })
        #expect(bob.events.isEmpty)
        // A new connection meanwhile is not read either.
        let carol = harness[0].hello("carol")
        harness.loop.runUntilIdle()
        #expect(carol.welcomed == nil)
        harness[0].engine.commands.isHeld = false
        harness.loop.runUntilIdle()
        #expect(bob.events.filter { $0.hasPrefix("alice:") } == (0..<40).map { "alice:\($0) \(line)" })
        #expect(carol.welcomed == ["alice", "bob"])
        #expect(harness[0].log.lines.contains { $0.hasPrefix("the cluster takes commands again") })
        #expect(harness[0].engine.pendingOutputByteCount == 0)
    }

    @Test func aRelayJoiningTheCluster_logsTheRelaysMembersAndRoomsItFinds() {
        let harness = ClusterHarness()
        _ = harness[0].member("alice")
        _ = harness[0].member("erin", room: "other")
        _ = harness[1].member("bob")
        let late = ClusterRelay(harness: harness, configuration: RelayConfiguration())
        harness.loop.runUntilIdle()
        let id = late.engine.incarnation ?? "none"
        #expect(
            late.log.lines.filter { $0.hasPrefix("joined the cluster") } == [
                "joined the cluster as relay \(id): 3 relays alive, 3 members in 2 rooms"
            ])
        #expect(ClusterBus.count(1, "room") == "1 room")
    }

    @Test func aRelayKeepsTryingToRejoinWhileTheClusterStaysUnreachable() {
        let harness = ClusterHarness(relays: 1)
        harness[0].engine.isUnreachable = true
        harness[0].engine.fail("connection reset by peer")
        // Several failed attempts (the delay doubles from 100 ms to 5 s): each is logged, none ends the retries.
        harness.loop.advance(by: .seconds(20))
        #expect(!harness[0].engine.isRunning)
        let failures = harness[0].log.lines.filter { $0.contains("could not rejoin the cluster: cannot reach") }
        #expect(failures.count >= 4)
        harness[0].engine.isUnreachable = false
        harness.loop.advance(by: .seconds(6))
        #expect(harness[0].engine.isRunning)
        #expect(harness[0].log.lines.filter { $0.contains("joined the cluster as relay") }.count == 2)
        let alice = harness[0].member("alice")
        #expect(alice.welcomed == [])
        #expect(alice.errors == [])
    }

    @Test func aHelloWhileTheClusterIsUnreachable_getsError7() {
        let harness = ClusterHarness(relays: 1)
        harness[0].engine.commands.isHeld = true
        harness[0].engine.fail("connection refused")
        harness.loop.runUntilIdle()
        let alice = harness[0].member("alice")
        #expect(alice.errors == [RelayErrorCode.shuttingDown.rawValue])
        #expect(alice.closed)
    }

    @Test func clusterMessages_roundTrip_andMalformedOnesAreRefused() throws {
        let joined = ClusterMessage.joined(
            origin: "00000000000000aa", room: "lobby", name: "alice", ticket: 7, profile: [1, 2])
        let parsed = try joined.withUnsafeBytes { try ClusterMessage.parse($0) }
        guard case .joined("00000000000000aa", "lobby", "alice", 7, [1, 2]) = parsed else {
            Issue.record("joined did not round-trip: \(parsed)")
            return
        }
        var bytes: [UInt8] = []
        Array("hi".utf8).withUnsafeBytes {
            ClusterMessage.writeDirect(
                origin: "00000000000000aa", room: "lobby", from: "alice", to: ["bob", "carol"], flags: 2, payload: $0,
                into: &bytes)
        }
        try bytes.withUnsafeBytes {
            guard case .direct(_, _, "alice", ["bob", "carol"], let frame) = try ClusterMessage.parse($0) else {
                Issue.record("direct did not round-trip")
                return
            }
            var expected = RelayFrame.deliver(from: "alice", isDirect: true, payload: Array("hi".utf8)[...]).encoded()
            expected[11] = 2
            #expect(Array(frame) == expected)
        }
        // A frame whose sender is not the message's, a truncated one, a wrong version: refused.
        var forged = bytes
        forged[forged.count - 5] = UInt8(ascii: "x")
        for bad in [forged, Array(bytes.dropLast()), [2] + bytes.dropFirst(), joined + [0]] {
            #expect(throws: WireError.self) { try bad.withUnsafeBytes { _ = try ClusterMessage.parse($0) } }
        }
        let holder = ClusterNameHolder(
            incarnation: "00000000000000aa", ticket: 255, room: "lobby", claimKey: Array(repeating: 0xab, count: 32))
        #expect(ClusterNameHolder(holder.encoded) == holder)
        #expect(ClusterNameHolder("00000000000000aa ff") == nil)
        #expect(ClusterNameHolder("zz000000000000aa ff lobby") == nil)
    }

    @Test func aVerifiedClaimTakesTheNameOver_fromAHolderOnAnotherRelay() throws {
        let harness = ClusterHarness(relays: 3)
        let key = try NameClaimKey(
            secret: SecretBytes([UInt8](repeating: 7, count: 32)), relayKey: harness[0].relay.publicKey, name: "bob")
        let other = try NameClaimKey(
            secret: SecretBytes([UInt8](repeating: 8, count: 32)), relayKey: harness[0].relay.publicKey, name: "bob")
        let observer = harness[2].member("observer")
        let stale = harness[0].claiming("bob", key: key)
        #expect(stale.welcomed == ["observer"])
        // Another key's claim does not take it over.
        let impostor = harness[1].claiming("bob", key: other)
        #expect(impostor.errors == [RelayErrorCode.nameTaken.rawValue])
        let fresh = harness[1].claiming("bob", key: key)
        #expect(fresh.welcomed == ["observer"])
        #expect(stale.errors == [RelayErrorCode.nameReclaimed.rawValue])
        #expect(stale.closed)
        #expect(observer.events == ["+bob", "-bob", "+bob"])
        #expect(harness.cluster.names["bob"]?.hasPrefix(harness[1].engine.incarnation! + " ") == true)
        fresh.publish("back")
        harness.loop.runUntilIdle()
        #expect(observer.events.last == "bob:back")
    }

    @Test func aRoomWithNoLocalMember_lingers_thenIsMirroredAfreshOnTheNextJoin() {
        let harness = ClusterHarness()
        let alice = harness[0].member("alice")
        let bob = harness[1].member("bob")
        bob.send(.bye)
        harness.loop.runUntilIdle()
        // Still mirrored during the linger time: a join is welcomed from the mirror.
        alice.publish("one")
        harness.loop.advance(by: .seconds(10))
        let carol = harness[1].member("carol")
        #expect(carol.welcomed == ["alice"])
        carol.send(.bye)
        harness.loop.runUntilIdle()
        harness.loop.advance(by: .seconds(31))
        // Unsubscribed after the linger time: a new join on relay 1 bootstraps from a snapshot again.
        let dave = harness[0].member("dave")
        let erin = harness[1].member("erin")
        #expect(erin.welcomed == ["alice", "dave"])
        #expect(harness[1].log.lines.filter { $0.hasPrefix("room lobby mirrored") }.count == 2)
        alice.publish("three")
        harness.loop.runUntilIdle()
        #expect(erin.events == ["alice:three"])
        #expect(dave.events == ["+erin", "alice:three"])
    }

    @Test func aDirectBetweenMembersOfOneRelay_goesThroughTheEngine_inOrderWithPublishes() {
        let harness = ClusterHarness()
        let alice = harness[0].member("alice")
        let bob = harness[0].member("bob")
        _ = harness[1].member("carol")
        harness[0].engine.commands.isHeld = true
        alice.send(.direct(to: "bob", payload: Array("key".utf8)[...]))
        alice.publish("message")
        harness.loop.runUntilIdle()
        #expect(bob.events == ["+carol"])
        harness[0].engine.commands.isHeld = false
        harness.loop.runUntilIdle()
        #expect(bob.events == ["+carol", "alice>key", "alice:message"])
    }

    @Test func aRelayShuttingDown_announcesItsMembersLeft_andLeavesTheCluster() {
        let harness = ClusterHarness()
        let alice = harness[0].member("alice")
        let bob = harness[1].member("bob")
        var finished = false
        harness[0].relay.shutdown { finished = true }
        harness.loop.runUntilIdle()
        #expect(alice.errors == [RelayErrorCode.shuttingDown.rawValue])
        #expect(bob.events == ["-alice"])
        #expect(harness.cluster.names.keys.sorted() == ["bob"])
        #expect(harness.cluster.relays.count == 1)
        harness.loop.advance(by: .seconds(3))
        #expect(finished)
        // No reap follows: the relay deregistered, so nobody sees a second left.
        #expect(bob.events == ["-alice"])
    }
}
