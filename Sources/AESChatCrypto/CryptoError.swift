/// Why a cryptographic operation failed.
///
/// Descriptions are one sentence a person can act on; they never contain key material, plaintext or tags.
public enum CryptoError: Error, Equatable, CustomStringConvertible {
    /// The tag did not match: the data was corrupted or forged, or the key, nonce or associated data differ.
    case authenticationFailed
    /// A key had the wrong length.
    ///
    /// For AES-GCM, which accepts 16, 24 or 32 bytes, `expected` is 32 (AES-256, what aeschat uses).
    case invalidKeySize(expected: Int, actual: Int)
    /// A nonce (initialisation vector) had the wrong length.
    case invalidNonceSize(expected: Int, actual: Int)
    /// An authentication tag had the wrong length.
    case invalidTagSize(expected: Int, actual: Int)
    /// A sealed message was shorter than its authentication tag.
    case ciphertextTooShort
    /// More output was requested than the function can produce (HKDF-SHA-256: at most 255 × 32 bytes).
    case outputTooLong(requested: Int, maximum: Int)
    /// A libgcrypt call failed; `operation` names it (for example `"gcry_cipher_setkey"`), `code` is libgcrypt's
    /// error code and `message` its text for the code.
    case library(operation: String, code: UInt32, message: String)
    /// A peer's public key cannot be used; the text says why (for example its length).
    case invalidPublicKey(String)
    /// An X25519 key agreement produced the all-zero shared secret, which happens only when the peer's public key is
    /// a point of low order (RFC 7748 section 6.1); the result would be known to anyone, so it is refused.
    case weakSharedSecret
    /// A message was longer than the operation accepts (Ed25519 through libgcrypt: 65,535 bytes).
    case messageTooLong(actual: Int, maximum: Int)

    /// One sentence describing the failure and what to do about it.
    public var description: String {
        switch self {
        case .authenticationFailed:
            return "Authentication failed: the data was corrupted or forged, or was sealed with a different key, "
                + "nonce or associated data; discard it."
        case .invalidKeySize(let expected, let actual):
            return "The key is \(actual) bytes long but \(expected) bytes are required; check where the key comes from."
        case .invalidNonceSize(let expected, let actual):
            return "The nonce is \(actual) bytes long but \(expected) bytes are required; pass a nonce of that size."
        case .invalidTagSize(let expected, let actual):
            return "The authentication tag is \(actual) bytes long but \(expected) bytes are required; "
                + "the message was truncated or is malformed."
        case .ciphertextTooShort:
            return "The sealed message is shorter than its 16-byte authentication tag; it was truncated, discard it."
        case .outputTooLong(let requested, let maximum):
            return "\(requested) bytes of output were requested but at most \(maximum) can be derived; "
                + "request fewer bytes."
        case .library(let operation, let code, let message):
            return "libgcrypt call '\(operation)' failed with error \(code) ('\(message)'); "
                + "check that libgcrypt 1.10 or newer is installed and working."
        case .invalidPublicKey(let reason):
            return "The peer's public key is unusable (\(reason)); ask the peer to send its public key again."
        case .messageTooLong(let actual, let maximum):
            return
                "a message of \(actual) bytes is longer than the \(maximum) bytes this operation accepts; sign a digest of it instead"
        case .weakSharedSecret:
            return "The key agreement gave an all-zero shared secret because the peer's public key is a low-order "
                + "point; refuse this peer's key."
        }
    }
}
