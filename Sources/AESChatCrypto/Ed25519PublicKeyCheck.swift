/// The checks that ``Ed25519/isValidSignature(_:for:publicKey:)`` makes on a public key before libgcrypt sees it.
///
/// A key passes when it is the canonical encoding (RFC 8032 section 5.1.2) of a point on the curve, the point is not
/// of small order, and both of its coordinates are at least 2^192.
///
/// The last rule protects the process, not the signature: libgcrypt 1.10.1 aborts the whole process (`log_bug`,
/// "mulm_25519: different sizes") inside `gcry_pk_verify` when either coordinate of the public key fits in fewer than
/// four 64-bit limbs, that is, is below 2^192. Anyone can publish such a key (for example y = 3, or the identity
/// point), so an unchecked key from a peer is a remote crash. A key made from a random seed has such a coordinate
/// with a probability of about 2^-63, so the rule refuses no honest key in practice. It also refuses four of the
/// eight small-order points (the identity, (0, −1) and (±√−1, 0)); the other four are refused by name below.
///
/// The arithmetic uses libgcrypt's general MPI functions (``GcryptMPI``), which are not constant time; that is fine
/// because a public key is public.
///
/// Threading: every function may be called from any thread.
enum Ed25519PublicKeyCheck {
    /// The smallest coordinate libgcrypt 1.10 can take without aborting, as a bit count: values below 2^192 have at
    /// most 192 significant bits.
    static let minimumCoordinateBits = 193

    /// The y-coordinates (little-endian, sign bit clear) of the four points of order 8. The other small-order points
    /// have a coordinate of 0 or ±1 and fail the coordinate-size rule.
    static let orderEightYEncodings: [[UInt8]] = [
        Hex.decode("26e8958fc2b227b045c3f489f2ef98f0d5dfac05d3c63339b13802886d53fc05")!,
        Hex.decode("c7176a703d4dd84fba3c0b760d10670f2a2053fa2c39ccc64ec7fd7792ac037a")!,
    ]

    /// Whether `encoded` may be handed to `gcry_pk_verify` as an Ed25519 public key.
    ///
    /// - Parameter encoded: The public key as received, in the RFC 8032 encoding.
    /// - Returns: `true` when `encoded` is 32 bytes, canonical, on the curve, not of small order, and has no
    ///   coordinate below 2^192.
    static func isAcceptable(_ encoded: [UInt8]) -> Bool {
        guard encoded.count == Ed25519.publicKeySize else { return false }
        // The top bit of the last byte is the sign (lowest bit) of x; the other 255 bits are y, little-endian.
        let xIsOdd = encoded[31] & 0x80 != 0
        var yEncoding = encoded
        yEncoding[31] &= 0x7f
        if orderEightYEncodings.contains(yEncoding) {
            return false
        }
        let field = Field()
        let y = GcryptMPI(bigEndian: yEncoding.reversed())
        // Refuse y >= p (a non-canonical encoding; libgcrypt refuses it too) and y < 2^192 (libgcrypt would abort).
        guard y.compare(to: field.prime) < 0, y.bitCount >= minimumCoordinateBits else {
            return false
        }
        guard let x = field.recoverX(y: y, odd: xIsOdd) else {
            return false
        }
        return x.bitCount >= minimumCoordinateBits
    }

    /// The constants of the field of integers mod p = 2^255 − 19 and the curve −x² + y² = 1 + d·x²·y² over it. They
    /// are written out rather than computed, which saves an inversion and an exponentiation per check; a test
    /// checks them.
    struct Field {
        /// p = 2^255 − 19.
        let prime = GcryptMPI.powerOfTwo(255, minus: 19)
        /// d = −121665 / 121666 mod p.
        let d = GcryptMPI(
            bigEndian: Hex.decode("52036cee2b6ffe738cc740797779e89800700a4d4141d8ab75eb4dca135978a3")!)
        /// √−1 = 2^((p − 1) / 4) mod p.
        let squareRootOfMinusOne = GcryptMPI(
            bigEndian: Hex.decode("2b8324804fc1df0b2b4d00993dfbd7a72f431806ad2fe478c4ee1b274a0ea0b0")!)

        /// Recovers x from y as RFC 8032 section 5.1.3 describes.
        ///
        /// - Parameters:
        ///   - y: The y-coordinate, already checked to be below p.
        ///   - odd: The sign bit: whether x must be odd.
        /// - Returns: x, or `nil` when no point has this y, or when x would be 0 but must be odd.
        func recoverX(y: GcryptMPI, odd: Bool) -> GcryptMPI? {
            let one = GcryptMPI(1)
            let ySquared = y.multiplying(y, modulo: prime)
            // x² = u / v with u = y² − 1 and v = d·y² + 1.
            let u = ySquared.subtracting(one, modulo: prime)
            let v = d.multiplying(ySquared, modulo: prime).adding(one, modulo: prime)
            // Candidate root x = u·v³·(u·v⁷)^((p − 5) / 8).
            let vCubed = v.multiplying(v, modulo: prime).multiplying(v, modulo: prime)
            let vSeventh = vCubed.multiplying(vCubed, modulo: prime).multiplying(v, modulo: prime)
            let exponent = GcryptMPI.powerOfTwo(252, minus: 3)
            let root = u.multiplying(vSeventh, modulo: prime).power(exponent, modulo: prime)
            var x = u.multiplying(vCubed, modulo: prime).multiplying(root, modulo: prime)
            let vxSquared = v.multiplying(x.multiplying(x, modulo: prime), modulo: prime)
            if vxSquared.compare(to: u) != 0 {
                // v·x² = −u: multiply by √−1.
                guard vxSquared.compare(to: GcryptMPI(0).subtracting(u, modulo: prime)) == 0 else { return nil }
                x = x.multiplying(squareRootOfMinusOne, modulo: prime)
            }
            if x.bitCount == 0 {
                return odd ? nil : x
            }
            if x.isOdd != odd {
                x = GcryptMPI(0).subtracting(x, modulo: prime)
            }
            return x
        }
    }
}
