import AESChatCrypto
import Foundation
import Testing

@testable import AESChatCore

/// A fresh folder under the temporary directory, removed at deinit.
final class TemporaryFolder {
    let path: String
    init() {
        path = FileManager.default.temporaryDirectory.appendingPathComponent("aeschat-\(UUID().uuidString)").path
        try? FileManager.default.createDirectory(
            atPath: path, withIntermediateDirectories: true, attributes: [.posixPermissions: 0o700])
    }
    deinit {
        _ = chmod(path, 0o700)
        try? FileManager.default.removeItem(atPath: path)
    }
    func file(_ name: String) -> String { path + "/" + name }
    func bytes(_ name: String) -> [UInt8]? { FileManager.default.contents(atPath: file(name)).map(Array.init) }
}

/// The trust store on disk: what it refuses to read, how little it writes, and what a pin covers.
@Suite struct KnownPeersTests {
    static let key = Array(repeating: UInt8(0xAB), count: 32)
    static let otherKey = Array(repeating: UInt8(0xCD), count: 32)

    // MARK: Failing closed (issue 11, item 7)

    @Test func existingFileThatCannotBeRead_isAnError_andIsNeverWritten() throws {
        let folder = TemporaryFolder()
        let verified = "127.0.0.1:7777 bob \(Hex.encode(Self.key)) verified\n"
        let oversize = folder.file("oversize")
        try Data(verified.utf8).write(to: URL(fileURLWithPath: oversize))
        #expect(truncate(oversize, off_t(KnownPeers.maximumFileSize + 1)) == 0)
        let directory = folder.file("directory")
        try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: false)
        let binary = folder.file("binary")
        try Data(verified.utf8 + [0xFF, 0xFE, 0x00, 0x80]).write(to: URL(fileURLWithPath: binary))
        let garbage = folder.file("garbage")
        try Data((verified + "127.0.0.1:7777 carol \(Hex.encode(Self.key).dropLast(3)) verified\n").utf8).write(
            to: URL(fileURLWithPath: garbage))
        let cases: [(String, String)] = [
            (oversize, "larger than 16777216 bytes"), (directory, "not a regular file"), (binary, "not text"),
            (garbage, "line 2 is not a pin"),
        ]
        for (path, reason) in cases {
            let before = FileManager.default.contents(atPath: path)
            do {
                _ = try KnownPeers(path: path)
                Issue.record("'\(path)' was read as a trust store")
            } catch {
                #expect(error.description.contains("'\(path)'") && error.description.contains(reason), "\(error)")
                #expect(!error.description.contains("\n"))
            }
            #expect(FileManager.default.contents(atPath: path) == before)
        }
        // A missing file is an empty store, made at the first pin.
        let fresh = try KnownPeers(path: folder.file("missing/known_peers"))
        #expect(fresh.pin(relay: "r", name: "bob") == nil)
        #expect(fresh.pinFirstSeen(Self.key, relay: "r", name: "bob") == .pinned)
        #expect(try KnownPeers(path: folder.file("missing/known_peers")).pin(relay: "r", name: "bob") != nil)
    }

    // MARK: Cost of a welcome (issue 11, item 6)

    @Test func welcomeOf16384NewNames_isOneAppend_andPinsOnlyTheSessionsLimit() throws {
        let folder = TemporaryFolder()
        let path = folder.file("known_peers")
        // A pin the user verified before, which the welcome must not disturb.
        try Data("127.0.0.1:7777 alice \(Hex.encode(Self.key)) verified\n".utf8).write(to: URL(fileURLWithPath: path))
        let sizeBefore = try #require(folder.bytes("known_peers")).count
        let store = try KnownPeers(path: path)
        let security = try AutomaticKeySecurity(
            identity: Ed25519PrivateKey(), name: "me", room: "lobby", relay: "127.0.0.1:7777", knownPeers: store)
        // 16,384 members (the client's cap) under one identity; each profile is signed for its name and
        // has a session key of its own (a session key seen twice is refused as a replay).
        let identity = Ed25519PrivateKey()
        let members = try (0..<RelaySession.maximumMembers - 1).map { index in
            let name = "m\(index)"
            let sessionKey = SHA256.hash(Array("session key \(index)".utf8))
            return MemberEntry(
                name: name,
                profile: try AutomaticKeys.makeProfile(
                    identity: identity, sessionKey: sessionKey, room: "lobby", name: name))
        }
        let outbox = RecordingOutbox()
        let clock = ContinuousClock()
        let elapsed = clock.measure { outbox.record(security.didRegister(members: members)) }
        print("welcome of \(members.count) members with a file-backed store: \(elapsed)")

        let limit = KnownPeers.defaultNewPinLimit
        #expect(store.appendCount == 1)
        #expect(store.newPinCount == limit)
        let lineLength = KnownPeers.line(
            relay: "127.0.0.1:7777", name: "m0", pin: PeerPin(identityKey: Self.key, state: .unverified)
        ).utf8.count
        // Names m0…m999 are 2 to 4 characters long: at most `limit` lines of at most that length + 2.
        let sizeAfter = try #require(folder.bytes("known_peers")).count
        #expect(store.appendedByteCount == sizeAfter - sizeBefore)
        #expect(sizeAfter - sizeBefore <= limit * (lineLength + 2))
        #expect(String(decoding: folder.bytes("known_peers")!, as: UTF8.self).split(separator: "\n").count == limit + 1)
        // Every member is shown, the unpinned ones as new too; the user is told once.
        let statuses = outbox.events.compactMap { if case .member(let status) = $0 { status } else { nil } }
        #expect(statuses.count == members.count && statuses.allSatisfy { $0.trust == .new })
        let notices = outbox.events.compactMap { if case .info(let text) = $0 { text } else { nil } }
        #expect(notices.count == 1 && notices[0].contains("no longer pinned"))
        // The pins written are the first ones, and they read back.
        let reread = try KnownPeers(path: path)
        #expect(reread.pin(relay: "127.0.0.1:7777", name: "m0")?.state == .unverified)
        #expect(reread.pin(relay: "127.0.0.1:7777", name: "m\(limit)") == nil)
        #expect(reread.pin(relay: "127.0.0.1:7777", name: "alice")?.state == .verified)
    }

    @Test func welcomeWithTwoChangedKeys_announcesHoldingOnce_afterEveryMember() throws {
        let folder = TemporaryFolder()
        let path = folder.file("known_peers")
        // Bob and carol were verified under a key that is no longer theirs; dave is new.
        let pins = ["bob", "carol"].map { "127.0.0.1:7777 \($0) \(Hex.encode(Self.key)) verified\n" }.joined()
        try Data(pins.utf8).write(to: URL(fileURLWithPath: path))
        let security = try AutomaticKeySecurity(
            identity: Ed25519PrivateKey(), name: "me", room: "lobby", relay: "127.0.0.1:7777",
            knownPeers: try KnownPeers(path: path))
        let members = try ["bob", "carol", "dave"].map { name in
            MemberEntry(
                name: name,
                profile: try AutomaticKeys.makeProfile(
                    identity: Ed25519PrivateKey(), sessionKey: SHA256.hash(Array("session \(name)".utf8)),
                    room: "lobby", name: name))
        }
        let outbox = RecordingOutbox()
        outbox.record(security.didRegister(members: members))
        let events = outbox.events
        let holdings = events.indices.filter { if case .holding = events[$0] { true } else { false } }
        let lastMember = events.lastIndex { if case .member = $0 { true } else { false } }
        // One announcement for the whole welcome, naming both, after the last member's status.
        #expect(holdings.count == 1)
        #expect(holdings.first.map { events[$0] } == .holding(members: ["bob", "carol"]))
        #expect(lastMember != nil && holdings.allSatisfy { $0 > lastMember! })
    }

    @Test func batchOf16384NewNames_withoutASessionLimit_isStillOneAppendOfOneLineEach() throws {
        let folder = TemporaryFolder()
        let path = folder.file("known_peers")
        let store = try KnownPeers(path: path, newPinLimit: .max)
        let names = (0..<16_384).map { "member-\($0)" }
        let elapsed = ContinuousClock().measure {
            store.batch {
                for name in names {
                    #expect(store.pinFirstSeen(Self.key, relay: "127.0.0.1:7777", name: name) == .pinned)
                }
            }
        }
        let bytes = try #require(folder.bytes("known_peers"))
        print("16,384 new pins in one batch: \(store.appendCount) append, \(bytes.count) bytes, \(elapsed)")
        #expect(store.appendCount == 1)
        let expected = names.map {
            KnownPeers.line(relay: "127.0.0.1:7777", name: $0, pin: PeerPin(identityKey: Self.key, state: .unverified))
        }.joined()
        #expect(bytes == Array(expected.utf8))
        #expect(try KnownPeers(path: path).pin(relay: "127.0.0.1:7777", name: "member-16383") != nil)
    }

    @Test func pinsAreAppended_andWrittenOnlyWhenTheyChange() throws {
        let folder = TemporaryFolder()
        let path = folder.file("known_peers")
        let store = try KnownPeers(path: path)
        #expect(store.pinFirstSeen(Self.key, relay: "r", name: "bob") == .pinned)
        let afterFirst = try #require(folder.bytes("known_peers"))
        for _ in 0..<3 { store.noteMessaged(Self.key, relay: "r", name: "bob") }
        for _ in 0..<3 { store.trust(Self.key, relay: "r", name: "bob") }
        // A key other than the pinned one is not marked messaged.
        store.noteMessaged(Self.otherKey, relay: "r", name: "bob")
        #expect(store.appendCount == 3)
        let after = try #require(folder.bytes("known_peers"))
        #expect(Array(after.prefix(afterFirst.count)) == afterFirst)
        #expect(
            String(decoding: after, as: UTF8.self)
                == ["unverified", "messaged", "verified"].map { "r bob \(Hex.encode(Self.key)) \($0)\n" }.joined())
        #expect(try KnownPeers(path: path).pin(relay: "r", name: "bob")?.state == .verified)
        var status = stat()
        #expect(stat(path, &status) == 0 && status.st_mode & 0o777 == 0o600)
    }

    @Test func fileWithoutAFinalNewline_getsItsNextPinOnALineOfItsOwn() throws {
        let folder = TemporaryFolder()
        let path = folder.file("known_peers")
        try Data("r bob \(Hex.encode(Self.key)) verified".utf8).write(to: URL(fileURLWithPath: path))
        let store = try KnownPeers(path: path)
        _ = store.pinFirstSeen(Self.otherKey, relay: "r", name: "carol")
        let reread = try KnownPeers(path: path)
        #expect(reread.pin(relay: "r", name: "bob")?.state == .verified)
        #expect(reread.pin(relay: "r", name: "carol")?.identityKey == Self.otherKey)
    }

    // MARK: What a pin covers (issue 11, item 8)

    @Test func firstFormatLines_pinTheNameInEveryRoom_underTheRelayAsTypedOrItsIdentity() throws {
        let folder = TemporaryFolder()
        let path = folder.file("known_peers")
        let text =
            "127.0.0.1:7777 lobby bob \(Hex.encode(Self.key)) verified\n"
            + "localhost:7777 ops carol \(Hex.encode(Self.otherKey)) unverified\n"
        try Data(text.utf8).write(to: URL(fileURLWithPath: path))
        let store = try KnownPeers(path: path)
        #expect(store.pin(relay: "127.0.0.1:7777", name: "bob") == PeerPin(identityKey: Self.key, state: .verified))
        #expect(store.pin(relay: "127.0.0.1:7777", name: "carol") == nil)
        store.legacyRelayNames = ["localhost:7777"]
        #expect(store.pin(relay: "127.0.0.1:7777", name: "carol")?.identityKey == Self.otherKey)
        // Messaging carol moves her pin to the new format, under the relay identity; the old lines stay.
        store.noteMessaged(Self.otherKey, relay: "127.0.0.1:7777", name: "carol")
        let after = String(decoding: try #require(folder.bytes("known_peers")), as: UTF8.self)
        #expect(after == text + "127.0.0.1:7777 carol \(Hex.encode(Self.otherKey)) messaged\n")
        #expect(try KnownPeers(path: path).pin(relay: "127.0.0.1:7777", name: "carol")?.state == .messaged)
    }

    @Test func relayIdentity_isTheRelayKeysFingerprint_withoutSpaces() throws {
        let key = try RelayPublicKey(bytes: Array(0..<32))
        #expect(KnownPeers.relayIdentity(of: key) == "relay-543bcbbf75962b435b78d432d912d096")
        #expect(!KnownPeers.relayIdentity(of: key).contains(" "))
        let other = try RelayPublicKey(bytes: Array(repeating: 1, count: 32))
        #expect(KnownPeers.relayIdentity(of: other) != KnownPeers.relayIdentity(of: key))
    }

    @Test func pinsUnderTheAddressOrAnEarlierKey_areFoundThroughLegacyNames_andNewPinsGoUnderTheKey() throws {
        let folder = TemporaryFolder()
        let path = folder.file("known_peers")
        let relay = KnownPeers.relayIdentity(of: try RelayPublicKey(bytes: Array(0..<32)))
        let earlier = KnownPeers.relayIdentity(of: try RelayPublicKey(bytes: Array(repeating: 1, count: 32)))
        let text =
            "127.0.0.1:7777 bob \(Hex.encode(Self.key)) verified\n"
            + "\(earlier) carol \(Hex.encode(Self.otherKey)) messaged\n"
            + "\(earlier) bob \(Hex.encode(Self.otherKey)) unverified\n"
        try Data(text.utf8).write(to: URL(fileURLWithPath: path))
        let store = try KnownPeers(path: path)
        #expect(store.pin(relay: relay, name: "bob") == nil)
        store.legacyRelayNames = [earlier, "127.0.0.1:7777", "localhost:7777"]
        // The earlier key's pins come first, then the address's.
        #expect(store.pin(relay: relay, name: "bob") == PeerPin(identityKey: Self.otherKey, state: .unverified))
        #expect(store.pin(relay: relay, name: "carol") == PeerPin(identityKey: Self.otherKey, state: .messaged))
        store.legacyRelayNames = ["127.0.0.1:7777"]
        #expect(store.pin(relay: relay, name: "bob") == PeerPin(identityKey: Self.key, state: .verified))
        // Without the aliases (another relay's key at the same address), they are not its pins.
        store.legacyRelayNames = []
        #expect(store.pin(relay: relay, name: "bob") == nil)
        store.trust(Self.otherKey, relay: relay, name: "dave")
        let after = String(decoding: try #require(folder.bytes("known_peers")), as: UTF8.self)
        #expect(after == text + "\(relay) dave \(Hex.encode(Self.otherKey)) verified\n")
    }

    @Test func relayIdentity_isTheNumericAddressConnectedTo_withMappedIPv4AsIPv4() {
        #expect(KnownPeers.relayIdentity(connectedTo: "127.0.0.1:7777") == "127.0.0.1:7777")
        #expect(KnownPeers.relayIdentity(connectedTo: "[::1]:7777") == "[::1]:7777")
        #expect(KnownPeers.relayIdentity(connectedTo: "[::ffff:127.0.0.1]:7777") == "127.0.0.1:7777")
        #expect(KnownPeers.relayIdentity(connectedTo: "[::FFFF:10.0.0.1]:80") == "10.0.0.1:80")
    }

    @Test func relayIdentity_ofARealConnection_isTheSameForLocalhostAnd127001() throws {
        let loop = try PosixEventLoop()
        let listener = try TCPListener(host: "127.0.0.1", port: 0, loop: loop)
        defer { listener.close() }
        let viaNumber = try TCPConnection.connectNow(host: "127.0.0.1", port: listener.localPort, loop: loop)
        let viaName = try TCPConnection.connectNow(host: "localhost", port: listener.localPort, loop: loop)
        defer {
            viaNumber.close()
            viaName.close()
        }
        #expect(KnownPeers.relayIdentity(connectedTo: viaName.peerDescription) == "127.0.0.1:\(listener.localPort)")
        #expect(
            KnownPeers.relayIdentity(connectedTo: viaName.peerDescription)
                == KnownPeers.relayIdentity(connectedTo: viaNumber.peerDescription))
    }
}
