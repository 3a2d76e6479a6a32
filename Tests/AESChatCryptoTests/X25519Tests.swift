import Testing

@testable import AESChatCrypto

@Suite("X25519")
struct X25519Tests {
    /// RFC 7748 section 5.2: X25519 of a scalar and a u-coordinate (the second u has its top bit set, which X25519
    /// must ignore; neither scalar is clamped).
    static let section52Vectors: [(scalar: String, u: String, output: String)] = [
        (
            "a546e36bf0527c9d3b16154b82465edd62144c0ac1fc5a18506a2244ba449ac4",
            "e6db6867583030db3594c1a424b15f7c726624ec26b3353b10a903a6d0ab1c4c",
            "c3da55379de9c6908e94ea4df28d084f32eccf03491c71f754b4075577a28552"
        ),
        (
            "4b66e9d4d1b4673c5ad22691957d6af5c11b6421e0ea01d42ca4169e7918ba0d",
            "e5210f12786811d3f4b7959d0538ae2c31dbe7106fc03c3efc4cd549c715a493",
            "95cbde9476e8907d7aade45cb4b873f88b595a68799fa152e6f8f7647aac7957"
        ),
    ]

    /// RFC 7748 section 6.1.
    static let alicePrivate = hex("77076d0a7318a57d3c16c17251b26645df4c2f87ebc0992ab177fba51db92c2a")
    static let alicePublic = hex("8520f0098930a754748b7ddcb43ef75a0dbf3a0d26381af4eba4a98eaa9b4e6a")
    static let bobPrivate = hex("5dab087e624a8a4b79e17f8b83800ee66f3bb1292618b6fd1c2f8b27ff88e0eb")
    static let bobPublic = hex("de9edb7d7b7dc1b4d35b61c2ece435373f8343c85b78674dadfc7e146f882b4f")
    static let sharedSecret = hex("4a5d9d5ba4ce2de1728e3bf480350f25e07e21c947d19e3376f09b3c1e161742")

    private func bytes(_ secret: SecretBytes) -> [UInt8] {
        secret.withUnsafeBytes { Array($0) }
    }

    // MARK: Known answers

    @Test func x25519_sharedSecret_matchesRFC7748Section52() throws {
        for vector in Self.section52Vectors {
            let key = try X25519PrivateKey(rawRepresentation: hex(vector.scalar))
            #expect(bytes(try key.sharedSecret(with: hex(vector.u))) == hex(vector.output))
        }
    }

    /// RFC 7748 section 5.2, iterated: k = u = 9, then (k, u) = (X25519(k, u), k) repeatedly.
    @Test func x25519_iterated_matchesRFC7748AfterOneAndOneThousandRounds() throws {
        var k = [9] + [UInt8](repeating: 0, count: 31)
        var u = k
        for round in 1...1000 {
            let output = bytes(try X25519PrivateKey(rawRepresentation: k).sharedSecret(with: u))
            u = k
            k = output
            if round == 1 {
                #expect(k == hex("422c8e7a6227d7bca1350b3e2bb7279f7897b87bb6854b783c60e80311ae3079"))
            }
        }
        #expect(k == hex("684cf59ba83309552800ef566f2f4d3c1c3887c49360e3875f2eb94d99532c51"))
    }

    @Test func x25519_aliceAndBob_matchRFC7748Section61() throws {
        let alice = try X25519PrivateKey(rawRepresentation: Self.alicePrivate)
        let bob = try X25519PrivateKey(rawRepresentation: Self.bobPrivate)
        #expect(alice.publicKey == Self.alicePublic)
        #expect(bob.publicKey == Self.bobPublic)
        #expect(bytes(try alice.sharedSecret(with: Self.bobPublic)) == Self.sharedSecret)
        #expect(bytes(try bob.sharedSecret(with: Self.alicePublic)) == Self.sharedSecret)
    }

    // MARK: Keys

    @Test func x25519_randomKeys_agreeAndDiffer() throws {
        let alice = X25519PrivateKey()
        let bob = X25519PrivateKey()
        #expect(alice.publicKey.count == 32)
        #expect(alice.rawRepresentation.count == 32)
        #expect(alice.publicKey != bob.publicKey)
        #expect(bytes(alice.rawRepresentation) != bytes(bob.rawRepresentation))
        let aliceSecret = bytes(try alice.sharedSecret(with: bob.publicKey))
        #expect(aliceSecret == bytes(try bob.sharedSecret(with: alice.publicKey)))
    }

    @Test func x25519_ephemeralKeys_agreeDifferAndRoundTrip() throws {
        let first = try X25519PrivateKey(ephemeral: ())
        let second = try X25519PrivateKey(ephemeral: ())
        #expect(first.publicKey.count == 32)
        #expect(first.publicKey != second.publicKey)
        #expect(bytes(first.rawRepresentation) != bytes(second.rawRepresentation))
        let restored = try X25519PrivateKey(rawRepresentation: bytes(first.rawRepresentation))
        #expect(restored.publicKey == first.publicKey)
        let secret = bytes(try first.sharedSecret(with: second.publicKey))
        #expect(secret == bytes(try second.sharedSecret(with: first.publicKey)))
    }

    @Test func x25519_rawRepresentation_roundTripsUnclamped() throws {
        let original = X25519PrivateKey()
        let restored = try X25519PrivateKey(rawRepresentation: bytes(original.rawRepresentation))
        #expect(restored.publicKey == original.publicKey)
        // The scalar is kept as given; clamping happens inside every multiplication, so the bits it forces do not
        // change the public key.
        var unclamped = Self.alicePrivate
        unclamped[0] |= 0x07
        unclamped[31] = (unclamped[31] | 0x80) & 0xbf
        let key = try X25519PrivateKey(rawRepresentation: unclamped)
        #expect(bytes(key.rawRepresentation) == unclamped)
        #expect(key.publicKey == Self.alicePublic)
    }

    @Test(arguments: [0, 1, 16, 31, 33, 64])
    func x25519_init_rejectsWrongKeySize(size: Int) {
        #expect(throws: CryptoError.invalidKeySize(expected: 32, actual: size)) {
            try X25519PrivateKey(rawRepresentation: [UInt8](repeating: 7, count: size))
        }
    }

    // MARK: Refusals

    @Test(arguments: [0, 1, 31, 33, 64])
    func x25519_sharedSecret_rejectsWrongPeerKeySize(size: Int) throws {
        let key = try X25519PrivateKey(rawRepresentation: Self.alicePrivate)
        let expected = CryptoError.invalidPublicKey("it is \(size) bytes long, but an X25519 public key is 32 bytes")
        #expect(throws: expected) {
            try key.sharedSecret(with: [UInt8](repeating: 9, count: size))
        }
    }

    /// u = 0, u = 1, u = p − 1 (order 2), u = p and u = p + 1 (non-canonical 0 and 1), and the two points of order 8
    /// all give an all-zero result, which must be refused.
    @Test(arguments: [
        "0000000000000000000000000000000000000000000000000000000000000000",
        "0100000000000000000000000000000000000000000000000000000000000000",
        "ecffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff7f",
        "edffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff7f",
        "eeffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff7f",
        "e0eb7a7c3b41b8ae1656e3faf19fc46ada098deb9c32b1fd866205165f49b800",
        "5f9c95bca3508c24b1d0b1559c83ef5b04445cc4581c8e86d8224eddd09f1157",
    ])
    func x25519_sharedSecret_refusesAllZeroResult(peerHex: String) throws {
        let peer = hex(peerHex)
        for key in [X25519PrivateKey(), try X25519PrivateKey(rawRepresentation: Self.bobPrivate)] {
            #expect(throws: CryptoError.weakSharedSecret) {
                try key.sharedSecret(with: peer)
            }
        }
    }

    // MARK: Threads and speed

    @Test func x25519_oneKey_isUsableFromManyTasksAtOnce() async throws {
        let alice = try X25519PrivateKey(rawRepresentation: Self.alicePrivate)
        await withTaskGroup(of: [UInt8]?.self) { group in
            for _ in 0..<16 {
                group.addTask { (try? alice.sharedSecret(with: Self.bobPublic))?.withUnsafeBytes { Array($0) } }
            }
            for await secret in group {
                #expect(secret == Self.sharedSecret)
            }
        }
    }

    /// Prints the cost of one shared secret; asserts nothing about time.
    @Test func x25519_sharedSecret_reportsMicrosecondsPerOperation() throws {
        let alice = X25519PrivateKey()
        let bob = X25519PrivateKey()
        let rounds = 200
        let clock = ContinuousClock()
        let elapsed = try clock.measure {
            for _ in 0..<rounds {
                _ = try alice.sharedSecret(with: bob.publicKey)
            }
        }
        print("X25519: \(microseconds(elapsed, per: rounds)) µs per shared secret (\(rounds) rounds)")
    }
}

/// `duration` divided by `count`, in whole microseconds.
func microseconds(_ duration: Duration, per count: Int) -> Int {
    let (seconds, attoseconds) = duration.components
    return Int((Double(seconds) * 1e6 + Double(attoseconds) / 1e12) / Double(count))
}
