/// How far the user has gone with a pinned identity key. Only ever rises, until a changed key is
/// accepted with `/trust` (which pins the new key as verified).
public enum PinState: String, Equatable, Sendable {
    /// Seen, nothing more (trust on first use).
    case unverified
    /// The user sent them a private message (`/msg`) under this key.
    case messaged
    /// The user ran `/trust` for this key.
    case verified
}

/// What the known-peers file says about one name.
public struct PeerPin: Equatable, Sendable {
    /// The pinned Ed25519 identity public key, 32 bytes.
    public var identityKey: [UInt8]
    /// How far the user has gone with it.
    public var state: PinState

    /// Makes a pin.
    /// - Parameters:
    ///   - identityKey: the identity public key, 32 bytes.
    ///   - state: how far the user has gone with it.
    public init(identityKey: [UInt8], state: PinState) {
        self.identityKey = identityKey
        self.state = state
    }

    /// Whether the user ran `/trust` for this key.
    public var isVerified: Bool { state == .verified }
    /// Whether a changed key for this name holds the user's messages until `/trust`: the user
    /// verified or messaged the old one.
    public var holdsMessagesOnChange: Bool { state != .unverified }
}
