import AESChatCrypto
import Testing

@testable import AESChatCore

/// The worked exchange of docs/PROTOCOL.md section 9.2 (automatic keys), checked byte for byte.
/// The expected values were computed with an independent implementation (Python's
/// `cryptography` package) following the document, not from this code.
@Suite struct AutomaticKeysVectorTests {
    func hex(_ text: String) -> [UInt8] { Hex.decode(String(text.filter { $0 != " " }))! }

    let aliceIdentity = try! Ed25519PrivateKey(seed: Array(0x10...0x2F))
    let bobIdentity = try! Ed25519PrivateKey(seed: Array(0x30...0x4F))
    let aliceSession = try! X25519PrivateKey(rawRepresentation: Array(0x50...0x6F))
    let bobSession = try! X25519PrivateKey(rawRepresentation: Array(0x70...0x8F))

    @Test func keys_andProfiles() throws {
        #expect(aliceIdentity.publicKey == hex(WorkedExamples.AutomaticKeyMode.aliceIdentityPublic))
        #expect(bobIdentity.publicKey == hex(WorkedExamples.AutomaticKeyMode.bobIdentityPublic))
        #expect(aliceSession.publicKey == hex("392d174a38b3b1beafaf1fe824870841c5fa531bc6eafdb6402c124664488c1c"))
        #expect(bobSession.publicKey == hex("23b7bb8c91ae008711fb12846780bcdf1e065f821bdfec49f57e7c7dcd4c4823"))
        let aliceProfile = try AutomaticKeys.makeProfile(
            identity: aliceIdentity, sessionKey: aliceSession.publicKey, room: "lobby", name: "alice")
        #expect(
            aliceProfile
                == hex(WorkedExamples.AutomaticKeyMode.aliceProfile))
        #expect(
            try AutomaticKeys.makeProfile(
                identity: bobIdentity, sessionKey: bobSession.publicKey, room: "lobby", name: "bob")
                == hex(
                    "018bb04e1c1b83dddf311f5bcddf7c50ede3c0802f47ec796e2a131cf41298d9f323b7bb8c91ae008711fb12846780bcdf1e065f821bdfec49f57e7c7dcd4c4823e8ca575499366c2aec255192ebade6f416badc63b555fe6b6cf31e69ba9754060ac21ca970c51f13c256d593b7a7ee04ffdef0b772732f044abf27f21641e80c"
                ))
        #expect(
            AutomaticKeys.checkProfile(aliceProfile, room: "lobby", name: "alice")
                == .valid(identityKey: aliceIdentity.publicKey, sessionKey: aliceSession.publicKey, features: .basic))
        #expect(
            AutomaticKeys.checkProfile(aliceProfile, room: "lobby", name: "mallory")
                != .valid(identityKey: aliceIdentity.publicKey, sessionKey: aliceSession.publicKey, features: .basic))
    }

    @Test func pairwiseChannel_keysAndEnvelopes() throws {
        let shared = try aliceSession.sharedSecret(with: bobSession.publicKey)
        #expect(
            shared.withUnsafeBytes { Array($0) }
                == hex("006c14a7f1faeb7d6a36a8bfa03008a8e09a98639dea63b71b325b11fe38cb0f"))
        let keys = try AutomaticKeys.channelKeys(
            sharedSecret: shared, room: "lobby", me: ("alice", aliceSession.publicKey),
            peer: ("bob", bobSession.publicKey))
        #expect(keys.send == hex(WorkedExamples.AutomaticKeyMode.keyAliceToBob))
        #expect(keys.receive == hex("23c6e0274db4a27ffa54a885489298c24ad6ecf0c1253e93ee8c0c9b1fbcb98c"))
        let bobKeys = try AutomaticKeys.channelKeys(
            sharedSecret: try bobSession.sharedSecret(with: aliceSession.publicKey), room: "lobby",
            me: ("bob", bobSession.publicKey), peer: ("alice", aliceSession.publicKey))
        #expect(bobKeys.send == keys.receive && bobKeys.receive == keys.send)

        let chain = OutgoingChain(chainID: Array(0xC0...0xCF), chainKey: Array(0xD0...0xEF), index: 0, now: .now)
        #expect(
            chain.distribution
                == hex(
                    "10c0c1c2c3c4c5c6c7c8c9cacbcccdcecf00000000d0d1d2d3d4d5d6d7d8d9dadbdcdddedfe0e1e2e3e4e5e6e7e8e9eaebecedeeef"
                ))
        let channel = try PairwiseChannel(sendKey: keys.send, receiveKey: keys.receive)
        let distribution = try channel.seal(chain.distribution, room: "lobby", from: "alice", to: "bob")
        #expect(
            distribution
                == hex(
                    "020000000000000000338e2d10142e73cebb5b4396ec8a0800043ed88702e86081598e09335574343007ebb284d01be950e118a317762a5f2c852343b963b35b13de5bf00023395ac005311ef86b"
                ))
        #expect(MessageContent.text("just us").encoded() == hex("016a757374207573"))
        let privateMessage = try channel.seal(
            MessageContent.text("just us").encoded(), room: "lobby", from: "alice", to: "bob")
        #expect(privateMessage == hex("020000000000000001375b1cdc86469ac419b54b8e9c0c78ece383245e8db2cddf"))

        let bobChannel = try PairwiseChannel(sendKey: bobKeys.send, receiveKey: bobKeys.receive)
        #expect(
            bobChannel.open(distribution[...], room: "lobby", from: "alice", to: "bob")
                == .plaintext(chain.distribution, missing: 0))
    }

    @Test func groupMessage_ratchetAndEnvelope() throws {
        let chain = OutgoingChain(chainID: Array(0xC0...0xCF), chainKey: Array(0xD0...0xEF), index: 0, now: .now)
        let (index, messageKey) = chain.nextMessageKey()
        #expect(index == 0)
        #expect(
            messageKey.withUnsafeBytes { Array($0) }
                == hex("9ece6bb5460ab1cbac37925b4a5e49e32d004dbcd5b3e2535bb969da1496bdde"))
        #expect(
            AutomaticKeys.ratchet(SecretBytes(Array(0xD0...0xEF))).next.withUnsafeBytes { Array($0) }
                == hex("5e6ce626227c67c01305d4cd814c6b5c692e093e49e6a64c45e02e797fc4770d"))
        let inputs = try AutomaticKeys.groupCipherInputs(messageKey: messageKey)
        #expect(
            inputs.key == hex("3b93a4221a36b2abf0d4ab6953110e36dc9a05bf64767403f52899c749322351")
                && inputs.nonce == hex("c60d933c0af84c3090a5ee36"))
        #expect(MessageContent.text("hi bob").encoded() == hex(WorkedExamples.AutomaticKeyMode.groupPlaintext))
        // alice's view: alice and bob, sorted by name whatever the order given.
        let view = AutomaticKeys.roomView(
            room: "lobby", members: [("bob", bobIdentity.publicKey), ("alice", aliceIdentity.publicKey)])
        #expect(view.count == 2 && view.digest == hex(WorkedExamples.AutomaticKeyMode.roomViewDigest))
        #expect(
            AutomaticKeys.roomView(
                room: "lobby", members: [("alice", aliceIdentity.publicKey), ("bob", bobIdentity.publicKey)]) == view)
        #expect(
            AutomaticKeys.groupHeader(chainID: Array(0xC0...0xCF), index: 0, view: view)
                == hex(
                    "06c0c1c2c3c4c5c6c7c8c9cacbcccdcecf0000000000000002"
                        + WorkedExamples.AutomaticKeyMode.roomViewDigest))
        let envelope = try AutomaticKeys.sealGroupMessage(
            MessageContent.text("hi bob").encoded(), chainID: Array(0xC0...0xCF), index: 0, messageKey: messageKey,
            view: view, room: "lobby", sender: "alice", identity: aliceIdentity)
        #expect(
            envelope
                == hex(WorkedExamples.AutomaticKeyMode.groupEnvelope))
    }

    @Test func fingerprint_safetyNumber_roomCode() {
        #expect(Identity.fingerprint(of: aliceIdentity.publicKey) == WorkedExamples.AutomaticKeyMode.aliceFingerprint)
        #expect(
            Identity.safetyNumber(aliceIdentity.publicKey, bobIdentity.publicKey)
                == WorkedExamples.AutomaticKeyMode.safetyNumber)
        #expect(
            Identity.safetyNumber(bobIdentity.publicKey, aliceIdentity.publicKey)
                == WorkedExamples.AutomaticKeyMode.safetyNumber)
        #expect(
            Identity.roomCode(room: "lobby", identityKeys: [bobIdentity.publicKey, aliceIdentity.publicKey])
                == WorkedExamples.AutomaticKeyMode.roomCode)
        #expect(WorkedExamples.AutomaticKeyMode.roomCode == "93554 17655 72980 49624 36812 68056 10859 05192")
    }

    @Test func wholeExchange_bobReadsAlicesMessage() throws {
        let bob = try AutomaticKeySecurity(
            identity: bobIdentity, name: "bob", room: "lobby", relay: "r", knownPeers: KnownPeers(),
            sessionKey: bobSession)
        let outbox = RecordingOutbox()
        outbox.record(
            bob.didRegister(
                members: [
                    MemberEntry(
                        name: "alice",
                        profile: hex(WorkedExamples.AutomaticKeyMode.aliceProfile))
                ]))
        outbox.record(
            bob.receive(
                hex(
                    "020000000000000000338e2d10142e73cebb5b4396ec8a0800043ed88702e86081598e09335574343007ebb284d01be950e118a317762a5f2c852343b963b35b13de5bf00023395ac005311ef86b"
                )[...], from: "alice", isDirect: true))
        outbox.record(
            bob.receive(
                hex(WorkedExamples.AutomaticKeyMode.groupEnvelope)[...], from: "alice", isDirect: false))
        outbox.record(
            bob.receive(
                hex("020000000000000001375b1cdc86469ac419b54b8e9c0c78ece383245e8db2cddf")[...], from: "alice",
                isDirect: true))
        #expect(outbox.events.contains(.message(from: "alice", text: "hi bob", isPrivate: false)))
        #expect(outbox.events.contains(.message(from: "alice", text: "just us", isPrivate: true)))
        #expect(!outbox.events.contains { if case .warning = $0 { true } else { false } })
    }
}
