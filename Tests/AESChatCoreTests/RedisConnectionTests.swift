import Testing

@testable import AESChatCore

/// The RESP codec (hiredis's encoder and reader behind the shims) and ``RedisConnection`` over the in-memory
/// transport, against a scripted fake server: no Redis needed.
@Suite struct RedisConnectionTests {
    /// Feeds `bytes` to `reader`; returns the replies completed, or the reader's error.
    static func feed(_ reader: RESPReader, _ bytes: [UInt8]) -> Result<[RedisValue], RedisError> {
        bytes.withUnsafeBytes { raw in
            var values: [RedisValue] = []
            do throws(RedisError) {
                try reader.feed(raw) {
                    values.append($0)
                    return true
                }
                return .success(values)
            } catch {
                return .failure(error)
            }
        }
    }

    /// The server end of an in-memory connection: records what it reads, answers what the test writes.
    final class FakeServer: ConnectionHandler {
        var received: [UInt8] = []
        var closed = false
        func connection(_ connection: any Connection, didRead bytes: UnsafeRawBufferPointer) {
            received.append(contentsOf: bytes)
        }
        func connection(_ connection: any Connection, didCloseWith error: TransportError?) { closed = true }
    }

    struct Harness {
        let loop = MemoryEventLoop()
        let server = FakeServer()
        let serverEnd: MemoryConnection
        let redis: RedisConnection

        init(limits: RedisConnection.Limits = RedisConnection.Limits(), chunkSize: Int = 3) {
            let pair = MemoryConnection.pair(loop: loop, chunkSize: chunkSize)
            serverEnd = pair.server
            serverEnd.handler = server
            redis = RedisConnection(connection: pair.client, loop: loop, limits: limits)
        }

        func answer(_ text: String) {
            serverEnd.write(Array(text.utf8))
            loop.advance(by: .zero)
        }

        var sentText: String { String(decoding: server.received, as: UTF8.self) }
    }

    @Test func theEncoderWritesRESPArraysOfBulkStringsForAnyBytes() {
        #expect(RESPEncoder.command(["SET", "k", "v"]) == Array("*3\r\n$3\r\nSET\r\n$1\r\nk\r\n$1\r\nv\r\n".utf8))
        let binary: [UInt8] = [0, 13, 10, 255]
        #expect(
            RESPEncoder.command([Array("PUBLISH".utf8), [], binary])
                == Array("*3\r\n$7\r\nPUBLISH\r\n$0\r\n\r\n$4\r\n".utf8) + binary + [13, 10])
    }

    @Test func theReaderParsesEveryKindOfReplyFedAByteAtATime() throws {
        let reader = RESPReader(maximumReplyBytes: 1 << 20)
        let wire = "+OK\r\n-ERR bad\r\n:-42\r\n$3\r\na\r\n\r\n$-1\r\n*2\r\n$1\r\nx\r\n*1\r\n:7\r\n*-1\r\n"
        var values: [RedisValue] = []
        for byte in Array(wire.utf8) { values += try Self.feed(reader, [byte]).get() }
        #expect(
            values == [
                .status("OK"), .error("ERR bad"), .integer(-42), .bulk(Array("a\r\n".utf8)), .null,
                .array([.bulk([UInt8(ascii: "x")]), .array([.integer(7)])]), .null,
            ])
        #expect(reader.incompleteByteCount == 0)
    }

    @Test func theReaderRefusesBytesThatAreNotRESP() {
        let reader = RESPReader(maximumReplyBytes: 1 << 20)
        guard case .failure(.protocolError(let reason)) = Self.feed(reader, Array("?what\r\n".utf8)) else {
            Issue.record("not RESP, yet accepted")
            return
        }
        #expect(reason.hasPrefix("Protocol error"))
    }

    @Test func theReaderRefusesAReplyGrowingBeyondItsLimitBeforeItIsComplete() throws {
        let reader = RESPReader(maximumReplyBytes: 100)
        #expect(Self.feed(reader, Array("$1000\r\n".utf8)) == .success([]))
        let error = Self.feed(reader, [UInt8](repeating: 65, count: 200))
        #expect(error == .failure(.replyTooLarge(limit: 100)))
    }

    // hiredis 1.x parses RESP3 and (1.0 to 1.4) nests arrays without bound, where 0.14 refuses both: the shim refuses
    // them for every version, with the same words (Tests/hiredis/shim_check.c checks the shim alone, against 1.x too).
    @Test(arguments: [
        ",1.5\r\n", "#t\r\n", "%1\r\n+a\r\n:1\r\n", "~1\r\n:1\r\n", ">1\r\n:1\r\n", "_\r\n", "*2\r\n:1\r\n#f\r\n",
    ])
    func theReaderRefusesRESP3Replies(wire: String) {
        let reader = RESPReader(maximumReplyBytes: 1 << 20)
        let type = wire.hasPrefix("*") ? "#" : String(wire.prefix(1))
        #expect(
            Self.feed(reader, Array(wire.utf8))
                == .failure(.protocolError("Protocol error, got \"\(type)\" as reply type byte")))
    }

    @Test func theReaderReadsArraysNestedSevenDeepAndRefusesEight() {
        let seven = String(repeating: "*1\r\n", count: 7) + ":1\r\n"
        var expected = RedisValue.integer(1)
        for _ in 0..<7 { expected = .array([expected]) }
        #expect(Self.feed(RESPReader(maximumReplyBytes: 1 << 20), Array(seven.utf8)) == .success([expected]))
        let eight = String(repeating: "*1\r\n", count: 8) + ":1\r\n"
        #expect(
            Self.feed(RESPReader(maximumReplyBytes: 1 << 20), Array(eight.utf8))
                == .failure(.protocolError("Protocol error, a reply nests arrays more than 7 deep")))
    }

    @Test func theReaderRefusesAMillionLevelsOfNestingWithoutCrashing() {
        let reader = RESPReader(maximumReplyBytes: RedisConnection.Limits().maximumReplyBytes)
        let wire = [UInt8](String(repeating: "*1\r\n", count: 1_000_000).utf8) + Array(":1\r\n".utf8)
        #expect(
            Self.feed(reader, wire) == .failure(.protocolError("Protocol error, a reply nests arrays more than 7 deep"))
        )
    }

    @Test func theReaderRefusesAnArrayAnnouncingMoreElementsThanItsLimitHolds() {
        // "+\r\n" is the shortest element: 100 bytes hold 33 of them.
        #expect(Self.feed(RESPReader(maximumReplyBytes: 100), Array("*33\r\n".utf8)) == .success([]))
        #expect(
            Self.feed(RESPReader(maximumReplyBytes: 100), Array("*34\r\n".utf8))
                == .failure(.protocolError("Protocol error, an array of 34 elements is more than a reply can hold")))
        #expect(
            Self.feed(RESPReader(maximumReplyBytes: 17 << 20), Array("*2000000000\r\n".utf8))
                == .failure(
                    .protocolError("Protocol error, an array of 2000000000 elements is more than a reply can hold")))
    }

    @Test func pipelinedCommandsGetTheirRepliesInOrderAndAnErrorReplyFailsOnlyItsCommand() {
        let harness = Harness()
        var results: [String] = []
        harness.redis.send(["GET", "a"]) { results.append("1 \($0)") }
        harness.redis.send(["BAD"]) { results.append("2 \($0)") }
        harness.redis.send(["GET", "b"]) { results.append("3 \($0)") }
        harness.loop.runUntilIdle()
        #expect(harness.sentText == "*2\r\n$3\r\nGET\r\n$1\r\na\r\n*1\r\n$3\r\nBAD\r\n*2\r\n$3\r\nGET\r\n$1\r\nb\r\n")
        #expect(harness.redis.commandsInFlight == 3)
        harness.answer("$1\r\nA\r\n-ERR unknown command 'BAD'\r\n$-1\r\n")
        #expect(
            results == [
                "1 success(AESChatCore.RedisValue.bulk([65]))",
                "2 failure(Redis answered: ERR unknown command 'BAD')",
                "3 success(AESChatCore.RedisValue.null)",
            ])
        #expect(harness.redis.commandsInFlight == 0)
        #expect(harness.redis.isOpen)
    }

    @Test func aSubscriberGetsPushesInOrderBetweenTheRepliesToItsCommands() {
        let harness = Harness()
        var events: [String] = []
        harness.redis.pushHandler = { push in
            if case .message(let channel, let payload) = push {
                events.append("\(String(decoding: channel, as: UTF8.self))=\(String(decoding: payload, as: UTF8.self))")
            }
        }
        harness.redis.subscribe([Array("r".utf8), Array("n".utf8)]) { result in
            events.append("subscribed \((try? result.get()) != nil)")
        }
        harness.redis.send(["GET", "x"]) { result in
            events.append("GET refused: \(result)")
        }
        harness.loop.advance(by: .zero)
        harness.answer(
            "*3\r\n$9\r\nsubscribe\r\n$1\r\nr\r\n:1\r\n*3\r\n$7\r\nmessage\r\n$1\r\nr\r\n$2\r\nm1\r\n"
                + "*3\r\n$9\r\nsubscribe\r\n$1\r\nn\r\n:2\r\n*3\r\n$7\r\nmessage\r\n$1\r\nn\r\n$2\r\nm2\r\n"
                + "*3\r\n$7\r\nmessage\r\n$1\r\nr\r\n$2\r\nm3\r\n")
        #expect(
            events == [
                "GET refused: failure(GET is not allowed on a Redis connection in subscriber mode)",
                "r=m1", "subscribed true", "n=m2", "r=m3",
            ])
    }

    @Test func theServerClosingFailsEveryPendingCommandThenTellsTheCloseHandlerOnce() {
        let harness = Harness()
        var events: [String] = []
        harness.redis.closeHandler = { events.append("closed: \($0)") }
        harness.redis.send(["PING"]) { events.append("1 \($0)") }
        harness.redis.send(["PING"]) { events.append("2 \($0)") }
        harness.loop.runUntilIdle()
        harness.answer("+PONG\r\n")
        harness.serverEnd.close()
        harness.loop.runUntilIdle()
        #expect(events.count == 3)
        #expect(events[0] == "1 success(AESChatCore.RedisValue.status(\"PONG\"))")
        #expect(events[1] == "2 failure(lost the connection to Redis: the server closed the connection)")
        #expect(events[2] == "closed: lost the connection to Redis: the server closed the connection")
        var late: Result<RedisValue, RedisError>?
        harness.redis.send(["PING"]) { late = $0 }
        harness.loop.advance(by: .zero)
        if case .failure(.connectionLost) = late {
        } else {
            Issue.record("a command after the end: \(String(describing: late))")
        }
    }

    @Test func aReplyForNoCommandIsAProtocolErrorThatEndsTheConnection() {
        let harness = Harness()
        var closed: RedisError?
        harness.redis.closeHandler = { closed = $0 }
        harness.answer("+OK\r\n")
        #expect(closed == .protocolError("a reply came for no command"))
        harness.loop.runUntilIdle()
        #expect(harness.server.closed)
    }

    @Test func aReplyBeyondTheLimitEndsTheConnectionWithReplyTooLarge() {
        var limits = RedisConnection.Limits()
        limits.maximumReplyBytes = 64
        let harness = Harness(limits: limits, chunkSize: 4096)
        var result: Result<RedisValue, RedisError>?
        var closed: RedisError?
        harness.redis.closeHandler = { closed = $0 }
        harness.redis.send(["GET", "big"]) { result = $0 }
        harness.loop.runUntilIdle()
        harness.answer("$200\r\n" + String(repeating: "x", count: 100))
        #expect(closed == .replyTooLarge(limit: 64))
        if case .failure(.replyTooLarge(64)) = result {} else { Issue.record("got \(String(describing: result))") }
    }

    @Test func commandsBeyondTheOutputLimitEndTheConnection() {
        var limits = RedisConnection.Limits()
        limits.maximumPendingOutput = 100
        let harness = Harness(limits: limits)
        (harness.redis.connectionForTests as? MemoryConnection)?.holdsOutput = true
        var results: [Result<RedisValue, RedisError>] = []
        var closed: RedisError?
        harness.redis.closeHandler = { closed = $0 }
        harness.redis.send(["SET", "k", String(repeating: "v", count: 60)]) { results.append($0) }
        harness.redis.send(["SET", "k", String(repeating: "v", count: 60)]) { results.append($0) }
        harness.loop.advance(by: .zero)
        #expect(closed == .outputTooLarge(limit: 100))
        #expect(results.count == 2)
        #expect(results.allSatisfy { if case .failure(.outputTooLarge(100)) = $0 { true } else { false } })
    }

    @Test func theHandshakeSendsAuthSelectAndTheNameThenPings() {
        let harness = Harness()
        var outcome: Result<RedisConnection, RedisError>?
        harness.redis.start(RedisHandshake(user: "relay", password: "s3cret", database: 2, clientName: "aeschat.x.1")) {
            outcome = $0
        }
        harness.loop.runUntilIdle()
        #expect(
            harness.sentText
                == "*3\r\n$4\r\nAUTH\r\n$5\r\nrelay\r\n$6\r\ns3cret\r\n*2\r\n$6\r\nSELECT\r\n$1\r\n2\r\n"
                + "*3\r\n$6\r\nCLIENT\r\n$7\r\nSETNAME\r\n$11\r\naeschat.x.1\r\n*1\r\n$4\r\nPING\r\n")
        harness.answer("+OK\r\n+OK\r\n+OK\r\n+PONG\r\n")
        #expect((try? outcome?.get()) === harness.redis)
    }

    @Test func aRefusedPasswordIsAnAuthenticationFailureWithoutThePassword() {
        let harness = Harness()
        var outcome: Result<RedisConnection, RedisError>?
        harness.redis.start(RedisHandshake(password: "hunter2")) { outcome = $0 }
        harness.loop.runUntilIdle()
        harness.answer(
            "-WRONGPASS invalid username-password pair or user is disabled.\r\n-NOAUTH Authentication required.\r\n")
        guard case .failure(let error) = outcome else {
            Issue.record("got \(String(describing: outcome))")
            return
        }
        #expect(error == .authenticationFailed("WRONGPASS invalid username-password pair or user is disabled."))
        #expect(!error.description.contains("hunter2"))
        #expect(!harness.redis.isOpen)
    }

    @Test func aServerWantingAPasswordNamesTheVariableToSetIt() {
        let harness = Harness()
        var outcome: Result<RedisConnection, RedisError>?
        harness.redis.start(RedisHandshake(clientName: "n")) { outcome = $0 }
        harness.loop.runUntilIdle()
        harness.answer("-NOAUTH Authentication required.\r\n-NOAUTH Authentication required.\r\n")
        guard case .failure(let error) = outcome else {
            Issue.record("got \(String(describing: outcome))")
            return
        }
        #expect(
            error.description
                == "Redis refused the credentials: NOAUTH Authentication required. (set the password in AESCHAT_CLUSTER_PASSWORD)"
        )
    }

    @Test func theSettingsCheckWarnsOncePerSettingThatIsOff() {
        let defaults = "normal 0 0 0 slave 268435456 67108864 60 pubsub 33554432 8388608 60"
        let good = "normal 0 0 0 slave 268435456 67108864 60 pubsub 268435456 67108864 30"
        #expect(RedisSettingsCheck.warnings(policy: "noeviction", outputBufferLimits: good) == [])
        #expect(RedisSettingsCheck.warnings(policy: "noeviction", outputBufferLimits: "pubsub 0 0 0") == [])
        let both = RedisSettingsCheck.warnings(policy: "allkeys-lru", outputBufferLimits: defaults)
        #expect(both.count == 2)
        #expect(both[0].hasPrefix("warning: Redis's maxmemory-policy is 'allkeys-lru', not 'noeviction'"))
        #expect(
            both[1].hasPrefix(
                "warning: Redis's client-output-buffer-limit for pubsub is 33554432 bytes hard, 8388608 bytes soft"))
        #expect(RedisSettingsCheck.warnings(policy: nil, outputBufferLimits: nil).count == 2)
        #expect(
            RedisSettingsCheck.warnings(policy: "noeviction", outputBufferLimits: "pubsub 268435456 1048576 5").count
                == 1)
    }
}
