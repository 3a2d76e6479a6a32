#if canImport(Glibc)
    import Glibc
#elseif canImport(Darwin)
    import Darwin
#endif
import Foundation
import Testing

@testable import AESChatCore

/// A redis-server of its own for a test: on a free loopback port (and a unix socket in a temporary folder), with
/// persistence off, ended by its PID. Tests that need one are skipped when redis-server is not installed, unless
/// AESCHAT_REQUIRE_REDIS is set (as CI sets it): then they run and fail.
final class RedisTestServer {
    /// Where redis-server is, if installed.
    static let executable: String? = {
        let path = ProcessInfo.processInfo.environment["PATH"] ?? ""
        let folders = path.split(separator: ":").map(String.init) + ["/usr/bin", "/usr/local/bin", "/opt/homebrew/bin"]
        return folders.map { "\($0)/redis-server" }.first { FileManager.default.isExecutableFile(atPath: $0) }
    }()

    /// Whether the tests that need a real Redis run: it is installed, or required (and then they fail without it).
    static let shouldRun = executable != nil || ProcessInfo.processInfo.environment["AESCHAT_REQUIRE_REDIS"] != nil

    /// The reason printed for a skipped test.
    static let skipReason: Comment =
        "skipped: redis-server is not installed (apt-get install redis-server, brew install redis); set AESCHAT_REQUIRE_REDIS=1 to fail instead"

    let process = Process()
    let port: UInt16
    let folder: URL
    var socketPath: String { folder.appendingPathComponent("redis.sock").path }

    /// Starts a server and waits (at most 10 s) until it accepts connections.
    /// - Parameter arguments: extra configuration, such as `["--requirepass", "secret"]`.
    init(arguments: [String] = []) throws {
        guard let executable = Self.executable else {
            throw TestFailure("redis-server is not installed and AESCHAT_REQUIRE_REDIS is set")
        }
        port = try Self.freePort()
        folder = FileManager.default.temporaryDirectory.appendingPathComponent("aeschat-redis-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: folder, withIntermediateDirectories: true)
        process.executableURL = URL(fileURLWithPath: executable)
        process.arguments =
            [
                "--port", String(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no",
                "--unixsocket", folder.appendingPathComponent("redis.sock").path, "--unixsocketperm", "700",
                "--dir", folder.path, "--logfile", folder.appendingPathComponent("redis.log").path,
            ] + arguments
        process.standardOutput = FileHandle.nullDevice
        process.standardError = FileHandle.nullDevice
        try process.run()
        for _ in 0..<200 {
            if Self.accepts(port: port) && FileManager.default.fileExists(atPath: socketPath) { return }
            guard process.isRunning else { break }
            usleep(50_000)
        }
        stop()
        let log = (try? String(contentsOf: folder.appendingPathComponent("redis.log"), encoding: .utf8)) ?? ""
        throw TestFailure("redis-server did not start on port \(port): \(log.suffix(500))")
    }

    deinit { stop() }

    /// Ends the server by its PID and removes its folder.
    func stop() {
        if process.isRunning {
            kill(process.processIdentifier, SIGKILL)
            process.waitUntilExit()
        }
        try? FileManager.default.removeItem(at: folder)
    }

    var endpoint: RedisEndpoint { .tcp(host: "127.0.0.1", port: port) }

    /// A loopback port nobody listens on right now.
    static func freePort() throws -> UInt16 {
        let loop = try PosixEventLoop()
        let listener = try TCPListener(host: "127.0.0.1", port: 0, loop: loop)
        defer { listener.close() }
        return listener.localPort
    }

    private static func accepts(port: UInt16) -> Bool {
        let descriptor = socket(AF_INET, System.streamType, 0)
        guard descriptor >= 0 else { return false }
        defer { close(descriptor) }
        var address = sockaddr_in()
        address.sin_family = sa_family_t(AF_INET)
        address.sin_port = port.bigEndian
        address.sin_addr.s_addr = inet_addr("127.0.0.1")
        return withUnsafePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) {
                connect(descriptor, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) == 0
            }
        }
    }
}

struct TestFailure: Error, CustomStringConvertible {
    let description: String
    init(_ description: String) { self.description = description }
}

/// Runs a loop until `stop()` with a watchdog, so a broken test cannot hang the suite.
func runRedisLoop(_ loop: PosixEventLoop, seconds: Int = 15) throws {
    var timedOut = false
    let timer = loop.schedule(after: .seconds(seconds)) {
        timedOut = true
        loop.stop()
    }
    try loop.run()
    loop.cancel(timer)
    #expect(!timedOut, "event loop watchdog fired")
}

/// Connects to `server` (or `endpoint`) and returns the connection or the failure, running the loop meanwhile.
func connectRedis(
    _ endpoint: RedisEndpoint, loop: PosixEventLoop, handshake: RedisHandshake = RedisHandshake(),
    limits: RedisConnection.Limits = RedisConnection.Limits()
) throws -> Result<RedisConnection, RedisError> {
    var outcome: Result<RedisConnection, RedisError>?
    RedisConnection.connect(to: endpoint, loop: loop, handshake: handshake, timeout: .seconds(5), limits: limits) {
        outcome = $0
        loop.stop()
    }
    try runRedisLoop(loop)
    guard let outcome else { throw TestFailure("no connect outcome") }
    return outcome
}

/// Sends commands and runs the loop until every reply has come; returns them in order.
func redisReplies(_ connection: RedisConnection, loop: PosixEventLoop, _ commands: [[String]]) throws
    -> [Result<RedisValue, RedisError>]
{
    var results: [Result<RedisValue, RedisError>?] = Array(repeating: nil, count: commands.count)
    var left = commands.count
    for (index, command) in commands.enumerated() {
        connection.send(command) { result in
            results[index] = result
            left -= 1
            if left == 0 { loop.stop() }
        }
    }
    if left > 0 { try runRedisLoop(loop) }
    return results.map { $0! }
}

/// One reply, or a test failure.
func redisReply(_ connection: RedisConnection, loop: PosixEventLoop, _ command: [String]) throws -> RedisValue {
    try redisReplies(connection, loop: loop, [command])[0].get()
}

/// Runs a script and returns its result.
func runScript(
    _ runner: RedisScriptRunner, loop: PosixEventLoop, _ script: RedisScript, keys: [String], arguments: [[UInt8]]
) throws -> Result<RedisValue, RedisError> {
    var outcome: Result<RedisValue, RedisError>?
    runner.run(script, keys: keys.map { Array($0.utf8) }, arguments: arguments) {
        outcome = $0
        loop.stop()
    }
    try runRedisLoop(loop)
    return outcome!
}
