import AESChatCrypto
import Testing

@testable import AESChatCore

/// The Noise core of the encrypted link (Sources/AESChatCore/Link): the public vectors for
/// `Noise_NK_25519_AESGCM_SHA256`, the project's own vectors for large counters and `Rekey()`, and the failures.
@Suite struct NoiseTests {
    func hex(_ text: String) -> [UInt8] { Hex.decode(text)! }

    // MARK: - Public vectors (cacophony, snow)

    /// Runs both sides of every vector with the vector's keys: each handshake and transport ciphertext must come out
    /// of the sender byte for byte and open to the payload at the receiver, and the handshake hash, where the
    /// vector has one (cacophony), must match on both sides. Cacophony's transport messages use counter 1 in each
    /// direction, so they also pin the big-endian nonce: a little-endian counter fails them (snow's, at counter 0
    /// only, would still pass).
    @Test(.enabled(if: NoiseVector.shouldRun, NoiseVector.skipComment))
    func handshake_publicVectors_matchEveryMessageBothWays() throws {
        let vectors = NoiseVector.load()
        #expect(vectors.count == 2)
        #expect(vectors.contains { $0.source.hasPrefix("cacophony") })
        #expect(vectors.contains { $0.source.hasPrefix("snow") })
        #expect(vectors.contains { $0.fields["handshake_hash"] != nil })
        for vector in vectors {
            try check(vector)
        }
    }

    private func check(_ vector: NoiseVector) throws {
        let name = Comment(rawValue: vector.source)
        let responderStatic = try X25519PrivateKey(rawRepresentation: vector.field("resp_static"))
        #expect(responderStatic.publicKey == vector.field("init_remote_static"), name)
        let initiator = try NoiseHandshake.initiator(
            responderStaticKey: vector.field("init_remote_static"), prologue: vector.field("init_prologue"),
            ephemeralKey: X25519PrivateKey(rawRepresentation: vector.field("init_ephemeral")))
        let responder = NoiseHandshake.responder(
            staticKey: responderStatic, prologue: vector.field("resp_prologue"),
            ephemeralKey: try X25519PrivateKey(rawRepresentation: vector.field("resp_ephemeral")))
        #expect(vector.messages.count >= 4, name)
        guard vector.messages.count >= 2 else { return }

        let first = vector.messages[0]
        #expect(try initiator.writeMessage(payload: first.payload) == first.ciphertext, name)
        #expect(try responder.readMessage(first.ciphertext) == first.payload, name)
        let second = vector.messages[1]
        #expect(try responder.writeMessage(payload: second.payload) == second.ciphertext, name)
        #expect(try initiator.readMessage(second.ciphertext) == second.payload, name)

        let initiatorKeys = try initiator.finish()
        let responderKeys = try responder.finish()
        #expect(initiatorKeys.handshakeHash == responderKeys.handshakeHash, name)
        if let expected = vector.fields["handshake_hash"] {
            #expect(initiatorKeys.handshakeHash == expected, name)
        }
        var checked = 2
        for (index, message) in vector.messages.enumerated().dropFirst(2) {
            // Message 3 (index 2) goes from the initiator, and the direction alternates from there.
            let (sender, receiver) =
                index.isMultiple(of: 2)
                ? (initiatorKeys.sending, responderKeys.receiving) : (responderKeys.sending, initiatorKeys.receiving)
            let label = Comment(rawValue: "\(vector.source), message \(index + 1)")
            #expect(try sender.encrypt(message.payload) == message.ciphertext, label)
            #expect(try receiver.decrypt(message.ciphertext) == message.payload, label)
            checked += 1
        }
        #expect(checked == vector.messages.count, name)
        print("Noise vector \(vector.source): checked \(checked) messages both ways")
    }

    // MARK: - Own vectors

    // Computed with an independent implementation, Python's `cryptography` package (AESGCM), not with this code:
    //     key = bytes(range(32))                                  # 000102…1f
    //     pt  = b"aeschat/2 noise counter vector"                 # 30 bytes
    //     nonce(n) = b"\x00" * 4 + n.to_bytes(8, "big")           # Noise rev. 34 §12.4
    //     AESGCM(key).encrypt(nonce(n), pt, b"")                  # ciphertext ‖ 16-byte tag
    //     rekey(k) = AESGCM(k).encrypt(nonce(2**64 - 1), b"\x00" * 32, b"")[:32]   # §4.2 REKEY
    static let key = Array(UInt8(0x00)...UInt8(0x1F))
    static let plaintext = Array("aeschat/2 noise counter vector".utf8)
    /// n = 2^32 − 1.
    static let atTwoTo32Minus1 =
        "3e5fc608cfd542c3ded8e42671bf5410e8ce8a64193d60a1b1a2252587eac901af9cc686d04e5e186e8b1bcfc52c"
    /// n = 2^32 (a 32-bit counter would have wrapped to 0 here).
    static let atTwoTo32 =
        "506e171e59fca8bdd673f0f4d74462ad888cdb958b86c8ecd52a212051c9a5058dd4bbcc37c43d92cca75616e0b3"
    /// n = 2^32, associated data b"aeschat ad".
    static let atTwoTo32WithAD =
        "506e171e59fca8bdd673f0f4d74462ad888cdb958b86c8ecd52a212051c9c5f800a0ade8491dacab1d764cc77c8f"
    /// n = 2^64 − 2, the last usable nonce.
    static let atTwoTo64Minus2 =
        "870965e7f0852dde98d9649ccfd6cdf57e8de1ab994ec1af8ac1e6dc56b92354bdceb26e534e3d9fb566f0071bc2"
    /// n = 0x0102030405060708.
    static let atDistinctBytes =
        "6534166db5807db131bf938077145cd0199629aca3b03a4c9f9e37240445613f307b8d022f5528e2a66309d33176"
    /// n = 0x0102030405060708 with the counter encoded little-endian (`n.to_bytes(8, "little")`): the wrong one.
    static let atDistinctBytesLittleEndian =
        "7d9d8c260a4ebc61a753905cf75d5f8ade9a42a62cd15b68df01b3c4117a25de868f63f5a3617f8feac5aaedade8"
    /// k1 = rekey(key) = 0201675c87335949b909793da5bb4d92fcf6d44b92a6e0792b6ae48b1881259d; AESGCM(k1) at n = 5.
    static let afterRekeyAt5 =
        "2fbbd2c3b367c0a74d04bb58934ac7d835eb1fb1ece7f23ce8cdf61eb2570c9d02d61ca721c4c374f5ca0c671216"
    /// k2 = rekey(k1) = e5f088ca0ae5900fa607b0f669fc802479ffc206d6322eb26943c4e45e408e25; AESGCM(k2) at n = 6.
    static let afterSecondRekeyAt6 =
        "33168ae1870540d5cf922aace0c0a448529b3802861e356920f2aa99b2618d7a51dda25b14fdd61429e42930a10f"

    func cipherState(at nonce: UInt64) throws -> NoiseCipherState {
        let state = try NoiseCipherState(key: SecretBytes(Self.key))
        state.setNonce(nonce)
        return state
    }

    @Test func cipherState_ownVectors_crossTheThirtyTwoBitBoundary() throws {
        let sender = try cipherState(at: 0xFFFF_FFFF)
        let receiver = try cipherState(at: 0xFFFF_FFFF)
        for expected in [Self.atTwoTo32Minus1, Self.atTwoTo32] {
            let sealed = try sender.encrypt(Self.plaintext)
            #expect(sealed == hex(expected))
            #expect(try receiver.decrypt(sealed) == Self.plaintext)
        }
        #expect(sender.nonce == 0x1_0000_0001)
        #expect(receiver.nonce == 0x1_0000_0001)
        let withAD = try cipherState(at: 0x1_0000_0000)
        #expect(
            try withAD.encrypt(Self.plaintext, associatedData: Array("aeschat ad".utf8)) == hex(Self.atTwoTo32WithAD))
    }

    @Test func cipherState_lastNonce_sealsThenRefuses() throws {
        let sender = try cipherState(at: UInt64.max - 1)
        let receiver = try cipherState(at: UInt64.max - 1)
        let sealed = try sender.encrypt(Self.plaintext)
        #expect(sealed == hex(Self.atTwoTo64Minus2))
        #expect(try receiver.decrypt(sealed) == Self.plaintext)
        #expect(sender.nonce == UInt64.max)
        #expect(throws: LinkError.nonceExhausted) { try sender.encrypt(Self.plaintext) }
        #expect(throws: LinkError.nonceExhausted) { try receiver.decrypt(sealed) }
        #expect(sender.nonce == UInt64.max)
    }

    /// The counter is big-endian in the last 8 nonce bytes. Cacophony's public vector already pins this (its
    /// transport messages use n = 1); this vector, with eight distinct counter bytes, would catch any byte order
    /// mistake, and the little-endian result is shown to differ.
    @Test func cipherState_nonce_isBigEndian() throws {
        #expect(NoiseCipherState.nonceBytes(0x0102_0304_0506_0708) == hex("000000000102030405060708"))
        let sealed = try cipherState(at: 0x0102_0304_0506_0708).encrypt(Self.plaintext)
        #expect(sealed == hex(Self.atDistinctBytes))
        #expect(sealed != hex(Self.atDistinctBytesLittleEndian))
    }

    @Test func cipherState_rekey_matchesTheDefaultAndKeepsTheCounter() throws {
        let sender = try cipherState(at: 5)
        let receiver = try cipherState(at: 5)
        try sender.rekey()
        try receiver.rekey()
        #expect(sender.nonce == 5)
        let first = try sender.encrypt(Self.plaintext)
        #expect(first == hex(Self.afterRekeyAt5))
        #expect(try receiver.decrypt(first) == Self.plaintext)
        try sender.rekey()
        try receiver.rekey()
        let second = try sender.encrypt(Self.plaintext)
        #expect(second == hex(Self.afterSecondRekeyAt6))
        #expect(try receiver.decrypt(second) == Self.plaintext)
    }

    @Test func cipherState_rekeyOnOneSideOnly_failsAuthentication() throws {
        let sender = try cipherState(at: 0)
        let receiver = try cipherState(at: 0)
        try sender.rekey()
        #expect(throws: LinkError.authenticationFailed) { try receiver.decrypt(try sender.encrypt(Self.plaintext)) }
    }

    // MARK: - Failures of the cipher state

    @Test func cipherState_flippedTagBit_failsAndKeepsTheCounter() throws {
        let sender = try cipherState(at: 0)
        let receiver = try cipherState(at: 0)
        let sealed = try sender.encrypt(Self.plaintext)
        for bit in [0, 7] {
            var forged = sealed
            forged[forged.count - 1] ^= 1 << bit
            #expect(throws: LinkError.authenticationFailed) { try receiver.decrypt(forged) }
        }
        var flippedCiphertext = sealed
        flippedCiphertext[0] ^= 0x80
        #expect(throws: LinkError.authenticationFailed) { try receiver.decrypt(flippedCiphertext) }
        #expect(receiver.nonce == 0)
        #expect(try receiver.decrypt(sealed) == Self.plaintext)
    }

    @Test func cipherState_lengths_areCheckedBeforeUse() throws {
        let state = try cipherState(at: 0)
        #expect(throws: LinkError.ciphertextTooShort(actual: 0)) { try state.decrypt([]) }
        #expect(throws: LinkError.ciphertextTooShort(actual: 15)) {
            try state.decrypt([UInt8](repeating: 0, count: 15))
        }
        #expect(throws: LinkError.messageTooLong(actual: 65_536, maximum: 65_535)) {
            try state.decrypt([UInt8](repeating: 0, count: 65_536))
        }
        #expect(throws: LinkError.messageTooLong(actual: 65_536, maximum: 65_535)) {
            try state.encrypt([UInt8](repeating: 0, count: 65_520))
        }
        #expect(state.nonce == 0)
        let largest = try state.encrypt([UInt8](repeating: 0x41, count: NoiseCipherState.maximumPlaintextLength))
        #expect(largest.count == 65_535)
        #expect(try cipherState(at: 0).decrypt(largest).count == 65_519)
        #expect(try state.encrypt([]).count == 16)
    }

    // MARK: - Handshakes

    static let prologue = Array("aeschat/2 transport".utf8)

    /// A handshake pair with fresh keys, as the link will make them.
    func freshPair(
        relayKey: X25519PrivateKey, initiatorPrologue: [UInt8] = prologue, pinnedKey: [UInt8]? = nil
    ) throws -> (initiator: NoiseHandshake, responder: NoiseHandshake) {
        (
            try NoiseHandshake.initiator(
                responderStaticKey: pinnedKey ?? relayKey.publicKey, prologue: initiatorPrologue),
            NoiseHandshake.responder(staticKey: relayKey, prologue: Self.prologue)
        )
    }

    static let relayKey = try! X25519PrivateKey(rawRepresentation: Array(UInt8(0x40)...UInt8(0x5F)))

    @Test func handshake_freshKeys_agreeOnKeysAndHash() throws {
        let (initiator, responder) = try freshPair(relayKey: Self.relayKey)
        #expect(initiator.role == .initiator && responder.role == .responder)
        let first = try initiator.writeMessage()
        #expect(first.count == 48)
        #expect(try responder.readMessage(first) == [])
        let second = try responder.writeMessage()
        #expect(second.count == 48)
        #expect(try initiator.readMessage(second) == [])
        #expect(initiator.isComplete && responder.isComplete)
        let client = try initiator.finish()
        let relay = try responder.finish()
        #expect(client.handshakeHash == relay.handshakeHash)
        #expect(client.handshakeHash.count == 32)
        let hello = Array("hello".utf8)
        #expect(try relay.receiving.decrypt(try client.sending.encrypt(hello)) == hello)
        let welcome = Array("welcome".utf8)
        #expect(try client.receiving.decrypt(try relay.sending.encrypt(welcome)) == welcome)
        #expect(client.sending === client.initiatorToResponder)
        #expect(relay.sending === relay.responderToInitiator)
    }

    @Test func handshake_twoRuns_useFreshEphemeralKeys() throws {
        let one = try NoiseHandshake.initiator(responderStaticKey: Self.relayKey.publicKey, prologue: Self.prologue)
        let two = try NoiseHandshake.initiator(responderStaticKey: Self.relayKey.publicKey, prologue: Self.prologue)
        #expect(try one.writeMessage().prefix(32) != two.writeMessage().prefix(32))
    }

    @Test func symmetricState_initialise_padsTheNameAsTheHash() {
        let state = NoiseSymmetricState(protocolName: NoiseHandshake.protocolName)
        #expect(Array(NoiseHandshake.protocolName.utf8).count == 28)
        #expect(state.handshakeHash == Array(NoiseHandshake.protocolName.utf8) + [0, 0, 0, 0])
        #expect(!state.hasKey)
    }

    @Test func handshake_messageOneOfWrongLength_failsCleanly() throws {
        for length in [0, 1, 32, 47, 65_536] {
            let responder = NoiseHandshake.responder(staticKey: Self.relayKey, prologue: Self.prologue)
            #expect(
                throws: LinkError.handshakeMessageLength(message: 1, actual: length, minimum: 48, maximum: 65_535)
            ) { try responder.readMessage([UInt8](repeating: 0x09, count: length)) }
            #expect(throws: LinkError.self) { try responder.writeMessage() }
        }
    }

    @Test func handshake_messageTwoOfWrongLength_failsCleanly() throws {
        let (initiator, responder) = try freshPair(relayKey: Self.relayKey)
        _ = try responder.readMessage(try initiator.writeMessage())
        let second = try responder.writeMessage()
        #expect(throws: LinkError.handshakeMessageLength(message: 2, actual: 47, minimum: 48, maximum: 65_535)) {
            try initiator.readMessage(Array(second.dropLast()))
        }
        #expect(!initiator.isComplete)
    }

    @Test func handshake_flippedTagBitInMessageOne_failsAndStaysFailed() throws {
        let (initiator, responder) = try freshPair(relayKey: Self.relayKey)
        var first = try initiator.writeMessage()
        first[first.count - 1] ^= 0x01
        #expect(throws: LinkError.handshakeAuthenticationFailed(message: 1)) { try responder.readMessage(first) }
        first[first.count - 1] ^= 0x01
        #expect(
            throws: LinkError.outOfOrder(
                operation: "read handshake message 1",
                state: "the handshake failed; close the connection and start a new one")
        ) {
            try responder.readMessage(first)
        }
    }

    @Test func handshake_flippedTagBitInMessageTwo_fails() throws {
        let (initiator, responder) = try freshPair(relayKey: Self.relayKey)
        _ = try responder.readMessage(try initiator.writeMessage(payload: [1, 2, 3]))
        var second = try responder.writeMessage(payload: [4, 5])
        second[40] ^= 0x10
        #expect(throws: LinkError.handshakeAuthenticationFailed(message: 2)) { try initiator.readMessage(second) }
        #expect(throws: LinkError.self) { try initiator.finish() }
    }

    @Test func handshake_wrongPinnedKey_failsMessageOne() throws {
        let other = try X25519PrivateKey(rawRepresentation: Array(UInt8(0x60)...UInt8(0x7F)))
        let (initiator, responder) = try freshPair(relayKey: Self.relayKey, pinnedKey: other.publicKey)
        #expect(throws: LinkError.handshakeAuthenticationFailed(message: 1)) {
            try responder.readMessage(try initiator.writeMessage())
        }
    }

    @Test func handshake_differentPrologue_failsMessageOne() throws {
        let (initiator, responder) = try freshPair(
            relayKey: Self.relayKey, initiatorPrologue: Array("aeschat/3 transport".utf8))
        #expect(throws: LinkError.handshakeAuthenticationFailed(message: 1)) {
            try responder.readMessage(try initiator.writeMessage())
        }
    }

    @Test func handshake_lowOrderEphemeralKey_isRefused() throws {
        let responder = NoiseHandshake.responder(staticKey: Self.relayKey, prologue: Self.prologue)
        // u = 0 is a point of order 4 (RFC 7748 §6.1 lists such points); X25519 with it is all zero.
        #expect(throws: LinkError.lowOrderKey(whose: "the client's ephemeral key")) {
            try responder.readMessage([UInt8](repeating: 0, count: 48))
        }
    }

    @Test func handshake_stepsOutOfOrder_throwInsteadOfTrapping() throws {
        let (initiator, responder) = try freshPair(relayKey: Self.relayKey)
        #expect(
            throws: LinkError.outOfOrder(
                operation: "read handshake message 2", state: "the initiator writes message 1 first")
        ) {
            try initiator.readMessage([UInt8](repeating: 0, count: 48))
        }
        #expect(
            throws: LinkError.outOfOrder(
                operation: "write handshake message 2", state: "the responder reads message 1 first")
        ) {
            try responder.writeMessage()
        }
        #expect(
            throws: LinkError.outOfOrder(
                operation: "finish the handshake", state: "the initiator writes message 1 first")
        ) {
            try initiator.finish()
        }
        _ = try responder.readMessage(try initiator.writeMessage())
        _ = try initiator.readMessage(try responder.writeMessage())
        _ = try initiator.finish()
        #expect(throws: LinkError.self) { try initiator.finish() }
        #expect(throws: LinkError.self) { try initiator.writeMessage() }
    }

    @Test func handshake_payloads_areLimitedToOneNoiseMessage() throws {
        let initiator = try NoiseHandshake.initiator(responderStaticKey: Self.relayKey.publicKey, prologue: [])
        #expect(throws: LinkError.messageTooLong(actual: 65_536, maximum: 65_535)) {
            try initiator.writeMessage(payload: [UInt8](repeating: 0, count: 65_488))
        }
        // Refusing an oversized payload does not end the handshake.
        #expect(try initiator.writeMessage(payload: [UInt8](repeating: 0, count: 65_487)).count == 65_535)
    }

    @Test func handshake_wrongLengthRelayKey_isRefused() {
        #expect(throws: LinkError.invalidKeyLength(whose: "the relay's static key", actual: 31)) {
            try NoiseHandshake.initiator(responderStaticKey: [UInt8](repeating: 1, count: 31), prologue: [])
        }
    }

    @Test func linkError_descriptions_saySomethingToActOn() {
        let errors: [LinkError] = [
            .handshakeMessageLength(message: 1, actual: 3, minimum: 48, maximum: 65_535),
            .handshakeAuthenticationFailed(message: 2), .authenticationFailed, .ciphertextTooShort(actual: 3),
            .messageTooLong(actual: 70_000, maximum: 65_535), .nonceExhausted,
            .invalidKeyLength(whose: "the relay's static key", actual: 31), .lowOrderKey(whose: "the key"),
            .outOfOrder(operation: "finish", state: "not yet"), .crypto(.authenticationFailed),
        ]
        for error in errors {
            #expect(error.description.count > 20, "\(error)")
        }
        #expect(
            LinkError.handshakeMessageLength(message: 1, actual: 3, minimum: 48, maximum: 65_535).description
                .hasPrefix("handshake message 1 is 3 bytes long, but it must be 48 to 65535 bytes"))
    }
}
