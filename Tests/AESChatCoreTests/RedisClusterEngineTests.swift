import Foundation
import Testing

@testable import AESChatCore

/// ``RedisClusterEngine`` against a real redis-server: two engines (two relays) on one loop.
@Suite(.serialized, .enabled(if: RedisTestServer.shouldRun, RedisTestServer.skipReason))
struct RedisClusterEngineTests {
    /// Records what an engine reports, and stops the loop when a condition holds.
    final class Recorder: ClusterEngineDelegate {
        let loop: PosixEventLoop
        var started: String?
        var messages: [(channel: ClusterChannel, bytes: [UInt8])] = []
        var acknowledged: UInt64 = 0
        var lost: String?
        var stopWhen: () -> Bool = { false }

        init(loop: PosixEventLoop) { self.loop = loop }

        private func check() { if stopWhen() { loop.stop() } }
        func engineDidStart(incarnation: String, census: ClusterCensus) {
            started = incarnation
            check()
        }
        func engine(didReceive message: UnsafeRawBufferPointer, on channel: ClusterChannel) {
            messages.append((channel, Array(message)))
            check()
        }
        func engineDidAcknowledge(through sequence: UInt64) {
            #expect(sequence > acknowledged)
            acknowledged = sequence
            check()
        }
        func engineDidLose(reason: String) {
            lost = reason
            check()
        }
    }

    /// Runs the loop until `condition` holds (checked after every delegate call and every 5 ms, for completions).
    func wait(_ loop: PosixEventLoop, _ recorders: [Recorder], until condition: @escaping () -> Bool) throws {
        guard !condition() else { return }
        for recorder in recorders { recorder.stopWhen = condition }
        var polling = true
        func poll() {
            guard polling else { return }
            if condition() { loop.stop() } else { loop.schedule(after: .milliseconds(5)) { poll() } }
        }
        poll()
        try runRedisLoop(loop)
        polling = false
        #expect(condition(), "lost: \(recorders.map { $0.lost ?? "-" })")
    }

    func engine(_ server: RedisTestServer, _ loop: PosixEventLoop, _ recorder: Recorder) -> RedisClusterEngine {
        let engine = RedisClusterEngine(
            endpoint: server.endpoint, credentials: RedisHandshake(), prefix: "t", loop: loop)
        engine.delegate = recorder
        return engine
    }

    @Test func twoRelaysShareARoomThroughRedisAndADeadOneIsReaped() throws {
        let server = try RedisTestServer()
        let loop = try PosixEventLoop()
        let (one, two) = (Recorder(loop: loop), Recorder(loop: loop))
        let engineOne = engine(server, loop, one)
        let engineTwo = engine(server, loop, two)
        engineOne.start()
        engineTwo.start()
        try wait(loop, [one, two]) { one.started != nil && two.started != nil }
        let (idOne, idTwo) = (try #require(one.started), try #require(two.started))
        #expect(ClusterIncarnation.isValid(idOne) && idOne != idTwo)
        var subscribed = 0
        engineOne.subscribe(room: "lobby") { subscribed += 1 }
        engineTwo.subscribe(room: "lobby") { subscribed += 1 }
        try wait(loop, [one, two]) { subscribed == 2 }

        // alice joins on relay two: relay one sees her joined in its stream; the snapshot is the roster.
        let holder = ClusterNameHolder(incarnation: idTwo, ticket: 1, room: "lobby", claimKey: nil)
        let joined = ClusterMessage.joined(origin: idTwo, room: "lobby", name: "alice", ticket: 1, profile: [9])
        var reply: ClusterJoinReply?
        let sequence = engineTwo.join(
            ClusterJoinRequest(
                name: "alice", room: "lobby", holder: holder,
                rosterValue: ClusterRoster.value(incarnation: idTwo, profile: [9]), message: joined,
                wantsSnapshot: true)
        ) { reply = $0 }
        #expect(sequence == 1)
        try wait(loop, [one, two]) { reply != nil && one.messages.count == 1 && two.acknowledged == 1 }
        #expect(
            reply
                == .joined(snapshot: [
                    ClusterSnapshotEntry(name: "alice", value: ClusterRoster.value(incarnation: idTwo, profile: [9]))
                ]))
        #expect(one.messages.first?.bytes == joined)
        #expect(one.messages.first?.channel == .room)

        // The same name on relay one is taken.
        var taken: ClusterJoinReply?
        let holderOne = ClusterNameHolder(incarnation: idOne, ticket: 1, room: "lobby", claimKey: nil)
        engineOne.join(
            ClusterJoinRequest(
                name: "alice", room: "lobby", holder: holderOne,
                rosterValue: ClusterRoster.value(incarnation: idOne, profile: []),
                message: ClusterMessage.joined(origin: idOne, room: "lobby", name: "alice", ticket: 1, profile: []),
                wantsSnapshot: false)
        ) { taken = $0 }
        try wait(loop, [one, two]) { taken != nil }
        #expect(taken == .taken(holder.encoded))

        // A publish and a direct from relay two reach relay one in the order sent, across channels.
        let published: [UInt8] = [1, 2, 3]
        let direct: [UInt8] = [4, 5]
        published.withUnsafeBytes { _ = engineTwo.publish(room: "lobby", message: $0) }
        direct.withUnsafeBytes { _ = engineTwo.send(toRelay: idOne, message: $0) }
        var beat = false
        engineTwo.heartbeat { beat = true }
        try wait(loop, [one, two]) { one.messages.count == 3 && beat && two.acknowledged == 4 }
        #expect(one.messages.map(\.bytes) == [joined, published, direct])
        #expect(one.messages.map(\.channel) == [.room, .room, .inbox])

        // Relay two dies (its connections close without a word): relay one finds it and reaps alice.
        engineTwo.abandon(reason: "test")
        var dead: [String]?
        for _ in 0..<50 {
            engineOne.findDeadRelays(deadAfter: .seconds(5)) {
                dead = $0
                loop.stop()
            }
            try runRedisLoop(loop)
            if dead == [idTwo] { break }
            usleep(20_000)
        }
        #expect(dead == [idTwo])
        var reaped: (Int, Int)?
        engineOne.reap(relay: idTwo, limit: 500) { reaped = ($0, $1) }
        try wait(loop, [one]) { reaped != nil && one.messages.count == 4 }
        #expect(reaped?.0 == 1 && reaped?.1 == 0)
        #expect(
            one.messages.last?.bytes == ClusterMessage.left(origin: idTwo, room: "lobby", name: "alice", cause: .reaped)
        )
        var after: [String]?
        engineOne.findDeadRelays(deadAfter: .seconds(5)) {
            after = $0
            loop.stop()
        }
        try runRedisLoop(loop)
        #expect(after == [])
        #expect(one.lost == nil)
    }

    @Test func redisGoingAwayEndsTheIncarnationOnceAndAReapedRelayIsFenced() throws {
        let server = try RedisTestServer()
        let loop = try PosixEventLoop()
        let (one, two) = (Recorder(loop: loop), Recorder(loop: loop))
        let engineOne = engine(server, loop, one)
        let engineTwo = engine(server, loop, two)
        engineOne.start()
        engineTwo.start()
        try wait(loop, [one, two]) { one.started != nil && two.started != nil }
        // Relay one reaps relay two while it is alive (a partition as the others see it): two's next heartbeat is
        // FENCED, and its incarnation ends.
        var reaped = false
        engineOne.reap(relay: two.started!, limit: 500) { _, _ in reaped = true }
        try wait(loop, [one]) { reaped }
        engineTwo.heartbeat {}
        try wait(loop, [two]) { two.lost != nil }
        #expect(two.lost?.contains("declared dead") == true)
        #expect(engineTwo.incarnation == nil)
        // Redis dies: relay one loses its incarnation.
        server.stop()
        try wait(loop, [one]) { one.lost != nil }
        let ended = ["the command connection ended", "the subscription ended"]
        #expect(ended.contains { one.lost?.hasPrefix($0) == true }, "\(one.lost ?? "")")
        // A start with no Redis is a loss too, with the address.
        let three = Recorder(loop: loop)
        let engineThree = engine(server, loop, three)
        engineThree.start()
        try wait(loop, [three]) { three.lost != nil }
        #expect(three.lost?.hasPrefix("cannot reach the cluster at 127.0.0.1:\(server.port)") == true)
    }
}
