/// The options of `aeschat serve`. Values are already validated when they come from the parser.
public struct ServeOptions: Equatable, Sendable {
    /// The address to listen on: an IPv4 or IPv6 literal (without brackets) or a hostname.
    public var host = "127.0.0.1"
    /// The TCP port to listen on, 1 to 65535.
    public var port: UInt16 = 7777
    /// Output bytes queued for one member beyond which the relay disconnects it as too slow.
    public var maxPendingOutput = ServeOptions.defaultMaxPendingOutput

    /// The largest frame a client may send, in bytes (1 KiB to 16 MiB).
    public var maxFrameSize = 16 << 20
    /// Seconds a connection has to complete hello.
    public var handshakeTimeout = 10
    /// Encrypted-link handshakes per second from one address on average; 0 for no limit.
    public var handshakeRate = 20
    /// Handshakes from one address at once.
    public var handshakeBurst = 100
    /// Connections open at once; 0 for no limit.
    public var maxConnections = 10_000
    /// Connections open at once from one address; 0 for no limit.
    public var maxConnectionsPerAddress = 1_000
    /// Message frames per second per member on average; 0 for no limit.
    public var messageRate = 5_000
    /// Message frames per member at once.
    public var messageBurst = 10_000
    /// Seconds of silence after which a member is pinged (closed after twice as long).
    public var idleTimeout = 60
    /// Payload bytes per second per member on average (direct and multicast once per recipient); 0 for no limit.
    public var byteRate = 2 << 30
    /// Payload bytes per member at once; also the most one frame may cost.
    public var byteBurst = 1 << 30
    /// Seconds a frame in progress has, on top of its length at ``minFrameRate``.
    public var frameGrace = 30
    /// The slowest a frame may arrive, in bytes per second; 0 for no deadline.
    public var minFrameRate = 16 << 10
    /// Bytes of partly received large frames held for all connections; 0 for no limit.
    public var frameBudget = 256 << 20
    /// Bytes of partly received large frames held for one address; 0 for no limit.
    public var frameBudgetPerAddress = 64 << 20

    /// The default of ``maxPendingOutput``: 64 MiB.
    public static let defaultMaxPendingOutput = 64 * 1024 * 1024

    /// Creates serve options.
    ///
    /// - Parameters:
    ///   - host: The address to listen on; `0.0.0.0` or `::` serves a network.
    ///   - port: The TCP port to listen on.
    ///   - maxPendingOutput: The per-member output cap in bytes; it must exceed the 16 MiB frame limit.
    public init(host: String = "127.0.0.1", port: UInt16 = 7777, maxPendingOutput: Int = defaultMaxPendingOutput) {
        self.host = host
        self.port = port
        self.maxPendingOutput = maxPendingOutput
    }
}
