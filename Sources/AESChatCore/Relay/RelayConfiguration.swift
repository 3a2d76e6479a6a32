import AESChatCLI

/// Limits and timings of a relay.
public struct RelayConfiguration: Sendable {
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

    /// The default of ``maximumPendingOutput``: 64 MiB, that of `aeschat serve`.
    public static let defaultMaximumPendingOutput = ServeOptions.defaultMaxPendingOutput

    /// The defaults documented in docs/CLI.md.
    public init() {}
}
