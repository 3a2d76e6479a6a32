internal import CGcrypt
internal import CGcryptShims

/// libgcrypt's one-time process set-up: version check, secure memory off, initialisation finished.
///
/// A global `let` is initialised lazily, exactly once, and thread-safely (Swift guards it with `swift_once`), so
/// reading it from every entry point costs one already-initialised check after the first call.
private let libgcryptInitialisation: Void = {
    let headerVersion = cgcrypt_header_version()
    // gcry_check_version must be the first libgcrypt call: it also sets up the library's internals.
    guard gcry_check_version(headerVersion) != nil else {
        let found = gcry_check_version(nil).map { String(cString: $0) } ?? "unknown"
        fatalError(
            "libgcrypt \(found) is older than \(String(cString: headerVersion)), the version aeschat was built "
                + "against; install libgcrypt \(String(cString: headerVersion)) or newer."
        )
    }
    // Another library in this process may have finished initialisation already; then we must not touch it again.
    guard cgcrypt_control_initialization_finished_p() == 0 else { return }
    // Secure memory is disabled on purpose, before INITIALIZATION_FINISHED as libgcrypt requires: we zero our own
    // secrets (SecretBytes, wiped buffers; gcry_cipher_close wipes key schedules), and libgcrypt's small, fixed
    // secure-memory pool would be exhausted by many concurrent cipher and MAC handles, breaking ordinary calls.
    // The price: libgcrypt wipes S-expressions and its own temporary buffers only when they are in secure memory, so
    // the internal copies it makes of an Ed25519 seed or an X25519 scalar during one operation are freed unwiped.
    Gcrypt.require(cgcrypt_control_disable_secmem(), "gcry_control(GCRYCTL_DISABLE_SECMEM)")
    Gcrypt.require(cgcrypt_control_initialization_finished(), "gcry_control(GCRYCTL_INITIALIZATION_FINISHED)")
}()

/// Internal helpers shared by every libgcrypt wrapper in this module.
enum Gcrypt {
    /// Makes sure libgcrypt is initialised; every public entry point that calls libgcrypt calls this first.
    @inline(__always)
    static func ensureInitialised() {
        _ = libgcryptInitialisation
    }

    /// The libgcrypt error code of `error`, without its error source.
    static func code(_ error: gcry_error_t) -> UInt32 {
        cgcrypt_err_code(error).rawValue
    }

    /// Wraps a libgcrypt failure in ``CryptoError/library(operation:code:message:)``.
    static func error(_ operation: String, _ error: gcry_error_t) -> CryptoError {
        let message = gcry_strerror(error).map { String(cString: $0) } ?? "unknown error"
        return .library(operation: operation, code: code(error), message: message)
    }

    /// Returns `nil` for success, otherwise the failure as a ``CryptoError``.
    static func check(_ error: gcry_error_t, _ operation: String) -> CryptoError? {
        error == 0 ? nil : Self.error(operation, error)
    }

    /// Traps on failure. Only for calls that fail solely when memory runs out or the library is misconfigured
    /// (for example an algorithm disabled by FIPS mode), in APIs that promise not to throw.
    static func require(_ error: gcry_error_t, _ operation: String) {
        if error != 0 {
            fatalError(Self.error(operation, error).description)
        }
    }

    /// Calls `body` with a non-null pointer to `buffer`'s bytes (a pointer to a dummy byte when `buffer` is empty),
    /// for C functions that must not receive `NULL`.
    static func withNonNullBytes<R>(
        _ buffer: UnsafeRawBufferPointer,
        _ body: (UnsafeRawPointer, Int) throws -> R
    ) rethrows -> R {
        if let base = buffer.baseAddress {
            return try body(base, buffer.count)
        }
        var dummy: UInt8 = 0
        return try withUnsafeBytes(of: &dummy) { try body($0.baseAddress!, 0) }
    }
}

extension UnsafeMutableBufferPointer<UInt8> {
    /// The first `count` bytes as raw memory, for filling the storage of `[UInt8](unsafeUninitializedCapacity:)`.
    func rawPrefix(_ count: Int) -> UnsafeMutableRawBufferPointer {
        UnsafeMutableRawBufferPointer(UnsafeMutableBufferPointer(rebasing: self[0..<count]))
    }
}

/// The libgcrypt in use, for reports such as `aeschat selftest`.
public enum Libgcrypt {
    /// The version of the libgcrypt library loaded at run time, for example "1.10.1".
    public static var version: String {
        Gcrypt.ensureInitialised()
        return gcry_check_version(nil).map { String(cString: $0) } ?? "unknown"
    }

    /// The version of the headers aeschat was compiled against (the oldest library it accepts).
    public static var headerVersion: String { String(cString: cgcrypt_header_version()) }

    /// What is known to be wrong with `version` for aeschat, and how aeschat copes; nil when nothing is known.
    /// - Parameter version: a libgcrypt version string such as "1.10.1".
    public static func knownProblem(of version: String) -> String? {
        let numbers = version.split(separator: "-").first.map { $0.split(separator: ".").compactMap { Int($0) } } ?? []
        guard numbers.count >= 2 else { return "version '\(version)' cannot be read" }
        let (major, minor) = (numbers[0], numbers[1])
        if major == 1 && minor <= 10 {
            return
                "libgcrypt \(version) aborts the process when verifying an Ed25519 signature under a public key with "
                + "a coordinate below 2^192; aeschat refuses such keys before libgcrypt sees them (guarded)"
        }
        return nil
    }
}
