/// Published known-answer tests of every primitive aeschat uses, compiled into the program so that
/// `aeschat selftest` can check the libgcrypt it actually runs against (a distribution may ship a different build from
/// the one the unit tests ran against). A few vectors per primitive, from the RFCs and the GCM specification; the unit
/// tests run the full sets and Project Wycheproof's.
///
/// Threading: every function may be called from any thread.
public struct KnownAnswerTest: Sendable, Equatable {
    /// The primitive a test exercises.
    public enum Primitive: String, Sendable, CaseIterable {
        case aes256GCM = "AES-256-GCM"
        case sha256 = "SHA-256"
        case hmacSHA256 = "HMAC-SHA-256"
        case hkdfSHA256 = "HKDF-SHA-256"
        case x25519 = "X25519"
        case ed25519 = "Ed25519"
    }

    /// The primitive under test.
    public let primitive: Primitive
    /// Where the vector was published, for example "RFC 7748 section 6.1".
    public let source: String
    /// The inputs, in the order ``run()`` documents for the primitive.
    public var inputs: [[UInt8]]
    /// The published answer.
    public var expected: [UInt8]

    /// Creates a test; see ``run()`` for what `inputs` and `expected` hold for each primitive.
    public init(_ primitive: Primitive, _ source: String, inputs: [[UInt8]], expected: [UInt8]) {
        self.primitive = primitive
        self.source = source
        self.inputs = inputs
        self.expected = expected
    }

    /// Runs the test: nil when the primitive gives the published answer, otherwise what went wrong, in one line.
    ///
    /// - AES-256-GCM: inputs key, nonce, plaintext, associated data; expected ciphertext ‖ tag. Sealing must give it,
    ///   opening it must give the plaintext back, and opening it with one bit flipped must fail.
    /// - SHA-256: input message; expected digest.
    /// - HMAC-SHA-256: inputs key, message; expected code.
    /// - HKDF-SHA-256: inputs input keying material, salt, info; expected output (its length is the length asked).
    /// - X25519: inputs scalar and u-coordinate, expected X25519(scalar, u); or the scalar alone, expected its public
    ///   key.
    /// - Ed25519: inputs seed, message; expected public key ‖ signature. The signature must verify, and must not once
    ///   one bit of it is flipped.
    public func run() -> String? {
        do {
            switch primitive {
            case .aes256GCM: return try runAESGCM()
            case .sha256:
                guard inputs.count == 1 else { return malformed }
                return compare(SHA256.hash(inputs[0]))
            case .hmacSHA256:
                guard inputs.count == 2 else { return malformed }
                return compare(HMACSHA256.authenticationCode(for: inputs[1], key: inputs[0]))
            case .hkdfSHA256:
                guard inputs.count == 3 else { return malformed }
                return compare(
                    try HKDFSHA256.deriveKey(
                        inputKeyMaterial: inputs[0], salt: inputs[1], info: inputs[2], outputByteCount: expected.count)
                )
            case .x25519: return try runX25519()
            case .ed25519: return try runEd25519()
            }
        } catch {
            return "\(primitive.rawValue) failed: \(error)"
        }
    }

    private var malformed: String { "\(primitive.rawValue) test \(source) has \(inputs.count) inputs" }

    private func compare(_ actual: [UInt8]) -> String? {
        constantTimeEquals(actual, expected)
            ? nil : "\(primitive.rawValue) gave \(Hex.encode(actual)), the published answer is \(Hex.encode(expected))"
    }

    private func runAESGCM() throws(CryptoError) -> String? {
        guard inputs.count == 4, !expected.isEmpty else { return malformed }
        let cipher = try AESGCM(key: inputs[0])
        if let wrong = compare(try cipher.seal(inputs[2], nonce: inputs[1], authenticating: inputs[3])) { return wrong }
        guard (try? cipher.open(expected, nonce: inputs[1], authenticating: inputs[3])) == inputs[2] else {
            return "AES-256-GCM did not open the published ciphertext"
        }
        var flipped = expected
        flipped[flipped.count - 1] ^= 0x01
        guard (try? cipher.open(flipped, nonce: inputs[1], authenticating: inputs[3])) == nil else {
            return "AES-256-GCM opened a ciphertext whose tag was altered"
        }
        return nil
    }

    private func runX25519() throws(CryptoError) -> String? {
        let key = try X25519PrivateKey(rawRepresentation: inputs.first ?? [])
        switch inputs.count {
        case 1: return compare(key.publicKey)
        case 2: return compare(try key.sharedSecret(with: inputs[1]).withUnsafeBytes { Array($0) })
        default: return malformed
        }
    }

    private func runEd25519() throws(CryptoError) -> String? {
        guard inputs.count == 2, expected.count == Ed25519.publicKeySize + Ed25519.signatureSize else {
            return malformed
        }
        let key = try Ed25519PrivateKey(seed: inputs[0])
        let signature = try key.signature(for: inputs[1])
        if let wrong = compare(key.publicKey + signature) { return wrong }
        guard Ed25519.isValidSignature(signature, for: inputs[1], publicKey: key.publicKey) else {
            return "Ed25519 refused its own published signature"
        }
        var flipped = signature
        flipped[0] ^= 0x01
        guard !Ed25519.isValidSignature(flipped, for: inputs[1], publicKey: key.publicKey) else {
            return "Ed25519 accepted a signature with one bit flipped"
        }
        return nil
    }

    /// The built-in tests: two or three per primitive.
    public static let published: [KnownAnswerTest] = [
        KnownAnswerTest(
            .aes256GCM, "GCM specification, test case 14",
            inputs: [
                [UInt8](repeating: 0, count: 32), [UInt8](repeating: 0, count: 12), [UInt8](repeating: 0, count: 16),
                [],
            ],
            expected: hex("cea7403d4d606b6e074ec5d3baf39d18" + "d0d1c8a799996bf0265b98b5d48ab919")),
        KnownAnswerTest(
            .aes256GCM, "GCM specification, test case 16",
            inputs: [
                hex("feffe9928665731c6d6a8f9467308308feffe9928665731c6d6a8f9467308308"),
                hex("cafebabefacedbaddecaf888"),
                hex(
                    "d9313225f88406e5a55909c5aff5269a86a7a9531534f7da2e4c303d8a318a72"
                        + "1c3c0c95956809532fcf0e2449a6b525b16aedf5aa0de657ba637b39"),
                hex("feedfacedeadbeeffeedfacedeadbeefabaddad2"),
            ],
            expected: hex(
                "522dc1f099567d07f47f37a32a84427d643a8cdcbfe5c0c97598a2bd2555d1aa"
                    + "8cb08e48590dbb3da7b08b1056828838c5f61e6393ba7a0abcc9f662"
                    + "76fc6ece0f4e1768cddf8853bb2d551b")),
        KnownAnswerTest(
            .sha256, "FIPS 180-4, \"abc\"", inputs: [Array("abc".utf8)],
            expected: hex("ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad")),
        KnownAnswerTest(
            .sha256, "FIPS 180-4, two blocks",
            inputs: [Array("abcdbcdecdefdefgefghfghighijhijkijkljklmklmnlmnomnopnopq".utf8)],
            expected: hex("248d6a61d20638b8e5c026930c3e6039a33ce45964ff2167f6ecedd419db06c1")),
        KnownAnswerTest(
            .hmacSHA256, "RFC 4231 test case 1",
            inputs: [[UInt8](repeating: 0x0b, count: 20), Array("Hi There".utf8)],
            expected: hex("b0344c61d8db38535ca8afceaf0bf12b881dc200c9833da726e9376c2e32cff7")),
        KnownAnswerTest(
            .hmacSHA256, "RFC 4231 test case 2",
            inputs: [Array("Jefe".utf8), Array("what do ya want for nothing?".utf8)],
            expected: hex("5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843")),
        KnownAnswerTest(
            .hkdfSHA256, "RFC 5869 test case 1",
            inputs: [
                [UInt8](repeating: 0x0b, count: 22), hex("000102030405060708090a0b0c"), hex("f0f1f2f3f4f5f6f7f8f9"),
            ],
            expected: hex("3cb25f25faacd57a90434f64d0362f2a2d2d0a90cf1a5a4c5db02d56ecc4c5bf34007208d5b887185865")),
        KnownAnswerTest(
            .hkdfSHA256, "RFC 5869 test case 3", inputs: [[UInt8](repeating: 0x0b, count: 22), [], []],
            expected: hex("8da4e775a563c18f715f802a063c5a31b8a11f5c5ee1879ec3454e5f3c738d2d9d201395faa4b61a96c8")),
        KnownAnswerTest(
            .x25519, "RFC 7748 section 5.2",
            inputs: [
                hex("a546e36bf0527c9d3b16154b82465edd62144c0ac1fc5a18506a2244ba449ac4"),
                hex("e6db6867583030db3594c1a424b15f7c726624ec26b3353b10a903a6d0ab1c4c"),
            ],
            expected: hex("c3da55379de9c6908e94ea4df28d084f32eccf03491c71f754b4075577a28552")),
        KnownAnswerTest(
            .x25519, "RFC 7748 section 6.1, Alice's public key",
            inputs: [hex("77076d0a7318a57d3c16c17251b26645df4c2f87ebc0992ab177fba51db92c2a")],
            expected: hex("8520f0098930a754748b7ddcb43ef75a0dbf3a0d26381af4eba4a98eaa9b4e6a")),
        KnownAnswerTest(
            .x25519, "RFC 7748 section 6.1, shared secret",
            inputs: [
                hex("77076d0a7318a57d3c16c17251b26645df4c2f87ebc0992ab177fba51db92c2a"),
                hex("de9edb7d7b7dc1b4d35b61c2ece435373f8343c85b78674dadfc7e146f882b4f"),
            ],
            expected: hex("4a5d9d5ba4ce2de1728e3bf480350f25e07e21c947d19e3376f09b3c1e161742")),
        KnownAnswerTest(
            .ed25519, "RFC 8032 section 7.1, TEST 1",
            inputs: [hex("9d61b19deffd5a60ba844af492ec2cc44449c5697b326919703bac031cae7f60"), []],
            expected: hex(
                "d75a980182b10ab7d54bfed3c964073a0ee172f3daa62325af021a68f707511a"
                    + "e5564300c360ac729086e2cc806e828a84877f1eb8e5d974d873e06522490155"
                    + "5fb8821590a33bacc61e39701cf9b46bd25bf5f0595bbe24655141438e7a100b")),
        KnownAnswerTest(
            .ed25519, "RFC 8032 section 7.1, TEST 2",
            inputs: [hex("4ccd089b28ff96da9db6c346ec114e0f5b8a319f35aba624da8cf6ed4fb8a6fb"), [0x72]],
            expected: hex(
                "3d4017c3e843895a92b70aa74d1b7ebc9c982ccf2ec4968cc0cd55f12af4660c"
                    + "92a009a9f0d4cab8720e820b5f642540a2b27b5416503f8fb3762223ebdb69da"
                    + "085ac1e43e15996e458f3613d0f11d8c387b2eaeb4302aeeb00d291612bb0c00")),
    ]

    private static func hex(_ text: String) -> [UInt8] {
        guard let bytes = Hex.decode(text) else { preconditionFailure("a built-in vector is not hex: \(text)") }
        return bytes
    }
}
