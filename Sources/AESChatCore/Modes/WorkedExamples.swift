import AESChatCrypto

/// The worked examples of docs/PROTOCOL.md section 9: their inputs and published values, in one place for the unit
/// tests (`ProtocolVectorTests`, `AutomaticKeysVectorTests`, `LinkVectorTests` read their expected values from here)
/// and for `aeschat selftest`, which recomputes each example with the program's own code. The values were computed by
/// independent implementations written from the document (Python's `cryptography`, and `noiseprotocol` for the link),
/// not by this code.
package enum WorkedExamples {
    /// Section 9.1, pre-shared-key mode.
    package enum RoomKeyMode {
        package static let roomKey: [UInt8] = Array(0x00...0x1F)
        package static let sessionID: [UInt8] = Array(0xA0...0xAF)
        package static let counter: UInt64 = 7
        /// 2026-12-03 00:00:00 UTC, in milliseconds.
        package static let sentAt: UInt64 = 1_796_256_000_000
        package static let text = "hello, world 👋"
        package static let messageKey = "08796106a2aaa3851615d9be9ae0f1090dad4d2e1fe09fe569b3c4f134937430"
        package static let plaintext = "0168656c6c6f2c20776f726c6420f09f918b"
        package static let envelope =
            "05a0a1a2a3a4a5a6a7a8a9aaabacadaeaf0000000000000007000001a239336800"
            + "28062f47bfaf73866583b363a4ea9998cfb1db47d266e8a1d537ba5ef84ee6126d9e"
    }

    /// Section 9.2, automatic-key mode.
    package enum AutomaticKeyMode {
        package static let aliceIdentitySeed: [UInt8] = Array(0x10...0x2F)
        package static let bobIdentitySeed: [UInt8] = Array(0x30...0x4F)
        package static let aliceSessionSecret: [UInt8] = Array(0x50...0x6F)
        package static let bobSessionSecret: [UInt8] = Array(0x70...0x8F)
        package static let chainID: [UInt8] = Array(0xC0...0xCF)
        package static let chainKey: [UInt8] = Array(0xD0...0xEF)
        package static let aliceIdentityPublic = "7776e870b93354f2a0b24c23f2a36cc4e80e223218c1b97926fdd018396a2b9b"
        package static let bobIdentityPublic = "8bb04e1c1b83dddf311f5bcddf7c50ede3c0802f47ec796e2a131cf41298d9f3"
        package static let aliceProfile =
            "017776e870b93354f2a0b24c23f2a36cc4e80e223218c1b97926fdd018396a2b9b392d174a38b3b1beafaf1fe824870841c5fa531b"
            + "c6eafdb6402c124664488c1cb8aeec828a7bab792edee976796da705c30584542c9b513efd1b855fa75afd56c121328b4348c3bd"
            + "91c7dd7316060dc46099ed27e0d272bd1657cf8731cdf80d"
        package static let keyAliceToBob = "955d34cfe96b1a0dd8dad919c7538bdc6c1b5373049c68abe02903ede03034ab"
        package static let groupPlaintext = "01686920626f62"
        /// The room view alice's group message carries: alice and bob, 2 members.
        package static let roomViewDigest = "f52b0c9ceb0d7dfd28021fa38b094fdcd7256ac7393653d972c829d1276bcf5c"
        package static let groupEnvelope =
            "06c0c1c2c3c4c5c6c7c8c9cacbcccdcecf0000000000000002f52b0c9ceb0d7dfd28021fa38b094fdcd7256ac7393653d972c829"
            + "d1276bcf5ce249b5d899b4465d3ca9aa168299d18bf76a905730c5061ab81465e15749380c4eede8ba8924b6d420b11f54f87f4c"
            + "56c008c499e7c4e242e032d6e5ec257fadaaaf7dbcb4507332cf40c1f9a49a6f2ae60fe2b69c4304"
        package static let aliceFingerprint = "033b 07a2 b874 5df9 99a8 de3b 6822 2264"
        package static let safetyNumber = "09847 83976 00782 09106 14750 60530"
        package static let roomCode = "93554 17655 72980 49624 36812 68056 10859 05192"
    }

    /// Section 9.3, the encrypted link.
    package enum Link {
        /// SHA-256("aeschat worked example: relay static key").
        package static let relayStatic = "caf6cb94b5db5a1f3720ec0be1324929e467c05b61316d4c7c65e871b8b36b9c"
        /// SHA-256("aeschat worked example: client ephemeral key").
        package static let clientEphemeral = "436ea84ae8be7992e1b957ad7ce9764c2c21e148aeb4de0a42bf1352a93a9d82"
        /// SHA-256("aeschat worked example: relay ephemeral key").
        package static let relayEphemeral = "1d21199c5c66d18183449c71f6d17d09dcebeae93661b0b4c38a715bcd34ca5d"
        package static let relayPublic = "2527c9eab1128871043ef684e844c187d41fcc3abcc6bdb4233b913b2ae9bd15"
        package static let prologue = "616573636861742f32207472616e73706f7274414553434841540234201923"
        package static let message1 =
            "102776d7c4b567ef273b7f6232e5383d4864934d9985dd9b4855414fa91afd547add04697cc537aaaebf0a92c2dd58e8"
        package static let message2 =
            "da1545921602bd0913e30026c758f076645b0b2b8c66949fc17cf2220f53235f9776d4eb056aa488a0a5665e37f8d2b4"
        package static let handshakeHash = "5303a7f603524cbcfd0537d79647b1c076aeec0478c6d0b8bd815d0399f80260"
        package static let helloFrame = "0000001101000205616c696365056c6f6262790000"
        package static let helloRecord =
            "00259760b317c411daafe8517861f5af2afee7c4feb70eac7f82b89005245fe981e79576e6ddc6"
    }

    /// Section 9.5, profiles with features: the keys and room of 9.2, alice listing `files`, bob nothing.
    package enum Features {
        package static let aliceProfile =
            "027776e870b93354f2a0b24c23f2a36cc4e80e223218c1b97926fdd018396a2b9b"
            + "392d174a38b3b1beafaf1fe824870841c5fa531bc6eafdb6402c124664488c1c0101"
            + "daf986b7cae9ad8f219aa48a45edbe816a0a9a7bdd2a8d27583fdf21bf40571c"
            + "b15ee4319cf35c527badaa29edc23a744f268e1831f4b2f8de2151ab2c45e408"
        package static let bobProfile =
            "028bb04e1c1b83dddf311f5bcddf7c50ede3c0802f47ec796e2a131cf41298d9f3"
            + "23b7bb8c91ae008711fb12846780bcdf1e065f821bdfec49f57e7c7dcd4c482300"
            + "a2db544de85fa0a9f10f9a723ac9abd9b048e95b73e41392ff7005a67a088a6a"
            + "788256f377d6cf1bfeb01c0c80a27332f4eb576b42c3302a74f6dcd6173c0f0d"
    }

    /// One example recomputed: its name, and what differed (nil when everything matched).
    package struct Outcome: Sendable, Equatable {
        package let name: String
        package let failure: String?
    }

    /// Recomputes every example with this program's code.
    package static func check() -> [Outcome] {
        [
            outcome("9.1 pre-shared-key message", checkRoomKeyMode),
            outcome("9.2 automatic-key profile, channel, room view and group message", checkAutomaticKeyMode),
            outcome("9.2 fingerprint, safety number, room code", checkTexts),
            outcome("9.3 link handshake and first record", checkLink),
            outcome("9.5 profiles with features", checkFeatures),
        ]
    }

    private static func checkFeatures() throws -> String? {
        typealias Example = AutomaticKeyMode
        let alice = try AutomaticKeys.makeProfile(
            identity: try Ed25519PrivateKey(seed: Example.aliceIdentitySeed),
            sessionKey: try X25519PrivateKey(rawRepresentation: Example.aliceSessionSecret).publicKey, room: "lobby",
            name: "alice", features: MemberFeatures([MemberFeatures.files]))
        if let wrong = differs("alice's profile with features", alice, Features.aliceProfile) { return wrong }
        let bob = try AutomaticKeys.makeProfile(
            identity: try Ed25519PrivateKey(seed: Example.bobIdentitySeed),
            sessionKey: try X25519PrivateKey(rawRepresentation: Example.bobSessionSecret).publicKey, room: "lobby",
            name: "bob", features: MemberFeatures([]))
        if let wrong = differs("bob's profile with features", bob, Features.bobProfile) { return wrong }
        guard case .valid(_, _, let features) = AutomaticKeys.checkProfile(alice, room: "lobby", name: "alice"),
            features.names == ["files"]
        else { return "alice's profile with features does not verify back to its features" }
        return nil
    }

    private static func outcome(_ name: String, _ body: () throws -> String?) -> Outcome {
        do {
            return Outcome(name: name, failure: try body())
        } catch {
            return Outcome(name: name, failure: "\(error)")
        }
    }

    /// Nil when `actual` is `expected` (hex), otherwise a line naming `what`.
    private static func differs(_ what: String, _ actual: [UInt8], _ expected: String) -> String? {
        Hex.encode(actual) == expected ? nil : "\(what) is \(Hex.encode(actual)), the document says \(expected)"
    }

    private static func bytes(_ text: String) -> [UInt8] {
        guard let bytes = Hex.decode(text) else { preconditionFailure("a worked example is not hex: \(text)") }
        return bytes
    }

    private static func checkRoomKeyMode() throws -> String? {
        typealias Example = RoomKeyMode
        let key = try RoomKeyEnvelope.messageKey(
            roomKey: RoomKey(bytes: Example.roomKey), sessionID: Example.sessionID[...], room: "lobby",
            sender: "alice")
        if let wrong = differs("the message key", key.withUnsafeBytes { Array($0) }, Example.messageKey) {
            return wrong
        }
        let content = MessageContent.text(Example.text)
        if let wrong = differs("the plaintext", content.encoded(), Example.plaintext) { return wrong }
        let sealer = try RoomKeySealer(
            roomKey: RoomKey(bytes: Example.roomKey), room: "lobby", sender: "alice",
            fixedSessionID: Example.sessionID, counter: Example.counter, clock: { Example.sentAt })
        let envelope = try sealer.seal(content)
        if let wrong = differs("the envelope", envelope, Example.envelope) { return wrong }
        let opener = RoomKeyOpener(roomKey: RoomKey(bytes: Example.roomKey), room: "lobby", clock: { Example.sentAt })
        guard opener.open(envelope[...], from: "alice") == .content(content, missing: 0) else {
            return "the envelope did not open back to its text"
        }
        return nil
    }

    private static func checkAutomaticKeyMode() throws -> String? {
        typealias Example = AutomaticKeyMode
        let alice = try Ed25519PrivateKey(seed: Example.aliceIdentitySeed)
        let aliceSession = try X25519PrivateKey(rawRepresentation: Example.aliceSessionSecret)
        let bobSession = try X25519PrivateKey(rawRepresentation: Example.bobSessionSecret)
        let profile = try AutomaticKeys.makeProfile(
            identity: alice, sessionKey: aliceSession.publicKey, room: "lobby", name: "alice")
        if let wrong = differs("alice's profile", profile, Example.aliceProfile) { return wrong }
        let keys = try AutomaticKeys.channelKeys(
            sharedSecret: try aliceSession.sharedSecret(with: bobSession.publicKey), room: "lobby",
            me: ("alice", aliceSession.publicKey), peer: ("bob", bobSession.publicKey))
        if let wrong = differs("the key alice→bob", keys.send, Example.keyAliceToBob) { return wrong }
        let chain = OutgoingChain(chainID: Example.chainID, chainKey: Example.chainKey, index: 0, now: .now)
        let (index, messageKey) = chain.nextMessageKey()
        let plaintext = MessageContent.text("hi bob").encoded()
        if let wrong = differs("the group plaintext", plaintext, Example.groupPlaintext) { return wrong }
        let bob = try Ed25519PrivateKey(seed: Example.bobIdentitySeed).publicKey
        let view = AutomaticKeys.roomView(room: "lobby", members: [("bob", bob), ("alice", alice.publicKey)])
        if let wrong = differs("the room view", view.digest, Example.roomViewDigest) { return wrong }
        let envelope = try AutomaticKeys.sealGroupMessage(
            plaintext, chainID: Example.chainID, index: index, messageKey: messageKey, view: view, room: "lobby",
            sender: "alice", identity: alice)
        return differs("the group envelope", envelope, Example.groupEnvelope)
    }

    private static func checkTexts() throws -> String? {
        typealias Example = AutomaticKeyMode
        let alice = try Ed25519PrivateKey(seed: Example.aliceIdentitySeed).publicKey
        let bob = try Ed25519PrivateKey(seed: Example.bobIdentitySeed).publicKey
        if let wrong = differs("bob's identity key", bob, Example.bobIdentityPublic) { return wrong }
        let texts = [
            ("alice's fingerprint", Identity.fingerprint(of: alice), Example.aliceFingerprint),
            ("the safety number", Identity.safetyNumber(alice, bob), Example.safetyNumber),
            ("the room code", Identity.roomCode(room: "lobby", identityKeys: [bob, alice]), Example.roomCode),
        ]
        for (what, actual, expected) in texts where actual != expected {
            return "\(what) is '\(actual)', the document says '\(expected)'"
        }
        return nil
    }

    private static func checkLink() throws -> String? {
        typealias Example = Link
        let client = try NoiseHandshake.initiator(
            responderStaticKey: bytes(Example.relayPublic), prologue: bytes(Example.prologue),
            ephemeralKey: X25519PrivateKey(rawRepresentation: bytes(Example.clientEphemeral)))
        let relay = NoiseHandshake.responder(
            staticKey: try X25519PrivateKey(rawRepresentation: bytes(Example.relayStatic)),
            prologue: bytes(Example.prologue),
            ephemeralKey: try X25519PrivateKey(rawRepresentation: bytes(Example.relayEphemeral)))
        let message1 = try client.writeMessage()
        if let wrong = differs("message 1", message1, Example.message1) { return wrong }
        _ = try relay.readMessage(message1)
        let message2 = try relay.writeMessage()
        if let wrong = differs("message 2", message2, Example.message2) { return wrong }
        _ = try client.readMessage(message2)
        let clientKeys = try client.finish()
        if let wrong = differs("the handshake hash", clientKeys.handshakeHash, Example.handshakeHash) { return wrong }
        let hello = ClientFrame.hello(version: 2, name: "alice", room: "lobby", profile: []).encoded()
        if let wrong = differs("the hello frame", hello, Example.helloFrame) { return wrong }
        return differs(
            "the hello record", try LinkRecordWriter(cipher: clientKeys.sending).seal(hello), Example.helloRecord)
    }
}
