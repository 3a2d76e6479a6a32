internal import CGcrypt

/// Cryptographically strong random bytes from libgcrypt's CSPRNG.
///
/// Threading: every function may be called from any thread.
public enum SecureRandom {
    /// Returns `count` random bytes, suitable for nonces, salts and keys.
    ///
    /// The bytes come from libgcrypt's `GCRY_STRONG_RANDOM` level.
    /// The corresponding libgcrypt call is `gcry_randomize`.
    ///
    /// - Parameter count: How many bytes to return; must not be negative.
    /// - Returns: `count` random bytes.
    public static func bytes(count: Int) -> [UInt8] {
        precondition(count >= 0, "SecureRandom.bytes(count:) needs a count of 0 or more, not \(count)")
        return [UInt8](unsafeUninitializedCapacity: count) { buffer, initialised in
            fill(buffer.rawPrefix(count))
            initialised = count
        }
    }

    /// Overwrites every byte of `buffer` with random bytes.
    ///
    /// The bytes come from libgcrypt's `GCRY_STRONG_RANDOM` level.
    /// The corresponding libgcrypt call is `gcry_randomize`.
    ///
    /// - Parameter buffer: The memory to fill; may be empty.
    public static func fill(_ buffer: UnsafeMutableRawBufferPointer) {
        Gcrypt.ensureInitialised()
        guard let base = buffer.baseAddress, buffer.count > 0 else { return }
        gcry_randomize(base, buffer.count, GCRY_STRONG_RANDOM)
    }
}
