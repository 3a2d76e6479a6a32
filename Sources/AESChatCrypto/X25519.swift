internal import CGcrypt

/// An X25519 private key for Diffie-Hellman key agreement (RFC 7748).
///
/// The scalar multiplication is libgcrypt's `gcry_ecc_mul_point` with `GCRY_ECC_CURVE25519`, which is exactly the
/// RFC 7748 X25519 function on 32-byte little-endian strings: it clamps the scalar (clears bits 0, 1, 2 and 255, sets
/// bit 254), ignores the top bit of the u-coordinate, accepts non-canonical u (2^255 − 19 and above) and points on
/// the twist, and returns the all-zero string, without an error, for a low-order point. Because of that last fact,
/// ``sharedSecret(with:)`` compares the result with zero itself.
///
/// Ownership: holds the 32-byte scalar in ``SecretBytes`` (zeroed on release) and the public key computed from it.
/// Shared secrets are written straight into new ``SecretBytes``. With secure memory turned off (see `Gcrypt.swift`)
/// libgcrypt may free its internal copies of the scalar without wiping them.
///
/// Threading: immutable, and each call uses only its own buffers, so one key may be used from many threads at once.
public final class X25519PrivateKey: Sendable {
    /// The size of a scalar, a u-coordinate and a shared secret, in bytes.
    static let byteCount = 32
    /// The u-coordinate of the base point, 9.
    private static let basePoint: [UInt8] = [9] + [UInt8](repeating: 0, count: byteCount - 1)
    private static let allZero = [UInt8](repeating: 0, count: byteCount)

    /// The 32-byte scalar as given or generated (not clamped: clamping happens in every multiplication).
    public let rawRepresentation: SecretBytes

    /// The 32-byte public key: the little-endian u-coordinate of X25519(scalar, 9); send it to the peer.
    public let publicKey: [UInt8]

    private init(rawRepresentation: SecretBytes, publicKey: [UInt8]) {
        self.rawRepresentation = rawRepresentation
        self.publicKey = publicKey
    }

    /// Creates a key from a fresh random scalar.
    ///
    /// The scalar comes from libgcrypt's `GCRY_VERY_STRONG_RANDOM` level (``SecretBytes/init(count:)``). Traps if
    /// libgcrypt cannot compute the public key, which happens only when memory runs out.
    /// The corresponding libgcrypt call is `gcry_ecc_mul_point` with `GCRY_ECC_CURVE25519`.
    public convenience init() {
        let scalar = SecretBytes(count: Self.byteCount)
        switch Self.derivePublicKey(scalar: scalar) {
        case .success(let publicKey):
            self.init(rawRepresentation: scalar, publicKey: publicKey)
        case .failure(let failure):
            fatalError(failure.description)
        }
    }

    /// Creates a key for one use only, such as a Noise handshake's ephemeral key, from a fresh scalar drawn at
    /// libgcrypt's `GCRY_STRONG_RANDOM` level (about 10 µs, against 5 ms for the very strong level that ``init()``
    /// uses for long-term keys). The scalar never passes through an array that is not wiped.
    ///
    /// The corresponding libgcrypt calls are `gcry_randomize` and `gcry_ecc_mul_point` with `GCRY_ECC_CURVE25519`.
    ///
    /// - Parameter ephemeral: Marks the intent; pass `()`.
    /// - Throws: ``CryptoError/library(operation:code:message:)`` if libgcrypt cannot compute the public key.
    public convenience init(ephemeral: Void) throws(CryptoError) {
        let scalar = SecretBytes(strongRandomCount: Self.byteCount)
        self.init(rawRepresentation: scalar, publicKey: try Self.derivePublicKey(scalar: scalar).get())
    }

    /// Restores a key from its 32-byte scalar.
    ///
    /// The corresponding libgcrypt call is `gcry_ecc_mul_point` with `GCRY_ECC_CURVE25519`.
    ///
    /// - Parameter rawRepresentation: The 32-byte scalar, clamped or not; it is copied, and wiping the caller's array
    ///   is the caller's business.
    /// - Throws: ``CryptoError/invalidKeySize(expected:actual:)`` unless it is 32 bytes;
    ///   ``CryptoError/library(operation:code:message:)`` if libgcrypt fails.
    public convenience init(rawRepresentation: [UInt8]) throws(CryptoError) {
        guard rawRepresentation.count == Self.byteCount else {
            throw .invalidKeySize(expected: Self.byteCount, actual: rawRepresentation.count)
        }
        let scalar = SecretBytes(rawRepresentation)
        self.init(rawRepresentation: scalar, publicKey: try Self.derivePublicKey(scalar: scalar).get())
    }

    /// Computes the shared secret X25519(self, peer).
    ///
    /// Any 32-byte string is a u-coordinate under RFC 7748, so only the length is checked up front; non-canonical
    /// values and points on the twist are used as the RFC defines. The result is compared with zero in constant time:
    /// zero means the peer sent a low-order point and the secret would be known to anyone (RFC 7748 section 6.1).
    /// Hash the secret (for example with ``HKDFSHA256``) before using it as a key.
    ///
    /// The corresponding libgcrypt call is `gcry_ecc_mul_point` with `GCRY_ECC_CURVE25519`.
    ///
    /// - Parameter peerPublicKey: The peer's 32-byte public key.
    /// - Returns: The 32-byte shared secret.
    /// - Throws: ``CryptoError/invalidPublicKey(_:)`` unless `peerPublicKey` is 32 bytes;
    ///   ``CryptoError/weakSharedSecret`` when the result is all zero;
    ///   ``CryptoError/library(operation:code:message:)`` if libgcrypt fails.
    public func sharedSecret(with peerPublicKey: [UInt8]) throws(CryptoError) -> SecretBytes {
        guard peerPublicKey.count == Self.byteCount else {
            throw .invalidPublicKey(
                "it is \(peerPublicKey.count) bytes long, but an X25519 public key is \(Self.byteCount) bytes")
        }
        var failure: CryptoError?
        let secret = SecretBytes(count: Self.byteCount) { output in
            failure = rawRepresentation.withUnsafeBytes { scalar in
                peerPublicKey.withUnsafeBytes { point in
                    Self.multiply(scalar: scalar, point: point, into: output)
                }
            }
        }
        if let failure {
            throw failure
        }
        let isAllZero = secret.withUnsafeBytes { result in
            Self.allZero.withUnsafeBytes { zero in constantTimeEquals(result, zero) }
        }
        if isAllZero {
            throw .weakSharedSecret
        }
        return secret
    }

    private static func derivePublicKey(scalar: SecretBytes) -> Result<[UInt8], CryptoError> {
        var failure: CryptoError?
        let publicKey = [UInt8](unsafeUninitializedCapacity: byteCount) { buffer, initialised in
            failure = scalar.withUnsafeBytes { scalarBytes in
                basePoint.withUnsafeBytes { point in
                    multiply(scalar: scalarBytes, point: point, into: buffer.rawPrefix(byteCount))
                }
            }
            initialised = failure == nil ? byteCount : 0
        }
        if let failure {
            return .failure(failure)
        }
        return .success(publicKey)
    }

    /// X25519(`scalar`, `point`) into `output`; all three are exactly 32 bytes.
    private static func multiply(
        scalar: UnsafeRawBufferPointer,
        point: UnsafeRawBufferPointer,
        into output: UnsafeMutableRawBufferPointer
    ) -> CryptoError? {
        precondition(
            scalar.count == byteCount && point.count == byteCount && output.count == byteCount,
            "X25519 works on 32-byte scalars, points and results")
        Gcrypt.ensureInitialised()
        let error = gcry_ecc_mul_point(
            Int32(GCRY_ECC_CURVE25519.rawValue),
            output.baseAddress!.assumingMemoryBound(to: UInt8.self),
            scalar.baseAddress!.assumingMemoryBound(to: UInt8.self),
            point.baseAddress!.assumingMemoryBound(to: UInt8.self))
        return Gcrypt.check(error, "gcry_ecc_mul_point")
    }
}
