internal import CGcrypt

/// A libgcrypt multi-precision integer, for arithmetic on public values such as the coordinates of a peer's Ed25519
/// public key (see ``Ed25519PublicKeyCheck``).
///
/// These are libgcrypt's general MPI functions, not its curve code: they are not constant time, so never put a secret
/// in one. Every operation returns a new integer; none changes its operands.
///
/// Ownership: owns one `gcry_mpi_t`, released in `deinit`.
///
/// Threading: not thread-safe; one owner at a time.
final class GcryptMPI {
    private let handle: gcry_mpi_t

    private init(handle: gcry_mpi_t) {
        self.handle = handle
    }

    deinit {
        gcry_mpi_release(handle)
    }

    /// A new integer with the value `value`.
    ///
    /// The corresponding libgcrypt call is `gcry_mpi_set_ui`.
    ///
    /// - Parameter value: The value.
    convenience init(_ value: UInt) {
        Gcrypt.ensureInitialised()
        self.init(handle: gcry_mpi_set_ui(nil, value))
    }

    /// A new integer read from unsigned big-endian bytes.
    ///
    /// The corresponding libgcrypt call is `gcry_mpi_scan` with `GCRYMPI_FMT_USG`. Traps if libgcrypt fails, which
    /// happens only when memory runs out.
    ///
    /// - Parameter bytes: The value, most significant byte first; empty means 0.
    convenience init(bigEndian bytes: [UInt8]) {
        Gcrypt.ensureInitialised()
        var scanned: gcry_mpi_t?
        let error = bytes.withUnsafeBytes { buffer in
            Gcrypt.withNonNullBytes(buffer) { base, count in
                gcry_mpi_scan(&scanned, GCRYMPI_FMT_USG, base, count, nil)
            }
        }
        Gcrypt.require(error, "gcry_mpi_scan")
        self.init(handle: scanned!)
    }

    /// 2^`exponent` − `subtrahend`, for building constants such as the prime 2^255 − 19.
    ///
    /// The corresponding libgcrypt calls are `gcry_mpi_set_bit` and `gcry_mpi_sub_ui`.
    ///
    /// - Parameters:
    ///   - exponent: The power of two.
    ///   - subtrahend: What to subtract from it; must be smaller than 2^`exponent`.
    /// - Returns: The new integer.
    static func powerOfTwo(_ exponent: UInt32, minus subtrahend: UInt) -> GcryptMPI {
        let result = GcryptMPI(0)
        gcry_mpi_set_bit(result.handle, exponent)
        gcry_mpi_sub_ui(result.handle, result.handle, subtrahend)
        return result
    }

    /// The number of significant bits: 0 for 0, 193 for a value from 2^192 to 2^193 − 1.
    ///
    /// The corresponding libgcrypt call is `gcry_mpi_get_nbits`.
    var bitCount: Int {
        Int(gcry_mpi_get_nbits(handle))
    }

    /// Whether the lowest bit is set.
    ///
    /// The corresponding libgcrypt call is `gcry_mpi_test_bit`.
    var isOdd: Bool {
        gcry_mpi_test_bit(handle, 0) != 0
    }

    /// Compares two integers.
    ///
    /// The corresponding libgcrypt call is `gcry_mpi_cmp`.
    ///
    /// - Parameter other: The integer to compare with.
    /// - Returns: A negative number, 0 or a positive number when `self` is smaller than, equal to or greater than
    ///   `other`.
    func compare(to other: GcryptMPI) -> Int {
        Int(gcry_mpi_cmp(handle, other.handle))
    }

    /// (`self` + `other`) mod `modulus`.
    ///
    /// The corresponding libgcrypt call is `gcry_mpi_addm`.
    func adding(_ other: GcryptMPI, modulo modulus: GcryptMPI) -> GcryptMPI {
        let result = GcryptMPI(0)
        gcry_mpi_addm(result.handle, handle, other.handle, modulus.handle)
        return result
    }

    /// (`self` − `other`) mod `modulus`, in the range 0 to `modulus` − 1.
    ///
    /// The corresponding libgcrypt call is `gcry_mpi_subm`.
    func subtracting(_ other: GcryptMPI, modulo modulus: GcryptMPI) -> GcryptMPI {
        let result = GcryptMPI(0)
        gcry_mpi_subm(result.handle, handle, other.handle, modulus.handle)
        return result
    }

    /// (`self` × `other`) mod `modulus`.
    ///
    /// The corresponding libgcrypt call is `gcry_mpi_mulm`.
    func multiplying(_ other: GcryptMPI, modulo modulus: GcryptMPI) -> GcryptMPI {
        let result = GcryptMPI(0)
        gcry_mpi_mulm(result.handle, handle, other.handle, modulus.handle)
        return result
    }

    /// `self`^`exponent` mod `modulus`.
    ///
    /// The corresponding libgcrypt call is `gcry_mpi_powm`.
    func power(_ exponent: GcryptMPI, modulo modulus: GcryptMPI) -> GcryptMPI {
        let result = GcryptMPI(0)
        gcry_mpi_powm(result.handle, handle, exponent.handle, modulus.handle)
        return result
    }

    /// The multiplicative inverse of `self` mod `modulus`, or `nil` when there is none.
    ///
    /// The corresponding libgcrypt call is `gcry_mpi_invm`.
    func inverse(modulo modulus: GcryptMPI) -> GcryptMPI? {
        let result = GcryptMPI(0)
        return gcry_mpi_invm(result.handle, handle, modulus.handle) != 0 ? result : nil
    }
}
