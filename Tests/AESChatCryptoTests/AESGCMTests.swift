import Testing

@testable import AESChatCrypto

/// A test case from McGrew and Viega, "The Galois/Counter Mode of Operation (GCM)", appendix B.
struct GCMSpecVector: Sendable, CustomTestStringConvertible {
    let number: Int
    let key: [UInt8]
    let iv: [UInt8]
    let plaintext: [UInt8]
    let aad: [UInt8]
    let ciphertext: [UInt8]
    let tag: [UInt8]

    var testDescription: String { "GCM spec test case \(number)" }

    static let plaintext64 = hex(
        """
        d9313225f88406e5a55909c5aff5269a86a7a9531534f7da2e4c303d8a318a72
        1c3c0c95956809532fcf0e2449a6b525b16aedf5aa0de657ba637b391aafd255
        """)
    static let plaintext60 = Array(plaintext64.prefix(60))
    static let aad20 = hex("feedfacedeadbeeffeedfacedeadbeefabaddad2")
    static let key128 = hex("feffe9928665731c6d6a8f9467308308")
    static let key256 = hex("feffe9928665731c6d6a8f9467308308feffe9928665731c6d6a8f9467308308")
    static let iv96 = hex("cafebabefacedbaddecaf888")

    /// Cases with the 12-byte IVs that the public API takes.
    static let twelveByteIV: [GCMSpecVector] = [
        GCMSpecVector(
            number: 1, key: [UInt8](repeating: 0, count: 16), iv: [UInt8](repeating: 0, count: 12),
            plaintext: [], aad: [], ciphertext: [], tag: hex("58e2fccefa7e3061367f1d57a4e7455a")),
        GCMSpecVector(
            number: 2, key: [UInt8](repeating: 0, count: 16), iv: [UInt8](repeating: 0, count: 12),
            plaintext: [UInt8](repeating: 0, count: 16), aad: [],
            ciphertext: hex("0388dace60b6a392f328c2b971b2fe78"), tag: hex("ab6e47d42cec13bdf53a67b21257bddf")),
        GCMSpecVector(
            number: 3, key: key128, iv: iv96, plaintext: plaintext64, aad: [],
            ciphertext: hex(
                """
                42831ec2217774244b7221b784d0d49ce3aa212f2c02a4e035c17e2329aca12e
                21d514b25466931c7d8f6a5aac84aa051ba30b396a0aac973d58e091473f5985
                """),
            tag: hex("4d5c2af327cd64a62cf35abd2ba6fab4")),
        GCMSpecVector(
            number: 4, key: key128, iv: iv96, plaintext: plaintext60, aad: aad20,
            ciphertext: hex(
                """
                42831ec2217774244b7221b784d0d49ce3aa212f2c02a4e035c17e2329aca12e
                21d514b25466931c7d8f6a5aac84aa051ba30b396a0aac973d58e091
                """),
            tag: hex("5bc94fbc3221a5db94fae95ae7121a47")),
        GCMSpecVector(
            number: 13, key: [UInt8](repeating: 0, count: 32), iv: [UInt8](repeating: 0, count: 12),
            plaintext: [], aad: [], ciphertext: [], tag: hex("530f8afbc74536b9a963b4f1c4cb738b")),
        GCMSpecVector(
            number: 14, key: [UInt8](repeating: 0, count: 32), iv: [UInt8](repeating: 0, count: 12),
            plaintext: [UInt8](repeating: 0, count: 16), aad: [],
            ciphertext: hex("cea7403d4d606b6e074ec5d3baf39d18"), tag: hex("d0d1c8a799996bf0265b98b5d48ab919")),
        GCMSpecVector(
            number: 15, key: key256, iv: iv96, plaintext: plaintext64, aad: [],
            ciphertext: hex(
                """
                522dc1f099567d07f47f37a32a84427d643a8cdcbfe5c0c97598a2bd2555d1aa
                8cb08e48590dbb3da7b08b1056828838c5f61e6393ba7a0abcc9f662898015ad
                """),
            tag: hex("b094dac5d93471bdec1a502270e3cc6c")),
        GCMSpecVector(
            number: 16, key: key256, iv: iv96, plaintext: plaintext60, aad: aad20,
            ciphertext: hex(
                """
                522dc1f099567d07f47f37a32a84427d643a8cdcbfe5c0c97598a2bd2555d1aa
                8cb08e48590dbb3da7b08b1056828838c5f61e6393ba7a0abcc9f662
                """),
            tag: hex("76fc6ece0f4e1768cddf8853bb2d551b")),
    ]

    /// Cases with 8-byte and 60-byte IVs, reachable only through the internal any-length-IV API.
    static let otherIVLengths: [GCMSpecVector] = [
        GCMSpecVector(
            number: 5, key: key128, iv: hex("cafebabefacedbad"), plaintext: plaintext60, aad: aad20,
            ciphertext: hex(
                """
                61353b4c2806934a777ff51fa22a4755699b2a714fcdc6f83766e5f97b6c7423
                73806900e49f24b22b097544d4896b424989b5e1ebac0f07c23f4598
                """),
            tag: hex("3612d2e79e3b0785561be14aaca2fccb")),
        GCMSpecVector(
            number: 6, key: key128,
            iv: hex(
                """
                9313225df88406e555909c5aff5269aa6a7a9538534f7da1e4c303d2a318a728
                c3c0c95156809539fcf0e2429a6b525416aedbf5a0de6a57a637b39b
                """),
            plaintext: plaintext60, aad: aad20,
            ciphertext: hex(
                """
                8ce24998625615b603a033aca13fb894be9112a5c3a211a8ba262a3cca7e2ca7
                01e4a9a4fba43c90ccdcb281d48c7c6fd62875d2aca417034c34aee5
                """),
            tag: hex("619cc5aefffe0bfa462af43c1699d050")),
    ]
}

@Suite("AES-GCM")
struct AESGCMTests {
    private let key = hex("000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f")
    private let nonce = hex("000000000000000000000001")
    private let aad = utf8("header")
    private let plaintext = utf8("hello, group")

    // MARK: Known answers

    @Test(arguments: GCMSpecVector.twelveByteIV)
    func aesGCM_seal_matchesGCMSpec(_ vector: GCMSpecVector) throws {
        let cipher = try AESGCM(key: vector.key)
        let sealed = try cipher.seal(vector.plaintext, nonce: vector.iv, authenticating: vector.aad)
        #expect(sealed == vector.ciphertext + vector.tag)
    }

    @Test(arguments: GCMSpecVector.twelveByteIV)
    func aesGCM_open_recoversGCMSpecPlaintext(_ vector: GCMSpecVector) throws {
        let cipher = try AESGCM(key: vector.key)
        let opened = try cipher.open(vector.ciphertext + vector.tag, nonce: vector.iv, authenticating: vector.aad)
        #expect(opened == vector.plaintext)
    }

    @Test(arguments: GCMSpecVector.otherIVLengths)
    func aesGCM_anyLengthIV_matchesGCMSpec(_ vector: GCMSpecVector) throws {
        let cipher = try AESGCM(key: vector.key)
        let sealed = try cipher.seal(vector.plaintext, iv: vector.iv, authenticating: vector.aad)
        #expect(sealed == vector.ciphertext + vector.tag)
        #expect(try cipher.open(sealed, iv: vector.iv, authenticating: vector.aad) == vector.plaintext)
        // The public API refuses these IV lengths.
        #expect(throws: CryptoError.invalidNonceSize(expected: 12, actual: vector.iv.count)) {
            try cipher.seal(vector.plaintext, nonce: vector.iv, authenticating: vector.aad)
        }
    }

    // MARK: Round trips

    @Test(arguments: [16, 24, 32], [0, 1, 15, 16, 17, 64, 1000])
    func aesGCM_roundTrip_recoversPlaintext(keySize: Int, length: Int) throws {
        let cipher = try AESGCM(key: SecureRandom.bytes(count: keySize))
        let message = SecureRandom.bytes(count: length)
        let sealed = try cipher.seal(message, nonce: nonce, authenticating: aad)
        #expect(sealed.count == length + AESGCM.tagSize)
        #expect(try cipher.open(sealed, nonce: nonce, authenticating: aad) == message)
    }

    @Test(arguments: [0, 1, 16, 17, 1000, 262_144])
    func aesGCM_inPlace_matchesSealAndOpen(length: Int) throws {
        let cipher = try AESGCM(key: SecureRandom.bytes(count: 32))
        let message = SecureRandom.bytes(count: length)
        var buffer = message + [UInt8](repeating: 0, count: AESGCM.tagSize)
        try buffer.withUnsafeMutableBytes { try cipher.sealInPlace($0, nonce: nonce, authenticating: aad) }
        #expect(buffer == (try cipher.seal(message, nonce: nonce, authenticating: aad)))
        try buffer.withUnsafeMutableBytes { try cipher.openInPlace($0, nonce: nonce, authenticating: aad) }
        #expect(Array(buffer.prefix(length)) == message)
    }

    @Test func aesGCM_openInPlace_rejectsTampering_andLeavesNoPlaintext() throws {
        let cipher = try AESGCM(key: SecureRandom.bytes(count: 32))
        let message = [UInt8](repeating: 0x41, count: 64)
        var buffer = try cipher.seal(message, nonce: nonce, authenticating: aad)
        buffer[70] ^= 1
        #expect(throws: CryptoError.authenticationFailed) {
            try buffer.withUnsafeMutableBytes { try cipher.openInPlace($0, nonce: nonce, authenticating: aad) }
        }
        #expect(buffer.prefix(64).allSatisfy { $0 == 0 })
        var short = [UInt8](repeating: 0, count: 15)
        #expect(throws: CryptoError.ciphertextTooShort) {
            try short.withUnsafeMutableBytes { try cipher.openInPlace($0, nonce: nonce, authenticating: aad) }
        }
    }

    /// Cuts `message` into pieces at the given lengths (cycled), the last piece taking the rest; runs `body` with
    /// pointers to them, in place in `message`.
    private func withPieces<R>(
        of message: [UInt8], lengths: [Int], _ body: (UnsafeBufferPointer<UnsafeRawBufferPointer>) throws -> R
    ) rethrows -> R {
        try message.withUnsafeBytes { bytes in
            var pieces: [UnsafeRawBufferPointer] = []
            var offset = 0
            var index = 0
            while offset < bytes.count || pieces.isEmpty {
                let length = min(lengths[index % lengths.count], bytes.count - offset)
                pieces.append(UnsafeRawBufferPointer(rebasing: bytes[offset..<(offset + length)]))
                offset += length
                index += 1
            }
            return try pieces.withUnsafeBufferPointer { try body($0) }
        }
    }

    @Test(arguments: [[1], [0, 5, 0, 17], [16], [15, 1, 33], [1000, 7], [100_000]])
    func aesGCM_sealGathering_matchesOneShotSeal(lengths: [Int]) throws {
        let cipher = try AESGCM(key: SecureRandom.bytes(count: 32))
        for length in [0, 1, 15, 16, 17, 250, 4097, 65_519] {
            let message = SecureRandom.bytes(count: length)
            var output = [UInt8](repeating: 0, count: length + AESGCM.tagSize)
            try nonce.withUnsafeBytes { nonceBytes in
                try withPieces(of: message, lengths: lengths) { pieces in
                    try output.withUnsafeMutableBytes {
                        try cipher.seal(gathering: pieces, nonce: nonceBytes, into: $0)
                    }
                }
            }
            #expect(output == (try cipher.seal(message, nonce: nonce, authenticating: [])), "length \(length)")
        }
    }

    @Test func aesGCM_sealGathering_inPlacePieceMatchesSealInPlace() throws {
        let cipher = try AESGCM(key: SecureRandom.bytes(count: 32))
        let message = SecureRandom.bytes(count: 300)
        var buffer = message + [UInt8](repeating: 0, count: AESGCM.tagSize)
        try nonce.withUnsafeBytes { nonceBytes in
            try buffer.withUnsafeMutableBytes { raw in
                let piece = [UnsafeRawBufferPointer(rebasing: raw[0..<300])]
                try piece.withUnsafeBufferPointer { try cipher.seal(gathering: $0, nonce: nonceBytes, into: raw) }
            }
        }
        #expect(buffer == (try cipher.seal(message, nonce: nonce, authenticating: [])))
    }

    @Test(arguments: [0, 1, 15, 16, 17, 299, 300])
    func aesGCM_openDivertingPrefix_putsThePlaintextInTwoPlaces(diverted: Int) throws {
        let cipher = try AESGCM(key: SecureRandom.bytes(count: 32))
        let message = SecureRandom.bytes(count: 300)
        var buffer = try cipher.seal(message, nonce: nonce, authenticating: [])
        var destination = [UInt8](repeating: 0xAA, count: diverted)
        try nonce.withUnsafeBytes { nonceBytes in
            try buffer.withUnsafeMutableBytes { raw in
                try destination.withUnsafeMutableBytes {
                    try cipher.openInPlace(raw, nonce: nonceBytes, divertingPrefixTo: $0)
                }
            }
        }
        #expect(destination == Array(message[0..<diverted]))
        #expect(Array(buffer[diverted..<300]) == Array(message[diverted...]))
    }

    @Test func aesGCM_openDivertingPrefix_tampered_zeroesBothPlaces() throws {
        let cipher = try AESGCM(key: SecureRandom.bytes(count: 32))
        let message = [UInt8](repeating: 0x41, count: 300)
        for flipped in [0, 100, 299, 300, 315] {
            var buffer = try cipher.seal(message, nonce: nonce, authenticating: [])
            buffer[flipped] ^= 1
            var destination = [UInt8](repeating: 0xAA, count: 120)
            #expect(throws: CryptoError.authenticationFailed) {
                try nonce.withUnsafeBytes { nonceBytes in
                    try buffer.withUnsafeMutableBytes { raw in
                        try destination.withUnsafeMutableBytes {
                            try cipher.openInPlace(raw, nonce: nonceBytes, divertingPrefixTo: $0)
                        }
                    }
                }
            }
            #expect(destination.allSatisfy { $0 == 0 }, "flipped \(flipped)")
            #expect(buffer.prefix(300).allSatisfy { $0 == 0 }, "flipped \(flipped)")
        }
    }

    @Test func aesGCM_handle_isReusableAcrossMessagesAndAfterFailures() throws {
        let sender = try AESGCM(key: key)
        let receiver = try AESGCM(key: key)
        for counter in 0..<50 {
            var messageNonce = [UInt8](repeating: 0, count: 12)
            messageNonce[11] = UInt8(counter)
            let message = utf8("message \(counter)")
            let sealed = try sender.seal(message, nonce: messageNonce, authenticating: aad)
            // A forged message in between must not disturb the next genuine one.
            #expect(throws: CryptoError.authenticationFailed) {
                try receiver.open(flippingBit(ofByte: 0, in: sealed), nonce: messageNonce, authenticating: aad)
            }
            #expect(try receiver.open(sealed, nonce: messageNonce, authenticating: aad) == message)
        }
    }

    @Test func aesGCM_initSecretBytes_matchesArrayKey() throws {
        let fromArray = try AESGCM(key: key)
        let fromSecret = try AESGCM(key: SecretBytes(key))
        #expect(
            try fromArray.seal(plaintext, nonce: nonce, authenticating: aad)
                == fromSecret.seal(plaintext, nonce: nonce, authenticating: aad))
    }

    @Test func aesGCM_seal_dependsOnNonceAndKey() throws {
        let cipher = try AESGCM(key: key)
        let first = try cipher.seal(plaintext, nonce: nonce, authenticating: aad)
        let otherNonce = try cipher.seal(plaintext, nonce: flippingBit(ofByte: 11, in: nonce), authenticating: aad)
        let otherKey = try AESGCM(key: flippingBit(ofByte: 0, in: key)).seal(
            plaintext, nonce: nonce, authenticating: aad)
        #expect(first != otherNonce)
        #expect(first != otherKey)
    }

    @Test func aesGCM_manyHandles_canBeOpenAtOnce() throws {
        let ciphers = try (0..<2000).map { _ in try AESGCM(key: key) }
        let expected = try ciphers[0].seal(plaintext, nonce: nonce, authenticating: aad)
        for cipher in ciphers {
            #expect(try cipher.seal(plaintext, nonce: nonce, authenticating: aad) == expected)
        }
    }

    // MARK: Forgeries

    @Test(arguments: [0, 5, 11])
    func aesGCM_open_rejectsFlippedCiphertextBit(byte: Int) throws {
        let cipher = try AESGCM(key: key)
        let sealed = try cipher.seal(plaintext, nonce: nonce, authenticating: aad)
        #expect(throws: CryptoError.authenticationFailed) {
            try cipher.open(flippingBit(3, ofByte: byte, in: sealed), nonce: nonce, authenticating: aad)
        }
    }

    @Test(arguments: [0, 7, 15])
    func aesGCM_open_rejectsFlippedTag(byte: Int) throws {
        let cipher = try AESGCM(key: key)
        let sealed = try cipher.seal(plaintext, nonce: nonce, authenticating: aad)
        let tagStart = sealed.count - AESGCM.tagSize
        #expect(throws: CryptoError.authenticationFailed) {
            try cipher.open(flippingBit(7, ofByte: tagStart + byte, in: sealed), nonce: nonce, authenticating: aad)
        }
    }

    @Test func aesGCM_open_rejectsFlippedAAD() throws {
        let cipher = try AESGCM(key: key)
        let sealed = try cipher.seal(plaintext, nonce: nonce, authenticating: aad)
        #expect(throws: CryptoError.authenticationFailed) {
            try cipher.open(sealed, nonce: nonce, authenticating: flippingBit(ofByte: 0, in: aad))
        }
        #expect(throws: CryptoError.authenticationFailed) {
            try cipher.open(sealed, nonce: nonce, authenticating: [])
        }
    }

    @Test func aesGCM_open_rejectsFlippedNonce() throws {
        let cipher = try AESGCM(key: key)
        let sealed = try cipher.seal(plaintext, nonce: nonce, authenticating: aad)
        #expect(throws: CryptoError.authenticationFailed) {
            try cipher.open(sealed, nonce: flippingBit(ofByte: 0, in: nonce), authenticating: aad)
        }
    }

    @Test func aesGCM_open_rejectsWrongKey() throws {
        let sealed = try AESGCM(key: key).seal(plaintext, nonce: nonce, authenticating: aad)
        let other = try AESGCM(key: flippingBit(ofByte: 31, in: key))
        #expect(throws: CryptoError.authenticationFailed) {
            try other.open(sealed, nonce: nonce, authenticating: aad)
        }
    }

    @Test func aesGCM_open_rejectsTruncatedTag() throws {
        let cipher = try AESGCM(key: key)
        let sealed = try cipher.seal(plaintext, nonce: nonce, authenticating: aad)
        // Dropping tag bytes shifts the 16-byte tag window, so authentication fails.
        for dropped in 1...4 {
            #expect(throws: CryptoError.authenticationFailed) {
                try cipher.open(Array(sealed.dropLast(dropped)), nonce: nonce, authenticating: aad)
            }
        }
        // A detached tag must be exactly 16 bytes (libgcrypt alone would accept 12 to 15, 8 and 4).
        let ciphertext = Array(sealed.prefix(plaintext.count))
        let tag = Array(sealed.suffix(AESGCM.tagSize))
        for size in [4, 8, 12, 15] {
            #expect(throws: CryptoError.invalidTagSize(expected: 16, actual: size)) {
                try cipher.open(ciphertext: ciphertext, tag: Array(tag.prefix(size)), iv: nonce, authenticating: aad)
            }
        }
        #expect(try cipher.open(ciphertext: ciphertext, tag: tag, iv: nonce, authenticating: aad) == plaintext)
    }

    @Test func aesGCM_open_rejectsInputShorterThanTag() throws {
        let cipher = try AESGCM(key: key)
        for length in [0, 1, 15] {
            #expect(throws: CryptoError.ciphertextTooShort) {
                try cipher.open([UInt8](repeating: 0, count: length), nonce: nonce, authenticating: aad)
            }
        }
    }

    @Test func aesGCM_open_rejectsTagOnlyForgery() throws {
        let cipher = try AESGCM(key: key)
        let sealed = try cipher.seal([], nonce: nonce, authenticating: aad)
        #expect(try cipher.open(sealed, nonce: nonce, authenticating: aad) == [])
        #expect(throws: CryptoError.authenticationFailed) {
            try cipher.open([UInt8](repeating: 0, count: 16), nonce: nonce, authenticating: aad)
        }
    }

    // MARK: Sizes

    @Test(arguments: [0, 1, 15, 17, 20, 31, 33, 64])
    func aesGCM_init_rejectsWrongKeySize(size: Int) {
        #expect(throws: CryptoError.invalidKeySize(expected: 32, actual: size)) {
            try AESGCM(key: [UInt8](repeating: 1, count: size))
        }
        #expect(throws: CryptoError.invalidKeySize(expected: 32, actual: size)) {
            try AESGCM(key: SecretBytes(count: size))
        }
    }

    @Test(arguments: [0, 1, 8, 11, 13, 16, 128])
    func aesGCM_sealAndOpen_rejectWrongNonceSize(size: Int) throws {
        let cipher = try AESGCM(key: key)
        let badNonce = [UInt8](repeating: 0, count: size)
        #expect(throws: CryptoError.invalidNonceSize(expected: 12, actual: size)) {
            try cipher.seal(plaintext, nonce: badNonce, authenticating: aad)
        }
        let sealed = try cipher.seal(plaintext, nonce: nonce, authenticating: aad)
        #expect(throws: CryptoError.invalidNonceSize(expected: 12, actual: size)) {
            try cipher.open(sealed, nonce: badNonce, authenticating: aad)
        }
    }

    @Test func aesGCM_anyLengthIV_refusesEmptyIV() throws {
        let cipher = try AESGCM(key: key)
        #expect(throws: CryptoError.invalidNonceSize(expected: 12, actual: 0)) {
            try cipher.seal(plaintext, iv: [], authenticating: aad)
        }
        let sealed = try cipher.seal(plaintext, iv: nonce, authenticating: aad)
        #expect(throws: CryptoError.invalidNonceSize(expected: 12, actual: 0)) {
            try cipher.open(sealed, iv: [], authenticating: aad)
        }
        // The handle still works after the refusal.
        #expect(try cipher.open(sealed, iv: nonce, authenticating: aad) == plaintext)
    }
}
