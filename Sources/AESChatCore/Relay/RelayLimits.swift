import AESChatCLI

/// The limits a relay enforces against hostile or broken clients, each with the error code it
/// refuses with (docs/PROTOCOL.md, error codes). A value of 0 turns a count or rate limit off.
public struct RelayLimits: Sendable, Equatable {
    /// A connection that has not completed hello within this time is closed (`handshake-timeout`).
    public var handshakeTimeout: Duration = .seconds(RelayLimits.serveDefaults.handshakeTimeout)
    /// Encrypted-link handshakes per second one address may start, a token bucket per address; a handshake beyond
    /// it and ``handshakeBurst`` is answered busy (each costs the relay an X25519 before message 1 can be checked,
    /// so this keeps a flood of fake handshakes from starving everyone else). 0: no limit.
    public var handshakeRate = RelayLimits.serveDefaults.handshakeRate
    /// Handshakes one address may start at once before ``handshakeRate`` applies.
    public var handshakeBurst = RelayLimits.serveDefaults.handshakeBurst
    /// Handshakes queued or in progress at once, from all addresses; more are answered busy. 0: no limit.
    public var maximumHandshakesInProgress = 256
    /// Connections open at once; more are refused at accept (`too-many-connections`). 0: no limit.
    public var maximumConnections = RelayLimits.serveDefaults.maxConnections
    /// Connections open at once from one address; more are refused (`too-many-connections`). 0: no limit.
    public var maximumConnectionsPerAddress = RelayLimits.serveDefaults.maxConnectionsPerAddress
    /// Sustained frames per second per connection: publish, direct, multicast (file chunks count),
    /// ping and pong each take one token (`flooding`). 0: no limit.
    public var messageRate = RelayLimits.serveDefaults.messageRate
    /// Frames a member may send at once above the rate before it is disconnected (`flooding`).
    public var messageBurst = RelayLimits.serveDefaults.messageBurst
    /// Sustained payload bytes per second per member (`flooding`): a publish costs its payload once
    /// (a room's frames are shared by its members), a direct or multicast its payload times the
    /// recipients it names. 0: no limit.
    public var byteRate = RelayLimits.serveDefaults.byteRate
    /// Payload bytes a member may send at once above the byte rate; also the most one frame may
    /// cost (a multicast of 16 MiB to 255 members, 4 GiB, is refused by the default).
    public var byteBurst = RelayLimits.serveDefaults.byteBurst
    /// A member silent for this long is pinged; one silent for twice this long is closed (`idle-timeout`).
    public var idleTimeout: Duration = .seconds(RelayLimits.serveDefaults.idleTimeout)
    /// A frame whose first bytes arrived must be complete within this time plus its length at
    /// ``minimumFrameRate`` (`slow-frame`).
    public var incompleteFrameGrace: Duration = .seconds(RelayLimits.serveDefaults.frameGrace)
    /// The slowest a frame in progress may arrive, in bytes per second averaged over the frame: a
    /// frame of `L` bytes has ``incompleteFrameGrace`` + `L` / this rate to complete (16 MiB:
    /// 30 s + 1,024 s). 0: no deadline.
    public var minimumFrameRate = RelayLimits.serveDefaults.minFrameRate
    /// Bytes of buffers for partly received large frames (64 KiB and longer) the relay holds for
    /// all connections together; a connection whose frame would pass it is refused (`frame-budget`).
    /// The first such frame is always admitted, so a frame of the largest size can always arrive.
    /// 0: no limit.
    public var incompleteFrameBudget = RelayLimits.serveDefaults.frameBudget
    /// The same budget counted per client address, where frames under 64 KiB in progress (each
    /// reserved at its whole length) count too: 1,000 connections from one address cannot hold
    /// 64 KiB each beyond it. 0: no limit.
    public var incompleteFrameBudgetPerAddress = RelayLimits.serveDefaults.frameBudgetPerAddress
    /// How often the relay refills token buckets and checks idle members and frames in progress.
    public var tickInterval: Duration = .seconds(1)

    /// The defaults documented in docs/CLI.md: those of `aeschat serve` (``ServeOptions``).
    public init() {}

    /// Where the defaults come from: the options `aeschat serve` starts with, which its help shows.
    private static let serveDefaults = ServeOptions()

    /// The address part of a peer description such as `127.0.0.1:5000` or `[::1]:5000`: what the
    /// per-address limit counts.
    static func address(ofPeer peer: String) -> Substring {
        guard let colon = peer.lastIndex(of: ":") else { return Substring(peer) }
        if peer.hasPrefix("[") || peer.firstIndex(of: ":") == colon { return peer[..<colon] }
        return Substring(peer)
    }

    /// How long a frame of `length` bytes (prefix included; nil while its prefix is incomplete)
    /// may take from its first bytes to its last; nil when frames have no deadline.
    func incompleteFrameDeadline(length: Int?) -> Duration? {
        guard minimumFrameRate > 0 else { return nil }
        guard let length, length > 0 else { return incompleteFrameGrace }
        // length < 2^32 + 4 and the rate is positive, so the product cannot overflow an Int64.
        let milliseconds = length.multipliedReportingOverflow(by: 1000)
        guard !milliseconds.overflow else { return nil }
        return incompleteFrameGrace + .milliseconds(milliseconds.partialValue / minimumFrameRate)
    }
}
