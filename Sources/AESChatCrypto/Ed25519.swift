internal import CGcrypt

/// An Ed25519 signing key (RFC 8032, pure Ed25519: no context, no pre-hashing).
///
/// Signatures come from libgcrypt's EdDSA over the "Ed25519" curve, through `gcry_pk_sign` with `(flags eddsa)`; they
/// are deterministic, so the same key and message always give the same 64 bytes. Verify with
/// ``Ed25519/isValidSignature(_:for:publicKey:)``.
///
/// Ownership: holds the 32-byte seed in ``SecretBytes`` (zeroed on release) and the public key it derives. Each
/// signature builds its own libgcrypt S-expressions and releases them before returning. With secure memory turned off
/// (see `Gcrypt.swift`) libgcrypt frees its internal copies of the seed, such as the private-key S-expression and the
/// SHA-512 of the seed, without wiping them.
///
/// Threading: immutable, and every signature uses its own libgcrypt objects, so one key may sign from many threads at
/// once.
public final class Ed25519PrivateKey: Sendable {
    /// The 32-byte RFC 8032 secret key, from which the signing scalar and nonce prefix are hashed.
    public let seed: SecretBytes

    /// The 32-byte public key in the RFC 8032 encoding; give it to those who verify your signatures.
    public let publicKey: [UInt8]

    private init(seed: SecretBytes, publicKey: [UInt8]) {
        self.seed = seed
        self.publicKey = publicKey
    }

    /// Creates a key from a fresh random seed.
    ///
    /// The seed comes from libgcrypt's `GCRY_VERY_STRONG_RANDOM` level (``SecretBytes/init(count:)``). Traps if
    /// libgcrypt cannot derive the public key, which happens only when memory runs out.
    /// The corresponding libgcrypt call is `gcry_mpi_ec_get_mpi` with `"q@eddsa"` (after `gcry_mpi_ec_new`).
    public convenience init() {
        let seed = SecretBytes(count: Ed25519.seedSize)
        switch Self.derivePublicKey(seed: seed) {
        case .success(let publicKey):
            self.init(seed: seed, publicKey: publicKey)
        case .failure(let failure):
            fatalError(failure.description)
        }
    }

    /// Restores a key from its 32-byte seed (the RFC 8032 secret key).
    ///
    /// The corresponding libgcrypt call is `gcry_mpi_ec_get_mpi` with `"q@eddsa"` (after `gcry_mpi_ec_new`).
    ///
    /// - Parameter seed: The 32-byte seed; it is copied, and wiping the caller's array is the caller's business.
    /// - Throws: ``CryptoError/invalidKeySize(expected:actual:)`` unless `seed` is 32 bytes;
    ///   ``CryptoError/library(operation:code:message:)`` if libgcrypt fails.
    public convenience init(seed: [UInt8]) throws(CryptoError) {
        guard seed.count == Ed25519.seedSize else {
            throw .invalidKeySize(expected: Ed25519.seedSize, actual: seed.count)
        }
        let secret = SecretBytes(seed)
        self.init(seed: secret, publicKey: try Self.derivePublicKey(seed: secret).get())
    }

    /// Restores a key from a 32-byte seed held in wiped-on-release storage (a seed derived with HKDF, say), without
    /// copying it into an ordinary array.
    ///
    /// - Parameter seed: The 32-byte seed; the key keeps this storage.
    /// - Throws: ``CryptoError/invalidKeySize(expected:actual:)`` unless `seed` is 32 bytes;
    ///   ``CryptoError/library(operation:code:message:)`` if libgcrypt fails.
    public convenience init(seed: SecretBytes) throws(CryptoError) {
        guard seed.count == Ed25519.seedSize else {
            throw .invalidKeySize(expected: Ed25519.seedSize, actual: seed.count)
        }
        self.init(seed: seed, publicKey: try Self.derivePublicKey(seed: seed).get())
    }

    /// Signs `message`.
    ///
    /// The corresponding libgcrypt call is `gcry_pk_sign` with `(data (flags eddsa) (hash-algo sha512) (value …))`
    /// and the key `(private-key (ecc (curve Ed25519) (flags eddsa) (q …) (d …)))`.
    ///
    /// - Parameter message: The message, at most ``Ed25519/maximumMessageSize`` bytes; it is signed as it is, not
    ///   hashed first.
    /// - Returns: The 64-byte signature R ‖ S.
    /// - Throws: ``CryptoError/messageTooLong(actual:maximum:)`` for a longer message,
    ///   ``CryptoError/library(operation:code:message:)`` if libgcrypt fails.
    public func signature(for message: [UInt8]) throws(CryptoError) -> [UInt8] {
        guard message.count <= Ed25519.maximumMessageSize else {
            throw .messageTooLong(actual: message.count, maximum: Ed25519.maximumMessageSize)
        }
        let builtKey = seed.withUnsafeBytes { secret in
            publicKey.withUnsafeBytes { point in
                GcryptSExpression.build(
                    format: "(private-key (ecc (curve Ed25519) (flags eddsa) (q %b) (d %b)))", point, secret)
            }
        }
        let key = try builtKey.get()
        let data = try message.withUnsafeBytes { Ed25519.dataExpression(for: $0) }.get()
        var signed: gcry_sexp_t?
        let error = gcry_pk_sign(&signed, data.handle, key.handle)
        // Adopt the result before checking the error, so that it is released on every path.
        let signature = signed.map { GcryptSExpression(adopting: $0) }
        if let failure = Gcrypt.check(error, "gcry_pk_sign") {
            throw failure
        }
        guard let r = signature?.data(after: "r"), let s = signature?.data(after: "s"),
            r.count == Ed25519.signatureSize / 2, s.count == Ed25519.signatureSize / 2
        else {
            throw .library(operation: "gcry_pk_sign", code: 0, message: "no 32-byte r and s in the signature")
        }
        return r + s
    }

    /// Derives the public key: A = [a]B, where a is the clamped first half of SHA-512(seed).
    private static func derivePublicKey(seed: SecretBytes) -> Result<[UInt8], CryptoError> {
        let built = seed.withUnsafeBytes {
            GcryptSExpression.build(format: "(private-key (ecc (curve Ed25519) (flags eddsa) (d %b)))", $0)
        }
        let key: GcryptSExpression
        switch built {
        case .success(let expression): key = expression
        case .failure(let failure): return .failure(failure)
        }
        var opened: gcry_ctx_t?
        if let failure = Gcrypt.check(gcry_mpi_ec_new(&opened, key.handle, nil), "gcry_mpi_ec_new") {
            return .failure(failure)
        }
        guard let context = opened else {
            return .failure(.library(operation: "gcry_mpi_ec_new", code: 0, message: "no context returned"))
        }
        defer { gcry_ctx_release(context) }
        // "q@eddsa" computes Q from d and returns it as an opaque MPI holding the 32-byte RFC 8032 encoding.
        guard let point = gcry_mpi_ec_get_mpi("q@eddsa", context, 1) else {
            return .failure(.library(operation: "gcry_mpi_ec_get_mpi", code: 0, message: "no public key returned"))
        }
        defer { gcry_mpi_release(point) }
        var bitCount: UInt32 = 0
        guard let bytes = gcry_mpi_get_opaque(point, &bitCount), bitCount == UInt32(Ed25519.publicKeySize * 8) else {
            return .failure(
                .library(operation: "gcry_mpi_ec_get_mpi", code: 0, message: "the public key is not 32 bytes"))
        }
        return .success(Array(UnsafeRawBufferPointer(start: bytes, count: Ed25519.publicKeySize)))
    }
}

/// Ed25519 signature verification (RFC 8032, pure Ed25519) and sizes.
///
/// Threading: every function may be called from any thread.
public enum Ed25519 {
    /// The size of a public key in bytes.
    public static let publicKeySize = 32
    /// The longest message signed or verified. libgcrypt 1.10.1 carries the message in S-expressions whose
    /// lengths it cannot handle near 64 KiB: signing 65,500 bytes fails, and from about 65,532 bytes
    /// `gcry_sexp_find_token` aborts the whole process ("this is a bug", sexp.c:481). Messages above 32 KiB are
    /// refused here instead, well clear of that; sign a digest of longer data.
    public static let maximumMessageSize = 32_768
    /// The size of a signature (R ‖ S) in bytes.
    public static let signatureSize = 64
    /// The size of a seed (the RFC 8032 secret key) in bytes.
    public static let seedSize = 32

    /// The group order L = 2^252 + 27742317777372353535851937790883648493, little-endian.
    static let groupOrder: [UInt8] = Hex.decode("edd3f55c1a631258d69cf7a2def9de1400000000000000000000000000000010")!

    /// Checks an Ed25519 signature strictly.
    ///
    /// libgcrypt 1.10.1's `gcry_pk_verify` checks the equation [S]B = R + [k]A (without the cofactor), refuses a
    /// public key whose y is not below p or that is not on the curve, and, because it compares the encoding of the
    /// computed R with the bytes received, refuses every non-canonical R. These checks are added here because it does
    /// not make them itself:
    /// - sizes: the signature must be exactly 64 bytes and the key exactly 32;
    /// - S < L (RFC 8032 section 5.1.7): libgcrypt accepts S + L, S + 2L, … for a valid S (malleable signatures);
    /// - the public key must not be of small order: libgcrypt accepts, for example, R = B and S = 1 under an order-8
    ///   key for one message in eight;
    /// - neither coordinate of the public key may be below 2^192: libgcrypt 1.10.1 aborts the process on such a key
    ///   (see ``Ed25519PublicKeyCheck``).
    ///
    /// The corresponding libgcrypt call is `gcry_pk_verify` with the key
    /// `(public-key (ecc (curve Ed25519) (flags eddsa) (q …)))`.
    ///
    /// - Parameters:
    ///   - signature: The 64-byte signature R ‖ S.
    ///   - message: The signed message.
    ///   - publicKey: The signer's 32-byte public key.
    /// - Returns: `true` only if every check passes and the signature is valid for `message` under `publicKey`.
    public static func isValidSignature(_ signature: [UInt8], for message: [UInt8], publicKey: [UInt8]) -> Bool {
        guard signature.count == signatureSize, publicKey.count == publicKeySize else { return false }
        guard message.count <= maximumMessageSize else { return false }
        guard isBelowGroupOrder(signature[(signatureSize / 2)...]) else { return false }
        guard Ed25519PublicKeyCheck.isAcceptable(publicKey) else { return false }
        return verifyWithLibgcryptOnly(signature, for: message, publicKey: publicKey)
    }

    /// `gcry_pk_verify` alone, without the checks of ``isValidSignature(_:for:publicKey:)``. For tests that show
    /// what libgcrypt accepts by itself.
    ///
    /// Never pass a public key that ``Ed25519PublicKeyCheck/isAcceptable(_:)`` refuses for its coordinates:
    /// libgcrypt 1.10.1 aborts the process on it.
    static func verifyWithLibgcryptOnly(_ signature: [UInt8], for message: [UInt8], publicKey: [UInt8]) -> Bool {
        guard signature.count == signatureSize, publicKey.count == publicKeySize else { return false }
        guard message.count <= maximumMessageSize else { return false }
        let key = publicKey.withUnsafeBytes {
            GcryptSExpression.build(format: "(public-key (ecc (curve Ed25519) (flags eddsa) (q %b)))", $0)
        }
        let signatureValue = signature.withUnsafeBytes { bytes in
            GcryptSExpression.build(
                format: "(sig-val (eddsa (r %b) (s %b)))",
                UnsafeRawBufferPointer(rebasing: bytes[0..<(signatureSize / 2)]),
                UnsafeRawBufferPointer(rebasing: bytes[(signatureSize / 2)...]))
        }
        let data = message.withUnsafeBytes { dataExpression(for: $0) }
        guard case .success(let keyExpression) = key,
            case .success(let signatureExpression) = signatureValue,
            case .success(let dataExpression) = data
        else { return false }
        return gcry_pk_verify(signatureExpression.handle, dataExpression.handle, keyExpression.handle) == 0
    }

    /// The data S-expression for signing or verifying `message` with pure Ed25519.
    static func dataExpression(for message: UnsafeRawBufferPointer) -> Result<GcryptSExpression, CryptoError> {
        GcryptSExpression.build(format: "(data (flags eddsa) (hash-algo sha512) (value %b))", message)
    }

    /// Whether the little-endian 32-byte integer `scalar` is below the group order L.
    static func isBelowGroupOrder(_ scalar: ArraySlice<UInt8>) -> Bool {
        guard scalar.count == groupOrder.count else { return false }
        // Compare from the most significant byte down; S is public, so an early exit leaks nothing.
        for (byte, limit) in zip(scalar.reversed(), groupOrder.reversed()) where byte != limit {
            return byte < limit
        }
        return false  // Equal to L.
    }
}
