/// The options of `aeschat serve`. Values are already validated when they come from the parser.
public struct ServeOptions: Equatable, Sendable {
    /// The address to listen on: an IPv4 or IPv6 literal (without brackets) or a hostname.
    public var host = "127.0.0.1"
    /// The TCP port to listen on, 1 to 65535.
    public var port: UInt16 = 7777
    /// The relay's key file, if one was given (never empty); the default lives in the configuration folder. Made on
    /// first start, never overwritten.
    public var relayKeyFile: String? = nil
    /// The key file of the relay's previous key, accepted beside the current one during a rotation (never empty);
    /// read, never made.
    public var previousRelayKeyFile: String? = nil
    /// Print the relay key's fingerprint and join line and exit (making the key if it is missing).
    public var showKey = false
    /// Output bytes queued for one member beyond which the relay disconnects it as too slow.
    public var maxPendingOutput = ServeOptions.defaultMaxPendingOutput

    /// The largest frame a client may send, in bytes (1 KiB to 16 MiB).
    public var maxFrameSize = 16 << 20
    /// Seconds a connection has to complete the encrypted link's handshake and hello.
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

    /// The Redis that the relays of a cluster share (`--cluster`); nil for a relay on its own.
    public var cluster: ClusterAddress? = nil
    /// The prefix of the cluster's keys and channels in Redis, so that several clusters can share one Redis.
    public var clusterPrefix = "aeschat"
    /// Seconds of silence, by Redis's clock, after which the cluster takes a relay for dead and its members for gone.
    public var clusterDeadAfter = 5

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
