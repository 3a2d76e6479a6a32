import Foundation
import Testing

@testable import AESChatCore

/// ``RedisConnection`` and the cluster's Lua scripts against a real redis-server that each test starts on a free
/// loopback port (persistence off) and ends by its PID.
@Suite(.serialized, .enabled(if: RedisTestServer.shouldRun, RedisTestServer.skipReason))
struct RedisServerTests {
    @Test func commandsArePipelinedAndRepliedInOrderOverTCPAndUnixSockets() throws {
        let server = try RedisTestServer()
        let loop = try PosixEventLoop()
        for endpoint in [server.endpoint, .unix(path: server.socketPath)] {
            let redis = try connectRedis(endpoint, loop: loop).get()
            let replies = try redisReplies(
                redis, loop: loop, [["DEL", "n"]] + (1...500).map { _ in ["INCR", "n"] } + [["GET", "n"]])
            #expect(replies.dropFirst().dropLast().map { try? $0.get() } == (1...500).map { .integer(Int64($0)) })
            #expect(try replies.last?.get() == .bulk(Array("500".utf8)))
            redis.close()
        }
    }

    @Test func aRefusedConnectionIsConnectFailedNamingTheAddress() throws {
        let loop = try PosixEventLoop()
        let port = try RedisTestServer.freePort()
        let outcome = try connectRedis(.tcp(host: "127.0.0.1", port: port), loop: loop)
        guard case .failure(let error) = outcome else { throw TestFailure("connected to nothing") }
        #expect(error.description == "cannot reach Redis at 127.0.0.1:\(port): Connection refused")
        let missing = try connectRedis(.unix(path: "/nonexistent/aeschat-redis.sock"), loop: loop)
        guard case .failure(let unixError) = missing else { throw TestFailure("connected to nothing") }
        #expect(
            unixError.description
                == "cannot reach Redis at unix:/nonexistent/aeschat-redis.sock: No such file or directory")
    }

    @Test func authenticationSelectAndTheClientNameTakeEffect() throws {
        let server = try RedisTestServer(arguments: ["--requirepass", "s3cret-pw"])
        let loop = try PosixEventLoop()
        guard case .failure(let missing) = try connectRedis(server.endpoint, loop: loop) else {
            throw TestFailure("no password accepted")
        }
        #expect(missing.description.hasPrefix("Redis refused the credentials: NOAUTH"))
        guard case .failure(let wrong) = try connectRedis(server.endpoint, loop: loop, handshake: .init(password: "x"))
        else { throw TestFailure("a wrong password accepted") }
        #expect(wrong.description.hasPrefix("Redis refused the credentials: WRONGPASS"))
        let handshake = RedisHandshake(user: "default", password: "s3cret-pw", database: 3, clientName: "aeschat.t.1")
        let redis = try connectRedis(server.endpoint, loop: loop, handshake: handshake).get()
        _ = try redisReply(redis, loop: loop, ["SET", "where", "db3"])
        let list = try redisReply(redis, loop: loop, ["CLIENT", "LIST"]).text ?? ""
        #expect(list.contains("name=aeschat.t.1"))
        #expect(list.contains("db=3"))
        let other = try connectRedis(server.endpoint, loop: loop, handshake: .init(password: "s3cret-pw")).get()
        #expect(try redisReply(other, loop: loop, ["GET", "where"]) == .null)
        guard
            case .failure(let badDatabase) = try connectRedis(
                server.endpoint, loop: loop, handshake: .init(password: "s3cret-pw", database: 99))
        else { throw TestFailure("database 99 accepted") }
        #expect(badDatabase.description.hasPrefix("Redis refused SELECT: ERR DB index is out of range"))
    }

    @Test func aSubscriberSeesTwoChannelsInThePublishersOrder() throws {
        let server = try RedisTestServer()
        let loop = try PosixEventLoop()
        let subscriber = try connectRedis(server.endpoint, loop: loop).get()
        let publisher = try connectRedis(server.endpoint, loop: loop).get()
        var received: [String] = []
        let count = 400
        subscriber.pushHandler = { push in
            guard case .message(let channel, let payload) = push else { return }
            received.append(String(decoding: channel + [UInt8(ascii: "=")] + payload, as: UTF8.self))
            if received.count == count { loop.stop() }
        }
        subscriber.subscribe([Array("room".utf8), Array("inbox".utf8)]) { _ in loop.stop() }
        try runRedisLoop(loop)
        var sent: [String] = []
        for index in 0..<count {
            let channel = index % 3 == 0 ? "inbox" : "room"
            sent.append("\(channel)=\(index)")
            publisher.send(["PUBLISH", channel, String(index)]) { _ in }
        }
        try runRedisLoop(loop)
        #expect(received == sent)
        var refused: Result<RedisValue, RedisError>?
        subscriber.send(["GET", "x"]) {
            refused = $0
            loop.stop()
        }
        try runRedisLoop(loop)
        if case .failure(.notAllowedWhileSubscribed("GET")) = refused {
        } else {
            Issue.record("\(String(describing: refused))")
        }
    }

    @Test func aReplyBeyondTheLimitEndsTheConnection() throws {
        let server = try RedisTestServer()
        let loop = try PosixEventLoop()
        var limits = RedisConnection.Limits()
        limits.maximumReplyBytes = 4096
        let redis = try connectRedis(server.endpoint, loop: loop, limits: limits).get()
        _ = try redisReply(redis, loop: loop, ["SET", "big", String(repeating: "x", count: 100_000)])
        var closed: RedisError?
        redis.closeHandler = { closed = $0 }
        let result = try redisReplies(redis, loop: loop, [["GET", "big"]])[0]
        #expect(closed == .replyTooLarge(limit: 4096))
        if case .failure(.replyTooLarge(4096)) = result {} else { Issue.record("\(result)") }
    }

    @Test func theSettingsCheckReadsTheServersSettings() throws {
        let server = try RedisTestServer(arguments: ["--maxmemory-policy", "allkeys-lru"])
        let loop = try PosixEventLoop()
        let redis = try connectRedis(server.endpoint, loop: loop).get()
        var warnings: [String] = []
        RedisSettingsCheck.run(on: redis) {
            warnings = $0
            loop.stop()
        }
        try runRedisLoop(loop)
        #expect(warnings.count == 2)
        #expect(warnings.first?.contains("'allkeys-lru'") == true)
        #expect(warnings.last?.contains("33554432 bytes hard, 8388608 bytes soft") == true)
        _ = try redisReply(redis, loop: loop, ["CONFIG", "SET", "maxmemory-policy", "noeviction"])
        _ = try redisReply(redis, loop: loop, ["CONFIG", "SET", "client-output-buffer-limit", "pubsub 256mb 64mb 30"])
        RedisSettingsCheck.run(on: redis) {
            warnings = $0
            loop.stop()
        }
        try runRedisLoop(loop)
        #expect(warnings == [])
    }
}
