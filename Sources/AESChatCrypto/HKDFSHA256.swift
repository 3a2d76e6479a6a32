/// HKDF with SHA-256 (RFC 5869), built on ``HMACSHA256`` because libgcrypt 1.10 has no HKDF.
///
/// Threading: every function may be called from any thread.
public enum HKDFSHA256 {
    /// The most output one expansion can produce: 255 blocks of 32 bytes.
    public static let maximumOutputByteCount = 255 * HMACSHA256.codeSize

    /// HKDF-Extract: concentrates the entropy of `inputKeyMaterial` into a 32-byte pseudorandom key.
    ///
    /// The corresponding libgcrypt call is `gcry_mac_read` with `GCRY_MAC_HMAC_SHA256` (through
    /// ``HMACSHA256/authenticationCode(for:key:)``).
    ///
    /// - Parameters:
    ///   - salt: A non-secret random value; an empty salt means 32 zero bytes, as RFC 5869 specifies.
    ///   - inputKeyMaterial: The secret input, for example a Diffie-Hellman shared secret.
    /// - Returns: The 32-byte pseudorandom key (PRK).
    public static func extract(salt: [UInt8], inputKeyMaterial: [UInt8]) -> [UInt8] {
        let key = salt.isEmpty ? [UInt8](repeating: 0, count: HMACSHA256.codeSize) : salt
        return HMACSHA256.authenticationCode(for: inputKeyMaterial, key: key)
    }

    /// HKDF-Expand: stretches a pseudorandom key into `outputByteCount` bytes bound to `info`.
    ///
    /// The corresponding libgcrypt call is `gcry_mac_read` with `GCRY_MAC_HMAC_SHA256`, once per 32-byte block
    /// (one handle from `gcry_mac_open`, reset with `gcry_mac_ctl` between blocks).
    ///
    /// - Parameters:
    ///   - pseudoRandomKey: The PRK, normally the output of ``extract(salt:inputKeyMaterial:)`` (RFC 5869 asks for
    ///     at least 32 bytes; shorter keys are not refused).
    ///   - info: Context and application specific information; may be empty.
    ///   - outputByteCount: How many bytes to derive: 0 to 8160 (255 × 32); a negative count traps.
    /// - Returns: `outputByteCount` bytes of output keying material.
    /// - Throws: ``CryptoError/outputTooLong(requested:maximum:)`` when `outputByteCount` exceeds 8160.
    public static func expand(
        pseudoRandomKey: [UInt8],
        info: [UInt8],
        outputByteCount: Int
    ) throws(CryptoError) -> [UInt8] {
        precondition(outputByteCount >= 0, "HKDF output length must be 0 or more, not \(outputByteCount)")
        guard outputByteCount <= maximumOutputByteCount else {
            throw .outputTooLong(requested: outputByteCount, maximum: maximumOutputByteCount)
        }
        return [UInt8](unsafeUninitializedCapacity: outputByteCount) { buffer, initialised in
            pseudoRandomKey.withUnsafeBytes {
                expand(pseudoRandomKey: $0, info: info, into: buffer.rawPrefix(outputByteCount))
            }
            initialised = outputByteCount
        }
    }

    /// HKDF-Expand into `output`, filling it whole (at most 8160 bytes; the callers check). One HMAC handle keyed
    /// with the PRK serves every block.
    static func expand(
        pseudoRandomKey: UnsafeRawBufferPointer, info: [UInt8], into output: UnsafeMutableRawBufferPointer
    ) {
        let context = HMACSHA256Context(key: pseudoRandomKey)
        // T(0) is empty; T(i) = HMAC(PRK, T(i-1) || info || i).
        var block = [UInt8](repeating: 0, count: HMACSHA256.codeSize)
        defer { secureZero(&block) }
        var counter: UInt8 = 1
        var written = 0
        while written < output.count {
            if counter > 1 {
                block.withUnsafeBytes { context.update($0) }
            }
            info.withUnsafeBytes { context.update($0) }
            withUnsafeBytes(of: counter) { context.update($0) }
            block.withUnsafeMutableBytes { context.finalize(into: $0) }
            let count = min(block.count, output.count - written)
            block.withUnsafeBytes {
                output.baseAddress!.advanced(by: written).copyMemory(from: $0.baseAddress!, byteCount: count)
            }
            written += count
            counter &+= 1
        }
    }

    /// HKDF-Extract followed by HKDF-Expand.
    ///
    /// The corresponding libgcrypt call is `gcry_mac_read` with `GCRY_MAC_HMAC_SHA256` (through
    /// ``extract(salt:inputKeyMaterial:)`` and ``expand(pseudoRandomKey:info:outputByteCount:)``).
    ///
    /// - Parameters:
    ///   - inputKeyMaterial: The secret input, for example a Diffie-Hellman shared secret.
    ///   - salt: A non-secret random value; empty means 32 zero bytes.
    ///   - info: Context and application specific information; may be empty.
    ///   - outputByteCount: How many bytes to derive: 0 to 8160 (255 × 32); a negative count traps.
    /// - Returns: `outputByteCount` bytes of output keying material.
    /// - Throws: ``CryptoError/outputTooLong(requested:maximum:)`` when `outputByteCount` exceeds 8160.
    public static func deriveKey(
        inputKeyMaterial: [UInt8],
        salt: [UInt8],
        info: [UInt8],
        outputByteCount: Int
    ) throws(CryptoError) -> [UInt8] {
        guard outputByteCount <= maximumOutputByteCount else {
            throw .outputTooLong(requested: outputByteCount, maximum: maximumOutputByteCount)
        }
        var pseudoRandomKey = extract(salt: salt, inputKeyMaterial: inputKeyMaterial)
        defer { secureZero(&pseudoRandomKey) }
        return try expand(pseudoRandomKey: pseudoRandomKey, info: info, outputByteCount: outputByteCount)
    }

    /// HKDF-Extract followed by HKDF-Expand, for secret input and output: the input keying material is read in
    /// place, and the pseudorandom key and the output live in wiped-on-release storage, so no secret passes
    /// through an unwiped array. The bytes are those of ``deriveKey(inputKeyMaterial:salt:info:outputByteCount:)``.
    ///
    /// The corresponding libgcrypt call is `gcry_mac_read` with `GCRY_MAC_HMAC_SHA256`, once for the extraction and
    /// once per 32-byte block of output.
    ///
    /// - Parameters:
    ///   - inputKeyMaterial: The secret input, for example a Diffie-Hellman shared secret.
    ///   - salt: A non-secret random value; empty means 32 zero bytes.
    ///   - info: Context and application specific information; may be empty.
    ///   - outputByteCount: How many bytes to derive: 0 to 8160 (255 × 32); a negative count traps.
    /// - Returns: `outputByteCount` bytes of output keying material, as secret bytes.
    /// - Throws: ``CryptoError/outputTooLong(requested:maximum:)`` when `outputByteCount` exceeds 8160.
    public static func deriveKey(
        inputKeyMaterial: SecretBytes,
        salt: [UInt8],
        info: [UInt8],
        outputByteCount: Int
    ) throws(CryptoError) -> SecretBytes {
        guard outputByteCount <= maximumOutputByteCount else {
            throw .outputTooLong(requested: outputByteCount, maximum: maximumOutputByteCount)
        }
        precondition(outputByteCount >= 0, "HKDF output length must be 0 or more, not \(outputByteCount)")
        let saltKey = salt.isEmpty ? [UInt8](repeating: 0, count: HMACSHA256.codeSize) : salt
        let extraction = saltKey.withUnsafeBytes { HMACSHA256Context(key: $0) }
        inputKeyMaterial.withUnsafeBytes { extraction.update($0) }
        let pseudoRandomKey = SecretBytes(count: HMACSHA256.codeSize) { extraction.finalize(into: $0) }
        return pseudoRandomKey.withUnsafeBytes { key in
            SecretBytes(count: outputByteCount) { expand(pseudoRandomKey: key, info: info, into: $0) }
        }
    }
}
