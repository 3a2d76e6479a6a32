import Testing

@testable import AESChatCrypto

@Suite("Constant-time comparison")
struct ConstantTimeTests {
    @Test func constantTimeEquals_comparesContents() {
        #expect(constantTimeEquals([], []))
        #expect(constantTimeEquals([1, 2, 3], [1, 2, 3]))
        #expect(!constantTimeEquals([1, 2, 3], [1, 2, 4]))
        #expect(!constantTimeEquals([0, 2, 3], [1, 2, 3]))
    }

    @Test func constantTimeEquals_rejectsDifferentLengths() {
        #expect(!constantTimeEquals([1, 2, 3], [1, 2]))
        #expect(!constantTimeEquals([], [0]))
    }

    @Test func constantTimeEquals_bufferOverloadAgrees() {
        let a: [UInt8] = [9, 8, 7, 6]
        let b: [UInt8] = [9, 8, 7, 5]
        a.withUnsafeBytes { first in
            b.withUnsafeBytes { second in
                #expect(constantTimeEquals(first, first))
                #expect(!constantTimeEquals(first, second))
                #expect(!constantTimeEquals(first, UnsafeRawBufferPointer(rebasing: first[0..<3])))
            }
        }
    }
}

@Suite("Hex")
struct HexTests {
    @Test func hex_encode_isLowerCase() {
        #expect(Hex.encode([]) == "")
        #expect(Hex.encode([0x00, 0x0f, 0xab, 0xff]) == "000fabff")
    }

    @Test func hex_decode_acceptsEitherCase() {
        #expect(Hex.decode("") == [])
        #expect(Hex.decode("000fabff") == [0x00, 0x0f, 0xab, 0xff])
        #expect(Hex.decode("000FABFF") == [0x00, 0x0f, 0xab, 0xff])
        #expect(Hex.decode("aBcD") == [0xab, 0xcd])
    }

    @Test func hex_decode_rejectsOddLengthAndNonHex() {
        for text in ["0", "abc", "zz", "0x12", "12 34", "g0", "é0", "12\n"] {
            #expect(Hex.decode(text) == nil, "'\(text)' must not decode")
        }
    }

    @Test func hex_roundTrip_restoresBytes() {
        let bytes = (0...255).map { UInt8($0) }
        #expect(Hex.decode(Hex.encode(bytes)) == bytes)
    }
}

@Suite("Secrets and randomness")
struct SecretTests {
    @Test func secretBytes_init_copiesBytes() {
        let secret = SecretBytes([1, 2, 3, 4])
        #expect(secret.count == 4)
        #expect(secret.withUnsafeBytes { Array($0) } == [1, 2, 3, 4])
        #expect(SecretBytes([]).count == 0)
    }

    @Test func secretBytes_initCount_isRandom() {
        let first = SecretBytes(count: 32)
        let second = SecretBytes(count: 32)
        #expect(first.count == 32)
        #expect(first.withUnsafeBytes { Array($0) } != second.withUnsafeBytes { Array($0) })
        #expect(SecretBytes(count: 0).count == 0)
    }

    @Test func secretBytes_initializingWith_keepsWrittenBytes() {
        let secret = SecretBytes(count: 4) { buffer in
            #expect(Array(buffer) == [0, 0, 0, 0])
            buffer[1] = 7
            buffer[3] = 9
        }
        #expect(secret.withUnsafeBytes { Array($0) } == [0, 7, 0, 9])
        let empty = SecretBytes(count: 0) { buffer in
            #expect(buffer.isEmpty)
        }
        #expect(empty.count == 0)
    }

    @Test func secretBytes_description_hidesBytes() {
        let secret = SecretBytes([0xde, 0xad, 0xbe, 0xef])
        #expect(secret.description == "SecretBytes(4 bytes, redacted)")
        #expect(!"\(secret)".contains("dead"))
    }

    @Test func secretBytes_isSharedAcrossTasks() async {
        let secret = SecretBytes(count: 16)
        let expected = secret.withUnsafeBytes { Array($0) }
        await withTaskGroup(of: [UInt8].self) { group in
            for _ in 0..<8 {
                group.addTask { secret.withUnsafeBytes { Array($0) } }
            }
            for await copy in group {
                #expect(copy == expected)
            }
        }
    }

    @Test func secureZero_overwritesEveryByte() {
        var bytes: [UInt8] = [1, 2, 3, 4, 5]
        secureZero(&bytes)
        #expect(bytes == [0, 0, 0, 0, 0])
    }

    @Test func secureRandom_bytes_haveRequestedCountAndDiffer() {
        #expect(SecureRandom.bytes(count: 0) == [])
        let first = SecureRandom.bytes(count: 32)
        let second = SecureRandom.bytes(count: 32)
        #expect(first.count == 32)
        #expect(first != second)
    }

    @Test func secureRandom_fill_overwritesBuffer() {
        var buffer = [UInt8](repeating: 0, count: 64)
        buffer.withUnsafeMutableBytes { SecureRandom.fill($0) }
        #expect(buffer != [UInt8](repeating: 0, count: 64))
        SecureRandom.fill(UnsafeMutableRawBufferPointer(start: nil, count: 0))
    }

    @Test func gcryptInitialisation_isSafeFromManyThreadsAtOnce() async {
        await withTaskGroup(of: [UInt8].self) { group in
            for _ in 0..<16 {
                group.addTask { SHA256.hash(utf8("abc")) }
            }
            for await digest in group {
                #expect(digest == hex("ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"))
            }
        }
    }
}

@Suite("CryptoError")
struct CryptoErrorTests {
    static let errors: [CryptoError] = [
        .authenticationFailed,
        .invalidKeySize(expected: 32, actual: 7),
        .invalidNonceSize(expected: 12, actual: 3),
        .invalidTagSize(expected: 16, actual: 8),
        .ciphertextTooShort,
        .outputTooLong(requested: 9000, maximum: 8160),
        .library(operation: "gcry_cipher_setkey", code: 44, message: "Invalid key length"),
        .invalidPublicKey("it is 31 bytes long, but an X25519 public key is 32 bytes"),
        .weakSharedSecret,
    ]

    @Test func cryptoError_description_isOneActionableSentence() {
        for error in Self.errors {
            let text = error.description
            #expect(text.hasSuffix("."), "'\(text)' should end a sentence")
            #expect(text.contains(";"), "'\(text)' should say what to do")
            #expect(!text.contains("\n"))
        }
        #expect(CryptoError.invalidKeySize(expected: 32, actual: 7).description.contains("7 bytes"))
        #expect(Self.errors[6].description.contains("gcry_cipher_setkey"))
        #expect(Self.errors[7].description.contains("31 bytes long"))
    }
}
