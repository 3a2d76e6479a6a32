/// A Lua script run by Redis atomically (cluster.md §3.2–3.5): sent once with `SCRIPT LOAD`, then called by its
/// SHA-1 with `EVALSHA`; a server that answers `NOSCRIPT` (restarted, or `SCRIPT FLUSH`) gets the source with `EVAL`
/// in its place, which also caches it again.
///
/// The scripts are kept in Swift source rather than as package resources: a resource bundle would have to ship
/// beside the binary, and `scripts/install` and the Debian package install one file.
public struct RedisScript: Sendable, Equatable {
    /// A short name for messages.
    public let name: String
    /// The Lua source.
    public let source: String

    public init(name: String, source: String) {
        self.name = name
        self.source = source
    }
}

/// Runs ``RedisScript``s on one connection, remembering the SHA-1 Redis gave each. Loop thread only.
public final class RedisScriptRunner {
    private let connection: RedisConnection
    /// The SHA-1 of each script loaded, by source.
    private var hashes: [String: [UInt8]] = [:]
    /// Whether a `NOSCRIPT` answer is retried with EVAL. A caller that needs its commands executed in the order sent
    /// turns this off and treats `NOSCRIPT` as a failure (the retry would run after commands sent in between).
    public var retriesWithSource = true

    public init(connection: RedisConnection) {
        self.connection = connection
    }

    /// Loads `scripts` (SCRIPT LOAD, pipelined); `completion` is called once all are loaded or with the first failure.
    public func load(_ scripts: [RedisScript], _ completion: @escaping (Result<Void, RedisError>) -> Void) {
        guard !scripts.isEmpty else {
            completion(.success(()))
            return
        }
        var left = scripts.count
        var failed = false
        for script in scripts {
            connection.send(["SCRIPT", "LOAD", script.source]) { [self] result in
                guard !failed else { return }
                switch result {
                case .success(let value):
                    guard let hash = value.bytes, hash.count == 40 else {
                        failed = true
                        completion(.failure(.protocolError("SCRIPT LOAD of \(script.name) gave no SHA-1")))
                        return
                    }
                    hashes[script.source] = hash
                    left -= 1
                    if left == 0 { completion(.success(())) }
                case .failure(let error):
                    failed = true
                    completion(.failure(error))
                }
            }
        }
    }

    /// Runs `script` with `keys` and `arguments`: by EVALSHA once loaded, else (or on NOSCRIPT) by EVAL. Commands sent
    /// after this one are executed after it (a NOSCRIPT retry included: the retry is queued at once, behind nothing
    /// but the EVALSHA that failed, so it may run after commands sent in between; a caller that needs strict order
    /// loads its scripts first with ``load(_:_:)``, which makes NOSCRIPT happen only after a Redis restart, which
    /// ends the connection anyway).
    public func run(
        _ script: RedisScript, keys: [[UInt8]], arguments: [[UInt8]],
        _ completion: @escaping RedisConnection.Completion
    ) {
        let count = Array(String(keys.count).utf8)
        guard let hash = hashes[script.source] else {
            connection.send([Array("EVAL".utf8), Array(script.source.utf8), count] + keys + arguments, completion)
            return
        }
        connection.send([Array("EVALSHA".utf8), hash, count] + keys + arguments) { [self] result in
            if retriesWithSource, case .failure(let error) = result, error.serverCode == "NOSCRIPT" {
                hashes[script.source] = nil
                connection.send(
                    [Array("EVAL".utf8), Array(script.source.utf8), count] + keys + arguments, completion)
                return
            }
            completion(result)
        }
    }

    /// ``run(_:keys:arguments:_:)`` with keys and arguments given as text.
    public func run(
        _ script: RedisScript, keys: [String], arguments: [String], _ completion: @escaping RedisConnection.Completion
    ) {
        run(script, keys: keys.map { Array($0.utf8) }, arguments: arguments.map { Array($0.utf8) }, completion)
    }
}
