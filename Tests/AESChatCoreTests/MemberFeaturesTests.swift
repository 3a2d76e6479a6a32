import AESChatCrypto
import Foundation
import Testing

@testable import AESChatCore

/// Profiles with features (docs/PROTOCOL.md sections 6.5 and 9.5): the worked example byte for byte (values computed
/// independently with Python's `cryptography` package from the document, not from this code), the checks, and the
/// decision they drive (no file offered to a member that takes none).
@Suite struct MemberFeaturesTests {
    func hex(_ text: String) -> [UInt8] { Hex.decode(String(text.filter { !$0.isWhitespace }))! }

    let aliceIdentity = try! Ed25519PrivateKey(seed: Array(0x10...0x2F))
    let bobIdentity = try! Ed25519PrivateKey(seed: Array(0x30...0x4F))
    let aliceSession = try! X25519PrivateKey(rawRepresentation: Array(0x50...0x6F))
    let bobSession = try! X25519PrivateKey(rawRepresentation: Array(0x70...0x8F))

    static let aliceProfile = WorkedExamples.Features.aliceProfile
    static let bobProfile = WorkedExamples.Features.bobProfile

    @Test func workedExample_profilesWithFeatures_areTheDocumentedBytes() throws {
        let alice = try AutomaticKeys.makeProfile(
            identity: aliceIdentity, sessionKey: aliceSession.publicKey, room: "lobby", name: "alice",
            features: MemberFeatures([MemberFeatures.files]))
        #expect(alice == hex(Self.aliceProfile))
        #expect(alice.count == 131)
        #expect(
            AutomaticKeys.featuresProfileSignedBytes(room: "lobby", name: "alice", body: alice.dropLast(64)[...])
                == hex(
                    """
                    616573636861742f312073657373696f6e206b657900056c6f62627905616c696365
                    027776e870b93354f2a0b24c23f2a36cc4e80e223218c1b97926fdd018396a2b9b
                    392d174a38b3b1beafaf1fe824870841c5fa531bc6eafdb6402c124664488c1c0101
                    """))
        let bob = try AutomaticKeys.makeProfile(
            identity: bobIdentity, sessionKey: bobSession.publicKey, room: "lobby", name: "bob",
            features: MemberFeatures([]))
        #expect(bob == hex(Self.bobProfile))
        #expect(
            AutomaticKeys.checkProfile(alice, room: "lobby", name: "alice")
                == .valid(
                    identityKey: aliceIdentity.publicKey, sessionKey: aliceSession.publicKey,
                    features: MemberFeatures(bits: [0x01])))
        guard case .valid(_, let sessionKey, let features) = AutomaticKeys.checkProfile(bob, room: "lobby", name: "bob")
        else {
            Issue.record("bob's profile does not verify")
            return
        }
        #expect(sessionKey == bobSession.publicKey && features.bits.isEmpty && features.names.isEmpty)
        #expect(AutomaticKeys.sessionKey(inProfile: alice) == aliceSession.publicKey)
        // Bound to the room and the name, like version 1.
        #expect(AutomaticKeys.checkProfile(alice, room: "lobby", name: "mallory") != .missing)
        guard case .invalid = AutomaticKeys.checkProfile(alice, room: "other", name: "alice") else {
            Issue.record("a profile of another room verified")
            return
        }
    }

    @Test func versionOneProfile_meansTheBasicFeatures() throws {
        let old = try AutomaticKeys.makeProfile(
            identity: aliceIdentity, sessionKey: aliceSession.publicKey, room: "lobby", name: "alice")
        #expect(old == hex(WorkedExamples.AutomaticKeyMode.aliceProfile))
        guard case .valid(_, _, let features) = AutomaticKeys.checkProfile(old, room: "lobby", name: "alice") else {
            Issue.record("a version-1 profile was refused")
            return
        }
        #expect(features == .basic && features.names == ["files"])
    }

    @Test func unknownBits_andLaterFields_areIgnored_butSigned() throws {
        // Features 0, 9 and 255 (bits this version does not know but 0), then 5 bytes of later fields.
        var bits = [UInt8](repeating: 0, count: 32)
        bits[0] = 0x01
        bits[1] = 0x02
        bits[31] = 0x80
        let body = [UInt8(2)] + aliceIdentity.publicKey + aliceSession.publicKey + [32] + bits + [1, 2, 3, 4, 5]
        let signed = AutomaticKeys.featuresProfileSignedBytes(room: "lobby", name: "alice", body: body[...])
        let profile = body + (try aliceIdentity.signature(for: signed))
        guard case .valid(_, _, let features) = AutomaticKeys.checkProfile(profile, room: "lobby", name: "alice")
        else {
            Issue.record("a profile with unknown bits and later fields was refused")
            return
        }
        #expect(features.names == ["files"])
        #expect(features.contains(9) && features.contains(255) && !features.contains(1) && !features.contains(256))
        // The later fields are signed: changing one breaks the signature.
        var changed = profile
        changed[body.count - 1] ^= 1
        guard case .invalid = AutomaticKeys.checkProfile(changed, room: "lobby", name: "alice") else {
            Issue.record("a changed later field verified")
            return
        }
    }

    @Test func badProfiles_areInvalid_neverTrap() throws {
        let good = hex(Self.aliceProfile)
        var cases: [(String, [UInt8])] = []
        var flipped = good
        flipped[66] ^= 0x01  // the features byte: the signature covers it
        cases.append(("features changed", flipped))
        var tooMany = good
        tooMany[65] = 33
        cases.append(("count above 32", tooMany))
        var beyond = good
        beyond[65] = 2  // one more byte than the profile has before its signature ... and then some
        cases.append(("count beyond the profile", Array(beyond.prefix(130))))
        cases.append(("too short", Array(good.prefix(129))))
        cases.append(("empty features, short", [2] + Array(repeating: 0, count: 100)))
        var three = good
        three[0] = 3
        cases.append(("version 3", three))
        // A version-1 signature presented as version 2 (its room-length byte is where version 2 has 0x00).
        let old = hex(WorkedExamples.AutomaticKeyMode.aliceProfile)
        cases.append(("version-1 signature", [2] + old[1..<65] + [0] + old[65...]))
        for (label, profile) in cases {
            guard case .invalid = AutomaticKeys.checkProfile(profile, room: "lobby", name: "alice") else {
                Issue.record("\(label): accepted")
                continue
            }
        }
        #expect(AutomaticKeys.checkProfile([], room: "lobby", name: "alice") == .missing)
        // Every length from 0 to 200 with the version-2 byte: refused without a trap.
        for length in 1...200 {
            let profile = [UInt8(2)] + [UInt8](repeating: UInt8(length % 40), count: length - 1)
            if case .valid = AutomaticKeys.checkProfile(profile, room: "lobby", name: "alice") {
                Issue.record("garbage of \(length) bytes verified")
            }
        }
    }

    /// A member whose client takes no files (no inbox) says so; the others show it in `/who` and offer it no file:
    /// a send to it alone fails at once, and nothing is sent to the relay.
    @Test func memberTakingNoFiles_isShown_andOfferedNothing() throws {
        let harness = AutomaticHarness()
        let folder = InboxFolder()
        let file = folder.path + "/report.pdf"
        #expect(FileManager.default.createFile(atPath: file, contents: Data(repeating: 1, count: 3000)))
        let aliceOutput = EventCollector()
        let aliceSecurity = try AutomaticKeySecurity(
            identity: Ed25519PrivateKey(), name: "alice", room: "lobby", relay: "memory:1", knownPeers: KnownPeers())
        let alice = ChatRoom(
            name: "alice", room: "lobby", security: aliceSecurity,
            connection: startLink(
                on: harness.relayHarness.listener.connect(), pinning: harness.relayHarness.relayKey, loop: harness.loop),
            output: aliceOutput, loop: harness.loop, inbox: try Inbox(path: folder.path)
        ) { _ in }
        alice.start()
        harness.loop.runUntilIdle()
        let bob = try harness.join("bob", features: MemberFeatures([]))
        _ = try harness.join("carol", features: nil)  // a client before features: version-1 profile

        let statuses = aliceOutput.memberStatuses
        #expect(statuses.first { $0.name == "bob" }?.features == [])
        #expect(statuses.first { $0.name == "carol" }?.features == ["files"])
        #expect(aliceSecurity.features(of: "bob") == MemberFeatures(bits: []))
        #expect(aliceSecurity.features(of: "carol") == .basic)

        alice.submit(line: "/who")
        harness.loop.runUntilIdle()
        guard case .who(let members, _) = aliceOutput.events.last else {
            Issue.record("no /who answer")
            return
        }
        #expect(members.map(\.features) == [[], ["files"]])
        #expect(members[0].humanText.hasSuffix(" (takes no files)"))
        #expect(!members[1].humanText.contains("takes no files"))
        #expect(members[0].jsonFields.contains { $0.0 == "features" })

        alice.submit(line: "/send \(file) bob")
        harness.loop.runUntilIdle()
        #expect(
            aliceOutput.errors.last
                == "bob takes no files (its client says so: no inbox, or --accept-files none); nothing was offered")
        // To the room: only carol is a target; bob sees the group offer and declines it, and the sender does not
        // count him.
        alice.submit(line: "/send \(file)")
        harness.loop.runUntilIdle()
        let isOffer: (ClientEvent) -> Bool = { if case .fileFailed = $0 { true } else { false } }
        #expect(bob.output.events.filter(isOffer).count == 1)
        #expect(!aliceOutput.events.contains { if case .fileFailed(_, _, "bob", _) = $0 { true } else { false } })
    }

    /// The sender's side alone: members that take no files are left out of a room offer, and a room of only such
    /// members gets no offer at all.
    @Test func roomOffer_leavesOutMembersTakingNoFiles() throws {
        let folder = InboxFolder()
        let path = folder.path + "/report.pdf"
        #expect(FileManager.default.createFile(atPath: path, contents: Data(repeating: 1, count: 3000)))
        let host = RecordingTransferHost()
        host.ownName = "alice"
        let transfers = RecordedTransfers(host: host, inbox: nil, maximumFileSize: nil)
        host.record(transfers.transfers.send(path: path, to: nil, members: ["bob", "piper"], takingNoFiles: ["piper"]))
        guard case .fileOffer(let offer) = host.controls.last?.0 else {
            Issue.record("no offer")
            return
        }
        #expect(host.controls.last?.1 == nil)
        // bob declines: every target answered, so the sender is done at once (it does not wait for piper).
        transfers.handleControl(
            .fileReply(fileID: offer.fileID, accept: false, resumeFrom: 0, reason: "not wanted"), from: "bob",
            isPrivate: true)
        #expect(host.failures == ["bob declined: not wanted", "nobody accepted the file"])
        // piper's decline of the group offer is not counted.
        transfers.handleControl(
            .fileReply(fileID: offer.fileID, accept: false, resumeFrom: 0, reason: "piper takes no files"),
            from: "piper", isPrivate: true)
        #expect(host.failures.count == 2)

        let only = RecordingTransferHost()
        only.ownName = "alice"
        let alone = RecordedTransfers(host: only, inbox: nil, maximumFileSize: nil)
        only.record(alone.transfers.send(path: path, to: nil, members: ["piper"], takingNoFiles: ["piper"]))
        #expect(only.controls.isEmpty)
        #expect(
            only.events == [
                .error(
                    message: "nobody here takes files (their clients say so: no inbox, or --accept-files none); "
                        + "nothing was offered")
            ])
    }
}
