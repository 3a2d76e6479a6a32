/// What a finished Noise handshake hands out (``NoiseHandshake/finish()``): one cipher state per direction, as
/// `Split()` orders them, and the handshake hash.
///
/// Ownership: the caller owns the two cipher states; copies of this value share them (and so their counters). A
/// ``LinkRecordLayer`` made from them takes their keys and counters over and retires them.
///
/// Threading: like ``NoiseCipherState``, confined to the connection's thread.
public struct NoiseTransportKeys {
    /// Which side of the handshake these keys belong to; decides ``sending`` and ``receiving``.
    public let role: NoiseHandshake.Role
    /// The first cipher state of `Split()`: seals what the initiator sends.
    public let initiatorToResponder: NoiseCipherState
    /// The second cipher state of `Split()`: seals what the responder sends.
    public let responderToInitiator: NoiseCipherState
    /// The handshake hash `h` (spec §11.2), the same on both sides.
    public let handshakeHash: [UInt8]

    /// The cipher state for what this side sends.
    public var sending: NoiseCipherState {
        role == .initiator ? initiatorToResponder : responderToInitiator
    }

    /// The cipher state for what this side receives.
    public var receiving: NoiseCipherState {
        role == .initiator ? responderToInitiator : initiatorToResponder
    }
}

@available(*, unavailable, message: "NoiseTransportKeys hold cipher states that belong to one connection's thread.")
extension NoiseTransportKeys: Sendable {}
