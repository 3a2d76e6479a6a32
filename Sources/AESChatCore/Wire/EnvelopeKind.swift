/// The first byte of every end-to-end payload: what the relay carries opaquely in publish, direct,
/// multicast and deliver frames. The one list of these bytes; docs/PROTOCOL.md describes each
/// envelope.
public enum EnvelopeKind: UInt8, Sendable, CaseIterable {
    /// The first room-key format (no sending time, no recipient), refused with a message naming it.
    case roomKeyFirstVersion = 0x01
    /// Automatic keys: a message over a pairwise channel.
    case channel = 0x02
    /// The first automatic-key group message format (no room view), refused with a notice that the sender runs
    /// an older aeschat.
    case groupFirstVersion = 0x03
    /// A file chunk (``FileChunk``), in either key mode.
    case fileChunk = 0x04
    /// Pre-shared-key mode: a room-key message (``RoomKeyEnvelope``).
    case roomKey = 0x05
    /// Automatic keys: a group message under a sender chain, bound to the sender's view of the room.
    case group = 0x06

    /// The kind of `payload`, from its first byte; nil when empty or unknown.
    public init?<C: Collection<UInt8>>(of payload: C) {
        guard let first = payload.first else { return nil }
        self.init(rawValue: first)
    }
}
