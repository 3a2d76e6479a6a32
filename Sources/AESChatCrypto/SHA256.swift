internal import CGcrypt

/// SHA-256 (FIPS 180-4) in one call.
///
/// Threading: every function may be called from any thread.
public enum SHA256 {
    /// The size of a SHA-256 digest in bytes.
    public static let digestSize = 32

    /// Hashes `bytes` in one call.
    ///
    /// The corresponding libgcrypt call is `gcry_md_hash_buffer`.
    ///
    /// - Parameter bytes: The data to hash.
    /// - Returns: The 32-byte digest.
    public static func hash(_ bytes: [UInt8]) -> [UInt8] {
        bytes.withUnsafeBytes { hash($0) }
    }

    /// Hashes the bytes of `buffer` in one call.
    ///
    /// The corresponding libgcrypt call is `gcry_md_hash_buffer`.
    ///
    /// - Parameter buffer: The data to hash; may be empty.
    /// - Returns: The 32-byte digest.
    public static func hash(_ buffer: UnsafeRawBufferPointer) -> [UInt8] {
        Gcrypt.ensureInitialised()
        return [UInt8](unsafeUninitializedCapacity: digestSize) { digest, initialised in
            Gcrypt.withNonNullBytes(buffer) { base, count in
                gcry_md_hash_buffer(Int32(GCRY_MD_SHA256.rawValue), digest.baseAddress!, base, count)
            }
            initialised = digestSize
        }
    }

    /// Hashes any sequence of bytes, such as `"text".utf8`, in one call.
    ///
    /// The corresponding libgcrypt call is `gcry_md_hash_buffer`.
    ///
    /// - Parameter data: The data to hash.
    /// - Returns: The 32-byte digest.
    public static func hash(_ data: some Sequence<UInt8>) -> [UInt8] {
        if let digest = data.withContiguousStorageIfAvailable({ hash(UnsafeRawBufferPointer($0)) }) {
            return digest
        }
        return hash(Array(data))
    }
}

/// Incremental SHA-256, for data that arrives in pieces, such as a file read in chunks.
///
/// Ownership: owns one libgcrypt hash handle, opened in `init` and closed in `deinit`.
///
/// Threading: not thread-safe; one owner at a time. It is deliberately not `Sendable`.
public final class SHA256Hasher {
    private let handle: gcry_md_hd_t

    /// Starts a new, empty hash.
    ///
    /// Traps if libgcrypt cannot open a SHA-256 handle, which happens only when memory runs out.
    /// The corresponding libgcrypt call is `gcry_md_open`.
    public init() {
        Gcrypt.ensureInitialised()
        var opened: gcry_md_hd_t?
        Gcrypt.require(gcry_md_open(&opened, Int32(GCRY_MD_SHA256.rawValue), 0), "gcry_md_open")
        handle = opened!
    }

    deinit {
        gcry_md_close(handle)
    }

    /// Adds `bytes` to the data being hashed.
    ///
    /// The corresponding libgcrypt call is `gcry_md_write`.
    ///
    /// - Parameter bytes: The next bytes of the data.
    public func update(_ bytes: [UInt8]) {
        bytes.withUnsafeBytes { update($0) }
    }

    /// Adds the bytes of `buffer` to the data being hashed.
    ///
    /// The corresponding libgcrypt call is `gcry_md_write`.
    ///
    /// - Parameter buffer: The next bytes of the data; may be empty.
    public func update(_ buffer: UnsafeRawBufferPointer) {
        guard let base = buffer.baseAddress, buffer.count > 0 else { return }
        gcry_md_write(handle, base, buffer.count)
    }

    /// Returns the digest of everything added so far, then resets the hasher so it can hash new data.
    ///
    /// The corresponding libgcrypt call is `gcry_md_read` (followed by `gcry_md_reset`).
    ///
    /// - Returns: The 32-byte digest.
    public func finalize() -> [UInt8] {
        defer { gcry_md_reset(handle) }
        guard let digest = gcry_md_read(handle, 0) else {
            fatalError("gcry_md_read returned no SHA-256 digest; the hash handle is unusable.")
        }
        return Array(UnsafeBufferPointer(start: digest, count: SHA256.digestSize))
    }
}

@available(*, unavailable, message: "SHA256Hasher has one owner at a time; create one per task.")
extension SHA256Hasher: Sendable {}
