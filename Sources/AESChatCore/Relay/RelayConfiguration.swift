import AESChatCLI
public import AESChatCrypto

/// The relay's keys, limits and timings.
public struct RelayConfiguration: Sendable {
    /// The relay's static X25519 key: clients pin its public half and name it by its key id in their preamble.
    /// `aeschat serve` loads it from its key file; the default is a fresh key (for tests).
    public var relayKey: X25519PrivateKey
    /// The key the relay held before a planned rotation (`serve --previous-relay-key`): handshakes under it still
    /// work, and on such a link the relay announces its keys (`relay-keys`) right after `welcome`.
    public var previousRelayKey: X25519PrivateKey?
    /// The largest frame accepted from a client (type byte plus body).
    public var maximumFrameLength = Frame.defaultMaximumLength
    /// Output queued for one member beyond which that member is disconnected as too slow (error
    /// `too-slow`). Must exceed the largest frame so that one big message never trips it by itself.
    /// Checked before more output is queued, against what the kernel did not take when the member's
    /// connection last flushed. Bounds the relay's memory: what the members of a room are owed is
    /// shared between them, so a room costs at most about this much plus one loop iteration's
    /// frames, plus each member's private frames, however many members lag.
    public var maximumPendingOutput = RelayConfiguration.defaultMaximumPendingOutput
    /// How long a closing connection may take to flush before it is cut.
    public var closeTimeout: Duration = .seconds(5)
    /// Size of the shared buffers that fanned-out frames are written into (larger frames get a
    /// buffer of their own).
    public var fanOutBufferSize = 64 * 1024
    /// Limits against hostile or broken clients.
    public var limits = RelayLimits()
    /// How long a room's `joined` and `left` frames may wait for more of their kind before they are sent, when the
    /// room has nothing else to send: during a burst of joins or leaves each member then gets one record for many of
    /// them instead of one per loop iteration. Any other frame for the room (a message) sends them at once, in order.
    /// Zero sends them at the end of the loop iteration, like every other frame (the default, which in-memory tests
    /// rely on); `aeschat serve` uses ``servePresenceWindow``.
    public var presenceWindow: Duration = .zero

    /// Added to the presence window per member of the room: handing a batch to every member costs about one `send`
    /// each (several microseconds on loopback), so in a large room the window grows to keep that work a small share
    /// of the relay's time during a burst of joins or leaves (20 µs per member: 225 ms at 10,000 members).
    public var presenceWindowPerMember: Duration = .zero

    /// The presence window of a room of `members` members.
    func presenceWindow(members: Int) -> Duration {
        presenceWindow + presenceWindowPerMember * members
    }

    /// The timings and bounds of a relay in a cluster (used only when the relay is given a ``ClusterEngine``).
    public var cluster = ClusterTimings()

    /// The per-member growth of the presence window of `aeschat serve`.
    public static let servePresenceWindowPerMember: Duration = .microseconds(20)

    /// The presence window of `aeschat serve`: short enough that nobody sees a join or leave late, long enough
    /// that a join storm costs each member about one record per window (docs/BENCHMARKS.md).
    public static let servePresenceWindow: Duration = .milliseconds(25)

    /// The default of ``maximumPendingOutput``: 64 MiB, that of `aeschat serve`.
    public static let defaultMaximumPendingOutput = ServeOptions.defaultMaxPendingOutput

    /// The defaults documented in docs/CLI.md, with a fresh relay key.
    public init() {
        relayKey = (try? X25519PrivateKey(ephemeral: ())) ?? X25519PrivateKey()
    }

    /// The defaults documented in docs/CLI.md, with the relay's keys.
    /// - Parameters:
    ///   - relayKey: the relay's current static key.
    ///   - previousRelayKey: the key it held before a planned rotation, if it still accepts it.
    public init(relayKey: X25519PrivateKey, previousRelayKey: X25519PrivateKey? = nil) {
        self.relayKey = relayKey
        self.previousRelayKey = previousRelayKey
    }
}

/// The timings and bounds of a relay in a cluster (issue 16; `serve --cluster-dead-after` sets ``deadAfter``).
public struct ClusterTimings: Sendable {
    /// How often the relay runs the heartbeat script, pings its own inbox and looks for dead relays.
    public var heartbeatInterval: Duration = .seconds(1)
    /// A relay silent this long by the engine's clock is reaped by the others; a relay whose heartbeat or ping went
    /// unanswered for 60 % of it ends its incarnation first.
    public var deadAfter: Duration = .seconds(5)
    /// How long a room's mirror (and its subscription) stays after its last local member left.
    public var roomLinger: Duration = .seconds(30)
    /// Members reaped per reap script call (each call blocks the engine for about 3 ms at 500).
    public var reapChunk = 500
    /// Stream bytes a bootstrapping room may queue before its snapshot comes; beyond, the incarnation ends.
    public var bootstrapQueueLimit = 16 * 1024 * 1024
    /// Frame bytes a member may send between its hello and its welcome (held until the welcome); beyond, the member
    /// is refused.
    public var heldInputLimit = 1024 * 1024
    /// The first delay before a lost incarnation is replaced by a new one; it doubles up to ``maximumRestartDelay``.
    public var restartDelay: Duration = .milliseconds(100)
    /// The longest delay between attempts to start a new incarnation.
    public var maximumRestartDelay: Duration = .seconds(5)
    /// Bytes of commands queued toward the engine (not yet taken by the kernel) above which the relay stops reading
    /// every connection, so that senders are held back by TCP flow control instead of the queue growing.
    public var engineOutputHighWater = 64 * 1024 * 1024
    /// Queued bytes at or below which reading resumes.
    public var engineOutputLowWater = 16 * 1024 * 1024

    /// The defaults.
    public init() {}
}
