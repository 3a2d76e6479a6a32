import Testing

@testable import AESChatCrypto

/// A test from RFC 8032 section 7.1 (Ed25519), or one made the same way.
struct Ed25519Vector: Sendable, CustomTestStringConvertible {
    let name: String
    let seed: [UInt8]
    let publicKey: [UInt8]
    let message: [UInt8]
    let signature: [UInt8]

    var testDescription: String { name }

    static let rfc8032: [Ed25519Vector] = [
        Ed25519Vector(
            name: "RFC 8032 TEST 1",
            seed: hex("9d61b19deffd5a60ba844af492ec2cc44449c5697b326919703bac031cae7f60"),
            publicKey: hex("d75a980182b10ab7d54bfed3c964073a0ee172f3daa62325af021a68f707511a"),
            message: [],
            signature: hex(
                """
                e5564300c360ac729086e2cc806e828a84877f1eb8e5d974d873e06522490155
                5fb8821590a33bacc61e39701cf9b46bd25bf5f0595bbe24655141438e7a100b
                """)),
        Ed25519Vector(
            name: "RFC 8032 TEST 2",
            seed: hex("4ccd089b28ff96da9db6c346ec114e0f5b8a319f35aba624da8cf6ed4fb8a6fb"),
            publicKey: hex("3d4017c3e843895a92b70aa74d1b7ebc9c982ccf2ec4968cc0cd55f12af4660c"),
            message: hex("72"),
            signature: hex(
                """
                92a009a9f0d4cab8720e820b5f642540a2b27b5416503f8fb3762223ebdb69da
                085ac1e43e15996e458f3613d0f11d8c387b2eaeb4302aeeb00d291612bb0c00
                """)),
        Ed25519Vector(
            name: "RFC 8032 TEST 3",
            seed: hex("c5aa8df43f9f837bedb7442f31dcb7b166d38535076f094b85ce3a2e0b4458f7"),
            publicKey: hex("fc51cd8e6218a1a38da47ed00230f0580816ed13ba3303ac5deb911548908025"),
            message: hex("af82"),
            signature: hex(
                """
                6291d657deec24024827e69c3abe01a30ce548a284743a445e3680d7db5ac3ac
                18ff9b538d16f290ae67f760984dc6594a7c15e9716ed28dc027beceea1ec40a
                """)),
        Ed25519Vector(
            name: "RFC 8032 TEST 1024",
            seed: hex("f5e5767cf153319517630f226876b86c8160cc583bc013744c6bf255f5cc0ee5"),
            publicKey: hex("278117fc144c72340f67d0f2316e8386ceffbf2b2428c9c51fef7c597f1d426e"),
            message: hex(
                """
                08b8b2b733424243760fe426a4b54908632110a66c2f6591eabd3345e3e4eb98fa6e264bf09efe12ee50f8f54e9f77b1e355f6c5
                0544e23fb1433ddf73be84d879de7c0046dc4996d9e773f4bc9efe5738829adb26c81b37c93a1b270b20329d658675fc6ea534e0
                810a4432826bf58c941efb65d57a338bbd2e26640f89ffbc1a858efcb8550ee3a5e1998bd177e93a7363c344fe6b199ee5d02e82
                d522c4feba15452f80288a821a579116ec6dad2b3b310da903401aa62100ab5d1a36553e06203b33890cc9b832f79ef80560ccb9
                a39ce767967ed628c6ad573cb116dbefefd75499da96bd68a8a97b928a8bbc103b6621fcde2beca1231d206be6cd9ec7aff6f6c9
                4fcd7204ed3455c68c83f4a41da4af2b74ef5c53f1d8ac70bdcb7ed185ce81bd84359d44254d95629e9855a94a7c1958d1f8ada5
                d0532ed8a5aa3fb2d17ba70eb6248e594e1a2297acbbb39d502f1a8c6eb6f1ce22b3de1a1f40cc24554119a831a9aad6079cad88
                425de6bde1a9187ebb6092cf67bf2b13fd65f27088d78b7e883c8759d2c4f5c65adb7553878ad575f9fad878e80a0c9ba63bcbcc
                2732e69485bbc9c90bfbd62481d9089beccf80cfe2df16a2cf65bd92dd597b0707e0917af48bbb75fed413d238f5555a7a569d80
                c3414a8d0859dc65a46128bab27af87a71314f318c782b23ebfe808b82b0ce26401d2e22f04d83d1255dc51addd3b75a2b1ae078
                4504df543af8969be3ea7082ff7fc9888c144da2af58429ec96031dbcad3dad9af0dcbaaaf268cb8fcffead94f3c7ca495e056a9
                b47acdb751fb73e666c6c655ade8297297d07ad1ba5e43f1bca32301651339e22904cc8c42f58c30c04aafdb038dda0847dd988d
                cda6f3bfd15c4b4c4525004aa06eeff8ca61783aacec57fb3d1f92b0fe2fd1a85f6724517b65e614ad6808d6f6ee34dff7310fdc
                82aebfd904b01e1dc54b2927094b2db68d6f903b68401adebf5a7e08d78ff4ef5d63653a65040cf9bfd4aca7984a74d371459867
                80fc0b16ac451649de6188a7dbdf191f64b5fc5e2ab47b57f7f7276cd419c17a3ca8e1b939ae49e488acba6b965610b5480109c8
                b17b80e1b7b750dfc7598d5d5011fd2dcc5600a32ef5b52a1ecc820e308aa342721aac0943bf6686b64b2579376504ccc493d97e
                6aed3fb0f9cd71a43dd497f01f17c0e2cb3797aa2a2f256656168e6c496afc5fb93246f6b1116398a346f1a641f3b041e989f791
                4f90cc2c7fff357876e506b50d334ba77c225bc307ba537152f3f1610e4eafe595f6d9d90d11faa933a15ef1369546868a7f3a45
                a96768d40fd9d03412c091c6315cf4fde7cb68606937380db2eaaa707b4c4185c32eddcdd306705e4dc1ffc872eeee475a64dfac
                86aba41c0618983f8741c5ef68d3a101e8a3b8cac60c905c15fc910840b94c00a0b9d0
                """),
            signature: hex(
                """
                0aab4c900501b3e24d7cdf4663326a3a87df5e4843b2cbdb67cbf6e460fec350
                aa5371b1508f9f4528ecea23c436d94b5e8fcd4f681e30a6ac00a9704a188a03
                """)),
        Ed25519Vector(
            name: "RFC 8032 TEST SHA(abc)",
            seed: hex("833fe62409237b9d62ec77587520911e9a759cec1d19755b7da901b96dca3d42"),
            publicKey: hex("ec172b93ad5e563bf4932c70e1245034c35467ef2efd4d64ebf819683467e2bf"),
            message: hex(
                """
                ddaf35a193617abacc417349ae20413112e6fa4e89a97ea20a9eeee64b55d39a
                2192992a274fc1a836ba3c23a3feebbd454d4423643ce80e2a9ac94fa54ca49f
                """),
            signature: hex(
                """
                dc2a4459e7369633a52b1bf277839a00201009a3efbf3ecb69bea2186c26b589
                09351fc9ac90b3ecfdfbc7c66431e0303dca179c138ac17ad9bef1177331a704
                """)),
    ]

    /// A seed that starts with two zero bytes, which libgcrypt reads as a big-endian integer; made with the RFC 8032
    /// section 6 reference code, to show that libgcrypt does not drop the leading zeros.
    static let leadingZeroSeed = Ed25519Vector(
        name: "seed with two leading zero bytes",
        seed: hex("00000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e"),
        publicKey: hex("c955740507c0730f6ecd9907dca92f42c03ce697401b75ed10e44ae0f7db18a7"),
        message: utf8("leading zero bytes"),
        signature: hex(
            """
            170a4d84f5579491c2250aeb97d539862340e3fdea68dbfbca3da316a41b5ae0
            a784cf4d87d0944b71b37eb58d51a2c91e065ee1bc6f4f042340f7f8632c6e09
            """))
}

/// Little-endian 32-byte encodings of special points, for the public-key checks.
enum Ed25519SpecialPoints {
    /// The eight points of small order, canonically encoded: the identity (0, 1), (0, −1), (±√−1, 0) and the four
    /// points of order 8.
    static let smallOrder: [[UInt8]] = [
        hex("0100000000000000000000000000000000000000000000000000000000000000"),
        hex("ecffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff7f"),
        hex("0000000000000000000000000000000000000000000000000000000000000000"),
        hex("0000000000000000000000000000000000000000000000000000000000000080"),
        hex("26e8958fc2b227b045c3f489f2ef98f0d5dfac05d3c63339b13802886d53fc05"),
        hex("26e8958fc2b227b045c3f489f2ef98f0d5dfac05d3c63339b13802886d53fc85"),
        hex("c7176a703d4dd84fba3c0b760d10670f2a2053fa2c39ccc64ec7fd7792ac037a"),
        hex("c7176a703d4dd84fba3c0b760d10670f2a2053fa2c39ccc64ec7fd7792ac03fa"),
    ]

    /// Non-canonical encodings (y ≥ p = 2^255 − 19) and a y with x = 0 but the sign bit set.
    static let nonCanonical: [[UInt8]] = [
        hex("edffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff7f"),  // y = p
        hex("eeffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff7f"),  // y = p + 1: the identity again
        hex("ffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff7f"),  // y = 2^255 − 1
        hex("0100000000000000000000000000000000000000000000000000000000000080"),  // identity with x "odd"
    ]

    /// Points on the curve with a coordinate below 2^192, on which libgcrypt 1.10.1 aborts the process.
    static let libgcryptAborts: [(name: String, encoding: [UInt8])] = [
        ("y = 3", hex("0300000000000000000000000000000000000000000000000000000000000000")),
        ("y = 2^191 + 2", hex("0200000000000000000000000000000000000000000000800000000000000080")),
        ("x = 2", hex("3126711e11ef574692935381d2cd2bbab5dd113c4010f91fd7c4dd7b12bf431a")),
        ("x just below 2^192", hex("f4c1919e9fe158a87f648d8c1015a0df40b807ce371c98b7f2579532c0698145")),
    ]

    /// Points on the curve whose smaller coordinate is just above 2^192: libgcrypt handles them, so they pass.
    static let justAboveTheLimit: [[UInt8]] = [
        hex("d6b120827250f473c86f495ddcdbf032719aa72c9ad5710817e905bce4dd8d53"),  // x = 2^192 + 3
        hex("0200000000000000000000000000000000000000000000000100000000000080"),  // y = 2^192 + 2
    ]

    /// The base point B.
    static let base = hex("5866666666666666666666666666666666666666666666666666666666666666")
}

@Suite("Ed25519")
struct Ed25519Tests {
    /// R = B and S = 1: valid under any key A with [k]A = identity, which libgcrypt alone accepts for a small-order A.
    private static let baseAndOne = Ed25519SpecialPoints.base + [1] + [UInt8](repeating: 0, count: 31)

    // MARK: Known answers

    @Test(arguments: Ed25519Vector.rfc8032 + [Ed25519Vector.leadingZeroSeed])
    func ed25519_sign_matchesVector(_ vector: Ed25519Vector) throws {
        let key = try Ed25519PrivateKey(seed: vector.seed)
        #expect(key.publicKey == vector.publicKey)
        #expect(key.seed.withUnsafeBytes { Array($0) } == vector.seed)
        #expect(try key.signature(for: vector.message) == vector.signature)
        #expect(Ed25519.isValidSignature(vector.signature, for: vector.message, publicKey: vector.publicKey))
    }

    @Test(arguments: Ed25519Vector.rfc8032)
    func ed25519_verify_refusesFlippedBits(_ vector: Ed25519Vector) {
        for byte in [0, 17, 31, 32, 45, 63] {
            for bit in [0, 7] {
                let forged = flippingBit(bit, ofByte: byte, in: vector.signature)
                #expect(
                    !Ed25519.isValidSignature(forged, for: vector.message, publicKey: vector.publicKey),
                    "signature bit \(bit) of byte \(byte)")
            }
        }
        let otherMessages =
            vector.message.isEmpty
            ? [[0], [0x80]]
            : [
                flippingBit(ofByte: 0, in: vector.message),
                flippingBit(7, ofByte: vector.message.count - 1, in: vector.message),
                vector.message + [0], Array(vector.message.dropLast()),
            ]
        for message in otherMessages {
            #expect(!Ed25519.isValidSignature(vector.signature, for: message, publicKey: vector.publicKey))
        }
        for byte in [0, 15, 31] {
            let otherKey = flippingBit(ofByte: byte, in: vector.publicKey)
            #expect(!Ed25519.isValidSignature(vector.signature, for: vector.message, publicKey: otherKey))
        }
    }

    // MARK: Keys and round trips

    @Test func ed25519_randomKey_signsDeterministicallyAndVerifies() throws {
        let key = Ed25519PrivateKey()
        #expect(key.seed.count == Ed25519.seedSize)
        #expect(key.publicKey.count == Ed25519.publicKeySize)
        #expect(Ed25519PublicKeyCheck.isAcceptable(key.publicKey))
        for length in [0, 1, 64, 1000] {
            let message = SecureRandom.bytes(count: length)
            let signature = try key.signature(for: message)
            #expect(signature.count == Ed25519.signatureSize)
            #expect(try key.signature(for: message) == signature)
            #expect(Ed25519.isValidSignature(signature, for: message, publicKey: key.publicKey))
            #expect(!Ed25519.isValidSignature(signature, for: message, publicKey: Ed25519PrivateKey().publicKey))
        }
        let restored = try Ed25519PrivateKey(seed: key.seed.withUnsafeBytes { Array($0) })
        #expect(restored.publicKey == key.publicKey)
        #expect(Ed25519PrivateKey().publicKey != key.publicKey)
    }

    @Test(arguments: [0, 1, 31, 33, 64])
    func ed25519_init_rejectsWrongSeedSize(size: Int) {
        #expect(throws: CryptoError.invalidKeySize(expected: 32, actual: size)) {
            try Ed25519PrivateKey(seed: [UInt8](repeating: 1, count: size))
        }
    }

    @Test func ed25519_verify_refusesWrongSizes() {
        let vector = Ed25519Vector.rfc8032[1]
        for size in [0, 32, 63, 65, 128] {
            let signature = Array((vector.signature + vector.signature).prefix(size))
            #expect(!Ed25519.isValidSignature(signature, for: vector.message, publicKey: vector.publicKey), "\(size)")
        }
        for size in [0, 31, 33, 64] {
            let key = Array((vector.publicKey + vector.publicKey).prefix(size))
            #expect(!Ed25519.isValidSignature(vector.signature, for: vector.message, publicKey: key), "\(size)")
        }
    }

    // MARK: Checks libgcrypt 1.10 does not make

    /// S + L verifies under libgcrypt 1.10.1 alone (it does not check S < L); ``Ed25519/isValidSignature`` refuses
    /// it, and anything else with S ≥ L. If the libgcrypt-only expectation fails after an upgrade, libgcrypt now makes
    /// this check itself: update the comment on `isValidSignature`.
    @Test func ed25519_verify_refusesNonCanonicalS() {
        let vector = Ed25519Vector.rfc8032[0]
        let r = Array(vector.signature.prefix(32))
        let s = Array(vector.signature.suffix(32))
        let sPlusL = addLittleEndian(s, Ed25519.groupOrder)
        #expect(Ed25519.verifyWithLibgcryptOnly(r + sPlusL, for: vector.message, publicKey: vector.publicKey))
        #expect(!Ed25519.isValidSignature(r + sPlusL, for: vector.message, publicKey: vector.publicKey))
        #expect(!Ed25519.isValidSignature(r + Ed25519.groupOrder, for: vector.message, publicKey: vector.publicKey))
        #expect(Ed25519.isBelowGroupOrder(ArraySlice(s)))
        #expect(!Ed25519.isBelowGroupOrder(ArraySlice(Ed25519.groupOrder)))
        #expect(Ed25519.isBelowGroupOrder(ArraySlice(subtractingOne(Ed25519.groupOrder))))
        #expect(!Ed25519.isBelowGroupOrder(ArraySlice([UInt8](repeating: 0xff, count: 32))))
    }

    @Test func ed25519_verify_refusesSmallOrderAndNonCanonicalKeys() {
        for key in Ed25519SpecialPoints.smallOrder + Ed25519SpecialPoints.nonCanonical {
            #expect(!Ed25519PublicKeyCheck.isAcceptable(key), "\(Hex.encode(key))")
            #expect(!Ed25519.isValidSignature(Self.baseAndOne, for: utf8("any message"), publicKey: key))
        }
    }

    /// Under an order-8 key, R = B and S = 1 is a valid signature (cofactorless) for every message whose k is a
    /// multiple of 8; libgcrypt alone accepts it, so the key must be refused before libgcrypt sees it.
    @Test func ed25519_verify_refusesForgeryUnderOrderEightKey() {
        let key = hex("c7176a703d4dd84fba3c0b760d10670f2a2053fa2c39ccc64ec7fd7792ac037a")
        let message = utf8("forged 8")
        #expect(Ed25519.verifyWithLibgcryptOnly(Self.baseAndOne, for: message, publicKey: key))
        #expect(!Ed25519.isValidSignature(Self.baseAndOne, for: message, publicKey: key))
    }

    /// If this test crashes the test process ("Ohhhh jeeee: mulm_25519: different sizes"), the guard is broken.
    @Test func ed25519_verify_refusesKeysThatAbortLibgcrypt() {
        for (name, key) in Ed25519SpecialPoints.libgcryptAborts {
            #expect(!Ed25519PublicKeyCheck.isAcceptable(key), "\(name)")
            #expect(!Ed25519.isValidSignature(Self.baseAndOne, for: utf8("crash?"), publicKey: key), "\(name)")
        }
        for key in Ed25519SpecialPoints.justAboveTheLimit {
            #expect(Ed25519PublicKeyCheck.isAcceptable(key), "\(Hex.encode(key))")
            #expect(!Ed25519.isValidSignature(Self.baseAndOne, for: utf8("crash?"), publicKey: key))
        }
    }

    @Test func ed25519_publicKeyCheck_acceptsGenuineKeysAndRefusesPointsOffTheCurve() {
        for vector in Ed25519Vector.rfc8032 {
            #expect(Ed25519PublicKeyCheck.isAcceptable(vector.publicKey), "\(vector.name)")
        }
        #expect(Ed25519PublicKeyCheck.isAcceptable(Ed25519SpecialPoints.base))
        for _ in 0..<100 {
            #expect(Ed25519PublicKeyCheck.isAcceptable(Ed25519PrivateKey().publicKey))
        }
        // y = 2^192 + 1 and y = 2^192 + 3 are not the y of any point.
        let offTheCurve = [
            hex("0100000000000000000000000000000000000000000000000100000000000000"),
            hex("0300000000000000000000000000000000000000000000000100000000000000"),
        ]
        for key in offTheCurve {
            #expect(!Ed25519PublicKeyCheck.isAcceptable(key), "\(Hex.encode(key))")
        }
    }

    @Test func ed25519_fieldConstants_areCorrect() {
        let field = Ed25519PublicKeyCheck.Field()
        let prime = field.prime
        // d · 121666 = −121665 (mod p).
        let product = field.d.multiplying(GcryptMPI(121_666), modulo: prime)
        #expect(product.adding(GcryptMPI(121_665), modulo: prime).bitCount == 0)
        // (√−1)² = −1, and it is 2^((p − 1) / 4).
        let square = field.squareRootOfMinusOne.multiplying(field.squareRootOfMinusOne, modulo: prime)
        #expect(square.adding(GcryptMPI(1), modulo: prime).bitCount == 0)
        let power = GcryptMPI(2).power(GcryptMPI.powerOfTwo(253, minus: 5), modulo: prime)
        #expect(power.compare(to: field.squareRootOfMinusOne) == 0)
    }

    @Test func gcryptMPI_modularArithmetic_staysInRange() {
        let prime = GcryptMPI.powerOfTwo(255, minus: 19)
        #expect(prime.bitCount == 255)
        #expect(GcryptMPI(0).bitCount == 0)
        #expect(GcryptMPI(bigEndian: [1] + [UInt8](repeating: 0, count: 24)).bitCount == 193)
        let minusOne = GcryptMPI(0).subtracting(GcryptMPI(1), modulo: prime)
        #expect(minusOne.compare(to: GcryptMPI.powerOfTwo(255, minus: 20)) == 0)
        #expect(minusOne.multiplying(minusOne, modulo: prime).compare(to: GcryptMPI(1)) == 0)
        #expect(minusOne.adding(GcryptMPI(1), modulo: prime).bitCount == 0)
        #expect(GcryptMPI(4).power(GcryptMPI(3), modulo: prime).compare(to: GcryptMPI(64)) == 0)
        let half = GcryptMPI(2).inverse(modulo: prime)
        #expect(half?.multiplying(GcryptMPI(2), modulo: prime).compare(to: GcryptMPI(1)) == 0)
        #expect(GcryptMPI(2).inverse(modulo: GcryptMPI(4)) == nil)
        #expect(GcryptMPI(3).isOdd)
        #expect(!GcryptMPI(4).isOdd)
    }

    // MARK: Threads and speed

    @Test func ed25519_oneKey_signsAndVerifiesFromManyTasksAtOnce() async throws {
        let vector = Ed25519Vector.rfc8032[3]
        let key = try Ed25519PrivateKey(seed: vector.seed)
        await withTaskGroup(of: Bool.self) { group in
            for _ in 0..<16 {
                group.addTask {
                    let signature = try? key.signature(for: vector.message)
                    return signature == vector.signature
                        && Ed25519.isValidSignature(vector.signature, for: vector.message, publicKey: key.publicKey)
                }
            }
            for await matched in group {
                #expect(matched)
            }
        }
    }

    /// Prints the cost of one signature and one verification (64-byte message); asserts nothing about time.
    @Test func ed25519_signAndVerify_reportMicrosecondsPerOperation() throws {
        let key = Ed25519PrivateKey()
        let message = SecureRandom.bytes(count: 64)
        let signature = try key.signature(for: message)
        let rounds = 200
        let clock = ContinuousClock()
        let signing = try clock.measure {
            for _ in 0..<rounds {
                _ = try key.signature(for: message)
            }
        }
        var accepted = 0
        let verifying = clock.measure {
            for _ in 0..<rounds where Ed25519.isValidSignature(signature, for: message, publicKey: key.publicKey) {
                accepted += 1
            }
        }
        let checking = clock.measure {
            for _ in 0..<rounds where Ed25519PublicKeyCheck.isAcceptable(key.publicKey) {
                accepted += 1
            }
        }
        #expect(accepted == 2 * rounds)
        print(
            "Ed25519: \(microseconds(signing, per: rounds)) µs per signature, "
                + "\(microseconds(verifying, per: rounds)) µs per verification, of which "
                + "\(microseconds(checking, per: rounds)) µs for the public-key check (\(rounds) rounds each)")
    }
}

/// `a` + `b` for little-endian integers of the same length (the carry out of the top byte is dropped).
private func addLittleEndian(_ a: [UInt8], _ b: [UInt8]) -> [UInt8] {
    var sum = [UInt8](repeating: 0, count: a.count)
    var carry = 0
    for index in 0..<a.count {
        let total = Int(a[index]) + Int(b[index]) + carry
        sum[index] = UInt8(total & 0xff)
        carry = total >> 8
    }
    return sum
}

/// `a` − 1 for a non-zero little-endian integer.
private func subtractingOne(_ a: [UInt8]) -> [UInt8] {
    var result = a
    for index in 0..<result.count {
        if result[index] > 0 {
            result[index] -= 1
            return result
        }
        result[index] = 0xff
    }
    return result
}

@Suite struct Ed25519MessageSizeTests {
    @Test func longMessages_areRefused_insteadOfAbortingInLibgcrypt() throws {
        let key = Ed25519PrivateKey()
        let limit = [UInt8](repeating: 0x61, count: Ed25519.maximumMessageSize)
        let signature = try key.signature(for: limit)
        #expect(Ed25519.isValidSignature(signature, for: limit, publicKey: key.publicKey))
        let tooLong = limit + [0x61]
        #expect(throws: CryptoError.messageTooLong(actual: tooLong.count, maximum: Ed25519.maximumMessageSize)) {
            try key.signature(for: tooLong)
        }
        #expect(!Ed25519.isValidSignature(signature, for: tooLong, publicKey: key.publicKey))
        #expect(
            !Ed25519.isValidSignature(signature, for: [UInt8](repeating: 0, count: 300_000), publicKey: key.publicKey))
    }
}
