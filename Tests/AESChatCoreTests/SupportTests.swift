import Foundation
import Testing

@testable import AESChatCore

@Suite struct TerminalTextTests {
    @Test func escapeControls_keepsOrdinaryUnicode() {
        let text = "Grüße 你好 🎉 👩‍👩‍👧 naïve"
        #expect(TerminalText.escapeControls(text) == text)
    }

    @Test func escapeControls_makesEverySequenceVisible() {
        let cases: [(String, String)] = [
            ("\u{1B}[2J", "\\x1B[2J"),
            ("\u{1B}]0;title\u{07}", "\\x1B]0;title\\x07"),
            ("\u{1B}]8;;http://x\u{1B}\\", "\\x1B]8;;http://x\\x1B\\"),
            ("a\rb", "a\\rb"),
            ("a\nb", "a\\nb"),
            ("tab\t", "tab\\t"),
            ("\u{9B}31m", "\\x9B31m"),
            ("\u{7F}", "\\x7F"),
            ("\u{202E}evil", "\\u{202E}evil"),
            ("\u{2066}x\u{2069}", "\\u{2066}x\\u{2069}"),
            ("\u{2028}", "\\u{2028}"),
            ("\u{FEFF}", "\\u{FEFF}"),
            ("\u{0}", "\\x00"),
        ]
        for (input, expected) in cases {
            #expect(TerminalText.escapeControls(input) == expected)
        }
    }

    @Test func humanLines_neverContainControlCharacters() {
        let evil = "\u{1B}[31m\r<alice> fake\u{202E}"
        let events: [ClientEvent] = [
            .message(from: evil, text: evil, isPrivate: false), .joined(name: evil), .left(name: evil),
            .warning(kind: "tampered", name: evil, message: evil), .error(message: evil),
            .ready(name: "a", room: "b", members: [evil], fingerprint: evil),
            .action(from: evil, text: evil, isPrivate: true),
            .member(MemberStatus(name: evil, fingerprint: evil, trust: .new)),
            .who(members: [MemberStatus(name: evil, fingerprint: nil, trust: .changed)]),
            .verify(name: evil, fingerprint: "f", safetyNumber: "s"), .trusted(name: evil, fingerprint: "f"),
            .info(evil),
        ]
        for event in events {
            let line = LineOutput(style: .human, clock: { (9, 5) }).line(for: event)
            #expect(!line.unicodeScalars.contains { TerminalText.needsEscape($0) }, "\(line)")
        }
    }

    @Test func humanLine_format() {
        let output = LineOutput(style: .human, clock: { (9, 5) })
        #expect(output.line(for: .message(from: "bob", text: "hi", isPrivate: false)) == "[09:05] <bob> hi")
        #expect(output.line(for: .joined(name: "bob")) == "* bob joined")
        #expect(output.line(for: .left(name: "bob")) == "* bob left")
    }
}

@Suite struct EventTimeTests {
    @Test(arguments: [
        (UInt64(0), "1970-01-01T00:00:00.000Z"),
        (UInt64(1_764_770_525_007), "2025-12-03T14:02:05.007Z"),
        (UInt64(951_782_400_999), "2000-02-29T00:00:00.999Z"),
        (UInt64(253_402_300_799_123), "9999-12-31T23:59:59.123Z"),
    ])
    func iso8601_isUTCWithMilliseconds(milliseconds: UInt64, expected: String) {
        #expect(WallClock.iso8601(milliseconds: milliseconds) == expected)
    }

    @Test func jsonLines_endWithTheTime_humanLinesDoNot() {
        let json = LineOutput(style: .json, now: { 1_764_770_525_007 })
        #expect(
            json.line(for: .message(from: "bob", text: "hi", isPrivate: true))
                == #"{"event":"message","from":"bob","text":"hi","private":true,"time":"2025-12-03T14:02:05.007Z"}"#)
        #expect(
            json.line(for: .reconnected) == #"{"event":"reconnected","time":"2025-12-03T14:02:05.007Z"}"#)
        let human = LineOutput(style: .human, clock: { (14, 2) }, now: { 1_764_770_525_007 })
        #expect(human.line(for: .joined(name: "bob")) == "* bob joined")
    }

    @Test func jsonLines_takeTheClockAtEachEvent() {
        var milliseconds: UInt64 = 1_000
        let json = LineOutput(
            style: .json,
            now: {
                milliseconds += 1_500
                return milliseconds
            })
        #expect(json.line(for: .joined(name: "a")).hasSuffix(#""time":"1970-01-01T00:00:02.500Z"}"#))
        #expect(json.line(for: .joined(name: "a")).hasSuffix(#""time":"1970-01-01T00:00:04.000Z"}"#))
    }
}

@Suite struct JSONLineTests {
    @Test func events_haveTheDocumentedForm() {
        #expect(
            ClientEvent.ready(name: "alice", room: "lobby", members: ["bob"], fingerprint: nil).json
                == #"{"event":"ready","name":"alice","room":"lobby","members":["bob"]}"#)
        #expect(ClientEvent.joined(name: "carol").json == #"{"event":"joined","name":"carol"}"#)
        #expect(ClientEvent.left(name: "carol").json == #"{"event":"left","name":"carol"}"#)
        #expect(
            ClientEvent.message(from: "bob", text: "hi", isPrivate: false).json
                == #"{"event":"message","from":"bob","text":"hi"}"#)
        #expect(ClientEvent.error(message: "x").json == #"{"event":"error","message":"x"}"#)
        #expect(
            ClientEvent.warning(kind: "tampered", name: "bob", message: "m").json
                == #"{"event":"warning","kind":"tampered","name":"bob","message":"m"}"#)
    }

    @Test func strings_escapeEveryControlCharacter_andParseBack() throws {
        let text = "q\"b\\n\n\r\t\u{8}\u{C}\u{1B}[2J\u{7F}\u{9B}\u{2028}é🎉"
        let line = ClientEvent.message(from: "bob", text: text, isPrivate: false).json
        #expect(
            !line.unicodeScalars.contains { $0.value < 0x20 || (0x7F...0x9F).contains($0.value) || $0 == "\u{2028}" })
        let parsed = try JSONSerialization.jsonObject(with: Data(line.utf8)) as? [String: String]
        #expect(parsed?["text"] == text)
    }
}

@Suite struct RoomKeyFileTests {
    func temporaryPath(_ name: String) -> String {
        let folder = FileManager.default.temporaryDirectory.appendingPathComponent("aeschat-tests-\(UUID().uuidString)")
        try? FileManager.default.createDirectory(at: folder, withIntermediateDirectories: true)
        return folder.appendingPathComponent(name).path
    }

    @Test func writeThenLoad_roundTrips_withMode0600() throws {
        let path = temporaryPath("room.key")
        let key = RoomKey.generate()
        try key.write(toNewFile: path)
        let attributes = try FileManager.default.attributesOfItem(atPath: path)
        #expect((attributes[.posixPermissions] as? Int) == 0o600)
        var warnings: [String] = []
        let loaded = try RoomKey.load(path: path) { warnings.append($0) }
        #expect(loaded.hexEncoded == key.hexEncoded)
        #expect(warnings.isEmpty)
        #expect(throws: KeyFileError.alreadyExists(.roomKey, path: path)) {
            try RoomKey.generate().write(toNewFile: path)
        }
    }

    @Test func parse_acceptsUpperCaseAndWhitespace_refusesTheRest() throws {
        let hex = String(repeating: "Ab", count: 32)
        #expect(try RoomKey.parse("  \(hex)\r\n", path: "k").hexEncoded == hex.lowercased())
        for bad in [
            "", "abc", String(repeating: "g", count: 64), String(repeating: "a", count: 63), hex + "00",
            "\(hex.prefix(32)) \(hex.suffix(32))",
        ] {
            #expect(throws: KeyFileError.self) { try RoomKey.parse(bad, path: "k") }
        }
    }

    @Test func load_warnsAboutReadableByOthers_andRefusesMissing() throws {
        let path = temporaryPath("loose.key")
        try (RoomKey.generate().hexEncoded + "\n").write(toFile: path, atomically: false, encoding: .utf8)
        chmod(path, 0o644)
        var warnings: [String] = []
        _ = try RoomKey.load(path: path) { warnings.append($0) }
        #expect(warnings.count == 1)
        #expect(throws: KeyFileError.unreadable(.roomKey, path: path + ".missing", reason: "No such file or directory"))
        {
            try RoomKey.load(path: path + ".missing")
        }
    }

    @Test func generatedKeys_differ() {
        #expect(RoomKey.generate().hexEncoded != RoomKey.generate().hexEncoded)
    }

    @Test func keyFileError_descriptions_nameTheFileKindAndPath() {
        let cases: [(KeyFileError, String)] = [
            (.unreadable(.roomKey, path: "k", reason: "r"), "cannot read key file 'k': r"),
            (.unreadable(.identity, path: "i", reason: "r"), "cannot read identity file 'i': r"),
            (
                .malformed(.roomKey, path: "k", reason: "r"),
                "key file 'k' is not a room key: r; make one with 'aeschat keygen --out k'"
            ),
            (.malformed(.identity, path: "i", reason: "r"), "identity file 'i' is not an aeschat identity: r"),
            (
                .alreadyExists(.roomKey, path: "k"),
                "'k' already exists; aeschat never overwrites a key file: choose another path or remove it first"
            ),
            (
                .alreadyExists(.identity, path: "i"),
                "'i' already exists; aeschat never overwrites an identity file: choose another path or remove it first"
            ),
            (.unwritable(.roomKey, path: "k", reason: "r"), "cannot write key file 'k': r"),
            (.unwritable(.identity, path: "i", reason: "r"), "cannot write 'i': r"),
        ]
        for (error, text) in cases { #expect(error.description == text) }
    }
}
