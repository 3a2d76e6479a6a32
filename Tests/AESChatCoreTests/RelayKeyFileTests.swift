import AESChatCLI
import AESChatCrypto
import Foundation
import Testing

@testable import AESChatCore

/// The relay's key file: made once with mode 0600 in a 0700 folder, never overwritten, never followed through a
/// link, and a file that is there but unusable stops the relay.
@Suite struct RelayKeyFileTests {
    static let scalarHex = String(repeating: "5a", count: 32)

    @Test func firstStart_makesTheKey_0600_inA0700Folder_andLaterStartsReadTheSameKey() throws {
        let folder = TemporaryFolder()
        let path = folder.file("config/aeschat/relay-key")
        var made: [String] = []
        let key = try RelayKeyFile.loadOrCreate(path: path, created: { made.append($0) })
        #expect(made == [path])
        #expect(try mode(of: path) == 0o600)
        #expect(try mode(of: folder.file("config/aeschat")) == 0o700)
        let text = String(decoding: try #require(FileManager.default.contents(atPath: path)), as: UTF8.self)
        #expect(text.hasPrefix("aeschat-relay-key-v1 ") && text.hasSuffix("\n") && text.count == 21 + 64 + 1)
        let again = try RelayKeyFile.loadOrCreate(path: path, created: { made.append($0) })
        #expect(again.publicKey == key.publicKey)
        #expect(made == [path])
        #expect(try RelayKeyFile.load(path: path).publicKey == key.publicKey)
    }

    @Test func parse_readsTheScalar_andRefusesEveryOtherShape() throws {
        let key = try RelayKeyFile.parse("aeschat-relay-key-v1 \(Self.scalarHex)\n", path: "k")
        #expect(key.publicKey == (try X25519PrivateKey(rawRepresentation: Array(repeating: 0x5a, count: 32))).publicKey)
        let bad = [
            "", "aeschat-relay-key-v1", "aeschat-identity-v1 \(Self.scalarHex)",
            "aeschat-relay-key-v2 \(Self.scalarHex)",
            "aeschat-relay-key-v1 \(Self.scalarHex)00", "aeschat-relay-key-v1 \(Self.scalarHex.dropLast())",
            "aeschat-relay-key-v1 " + String(repeating: "g", count: 64), Self.scalarHex,
            "aeschat-relay-key-v1 \(Self.scalarHex) extra",
        ]
        for text in bad {
            #expect(throws: KeyFileError.self) { try RelayKeyFile.parse(text, path: "k") }
        }
    }

    @Test func existingFileThatIsMalformed_stopsTheRelay_andIsNeverReplaced() throws {
        let folder = TemporaryFolder()
        let path = folder.file("relay-key")
        try Data("not a key\n".utf8).write(to: URL(fileURLWithPath: path))
        #expect {
            try RelayKeyFile.loadOrCreate(path: path)
        } throws: { error in
            guard let error = error as? KeyFileError, case .malformed(.relayKey, path, _) = error else { return false }
            return error.description.contains("does not start with a new key")
        }
        #expect(folder.bytes("relay-key") == Array("not a key\n".utf8))
    }

    @Test func existingFileThatCannotBeRead_stopsTheRelay() throws {
        guard getuid() != 0 else { return }  // root reads anything
        let folder = TemporaryFolder()
        let path = folder.file("relay-key")
        let key = try RelayKeyFile.loadOrCreate(path: path)
        _ = key
        chmod(path, 0o000)
        #expect(throws: KeyFileError.self) { try RelayKeyFile.loadOrCreate(path: path) }
        chmod(path, 0o600)
    }

    @Test func symbolicLink_isNeverFollowed_forReadingOrMaking() throws {
        let folder = TemporaryFolder()
        let target = folder.file("real-key")
        let original = try RelayKeyFile.loadOrCreate(path: target)
        let link = folder.file("relay-key")
        try FileManager.default.createSymbolicLink(atPath: link, withDestinationPath: target)
        #expect {
            try RelayKeyFile.loadOrCreate(path: link)
        } throws: { error in
            guard let error = error as? KeyFileError, case .unreadable(.relayKey, link, let reason) = error else {
                return false
            }
            return reason.contains("symbolic link")
        }
        // A dangling link is not a missing file: nothing is made through it.
        let dangling = folder.file("dangling")
        try FileManager.default.createSymbolicLink(atPath: dangling, withDestinationPath: folder.file("nowhere"))
        #expect(throws: KeyFileError.self) { try RelayKeyFile.loadOrCreate(path: dangling) }
        #expect(!FileManager.default.fileExists(atPath: folder.file("nowhere")))
        #expect(try RelayKeyFile.load(path: target).publicKey == original.publicKey)
    }

    @Test func write_neverReplacesAFile() throws {
        let folder = TemporaryFolder()
        let path = folder.file("relay-key")
        try Data("keep me".utf8).write(to: URL(fileURLWithPath: path))
        #expect(throws: KeyFileError.alreadyExists(.relayKey, path: path)) {
            try RelayKeyFile.write(RelayKeyFile.generate(), toNewFile: path)
        }
        #expect(folder.bytes("relay-key") == Array("keep me".utf8))
    }

    @Test func previousKey_isReadButNeverMade() throws {
        let folder = TemporaryFolder()
        #expect(throws: KeyFileError.self) { try RelayKeyFile.load(path: folder.file("old-key")) }
        #expect(folder.bytes("old-key") == nil)
    }

    @Test func generate_redrawsAKeyWhoseKeyIDIsZero() throws {
        // No scalar with key id 00000000 is known, so the test marks the first draw as one.
        let first = try X25519PrivateKey(rawRepresentation: Array(repeating: 0x11, count: 32))
        let second = try X25519PrivateKey(rawRepresentation: Array(repeating: 0x5a, count: 32))
        var draws = [first, second]
        let key = RelayKeyFile.generate(
            drawing: { draws.removeFirst() }, isReserved: { $0.publicKey == first.publicKey })
        #expect(key.publicKey == second.publicKey && draws.isEmpty)
        #expect(!RelayKeyFile.hasReservedKeyID(first) && !RelayKeyFile.hasReservedKeyID(second))
    }

    @Test func serveKeys_loadBoth_refuseTheSameKeyTwice_andPrintTheJoinLine() throws {
        let folder = TemporaryFolder()
        var options = ServeOptions(host: "0.0.0.0", port: 7001)
        options.relayKeyFile = folder.file("new")
        var log: [String] = []
        let made = try ServeMode.relayKeys(options, log: { log.append($0) })
        #expect(made.previous == nil)
        #expect(log.count == 1 && log[0].contains("made a new relay key"))
        options.previousRelayKeyFile = folder.file("new")
        #expect(throws: KeyFileError.self) { try ServeMode.relayKeys(options, log: { _ in }) }
        options.previousRelayKeyFile = folder.file("missing")
        #expect(throws: KeyFileError.self) { try ServeMode.relayKeys(options, log: { _ in }) }
        #expect(folder.bytes("missing") == nil)
        let old = RelayKeyFile.generate()
        try RelayKeyFile.write(old, toNewFile: folder.file("old"))
        options.previousRelayKeyFile = folder.file("old")
        let both = try ServeMode.relayKeys(options, log: { _ in })
        #expect(both.previous?.publicKey == old.publicKey)

        let current = try RelayPublicKey(bytes: made.current.publicKey)
        let lines = ServeMode.keyLines(current: both.current, previous: both.previous, options: options)
        #expect(
            lines == [
                "relay key fingerprint: \(current.fingerprint)",
                "join line: aeschat join --host 127.0.0.1 --port 7001 --relay-key \(current.text)",
                "(members on other machines put this machine's name or address after --host)",
                "previous relay key fingerprint: \(try RelayPublicKey(bytes: old.publicKey).fingerprint) (still "
                    + "accepted; members who use it are told the new key)",
            ])
        let named = ServeMode.keyLines(
            current: both.current, previous: nil, options: ServeOptions(host: "relay.example.org", port: 7777))
        #expect(
            named == [
                lines[0], "join line: aeschat join --host relay.example.org --port 7777 --relay-key \(current.text)",
            ])
        let any6 = ServeMode.keyLines(current: both.current, previous: nil, options: ServeOptions(host: "::"))
        #expect(any6[1] == "join line: aeschat join --host ::1 --port 7777 --relay-key \(current.text)")
    }

    private func mode(of path: String) throws -> Int {
        let attributes = try FileManager.default.attributesOfItem(atPath: path)
        return try #require(attributes[.posixPermissions] as? Int)
    }
}
