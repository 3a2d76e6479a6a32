import Foundation
import Testing

@testable import AESChatCore

/// The cluster's Lua scripts (cluster.md §3.2–3.5) against a real redis-server: each script's effect on the keys
/// and the message it publishes, seen by a subscriber as another relay would see it.
@Suite(.serialized, .enabled(if: RedisTestServer.shouldRun, RedisTestServer.skipReason))
struct ClusterScriptTests {
    /// A server, a command connection with the scripts loaded, and a subscriber recording every message.
    final class Fixture {
        let server: RedisTestServer
        let loop: PosixEventLoop
        let redis: RedisConnection
        let runner: RedisScriptRunner
        let subscriber: RedisConnection
        let keys = ClusterKeys(prefix: "t")
        /// Every message the subscriber got, as `channel` and payload.
        var messages: [(channel: String, payload: [UInt8])] = []

        init() throws {
            server = try RedisTestServer()
            loop = try PosixEventLoop()
            redis = try connectRedis(server.endpoint, loop: loop).get()
            runner = RedisScriptRunner(connection: redis)
            subscriber = try connectRedis(server.endpoint, loop: loop).get()
            subscriber.pushHandler = { [unowned self] push in
                if case .patternMessage(_, let channel, let payload) = push {
                    messages.append((String(decoding: channel, as: UTF8.self), payload))
                }
            }
            var loaded: Result<Void, RedisError>?
            runner.load(ClusterScripts.all) { [loop] in
                loaded = $0
                loop.stop()
            }
            try runRedisLoop(loop)
            try loaded!.get()
            subscriber.patternSubscribe([Array("t:*".utf8)]) { [loop] _ in loop.stop() }
            try runRedisLoop(loop)
        }

        func run(_ script: RedisScript, keys: [String], _ arguments: [String]) throws -> Result<RedisValue, RedisError>
        {
            try runScript(runner, loop: loop, script, keys: keys, arguments: arguments.map { Array($0.utf8) })
        }

        func command(_ arguments: [String]) throws -> RedisValue { try redisReply(redis, loop: loop, arguments) }

        /// Waits (a PING round trip on the subscriber) until every message published so far has arrived.
        func settle() throws {
            subscriber.send(["PING"]) { [loop] _ in loop.stop() }
            try runRedisLoop(loop)
        }

        func register(_ inc: String) throws {
            _ = try run(ClusterScripts.register, keys: [keys.relays, keys.names], [inc]).get()
        }

        /// The holder value a registration of `name` has: `"<inc> <ticket> <room>"`.
        static func holder(_ inc: String, _ room: String, ticket: Int = 1) -> String { "\(inc) \(ticket) \(room)" }

        func join(
            _ inc: String, _ room: String, _ name: String, profile: String = "", snapshot: Bool = false,
            replacing: String = "", replacedMessage: String = ""
        ) throws -> Result<RedisValue, RedisError> {
            try run(
                ClusterScripts.join,
                keys: [keys.relays, keys.names, keys.relay(inc), keys.room(room)],
                [
                    inc, room, name, Self.holder(inc, room), inc + profile, "joined(\(name))", keys.roomChannel(room),
                    snapshot ? "1" : "0", replacing, replacedMessage, "t",
                ])
        }

        func leave(_ inc: String, _ room: String, _ name: String, holder: String? = nil) throws
            -> Result<RedisValue, RedisError>
        {
            try run(
                ClusterScripts.leave, keys: [keys.relays, keys.names, keys.relay(inc), keys.room(room)],
                [inc, holder ?? Self.holder(inc, room), name, "left(\(name))", keys.roomChannel(room)])
        }

        func reap(_ inc: String, limit: Int = 500) throws -> RedisValue {
            try run(ClusterScripts.reap, keys: [keys.relays, keys.names, keys.reaping], ["t", inc, String(limit)]).get()
        }
    }

    static func text(_ bytes: [UInt8]) -> String { String(decoding: bytes, as: UTF8.self) }

    @Test func registerAndHeartbeatUseRedisClockAndAReapedRelayIsFenced() throws {
        let fixture = try Fixture()
        let time = try fixture.command(["TIME"]).elements!.compactMap(\.text).compactMap(Int64.init)
        let now = time[0] * 1000 + time[1] / 1000
        let registerKeys = [fixture.keys.relays, fixture.keys.names]
        let registered = try fixture.run(ClusterScripts.register, keys: registerKeys, ["aaaa"]).get()
        #expect(registered.elements?.count == 4)
        let registeredAt = registered.elements?[0].integer ?? 0
        #expect(registeredAt >= now && registeredAt < now + 2000)
        #expect(Array(registered.elements?.dropFirst() ?? []) == [.integer(1), .integer(0), .integer(0)])
        #expect(RedisClusterEngine.census(registered) == ClusterCensus(relays: 1, rooms: 0, members: 0))
        // A later incarnation counts the relays, the members and their rooms it finds (for its log line).
        let claimed = "aaaa 3 hall " + String(repeating: "ab", count: 32)
        _ = try fixture.command([
            "HSET", fixture.keys.names, "ann", "aaaa 1 lobby", "ben", "aaaa 2 lobby", "cy", claimed,
        ])
        let second = try fixture.run(ClusterScripts.register, keys: registerKeys, ["bbbb"]).get()
        #expect(RedisClusterEngine.census(second) == ClusterCensus(relays: 2, rooms: 2, members: 3))
        _ = try fixture.command(["HDEL", fixture.keys.names, "ann", "ben", "cy"])
        _ = try fixture.command(["ZREM", fixture.keys.relays, "bbbb"])
        guard case .failure(let again) = try fixture.run(ClusterScripts.register, keys: registerKeys, ["aaaa"])
        else { throw TestFailure("registered twice") }
        #expect(again.serverCode == "EXISTS")
        usleep(20_000)
        let beat = try fixture.run(ClusterScripts.heartbeat, keys: [fixture.keys.relays], ["aaaa"]).get().integer ?? 0
        #expect(beat > registeredAt)
        #expect(try fixture.command(["ZSCORE", "t:relays", "aaaa"]).text == String(beat))
        _ = try fixture.reap("aaaa")
        guard
            case .failure(let fenced) = try fixture.run(ClusterScripts.heartbeat, keys: [fixture.keys.relays], ["aaaa"])
        else { throw TestFailure("a reaped relay's heartbeat was accepted") }
        #expect(fenced.serverCode == "FENCED")
        #expect(try fixture.command(["ZCARD", "t:relays"]) == .integer(0))
    }

    @Test func joinClaimsTheNameAddsTheMemberAndPublishesJoinedInOneStep() throws {
        let fixture = try Fixture()
        try fixture.register("r1")
        try fixture.register("r2")
        #expect(try fixture.join("r1", "lobby", "alice", profile: "P-alice").get() == .array([.integer(1)]))
        let snapshot = try fixture.join("r2", "lobby", "bob", profile: "P-bob", snapshot: true).get()
        guard let entries = snapshot.elements, entries.count == 2, entries[0] == .integer(1),
            let roster = entries[1].elements?.compactMap(\.text)
        else { throw TestFailure("join with snapshot gave \(snapshot)") }
        var members: [String: String] = [:]
        for index in stride(from: 0, to: roster.count - 1, by: 2) { members[roster[index]] = roster[index + 1] }
        #expect(members == ["alice": "r1P-alice", "bob": "r2P-bob"])
        #expect(try fixture.command(["HGET", "t:names", "bob"]).text == "r2 1 lobby")
        #expect(try fixture.command(["HGET", "t:relay:r2", "bob"]).text == "lobby")
        try fixture.settle()
        #expect(
            fixture.messages.map { "\($0.channel) \(Self.text($0.payload))" } == [
                "t:r:lobby joined(alice)", "t:r:lobby joined(bob)",
            ])
        // The same name from another relay, even in another room: refused, nothing published or changed.
        guard case .failure(let taken) = try fixture.join("r1", "other", "bob") else {
            throw TestFailure("name taken twice")
        }
        #expect(taken == .server("TAKEN r2 1 lobby"))
        #expect(try fixture.command(["HLEN", "t:room:other"]) == .integer(0))
        // An unregistered (or reaped) incarnation cannot join anyone.
        guard case .failure(let fenced) = try fixture.join("zz", "lobby", "carol") else { throw TestFailure("fence") }
        #expect(fenced.serverCode == "FENCED")
        #expect(try fixture.command(["HEXISTS", "t:names", "carol"]) == .integer(0))
        try fixture.settle()
        #expect(fixture.messages.count == 2)
    }

    @Test func leaveFreesTheNameAndPublishesLeftOnlyForTheHolder() throws {
        let fixture = try Fixture()
        try fixture.register("r1")
        try fixture.register("r2")
        _ = try fixture.join("r1", "lobby", "alice").get()
        #expect(try fixture.leave("r2", "lobby", "alice").get() == .integer(0))
        #expect(try fixture.leave("r1", "lobby", "alice", holder: "r1 2 lobby").get() == .integer(0))
        #expect(try fixture.leave("r1", "lobby", "alice").get() == .integer(1))
        #expect(try fixture.leave("r1", "lobby", "alice").get() == .integer(0))
        for key in ["t:names", "t:relay:r1", "t:room:lobby"] {
            #expect(try fixture.command(["HEXISTS", key, "alice"]) == .integer(0))
        }
        try fixture.settle()
        #expect(fixture.messages.map { Self.text($0.payload) } == ["joined(alice)", "left(alice)"])
        // The name is free again, on any relay.
        #expect(try fixture.join("r2", "lobby", "alice").get() == .array([.integer(1)]))
        // A reaped (fenced) relay's leave is refused: its members' `left` is the reaper's.
        _ = try fixture.reap("r1")
        guard case .failure(let fenced) = try fixture.leave("r1", "lobby", "bob") else { throw TestFailure("fence") }
        #expect(fenced.serverCode == "FENCED")
    }

    @Test func aVerifiedClaimTakesTheNameOverFromExactlyTheHolderNamed() throws {
        let fixture = try Fixture()
        try fixture.register("r1")
        try fixture.register("r2")
        _ = try fixture.join("r1", "lobby", "alice", profile: "old").get()
        // A stale replacement value (another ticket) takes nothing over.
        guard case .failure(let taken) = try fixture.join("r2", "games", "alice", replacing: "r1 9 lobby") else {
            throw TestFailure("took over from the wrong holder")
        }
        #expect(taken == .server("TAKEN r1 1 lobby"))
        let result = try fixture.join(
            "r2", "games", "alice", profile: "new", replacing: "r1 1 lobby", replacedMessage: "reclaimed(alice)")
        #expect(try result.get() == .array([.integer(1)]))
        #expect(try fixture.command(["HGET", "t:names", "alice"]).text == "r2 1 games")
        #expect(try fixture.command(["HEXISTS", "t:relay:r1", "alice"]) == .integer(0))
        #expect(try fixture.command(["HEXISTS", "t:room:lobby", "alice"]) == .integer(0))
        #expect(try fixture.command(["HGET", "t:room:games", "alice"]).text == "r2new")
        try fixture.settle()
        #expect(
            fixture.messages.map { "\($0.channel) \(Self.text($0.payload))" }
                == ["t:r:lobby joined(alice)", "t:r:lobby reclaimed(alice)", "t:r:games joined(alice)"])
    }

    @Test func reapAnnouncesADeadRelaysMembersAfterItsLastPublicationOnce() throws {
        let fixture = try Fixture()
        try fixture.register("dead1")
        try fixture.register("live2")
        _ = try fixture.join("dead1", "lobby", "alice").get()
        _ = try fixture.join("dead1", "games", "bob").get()
        _ = try fixture.join("live2", "lobby", "carol").get()
        _ = try fixture.command(["PUBLISH", "t:r:lobby", "last words of alice"])
        // A member that already left is not announced again.
        _ = try fixture.join("dead1", "lobby", "dave").get()
        _ = try fixture.leave("dead1", "lobby", "dave").get()
        try fixture.settle()
        let before = fixture.messages.count
        #expect(try fixture.reap("dead1") == .array([.integer(0), .integer(2)]))
        #expect(try fixture.reap("dead1") == .array([.integer(0), .integer(0)]))
        try fixture.settle()
        let after = Array(fixture.messages[before...])
        func left(_ inc: String, _ room: String, _ name: String) -> [UInt8] {
            ClusterMessage.left(origin: inc, room: room, name: name, cause: .reaped)
        }
        let lefts = fixture.messages.filter { $0.payload.first == 1 }
        #expect(
            Set(lefts.map { "\($0.channel) \($0.payload)" })
                == ["t:r:lobby \(left("dead1", "lobby", "alice"))", "t:r:games \(left("dead1", "games", "bob"))"])
        #expect(after.count == 2)
        let order = fixture.messages.map { Self.text($0.payload) }
        #expect(
            order.firstIndex(of: "last words of alice")! < fixture.messages.firstIndex {
                $0.payload == left("dead1", "lobby", "alice")
            }!)
        #expect(try fixture.command(["HKEYS", "t:names"]) == .array([.bulk(Array("carol".utf8))]))
        #expect(try fixture.command(["HKEYS", "t:room:lobby"]) == .array([.bulk(Array("carol".utf8))]))
        #expect(try fixture.command(["EXISTS", "t:relay:dead1", "t:room:games"]) == .integer(0))
        #expect(try fixture.command(["ZRANGE", "t:relays", "0", "-1"]) == .array([.bulk(Array("live2".utf8))]))
        #expect(try fixture.command(["SCARD", "t:reaping"]) == .integer(0))
        // The dead incarnation is fenced: it can neither join nor beat.
        guard case .failure(let fenced) = try fixture.join("dead1", "lobby", "eve") else { throw TestFailure("fence") }
        #expect(fenced.serverCode == "FENCED")
    }

    @Test func aLargeReapGoesInChunksAndStaysFencedAndListedUntilDone() throws {
        let fixture = try Fixture()
        try fixture.register("dead")
        for index in 0..<7 { _ = try fixture.join("dead", "room\(index % 2)", "m\(index)").get() }
        var calls = 0
        var reaped: Int64 = 0
        while true {
            let result = try fixture.reap("dead", limit: 3).elements ?? []
            calls += 1
            reaped += result.last?.integer ?? 0
            if result.first?.integer == 0 { break }
            #expect(try fixture.command(["SISMEMBER", "t:reaping", "dead"]) == .integer(1))
            #expect(try fixture.command(["ZSCORE", "t:relays", "dead"]) == .null)
            #expect(calls < 10)
        }
        #expect(calls >= 2)
        #expect(reaped == 7)
        #expect(try fixture.command(["HLEN", "t:names"]) == .integer(0))
        #expect(try fixture.command(["SCARD", "t:reaping"]) == .integer(0))
    }

    @Test func theSurveyGivesRedisClockTheHeartbeatsAndUnfinishedReaps() throws {
        let fixture = try Fixture()
        try fixture.register("r1")
        _ = try fixture.command(["SADD", "t:reaping", "old"])
        let survey = try fixture.run(ClusterScripts.survey, keys: [fixture.keys.relays, fixture.keys.reaping], []).get()
        guard let parts = survey.elements, parts.count == 3, let now = parts[0].integer,
            let relays = parts[1].elements, relays.count == 2, let beat = relays[1].text.flatMap(Int64.init)
        else { throw TestFailure("survey gave \(survey)") }
        #expect(relays[0].text == "r1")
        #expect(beat <= now && now - beat < 2000)
        #expect(parts[2] == .array([.bulk(Array("old".utf8))]))
    }

    @Test func aScriptFlushedFromRedisRunsAgainFromItsSource() throws {
        let fixture = try Fixture()
        _ = try fixture.command(["SCRIPT", "FLUSH"])
        _ = try fixture.command(["CONFIG", "RESETSTAT"])
        try fixture.register("r1")
        #expect(try fixture.command(["ZCARD", "t:relays"]) == .integer(1))
        // EVALSHA answered NOSCRIPT, and EVAL with the source did the work.
        let stats = try fixture.command(["INFO", "commandstats"]).text ?? ""
        #expect(stats.contains("cmdstat_evalsha:calls=1,"))
        #expect(stats.contains("cmdstat_eval:calls=1,"))
    }
}
