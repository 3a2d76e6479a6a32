internal import CGcrypt

/// HMAC-SHA-256 (RFC 2104, FIPS 198-1).
///
/// Threading: every function may be called from any thread.
public enum HMACSHA256 {
    /// The length of a full HMAC-SHA-256 code in bytes.
    static let codeSize = 32
    /// The shortest truncated code ``isValidAuthenticationCode(_:for:key:)`` accepts (half the full code, as
    /// RFC 2104 section 5 and NIST SP 800-107 recommend as a lower bound).
    static let minimumTruncatedCodeSize = 16

    /// Computes the HMAC-SHA-256 of `message` under `key`.
    ///
    /// The corresponding libgcrypt call is `gcry_mac_read` with `GCRY_MAC_HMAC_SHA256` (after `gcry_mac_open`,
    /// `gcry_mac_setkey` and `gcry_mac_write`).
    ///
    /// - Parameters:
    ///   - message: The data to authenticate.
    ///   - key: The secret key, of any length (keys longer than 64 bytes are hashed first, as HMAC specifies).
    /// - Returns: The 32-byte authentication code.
    public static func authenticationCode(for message: [UInt8], key: [UInt8]) -> [UInt8] {
        let context = key.withUnsafeBytes { HMACSHA256Context(key: $0) }
        message.withUnsafeBytes { context.update($0) }
        return context.finalize()
    }

    /// Computes the HMAC-SHA-256 of `message` under a secret `key`, for deriving key material: the key is read in
    /// place and the code is returned in wiped-on-release storage, so neither passes through an unwiped array.
    ///
    /// The corresponding libgcrypt call is `gcry_mac_read` with `GCRY_MAC_HMAC_SHA256` (after `gcry_mac_open`,
    /// `gcry_mac_setkey` and `gcry_mac_write`).
    ///
    /// - Parameters:
    ///   - message: The data to authenticate.
    ///   - key: The secret key, of any length.
    /// - Returns: The 32-byte authentication code, as secret bytes.
    public static func authenticationCode(for message: [UInt8], key: SecretBytes) -> SecretBytes {
        let context = key.withUnsafeBytes { HMACSHA256Context(key: $0) }
        message.withUnsafeBytes { context.update($0) }
        return SecretBytes(count: codeSize) { context.finalize(into: $0) }
    }

    /// Checks an HMAC-SHA-256 code in constant time.
    ///
    /// A truncated code is accepted when it is a prefix of the full code and 16 to 32 bytes long (Wycheproof and
    /// RFC 4231 test such truncated tags). Codes shorter than 16 bytes are always refused because they are too easy
    /// to guess; codes longer than 32 bytes are refused because no HMAC-SHA-256 code is that long.
    /// The time taken depends only on the lengths of the inputs.
    ///
    /// The corresponding libgcrypt call is `gcry_mac_read` with `GCRY_MAC_HMAC_SHA256` (after `gcry_mac_open`,
    /// `gcry_mac_setkey` and `gcry_mac_write`).
    ///
    /// - Parameters:
    ///   - code: The code received, 16 to 32 bytes.
    ///   - message: The data it should authenticate.
    ///   - key: The secret key.
    /// - Returns: `true` only if `code` has an accepted length and matches.
    public static func isValidAuthenticationCode(_ code: [UInt8], for message: [UInt8], key: [UInt8]) -> Bool {
        guard (minimumTruncatedCodeSize...codeSize).contains(code.count) else { return false }
        let expected = authenticationCode(for: message, key: key)
        return code.withUnsafeBytes { received in
            expected.withUnsafeBytes { full in
                constantTimeEquals(received, UnsafeRawBufferPointer(rebasing: full[0..<code.count]))
            }
        }
    }
}

/// One HMAC-SHA-256 computation with a fixed key, reusable for several messages (HKDF-Expand uses it per block).
///
/// Ownership: owns one libgcrypt MAC handle, opened in `init` and closed (and wiped by libgcrypt) in `deinit`.
///
/// Threading: not thread-safe; one owner at a time.
final class HMACSHA256Context {
    private let handle: gcry_mac_hd_t

    /// Opens a MAC handle and sets `key`. Traps if libgcrypt fails, which happens only when memory runs out.
    init(key: UnsafeRawBufferPointer) {
        Gcrypt.ensureInitialised()
        var opened: gcry_mac_hd_t?
        Gcrypt.require(gcry_mac_open(&opened, Int32(GCRY_MAC_HMAC_SHA256.rawValue), 0, nil), "gcry_mac_open")
        handle = opened!
        Gcrypt.withNonNullBytes(key) { base, count in
            Gcrypt.require(gcry_mac_setkey(handle, base, count), "gcry_mac_setkey")
        }
    }

    deinit {
        gcry_mac_close(handle)
    }

    /// Adds bytes to the message being authenticated.
    func update(_ buffer: UnsafeRawBufferPointer) {
        guard let base = buffer.baseAddress, buffer.count > 0 else { return }
        Gcrypt.require(gcry_mac_write(handle, base, buffer.count), "gcry_mac_write")
    }

    /// Writes the 32-byte code into `output` and resets the handle for the next message under the same key.
    func finalize(into output: UnsafeMutableRawBufferPointer) {
        precondition(output.count == HMACSHA256.codeSize, "HMAC-SHA-256 output needs 32 bytes")
        var length = output.count
        Gcrypt.require(gcry_mac_read(handle, output.baseAddress!, &length), "gcry_mac_read")
        precondition(length == HMACSHA256.codeSize, "gcry_mac_read returned \(length) bytes, not 32")
        Gcrypt.require(gcry_mac_ctl(handle, Int32(GCRYCTL_RESET.rawValue), nil, 0), "gcry_mac_ctl(GCRYCTL_RESET)")
    }

    /// Returns the 32-byte code and resets the handle for the next message under the same key.
    func finalize() -> [UInt8] {
        [UInt8](unsafeUninitializedCapacity: HMACSHA256.codeSize) { buffer, initialised in
            finalize(into: buffer.rawPrefix(HMACSHA256.codeSize))
            initialised = HMACSHA256.codeSize
        }
    }
}
