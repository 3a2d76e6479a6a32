/// A reply from Redis, as the RESP2 protocol has it. An error reply to a command is not a value: it comes as
/// ``RedisError/server(_:)``; an error inside an array (a script's table, say) is ``error(_:)``.
public enum RedisValue: Equatable, Sendable {
    /// A simple string, such as `OK` or `PONG`.
    case status(String)
    /// An error inside an array reply.
    case error(String)
    case integer(Int64)
    /// A bulk string: any bytes.
    case bulk([UInt8])
    /// The null bulk string or null array.
    case null
    case array([RedisValue])

    /// The bytes of a bulk string, or the text of a status, as bytes; nil for the other kinds.
    public var bytes: [UInt8]? {
        switch self {
        case .bulk(let bytes): bytes
        case .status(let text): Array(text.utf8)
        default: nil
        }
    }

    /// A bulk string or status as text (invalid UTF-8 repaired); nil for the other kinds.
    public var text: String? { bytes.map { String(decoding: $0, as: UTF8.self) } }

    /// The value of an integer reply; nil for the other kinds.
    public var integer: Int64? {
        if case .integer(let value) = self { return value }
        return nil
    }

    /// The elements of an array reply; nil for the other kinds.
    public var elements: [RedisValue]? {
        if case .array(let elements) = self { return elements }
        return nil
    }
}

/// Where a Redis server listens.
public enum RedisEndpoint: Equatable, Sendable, CustomStringConvertible {
    /// A host name or address and a TCP port.
    case tcp(host: String, port: UInt16)
    /// A unix-domain socket.
    case unix(path: String)

    /// `host:port` (an IPv6 address in brackets) or `unix:PATH`, for messages.
    public var description: String {
        switch self {
        case .tcp(let host, let port): host.contains(":") ? "[\(host)]:\(port)" : "\(host):\(port)"
        case .unix(let path): "unix:\(path)"
        }
    }
}

/// What a Redis connection can fail with. Every case reads as one line naming what failed; none carries a secret
/// (Redis's own messages never repeat a password).
public enum RedisError: Error, Equatable, Sendable, CustomStringConvertible {
    /// The server could not be reached: refused, unreachable, no such socket, a name that does not resolve.
    case connectFailed(address: String, reason: String)
    /// The server refused the credentials, or wants some and none were given.
    case authenticationFailed(String)
    /// A set-up command (SELECT, CLIENT SETNAME) was refused.
    case setupFailed(command: String, message: String)
    /// The server sent something that is not RESP, or a reply nobody asked for.
    case protocolError(String)
    /// A reply grew beyond the connection's limit before it was complete.
    case replyTooLarge(limit: Int)
    /// Commands queued and not yet taken by the server passed the connection's limit.
    case outputTooLarge(limit: Int)
    /// More commands awaited replies than the connection's limit.
    case tooManyCommands(limit: Int)
    /// The connection ended (the server closed it, or a read or write failed).
    case connectionLost(String)
    /// This side closed the connection before the reply came.
    case closed
    /// The server answered this command with an error (the connection stays usable).
    case server(String)
    /// A command other than (un)subscribe or ping on a connection in subscriber mode.
    case notAllowedWhileSubscribed(command: String)
    /// The connection or its set-up took too long.
    case timedOut(String)

    public var description: String {
        switch self {
        case .connectFailed(let address, let reason): "cannot reach Redis at \(address): \(reason)"
        case .authenticationFailed(let message): "Redis refused the credentials: \(message)"
        case .setupFailed(let command, let message): "Redis refused \(command): \(message)"
        case .protocolError(let what): "Redis protocol error: \(what)"
        case .replyTooLarge(let limit): "a reply from Redis exceeded \(limit) bytes"
        case .outputTooLarge(let limit): "more than \(limit) bytes of commands waited to go to Redis"
        case .tooManyCommands(let limit): "more than \(limit) commands waited for Redis's replies"
        case .connectionLost(let reason): "lost the connection to Redis: \(reason)"
        case .closed: "the connection to Redis was closed"
        case .server(let message): "Redis answered: \(message)"
        case .notAllowedWhileSubscribed(let command):
            "\(command) is not allowed on a Redis connection in subscriber mode"
        case .timedOut(let what): "\(what) timed out"
        }
    }

    /// The server's error code, the first word of its message (`NOSCRIPT`, `WRONGPASS`, `FENCED`…); nil for failures
    /// that are not server replies.
    public var serverCode: Substring? {
        guard case .server(let message) = self else { return nil }
        return message.split(separator: " ", maxSplits: 1).first
    }
}
