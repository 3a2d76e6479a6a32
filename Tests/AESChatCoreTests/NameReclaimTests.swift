import AESChatCLI
import AESChatCrypto
import AESChatTesting
import Foundation
import Testing

@testable import AESChatCore

/// Name reclaim (docs/PROTOCOL.md section 3.1): a new connection whose hello carries a claim of the key a name was
/// registered with, signed over its own link's handshake hash, takes the name over from a stale connection at once;
/// anything else is refused, and the refusal says when the name frees up.
@Suite struct NameReclaimTests {
    /// A claim key for `name` on `harness`'s relay, from a secret made of `secretByte`.
    static func claimKey(_ secretByte: UInt8, name: String = "bob", harness: RelayHarness) -> NameClaimKey {
        try! NameClaimKey(
            secret: SecretBytes([UInt8](repeating: secretByte, count: 32)), relayKey: harness.relayKey, name: name)
    }

    /// A peer whose link is up and whose handshake hash is known, before it says hello.
    static func linkedPeer(_ harness: RelayHarness) -> RawPeer {
        let peer = harness.peer()
        harness.loop.runUntilIdle()
        precondition(peer.connection.state == .linked && peer.connection.handshakeHash.count == 32)
        return peer
    }

    /// Says hello as `name` in `room` on `peer`, with `claim`.
    static func hello(
        _ peer: RawPeer, _ name: String = "bob", room: String = "lobby", claim: NameClaim?, harness: RelayHarness
    ) {
        peer.send(.hello(version: relayProtocolVersion, name: name, room: room, profile: [], claim: claim))
        harness.loop.runUntilIdle()
    }

    /// A member registered as `name` whose hello claimed it with `key` (signed for its own link).
    static func claimingMember(
        _ harness: RelayHarness, _ name: String = "bob", room: String = "lobby", key: NameClaimKey
    ) -> RawPeer {
        let peer = linkedPeer(harness)
        hello(
            peer, name, room: room, claim: try! key.claim(handshakeHash: peer.connection.handshakeHash),
            harness: harness)
        return peer
    }

    static func errorMessages(_ peer: RawPeer) -> [String] {
        peer.frames.compactMap {
            if case .error(_, let message) = $0 { return message }
            return nil
        }
    }

    static func relay(idleTimeout: Duration) -> RelayHarness {
        var configuration = RelayConfiguration()
        configuration.limits.idleTimeout = idleTimeout
        return RelayHarness(configuration: configuration)
    }

    // MARK: The relay

    @Test func sameKey_takesTheNameOverAtOnce_andTheStaleHolderIsToldWhy() {
        let harness = RelayHarness()
        let key = Self.claimKey(1, harness: harness)
        let stale = Self.claimingMember(harness, key: key)
        let carol = harness.member("carol")
        #expect(stale.frames.first == .welcome(version: relayProtocolVersion, name: "bob", room: "lobby", members: []))

        let fresh = Self.claimingMember(harness, key: Self.claimKey(1, harness: harness))

        #expect(
            fresh.frames == [
                .welcome(
                    version: relayProtocolVersion, name: "bob", room: "lobby", members: [MemberEntry(name: "carol")])
            ])
        #expect(stale.errors == [RelayErrorCode.nameReclaimed.rawValue])
        #expect(
            Self.errorMessages(stale)
                == [
                    "your name 'bob' was reclaimed by a new connection of the same key; this client stops here and "
                        + "does not reconnect"
                ])
        #expect(stale.closed)
        #expect(!fresh.closed)
        // The room sees the stale member leave, then the new connection join, in that order.
        #expect(Array(carol.frames.suffix(2)) == [.left(name: "bob"), .joined(MemberEntry(name: "bob"))])
        #expect(harness.relay.memberCount == 2)
        #expect(harness.log.lines.contains { $0.hasPrefix("bob reclaimed from") })
        // The new holder's claim key is the one kept: a third connection of the same key takes the name again.
        let third = Self.claimingMember(harness, key: key)
        #expect(third.frames.first?.isWelcome == true)
        #expect(fresh.errors == [RelayErrorCode.nameReclaimed.rawValue])
    }

    @Test func anotherKey_isRefusedWithWhenTheNameFreesUp_andTheHolderStays() {
        let harness = Self.relay(idleTimeout: .seconds(55))
        let holder = Self.claimingMember(harness, key: Self.claimKey(1, harness: harness))
        harness.loop.advance(by: .seconds(20))

        let other = Self.claimingMember(harness, key: Self.claimKey(2, harness: harness))

        #expect(other.errors == [RelayErrorCode.nameTaken.rawValue])
        #expect(
            Self.errorMessages(other)
                == [
                    "the name 'bob' is already in use in lobby; it frees up in about 90 s if its holder stays silent, "
                        + "or choose another with --name"
                ])
        #expect(other.closed)
        #expect(holder.errors.isEmpty && !holder.closed)
        #expect(harness.relay.memberCount == 1)
    }

    @Test func aHelloWithoutClaim_cannotTakeAClaimedName_andTheFreesUpTimeFollowsTheHoldersSilence() {
        let harness = Self.relay(idleTimeout: .seconds(55))
        let holder = Self.claimingMember(harness, key: Self.claimKey(1, harness: harness))
        harness.loop.advance(by: .seconds(70))  // pinged at 55 s, not answering
        #expect(holder.frames.contains { if case .ping = $0 { true } else { false } })
        let plain = harness.member("bob")
        #expect(plain.errors == [RelayErrorCode.nameTaken.rawValue])
        #expect(
            Self.errorMessages(plain).first?.contains("it frees up in about 40 s if its holder stays silent") == true)
        #expect(!holder.closed)
        // A frame from the holder starts its silence over.
        holder.send(.ping(token: 1))
        harness.loop.runUntilIdle()
        let later = harness.member("bob")
        #expect(Self.errorMessages(later).first?.contains("it frees up in about 110 s") == true)
    }

    @Test func theHoldersRoomIsNamedOnlyToAHelloForThatRoom() {
        let harness = Self.relay(idleTimeout: .seconds(55))
        _ = Self.claimingMember(harness, room: "secret-room", key: Self.claimKey(1, harness: harness))
        let elsewhere = harness.member("bob", room: "lobby")
        let message = Self.errorMessages(elsewhere).first ?? ""
        #expect(message.hasPrefix("the name 'bob' is already in use on this relay; it frees up in about 110 s"))
        #expect(!message.contains("secret-room"))
    }

    @Test func aNameRegisteredWithoutClaim_cannotBeTakenOver() {
        let harness = RelayHarness()
        let holder = harness.member("bob")
        let claimant = Self.claimingMember(harness, key: Self.claimKey(1, harness: harness))
        #expect(claimant.errors == [RelayErrorCode.nameTaken.rawValue])
        #expect(!holder.closed && holder.errors.isEmpty)
    }

    @Test func aClaimSignedForAnotherConnection_isRefused_andTheHolderStays() {
        let harness = RelayHarness()
        let key = Self.claimKey(1, harness: harness)
        let holder = Self.claimingMember(harness, key: key)
        // A genuine claim, made for a link of its own (say, recorded from an earlier connection), replayed on another.
        let recorded = Self.linkedPeer(harness)
        let claim = try! key.claim(handshakeHash: recorded.connection.handshakeHash)
        let replayer = Self.linkedPeer(harness)
        #expect(replayer.connection.handshakeHash != recorded.connection.handshakeHash)

        Self.hello(replayer, claim: claim, harness: harness)

        #expect(replayer.errors == [RelayErrorCode.invalidClaim.rawValue])
        #expect(
            Self.errorMessages(replayer)
                == ["the claim to the name 'bob' does not verify for this connection; the name stays with its holder"])
        #expect(replayer.closed)
        #expect(holder.errors.isEmpty && !holder.closed)
        // The holder's own key still takes it over on the connection the claim was made for.
        Self.hello(recorded, claim: claim, harness: harness)
        #expect(recorded.frames.first?.isWelcome == true)
        #expect(holder.errors == [RelayErrorCode.nameReclaimed.rawValue])
    }

    @Test func aBadSignature_underTheHoldersKey_isRefused() {
        let harness = RelayHarness()
        let key = Self.claimKey(1, harness: harness)
        let holder = Self.claimingMember(harness, key: key)

        // The holder's key with a signature changed in one bit.
        let flipped = Self.linkedPeer(harness)
        let genuine = try! key.claim(handshakeHash: flipped.connection.handshakeHash)
        var signature = genuine.signature
        signature[10] ^= 0x01
        Self.hello(flipped, claim: NameClaim(key: genuine.key, signature: signature), harness: harness)
        #expect(flipped.errors == [RelayErrorCode.invalidClaim.rawValue])

        // The holder's key with a signature by another key over the right message.
        let forged = Self.linkedPeer(harness)
        let other = try! Self.claimKey(2, harness: harness).claim(handshakeHash: forged.connection.handshakeHash)
        Self.hello(forged, claim: NameClaim(key: key.publicKey, signature: other.signature), harness: harness)
        #expect(forged.errors == [RelayErrorCode.invalidClaim.rawValue])

        // A signature for another name.
        let wrongName = Self.linkedPeer(harness)
        let alice = Self.claimKey(1, name: "alice", harness: harness)
        #expect(alice.publicKey != key.publicKey)
        let aliceClaim = try! alice.claim(handshakeHash: wrongName.connection.handshakeHash)
        Self.hello(wrongName, claim: NameClaim(key: key.publicKey, signature: aliceClaim.signature), harness: harness)
        #expect(wrongName.errors == [RelayErrorCode.invalidClaim.rawValue])

        #expect(holder.errors.isEmpty && !holder.closed)
        #expect(harness.relay.memberCount == 1)
    }

    @Test func aFreeName_isRegisteredWithItsClaim_withoutCheckingIt() {
        // Verified only when acted on: a claim nobody can use against anyone costs the relay nothing.
        let harness = RelayHarness()
        let key = Self.claimKey(1, harness: harness)
        let peer = Self.linkedPeer(harness)
        Self.hello(
            peer, claim: NameClaim(key: key.publicKey, signature: [UInt8](repeating: 0, count: 64)), harness: harness)
        #expect(peer.frames.first?.isWelcome == true)
        #expect(harness.relay.directory.claimKey(of: "bob") == key.publicKey)
        // Only the key's owner can take it over then; the name's claim key goes with its holder.
        let owner = Self.claimingMember(harness, key: key)
        #expect(owner.frames.first?.isWelcome == true)
        owner.connection.close()
        harness.loop.runUntilIdle()
        #expect(harness.relay.directory.claimKey(of: "bob") == nil)
    }

    @Test func theHandshakeHashKeptUntilHello_costsAConnectionNoMoreState() {
        // The hash waits in the link stage, which stays one reference wide with it (RelayLink.swift), and is dropped
        // at registration.
        #expect(MemoryLayout<LinkStage>.size == 8)
        let harness = RelayHarness()
        let peer = Self.linkedPeer(harness)
        let relayEnd = peer.memory.otherEnd?.handler as? RelayConnection
        #expect(relayEnd?.handshakeHash == peer.connection.handshakeHash)
        Self.hello(peer, claim: nil, harness: harness)
        #expect(relayEnd?.name == "bob")
        #expect(relayEnd?.handshakeHash == nil)
    }

    // MARK: The wire

    @Test func hello_withClaim_roundTrips_andAMalformedClaimIsRefused() throws {
        let claim = NameClaim(key: [UInt8](repeating: 7, count: 32), signature: [UInt8](repeating: 9, count: 64))
        let hello = ClientFrame.hello(version: 2, name: "bob", room: "lobby", profile: [1, 2], claim: claim)
        let encoded = hello.encoded()
        // length ‖ 01 ‖ 0002 ‖ 03 "bob" ‖ 05 "lobby" ‖ 0002 0102 ‖ 01 ‖ key ‖ signature
        let plain = ClientFrame.hello(version: 2, name: "bob", room: "lobby", profile: [1, 2]).encoded()
        #expect(Array(encoded.dropFirst(4).prefix(plain.count - 4)) == Array(plain.dropFirst(4)))
        #expect(Array(encoded.suffix(97)) == [0x01] + claim.key + claim.signature)
        #expect(encoded.count == plain.count + 97)
        var decoder = FrameDecoder()
        let frames = decoder.frames(after: encoded).frames
        #expect(try ClientFrame(frames[0]) == hello)

        let body = Array(encoded.dropFirst(5))
        func parse(_ body: [UInt8]) throws(WireError) -> ClientFrame {
            try ClientFrame(Frame(type: FrameType.hello, body: ArraySlice(body)))
        }
        #expect(
            try parse(Array(plain.dropFirst(5))) == .hello(version: 2, name: "bob", room: "lobby", profile: [1, 2]))
        var otherKind = body
        otherKind[body.count - 97] = 0x02
        #expect(throws: WireError.malformed("hello claim of unknown kind 2")) { try parse(otherKind) }
        #expect(throws: WireError.self) { try parse(Array(body.dropLast())) }
        #expect(throws: WireError.self) { try parse(body + [0]) }
        #expect(throws: WireError.self) { try parse(Array(plain.dropFirst(5)) + [0x01]) }
    }

    @Test func aHelloWithAMalformedClaim_isRefusedAsMalformed() {
        let harness = RelayHarness()
        let peer = Self.linkedPeer(harness)
        // A claim of the right kind cut short after one byte of its key.
        let frame = Frame.encode(type: FrameType.hello) {
            $0.write(relayProtocolVersion)
            $0.writeShortString("bob")
            $0.writeShortString("lobby")
            $0.writeBytes16([])
            $0.write(NameClaim.kind)
            $0.write(UInt8(2))
        }
        peer.connection.write(frame)
        harness.loop.runUntilIdle()
        #expect(peer.errors == [RelayErrorCode.malformedFrame.rawValue])
    }

    // MARK: The claim key

    @Test func claimKeys_dependOnSecretRelayAndName_andSignOnlyTheirOwnMessage() throws {
        let harness = RelayHarness()
        let bob = Self.claimKey(1, harness: harness)
        #expect(Self.claimKey(1, harness: harness).publicKey == bob.publicKey)
        #expect(Self.claimKey(2, harness: harness).publicKey != bob.publicKey)
        #expect(Self.claimKey(1, name: "bobby", harness: harness).publicKey != bob.publicKey)
        let otherRelay = try NameClaimKey(
            secret: SecretBytes([UInt8](repeating: 1, count: 32)),
            relayKey: try RelayPublicKey(bytes: [UInt8](repeating: 5, count: 32)), name: "bob")
        #expect(otherRelay.publicKey != bob.publicKey)
        // The seed is not the secret itself: an identity key used as the secret is not the claim key.
        let identity = try Ed25519PrivateKey(seed: [UInt8](repeating: 1, count: 32))
        #expect(identity.publicKey != bob.publicKey)

        let hash = [UInt8](repeating: 3, count: 32)
        let claim = try bob.claim(handshakeHash: hash)
        #expect(NameClaimKey.verify(claim, handshakeHash: hash, name: "bob"))
        #expect(!NameClaimKey.verify(claim, handshakeHash: [UInt8](repeating: 4, count: 32), name: "bob"))
        #expect(!NameClaimKey.verify(claim, handshakeHash: hash, name: "bobby"))
        #expect(
            NameClaimKey.signedMessage(handshakeHash: hash, name: "bob")
                == Array("aeschat/2 name claim".utf8) + hash + [3] + Array("bob".utf8))
    }

    @Test func joinMode_claimKeys_fromTheIdentity_orFromTheNameKeyFileInPreSharedKeyMode() throws {
        let folder = TemporaryFolder()
        let relayKey = try RelayPublicKey(bytes: [UInt8](repeating: 5, count: 32))
        let roomKey = JoinMode.Keys.roomKey(RoomKey(bytes: Array(0..<32)))

        let first = try JoinMode.makeNameClaimKey(roomKey, relayKey: relayKey, name: "bob", folder: folder.path).get()
        let path = folder.file(JoinMode.nameKeyFileName)
        let mode = try FileManager.default.attributesOfItem(atPath: path)[.posixPermissions] as? Int
        #expect(mode == 0o600)
        let again = try JoinMode.makeNameClaimKey(roomKey, relayKey: relayKey, name: "bob", folder: folder.path).get()
        #expect(again.publicKey == first.publicKey)
        let elsewhere = TemporaryFolder()
        let another = try JoinMode.makeNameClaimKey(roomKey, relayKey: relayKey, name: "bob", folder: elsewhere.path)
            .get()
        #expect(another.publicKey != first.publicKey)

        let identity = Identity(key: try Ed25519PrivateKey(seed: [UInt8](repeating: 8, count: 32)))
        let automatic = JoinMode.Keys.automatic(identity, KnownPeers())
        let fromIdentity = try JoinMode.makeNameClaimKey(
            automatic, relayKey: relayKey, name: "bob", folder: folder.path
        )
        .get()
        let sameIdentity = JoinMode.Keys.automatic(
            Identity(key: try Ed25519PrivateKey(seed: [UInt8](repeating: 8, count: 32))), KnownPeers())
        #expect(
            try JoinMode.makeNameClaimKey(sameIdentity, relayKey: relayKey, name: "bob", folder: elsewhere.path).get()
                .publicKey == fromIdentity.publicKey)
        #expect(fromIdentity.publicKey != first.publicKey)
        #expect(fromIdentity.publicKey != identity.publicKey)

        // A name key file that is not a key stops the client with a data error.
        let broken = TemporaryFolder()
        _ = FileManager.default.createFile(atPath: broken.file(JoinMode.nameKeyFileName), contents: Data("junk\n".utf8))
        _ = chmod(broken.file(JoinMode.nameKeyFileName), 0o600)
        guard
            case .failure(let failure) = JoinMode.makeNameClaimKey(
                roomKey, relayKey: relayKey, name: "bob", folder: broken.path)
        else {
            Issue.record("a broken name key file was accepted")
            return
        }
        #expect(failure.code == .dataError)
    }
}

extension RelayFrame {
    var isWelcome: Bool {
        if case .welcome = self { return true }
        return false
    }
}

/// Two live clients of one key (two windows of the same user, say): the newer takes the name, and the older stops
/// instead of taking it back, so they do not take it from each other in turn.
@Suite struct NameReclaimClientTests {
    /// A reconnecting client on `harness`'s relay (direct in-memory connections) in pre-shared-key mode, claiming its
    /// name with `claimKey`.
    final class Client {
        let output = EventCollector()
        var outcome: ReconnectingSession.Outcome?
        var session: ReconnectingSession!

        init(_ harness: RelayHarness, name: String = "bob", claimKey: NameClaimKey?) {
            let roomKey = RoomKey(bytes: Array(0..<32))
            let loop = harness.loop
            let output = output
            session = ReconnectingSession(
                output: output, loop: loop, link: RelayLinkConfiguration(relayKey: harness.relayKey, relay: "memory"),
                connect: { completion in harness.listener.connect { completion($0.map { $0 as any Connection }) } },
                makeSecurity: { _ in RoomKeySecurity(roomKey: roomKey, room: "lobby", name: name) },
                makeClient: { security, connection, recent, ended in
                    ChatRoom(
                        name: name, room: "lobby", security: security, connection: connection, output: output,
                        loop: loop, recentMessageIDs: recent, onFinish: ended)
                },
                random: { 1.0 }, fatal: { _ in }, onFinish: { [unowned self] in self.outcome = $0 })
            session.nameClaimKey = claimKey
            session.start()
            loop.runUntilIdle()
        }

        var isReady: Bool { output.events.contains { if case .ready = $0 { true } else { false } } }
        var reconnects: Int { output.events.filter { if case .reconnecting = $0 { true } else { false } }.count }
        var errors: [String] {
            output.events.compactMap {
                if case .error(let message) = $0 { return message }
                return nil
            }
        }
    }

    @Test func theNewerOfTwoLiveClientsKeepsTheName_andTheOlderStopsAndSaysWhy() {
        let harness = RelayHarness()
        let key = NameReclaimTests.claimKey(1, harness: harness)
        let older = Client(harness, claimKey: key)
        #expect(older.isReady)
        let newer = Client(harness, claimKey: NameReclaimTests.claimKey(1, harness: harness))
        #expect(newer.isReady)

        // Long enough for any backoff to have tried many times over.
        for _ in 0..<60 { harness.loop.advance(by: .seconds(1)) }

        #expect(older.outcome == .unavailable)
        #expect(JoinMode.exitCode(for: older.outcome!) == .unavailable)
        #expect(older.errors.contains { $0.contains("reclaimed by a new connection of the same key") })
        #expect(older.reconnects == 0)
        #expect(newer.outcome == nil && newer.errors.isEmpty && newer.reconnects == 0)
        #expect(harness.log.lines.filter { $0.contains("reclaimed from") }.count == 1)
        #expect(harness.relay.memberCount == 1)
    }

    @Test func aClientWhoseStaleConnectionHoldsTheName_getsItBackAtOnce() {
        let harness = RelayHarness()
        // The stale connection: registered with the key, and silent from now on (a frozen laptop).
        let stale = NameReclaimTests.claimingMember(harness, key: NameReclaimTests.claimKey(1, harness: harness))
        let client = Client(harness, claimKey: NameReclaimTests.claimKey(1, harness: harness))
        #expect(client.isReady)
        #expect(client.errors.isEmpty)
        #expect(stale.errors == [RelayErrorCode.nameReclaimed.rawValue])
    }

    @Test func anotherKeysClient_isRefusedAndToldWhenTheNameFreesUp() {
        let harness = NameReclaimTests.relay(idleTimeout: .seconds(55))
        let holder = NameReclaimTests.claimingMember(harness, key: NameReclaimTests.claimKey(1, harness: harness))
        let client = Client(harness, claimKey: NameReclaimTests.claimKey(2, harness: harness))
        #expect(!client.isReady)
        #expect(client.outcome == .unavailable)
        #expect(client.errors.first?.contains("it frees up in about 110 s if its holder stays silent") == true)
        #expect(!holder.closed)
    }
}

/// The worked example of docs/PROTOCOL.md section 9.4, computed independently (Python's `cryptography`).
@Suite struct NameClaimVectorTests {
    @Test func workedExample_matchesTheProtocolDocument() throws {
        let secret = SHA256.hash(Array("aeschat worked example: name claim secret".utf8))
        #expect(Hex.encode(secret) == "00fa31acc9b0b8e10a37337a1cb93fb1fad1f8fba9afc9a30f976d038de16eff")
        let relayKey = try RelayPublicKey(
            bytes: Hex.decode("2527c9eab1128871043ef684e844c187d41fcc3abcc6bdb4233b913b2ae9bd15")!)
        let hash = Hex.decode("5303a7f603524cbcfd0537d79647b1c076aeec0478c6d0b8bd815d0399f80260")!
        let key = try NameClaimKey(secret: SecretBytes(secret), relayKey: relayKey, name: "alice")
        #expect(Hex.encode(key.publicKey) == "3cd34d9af2d3d9668569ede35e2f9345d9d272242683530f9832a763d017fa73")
        let claim = try key.claim(handshakeHash: hash)
        #expect(
            Hex.encode(claim.signature)
                == "0f4bd6cc2ddbd581c133f8f49d7053cf6ac08372c40622feefd4fff2bffcdb2d"
                + "eaff743b3819aea8e9fe562f924052d406a391440b4736859c8a967e7c735204")
        #expect(NameClaimKey.verify(claim, handshakeHash: hash, name: "alice"))
        let hello = ClientFrame.hello(version: 2, name: "alice", room: "lobby", profile: [], claim: claim).encoded()
        #expect(
            Hex.encode(hello)
                == "0000007201000205616c696365056c6f62627900000"
                + "13cd34d9af2d3d9668569ede35e2f9345d9d272242683530f9832a763d017fa73"
                + "0f4bd6cc2ddbd581c133f8f49d7053cf6ac08372c40622feefd4fff2bffcdb2d"
                + "eaff743b3819aea8e9fe562f924052d406a391440b4736859c8a967e7c735204")
        #expect(hello.count == 118)
    }
}
