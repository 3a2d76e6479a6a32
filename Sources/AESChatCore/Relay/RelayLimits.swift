/// The limits a relay enforces against hostile or broken clients, each with the error code it
/// refuses with (docs/PROTOCOL.md, error codes). A value of 0 turns a count or rate limit off.
public struct RelayLimits: Sendable, Equatable {
    /// A connection that has not completed hello within this time is closed (`handshake-timeout`).
    public var handshakeTimeout: Duration = .seconds(10)
    /// Connections open at once; more are refused at accept (`too-many-connections`). 0: no limit.
    public var maximumConnections = 10_000
    /// Connections open at once from one address; more are refused (`too-many-connections`). 0: no limit.
    public var maximumConnectionsPerAddress = 1_000
    /// Sustained publish, direct and multicast frames per second per member (file chunks count).
    /// 0: no limit.
    public var messageRate = 5_000
    /// Frames a member may send at once above the rate before it is disconnected (`flooding`).
    public var messageBurst = 10_000
    /// A member silent for this long is pinged; one silent for twice this long is closed (`idle-timeout`).
    public var idleTimeout: Duration = .seconds(60)
    /// How often the relay refills token buckets and checks idle members.
    public var tickInterval: Duration = .seconds(1)

    /// The defaults documented in docs/CLI.md.
    public init() {}

    /// The address part of a peer description such as `127.0.0.1:5000` or `[::1]:5000`: what the
    /// per-address limit counts.
    static func address(ofPeer peer: String) -> Substring {
        guard let colon = peer.lastIndex(of: ":") else { return Substring(peer) }
        if peer.hasPrefix("[") || peer.firstIndex(of: ":") == colon { return peer[..<colon] }
        return Substring(peer)
    }
}

/// A token bucket in whole frames: refilled by ``RelayLimits/messageRate`` per second at each tick,
/// holding at most ``RelayLimits/messageBurst``.
struct TokenBucket {
    private(set) var tokens: Double
    let capacity: Double

    init(capacity: Int) {
        self.capacity = Double(capacity)
        self.tokens = Double(capacity)
    }

    /// Takes one token; false when the bucket is empty.
    mutating func take() -> Bool {
        guard tokens >= 1 else { return false }
        tokens -= 1
        return true
    }

    mutating func refill(_ amount: Double) {
        tokens = min(capacity, tokens + amount)
    }
}
