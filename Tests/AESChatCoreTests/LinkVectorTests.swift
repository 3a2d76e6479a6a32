import AESChatCrypto
import Testing

@testable import AESChatCore

/// The worked example of docs/PROTOCOL.md section 9.3 (the encrypted link), checked value by value with this code. The
/// values shared with `aeschat selftest` come from ``WorkedExamples/Link``. The
/// expected values were computed by an independent implementation written from the Noise specification (revision
/// 34) and the document: Python's `cryptography` package (X25519, HMAC-SHA-256, SHA-256, AES-256-GCM), cross-checked
/// with PyPI `noiseprotocol` 0.3.1 for the two handshake messages, the handshake hash and both records. The inputs
/// are SHA-256 hashes of fixed labels, so anyone can recompute them.
@Suite struct LinkVectorTests {
    func hex(_ text: String) -> [UInt8] { Hex.decode(text)! }

    static let relayStatic = WorkedExamples.Link.relayStatic
    static let clientEphemeral = WorkedExamples.Link.clientEphemeral
    static let relayEphemeral = WorkedExamples.Link.relayEphemeral

    static let relayPublic = WorkedExamples.Link.relayPublic
    static let relayText = "eut4t2vrckehcbb662coqrgbq7kb7tb2xtdl3nbdhoitwkxjxukq"
    static let fingerprintHash = "3420192348aa80bf425099779f4da1dd2f4f0efa752c4364d1abc9a546eba353"
    static let fingerprint = "relay 3420 1923 48aa 80bf 4250 9977 9f4d a1dd"
    static let keyID = "34201923"
    static let preamble = "414553434841540234201923"
    static let prologue = WorkedExamples.Link.prologue
    static let hName = "4e6f6973655f4e4b5f32353531395f41455347434d5f53484132353600000000"
    static let hInitialised = "3adbf423b477d620cca289f9159c820ae14ac1c3e1f1a13610dcefce6b94dfa2"
    static let clientEphemeralPublic = "102776d7c4b567ef273b7f6232e5383d4864934d9985dd9b4855414fa91afd54"
    static let es = "82cb94d2ef57c6ce215c44e66f0db49947bb65e4e792c347d8bc8bf9e6732f10"
    static let ckAfterMessage1 = "c2ddf88d7f7c35fd54affa270edd21a17c4d479e972090a72a4a04113b1163d5"
    static let hAfterMessage1 = "2285ee57bf915c4293668b8a1daa8a9038930bc50a2e48d549395030a3fa1fbb"
    static let message1 = WorkedExamples.Link.message1
    static let relayEphemeralPublic = "da1545921602bd0913e30026c758f076645b0b2b8c66949fc17cf2220f53235f"
    static let ee = "dd28be7cf63430096ea397cbef09d0b6477d1b1b166c6f52b984cc28d041284c"
    static let ckAfterMessage2 = "37fffbf0b91daa707c8d2c8bbfa20466856e12256f1e0288df3d9ed981640568"
    static let message2 = WorkedExamples.Link.message2
    static let handshakeHash = WorkedExamples.Link.handshakeHash
    static let clientToRelayKey = "5bbfa53f270bda7afaf80c16147482bc0617e6ebf71d22e93ba0b0ee6ff3f104"
    static let relayToClientKey = "317243d7a41223b708ded6f4e4330c68c2154842a2e36b40501cf5a8c0f0ae88"
    static let clientToRelayKeyRekeyed = "cad7400eee87feb22cfdc41953979ac4bef5cadcda3b73824bebbe4b8a9255a8"
    static let helloFrame = WorkedExamples.Link.helloFrame
    static let helloRecord = WorkedExamples.Link.helloRecord
    static let welcomeFrame = "0000001181000205616c696365056c6f6262790000"
    static let welcomeRecord =
        "00254653b42092a236f8a3eedd83afafb6971ffb70b4b22d61acd42583fe9e9c2e984fa4dff27f"
    static let keysAnswer =
        "414553434841540201012527c9eab1128871043ef684e844c187d41fcc3abcc6bdb4233b913b2ae9bd15"
    static let versionOneError =
        "0000004b8500050046746869732072656c617920737065616b7320616573636861742070726f746f636f6c20322028656e63727970"
        + "746564206c696e6b293b20757067726164652061657363686174"

    // MARK: - The relay's key and the preamble

    @Test func workedExample_relayKey_textFingerprintAndKeyID() throws {
        let staticKey = try X25519PrivateKey(rawRepresentation: hex(Self.relayStatic))
        #expect(staticKey.publicKey == hex(Self.relayPublic))
        let key = try RelayPublicKey(bytes: staticKey.publicKey)
        #expect(key.text == Self.relayText)
        #expect(RelayPublicKey(text: Self.relayText) == key)
        #expect(RelayPublicKey(text: Self.relayText.uppercased()) == key)
        #expect(key.fingerprintHash == hex(Self.fingerprintHash))
        #expect(key.fingerprint == Self.fingerprint)
        #expect(RelayPublicKey.parseFingerprint(Self.fingerprint) == key.fingerprintBytes)
        #expect(key.keyID == hex(Self.keyID))
    }

    @Test func workedExample_preambleAndPrologue() throws {
        let key = try RelayPublicKey(bytes: hex(Self.relayPublic))
        let preamble = try LinkPreamble(relayFingerprint: key.fingerprintHash)
        #expect(preamble.bytes == hex(Self.preamble))
        #expect(preamble.prologue == hex(Self.prologue))
        #expect(try LinkPreamble.parse(hex(Self.preamble)) == preamble)
        // The preamble followed by message 1, as the relay reads them: the preamble is the first 12 bytes.
        #expect(try LinkPreamble.parse(hex(Self.preamble) + [0x00, 0x30] + hex(Self.message1)) == preamble)
    }

    /// The relay's cleartext answers that are not message 2, and the v1-format error frame: their layouts, from the
    /// pieces this code has (the magic, the version, the error frame encoder).
    @Test func workedExample_relayAnswersInTheClear() throws {
        let keysAnswer = LinkPreamble.magic + [LinkPreamble.version, 0x01, 0x01] + hex(Self.relayPublic)
        #expect(keysAnswer == hex(Self.keysAnswer))
        let versionOne = RelayFrame.error(
            code: RelayErrorCode.unsupportedVersion.rawValue,
            message: "this relay speaks aeschat protocol 2 (encrypted link); upgrade aeschat"
        ).encoded()
        #expect(versionOne == hex(Self.versionOneError))
        #expect(Array(versionOne.prefix(4)) == [0, 0, 0, 0x4b] && versionOne[4] == 0x85)
    }

    // MARK: - The handshake

    /// Both sides of the handshake with the example's keys: h after initialisation and after message 1, both
    /// messages, the handshake hash; the chaining keys by Noise's HKDF over this code's primitives.
    @Test func workedExample_handshake_bothSides() throws {
        let staticKey = try X25519PrivateKey(rawRepresentation: hex(Self.relayStatic))
        let clientEphemeral = try X25519PrivateKey(rawRepresentation: hex(Self.clientEphemeral))
        let relayEphemeral = try X25519PrivateKey(rawRepresentation: hex(Self.relayEphemeral))
        #expect(clientEphemeral.publicKey == hex(Self.clientEphemeralPublic))
        #expect(relayEphemeral.publicKey == hex(Self.relayEphemeralPublic))

        // InitializeSymmetric: h is the 28-byte name padded with zeros, and ck = h.
        #expect(Array(NoiseHandshake.protocolName.utf8).count == 28)
        #expect(NoiseSymmetricState(protocolName: NoiseHandshake.protocolName).handshakeHash == hex(Self.hName))

        let client = try NoiseHandshake.initiator(
            responderStaticKey: hex(Self.relayPublic), prologue: hex(Self.prologue), ephemeralKey: clientEphemeral)
        let relay = NoiseHandshake.responder(
            staticKey: staticKey, prologue: hex(Self.prologue), ephemeralKey: relayEphemeral)
        #expect(client.handshakeHash == hex(Self.hInitialised))
        #expect(relay.handshakeHash == hex(Self.hInitialised))

        let message1 = try client.writeMessage()
        #expect(message1 == hex(Self.message1))
        #expect(client.handshakeHash == hex(Self.hAfterMessage1))
        #expect(try relay.readMessage(message1) == [])
        #expect(relay.handshakeHash == hex(Self.hAfterMessage1))

        let message2 = try relay.writeMessage()
        #expect(message2 == hex(Self.message2))
        #expect(try client.readMessage(message2) == [])
        #expect(client.isComplete && relay.isComplete)

        let clientKeys = try client.finish()
        let relayKeys = try relay.finish()
        #expect(clientKeys.handshakeHash == hex(Self.handshakeHash))
        #expect(relayKeys.handshakeHash == hex(Self.handshakeHash))

        // The Diffie-Hellman results and the chaining keys, by HKDF(ck, ikm) = RFC 5869 with salt ck, empty info.
        let es = try clientEphemeral.sharedSecret(with: hex(Self.relayPublic))
        #expect(es.withUnsafeBytes { Array($0) } == hex(Self.es))
        #expect(
            try staticKey.sharedSecret(with: clientEphemeral.publicKey).withUnsafeBytes { Array($0) } == hex(Self.es))
        let ee = try relayEphemeral.sharedSecret(with: clientEphemeral.publicKey)
        #expect(ee.withUnsafeBytes { Array($0) } == hex(Self.ee))
        let afterMessage1 = try noiseHKDF(chainingKey: hex(Self.hName), inputKeyMaterial: hex(Self.es))
        #expect(afterMessage1.first == hex(Self.ckAfterMessage1))
        let afterMessage2 = try noiseHKDF(chainingKey: hex(Self.ckAfterMessage1), inputKeyMaterial: hex(Self.ee))
        #expect(afterMessage2.first == hex(Self.ckAfterMessage2))
        let split = try noiseHKDF(chainingKey: hex(Self.ckAfterMessage2), inputKeyMaterial: [])
        #expect(split.first == hex(Self.clientToRelayKey))
        #expect(split.second == hex(Self.relayToClientKey))
    }

    // MARK: - The first records

    /// The hello record the client sends first and the welcome record the relay answers with, through the record
    /// layer; each opens at the other side, and each is what AES-256-GCM under the example's transport key, nonce
    /// 0⁴ ‖ 0, empty AD gives. Then `Rekey()` of the client's direction.
    @Test func workedExample_firstRecords_andRekey() throws {
        let (clientKeys, relayKeys) = try handshake()
        #expect(clientKeys.sending === clientKeys.initiatorToResponder)
        #expect(relayKeys.sending === relayKeys.responderToInitiator)

        let hello = ClientFrame.hello(version: 2, name: "alice", room: "lobby", profile: []).encoded()
        #expect(hello == hex(Self.helloFrame))
        let helloRecord = try LinkRecordWriter(cipher: clientKeys.sending).seal(hello)
        #expect(helloRecord == hex(Self.helloRecord))
        #expect(
            try AESGCM(key: hex(Self.clientToRelayKey)).seal(
                hello, nonce: Array(repeating: 0, count: 12), authenticating: [])
                == Array(hex(Self.helloRecord).dropFirst(2)))
        var openedHello: [UInt8] = []
        try LinkRecordReader(cipher: relayKeys.receiving).read(helloRecord, into: &openedHello)
        #expect(openedHello == hello)

        let welcome = RelayFrame.welcome(version: 2, name: "alice", room: "lobby", members: []).encoded()
        #expect(welcome == hex(Self.welcomeFrame))
        let welcomeRecord = try LinkRecordWriter(cipher: relayKeys.sending).seal(welcome)
        #expect(welcomeRecord == hex(Self.welcomeRecord))
        #expect(
            try AESGCM(key: hex(Self.relayToClientKey)).seal(
                welcome, nonce: Array(repeating: 0, count: 12), authenticating: [])
                == Array(hex(Self.welcomeRecord).dropFirst(2)))
        var openedWelcome: [UInt8] = []
        try LinkRecordReader(cipher: clientKeys.receiving).read(welcomeRecord, into: &openedWelcome)
        #expect(openedWelcome == welcome)

        // Rekey() keeps n (here 1, after the hello record): the next record is sealed under REKEY(k) at nonce 1.
        #expect(clientKeys.sending.nonce == 1)
        try clientKeys.sending.rekey()
        #expect(clientKeys.sending.nonce == 1)
        let nonceOne: [UInt8] = [0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1]
        #expect(
            try clientKeys.sending.encrypt(hello)
                == AESGCM(key: hex(Self.clientToRelayKeyRekeyed)).seal(hello, nonce: nonceOne, authenticating: []))
    }

    // MARK: - Helpers

    /// Runs the example's handshake on both sides and returns each side's transport keys.
    private func handshake() throws -> (client: NoiseTransportKeys, relay: NoiseTransportKeys) {
        let client = try NoiseHandshake.initiator(
            responderStaticKey: hex(Self.relayPublic), prologue: hex(Self.prologue),
            ephemeralKey: X25519PrivateKey(rawRepresentation: hex(Self.clientEphemeral)))
        let relay = NoiseHandshake.responder(
            staticKey: try X25519PrivateKey(rawRepresentation: hex(Self.relayStatic)), prologue: hex(Self.prologue),
            ephemeralKey: try X25519PrivateKey(rawRepresentation: hex(Self.relayEphemeral)))
        _ = try relay.readMessage(client.writeMessage())
        _ = try client.readMessage(relay.writeMessage())
        return (try client.finish(), try relay.finish())
    }

    /// Noise's `HKDF(ck, ikm, 2)` (spec §4.3), as RFC 5869 HKDF-SHA-256 with salt `ck` and empty info.
    private func noiseHKDF(chainingKey: [UInt8], inputKeyMaterial: [UInt8]) throws -> (first: [UInt8], second: [UInt8])
    {
        let output = try HKDFSHA256.deriveKey(
            inputKeyMaterial: inputKeyMaterial, salt: chainingKey, info: [], outputByteCount: 64)
        return (Array(output[0..<32]), Array(output[32...]))
    }
}
