import Testing

@testable import AESChatCrypto

@Suite("SHA-256")
struct SHA256Tests {
    /// FIPS 180-4 examples (NIST "SHA256.pdf", and the empty message).
    static let vectors: [(message: String, digest: String)] = [
        ("abc", "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"),
        ("", "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"),
        (
            "abcdbcdecdefdefgefghfghighijhijkijkljklmklmnlmnomnopnopq",
            "248d6a61d20638b8e5c026930c3e6039a33ce45964ff2167f6ecedd419db06c1"
        ),
    ]

    @Test func sha256_hash_matchesFIPSVectors() {
        for (message, digest) in Self.vectors {
            #expect(SHA256.hash(utf8(message)) == hex(digest), "SHA-256 of '\(message)'")
            #expect(utf8(message).withUnsafeBytes { SHA256.hash($0) } == hex(digest), "buffer overload")
            #expect(SHA256.hash(message.utf8) == hex(digest), "sequence overload")
        }
        #expect(SHA256.digestSize == 32)
    }

    @Test func sha256Hasher_millionAs_matchesFIPSVector() {
        let hasher = SHA256Hasher()
        let chunk = [UInt8](repeating: UInt8(ascii: "a"), count: 1000)
        for _ in 0..<1000 {
            hasher.update(chunk)
        }
        #expect(hasher.finalize() == hex("cdc76e5c9914fb9281a1c7e284d73e67f1809a48a497200e046d39ccc7112cd0"))
    }

    @Test func sha256Hasher_incremental_equalsOneShot() {
        let data = SecureRandom.bytes(count: 5000)
        var generator = SystemRandomNumberGenerator()
        for _ in 0..<20 {
            let hasher = SHA256Hasher()
            var offset = 0
            while offset < data.count {
                let length = min(Int.random(in: 0...300, using: &generator), data.count - offset)
                if length.isMultiple(of: 2) {
                    hasher.update(Array(data[offset..<offset + length]))
                } else {
                    data.withUnsafeBytes {
                        hasher.update(UnsafeRawBufferPointer(rebasing: $0[offset..<offset + length]))
                    }
                }
                offset += length
            }
            #expect(hasher.finalize() == SHA256.hash(data))
        }
    }

    @Test func sha256Hasher_finalize_resetsForReuse() {
        let hasher = SHA256Hasher()
        #expect(hasher.finalize() == SHA256.hash([]))
        hasher.update(utf8("ab"))
        hasher.update(utf8("c"))
        #expect(hasher.finalize() == hex(Self.vectors[0].digest))
        hasher.update(utf8("abc"))
        #expect(hasher.finalize() == hex(Self.vectors[0].digest))
    }
}

@Suite("HMAC-SHA-256")
struct HMACSHA256Tests {
    /// RFC 4231 section 4 test cases for HMAC-SHA-256 (case 5, truncated, is tested separately).
    static let vectors: [(number: Int, key: [UInt8], data: [UInt8], mac: String)] = [
        (
            1, [UInt8](repeating: 0x0b, count: 20), utf8("Hi There"),
            "b0344c61d8db38535ca8afceaf0bf12b881dc200c9833da726e9376c2e32cff7"
        ),
        (
            2, utf8("Jefe"), utf8("what do ya want for nothing?"),
            "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843"
        ),
        (
            3, [UInt8](repeating: 0xaa, count: 20), [UInt8](repeating: 0xdd, count: 50),
            "773ea91e36800e46854db8ebd09181a72959098b3ef8c122d9635514ced565fe"
        ),
        (
            4, hex("0102030405060708090a0b0c0d0e0f10111213141516171819"), [UInt8](repeating: 0xcd, count: 50),
            "82558a389a443c0ea4cc819899f2083a85f0faa3e578f8077a2e3ff46729665b"
        ),
        (
            6, [UInt8](repeating: 0xaa, count: 131), utf8("Test Using Larger Than Block-Size Key - Hash Key First"),
            "60e431591ee0b67f0d8a26aacbf5b77f8e0bc6213728c5140546040f0ee37f54"
        ),
        (
            7, [UInt8](repeating: 0xaa, count: 131),
            utf8(
                "This is a test using a larger than block-size key and a larger than block-size data. "
                    + "The key needs to be hashed before being used by the HMAC algorithm."),
            "9b09ffa71b942fcb27635fbcd5b0e944bfdc63644f0713938a7f51535c3a35e2"
        ),
    ]

    @Test func hmacSHA256_authenticationCode_matchesRFC4231() {
        for vector in Self.vectors {
            let code = HMACSHA256.authenticationCode(for: vector.data, key: vector.key)
            #expect(code == hex(vector.mac), "RFC 4231 test case \(vector.number)")
            #expect(HMACSHA256.isValidAuthenticationCode(code, for: vector.data, key: vector.key))
            let secret = HMACSHA256.authenticationCode(for: vector.data, key: SecretBytes(vector.key))
            #expect(secret.withUnsafeBytes { Array($0) } == hex(vector.mac), "RFC 4231 test case \(vector.number)")
        }
    }

    @Test func hmacSHA256_isValid_acceptsTruncatedRFC4231Case5() {
        let key = [UInt8](repeating: 0x0c, count: 20)
        let data = utf8("Test With Truncation")
        let truncated = hex("a3b6167473100ee06e0c796c2955552b")
        #expect(Array(HMACSHA256.authenticationCode(for: data, key: key).prefix(16)) == truncated)
        #expect(HMACSHA256.isValidAuthenticationCode(truncated, for: data, key: key))
    }

    @Test func hmacSHA256_isValid_enforcesLengthsFrom16To32() {
        let key = utf8("key")
        let message = utf8("message")
        let code = HMACSHA256.authenticationCode(for: message, key: key)
        for length in 16...32 {
            #expect(HMACSHA256.isValidAuthenticationCode(Array(code.prefix(length)), for: message, key: key))
        }
        for length in [0, 1, 8, 15] {
            #expect(!HMACSHA256.isValidAuthenticationCode(Array(code.prefix(length)), for: message, key: key))
        }
        #expect(!HMACSHA256.isValidAuthenticationCode(code + [0], for: message, key: key))
    }

    @Test func hmacSHA256_isValid_rejectsFlippedBitAndWrongKey() {
        let key = utf8("key")
        let message = utf8("message")
        let code = HMACSHA256.authenticationCode(for: message, key: key)
        for index in [0, 15, 31] {
            #expect(!HMACSHA256.isValidAuthenticationCode(flippingBit(ofByte: index, in: code), for: message, key: key))
        }
        #expect(!HMACSHA256.isValidAuthenticationCode(code, for: message, key: utf8("kez")))
        #expect(!HMACSHA256.isValidAuthenticationCode(code, for: utf8("messagf"), key: key))
    }

    @Test func hmacSHA256_emptyKeyAndMessage_matchesKnownAnswer() {
        #expect(
            HMACSHA256.authenticationCode(for: [], key: [])
                == hex("b613679a0814d9ec772f95d778c35fc5ff1697c493715653c6c712144292c5ad"))
    }
}

@Suite("HKDF-SHA-256")
struct HKDFSHA256Tests {
    /// RFC 5869 appendix A, test cases 1 to 3.
    static let vectors: [(number: Int, ikm: [UInt8], salt: [UInt8], info: [UInt8], prk: String, okm: String)] = [
        (
            1, [UInt8](repeating: 0x0b, count: 22), hex("000102030405060708090a0b0c"), hex("f0f1f2f3f4f5f6f7f8f9"),
            "077709362c2e32df0ddc3f0dc47bba6390b6c73bb50f9c3122ec844ad7c2b3e5",
            "3cb25f25faacd57a90434f64d0362f2a2d2d0a90cf1a5a4c5db02d56ecc4c5bf34007208d5b887185865"
        ),
        (
            2, (0x00...0x4f).map { UInt8($0) }, (0x60...0xaf).map { UInt8($0) }, (0xb0...0xff).map { UInt8($0) },
            "06a6b88c5853361a06104c9ceb35b45cef760014904671014a193f40c15fc244",
            """
            b11e398dc80327a1c8e7f78c596a49344f012eda2d4efad8a050cc4c19afa97c\
            59045a99cac7827271cb41c65e590e09da3275600c2f09b8367793a9aca3db71\
            cc30c58179ec3e87c14c01d5c1f3434f1d87
            """
        ),
        (
            3, [UInt8](repeating: 0x0b, count: 22), [], [],
            "19ef24a32c717b167f33a91d6f648bdf96596776afdb6377ac434c1c293ccb04",
            "8da4e775a563c18f715f802a063c5a31b8a11f5c5ee1879ec3454e5f3c738d2d9d201395faa4b61a96c8"
        ),
    ]

    @Test func hkdfSHA256_matchesRFC5869() throws {
        for vector in Self.vectors {
            let okm = hex(vector.okm)
            let prk = HKDFSHA256.extract(salt: vector.salt, inputKeyMaterial: vector.ikm)
            #expect(prk == hex(vector.prk), "RFC 5869 test case \(vector.number): PRK")
            let expanded = try HKDFSHA256.expand(pseudoRandomKey: prk, info: vector.info, outputByteCount: okm.count)
            #expect(expanded == okm, "RFC 5869 test case \(vector.number): expand")
            let derived = try HKDFSHA256.deriveKey(
                inputKeyMaterial: vector.ikm, salt: vector.salt, info: vector.info, outputByteCount: okm.count)
            #expect(derived == okm, "RFC 5869 test case \(vector.number): deriveKey")
            let secret = try HKDFSHA256.deriveKey(
                inputKeyMaterial: SecretBytes(vector.ikm), salt: vector.salt, info: vector.info,
                outputByteCount: okm.count)
            #expect(secret.withUnsafeBytes { Array($0) } == okm, "RFC 5869 test case \(vector.number): secret")
        }
    }

    @Test func hkdfSHA256_secretDeriveKey_rejectsMoreThan8160Bytes_andDerivesNothingForZero() throws {
        let ikm = SecretBytes([UInt8](repeating: 7, count: 32))
        #expect(throws: CryptoError.outputTooLong(requested: 8161, maximum: 8160)) {
            try HKDFSHA256.deriveKey(inputKeyMaterial: ikm, salt: [], info: [], outputByteCount: 8161)
        }
        #expect(
            try HKDFSHA256.deriveKey(inputKeyMaterial: ikm, salt: [], info: [], outputByteCount: 8160).count == 8160)
        #expect(try HKDFSHA256.deriveKey(inputKeyMaterial: ikm, salt: [], info: [], outputByteCount: 0).count == 0)
    }

    @Test func hkdfSHA256_extract_emptySaltEqualsZeroSalt() {
        let ikm = utf8("input key material")
        #expect(
            HKDFSHA256.extract(salt: [], inputKeyMaterial: ikm)
                == HKDFSHA256.extract(salt: [UInt8](repeating: 0, count: 32), inputKeyMaterial: ikm))
    }

    @Test func hkdfSHA256_expand_rejectsMoreThan8160Bytes() throws {
        let prk = [UInt8](repeating: 7, count: 32)
        #expect(throws: CryptoError.outputTooLong(requested: 8161, maximum: 8160)) {
            try HKDFSHA256.expand(pseudoRandomKey: prk, info: [], outputByteCount: 8161)
        }
        #expect(throws: CryptoError.outputTooLong(requested: 100_000, maximum: 8160)) {
            try HKDFSHA256.deriveKey(inputKeyMaterial: prk, salt: [], info: [], outputByteCount: 100_000)
        }
        let longest = try HKDFSHA256.expand(pseudoRandomKey: prk, info: [], outputByteCount: 8160)
        #expect(longest.count == 8160)
        #expect(try HKDFSHA256.expand(pseudoRandomKey: prk, info: [], outputByteCount: 0) == [])
    }

    @Test func hkdfSHA256_expand_shorterOutputIsPrefixOfLonger() throws {
        let prk = [UInt8](repeating: 9, count: 32)
        let long = try HKDFSHA256.expand(pseudoRandomKey: prk, info: utf8("info"), outputByteCount: 100)
        for length in [1, 31, 32, 33, 64, 65] {
            let short = try HKDFSHA256.expand(pseudoRandomKey: prk, info: utf8("info"), outputByteCount: length)
            #expect(short == Array(long.prefix(length)))
        }
    }
}
