public import AESChatCrypto

/// Failures of the encrypted link to the relay (the Noise handshake and its cipher states). Each one ends the
/// connection it happened on, and only that one.
///
/// Descriptions are one sentence a person can act on; they never contain key material, plaintext or tags.
public enum LinkError: Error, Equatable, Sendable, CustomStringConvertible {
    /// A handshake message had a length the pattern does not allow: `message` is 1 or 2, `actual` its length, and
    /// it must be `minimum` to `maximum` bytes long.
    case handshakeMessageLength(message: Int, actual: Int, minimum: Int, maximum: Int)
    /// The tag of handshake message `message` (1 or 2) did not match.
    case handshakeAuthenticationFailed(message: Int)
    /// A transport message failed authentication.
    case authenticationFailed
    /// A transport message was shorter than its 16-byte tag.
    case ciphertextTooShort(actual: Int)
    /// A message would be, or was, longer than Noise's 65,535-byte limit.
    case messageTooLong(actual: Int, maximum: Int)
    /// The cipher state has used every nonce below the reserved 2^64 − 1 under its key.
    case nonceExhausted
    /// A public key had the wrong length; `whose` names it (for example "the relay's static key").
    case invalidKeyLength(whose: String, actual: Int)
    /// A Diffie-Hellman result was all zero because a peer's key is a low-order point; `whose` names the key.
    case lowOrderKey(whose: String)
    /// An operation was called in a state that does not allow it; `operation` names it, `state` says what the
    /// handshake expects.
    case outOfOrder(operation: String, state: String)
    /// The peer's first bytes are not the aeschat preamble (`"AESCHAT"`): it is not an aeschat relay or client.
    case notAESChat
    /// The peer's preamble names aeschat protocol version `version`, which this build does not speak.
    case unsupportedVersion(Int)
    /// The relay fingerprint given for a key id is shorter than the 4 bytes the id takes from it.
    case fingerprintTooShort(actual: Int)
    /// The stream ended inside a record: `buffered` bytes of it (length prefix included) had arrived.
    case truncatedRecord(buffered: Int)
    /// A libgcrypt primitive failed.
    case crypto(CryptoError)

    public var description: String {
        switch self {
        case .handshakeMessageLength(let message, let actual, let minimum, let maximum):
            "handshake message \(message) is \(actual) bytes long, but it must be \(minimum) to \(maximum) bytes; "
                + "the peer is not an aeschat relay or client of this version, or the message was cut"
        case .handshakeAuthenticationFailed(let message):
            "handshake message \(message) failed authentication: the peer does not hold the expected relay key, "
                + "the two sides disagree on the protocol or preamble, or the bytes were altered on the way; "
                + "do not trust this connection"
        case .authenticationFailed:
            "an encrypted record failed authentication: it was altered, replayed or reordered on the way; "
                + "close the connection"
        case .ciphertextTooShort(let actual):
            "an encrypted record of \(actual) bytes is shorter than its 16-byte tag; the stream is corrupt, "
                + "close the connection"
        case .messageTooLong(let actual, let maximum):
            "a Noise message of \(actual) bytes exceeds the limit of \(maximum) bytes; "
                + "send the data in smaller records"
        case .nonceExhausted:
            "this direction has used every nonce of its key (2^64 - 1 messages); "
                + "close the connection and connect again for fresh keys"
        case .invalidKeyLength(let whose, let actual):
            "\(whose) is \(actual) bytes long, but an X25519 public key is 32 bytes; check where it was copied from"
        case .lowOrderKey(let whose):
            "\(whose) is a low-order point that gives an all-zero shared secret; refuse this peer"
        case .outOfOrder(let operation, let state):
            "cannot \(operation) now: \(state)"
        case .notAESChat:
            "the peer is not an aeschat relay or client: its first bytes are not the aeschat preamble"
        case .unsupportedVersion(let version):
            "the peer speaks aeschat protocol version \(version), this build speaks \(LinkPreamble.version); "
                + "update the older side"
        case .fingerprintTooShort(let actual):
            "the relay fingerprint is \(actual) bytes long, but the key id takes its first 4 bytes; "
                + "pass the whole fingerprint hash"
        case .truncatedRecord(let buffered):
            "the connection ended inside an encrypted record (\(buffered) bytes of it had arrived); "
                + "the end of the data was lost, connect again"
        case .crypto(let error):
            error.description
        }
    }
}
