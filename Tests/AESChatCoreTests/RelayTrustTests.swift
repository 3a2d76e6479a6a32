import AESChatCLI
import AESChatCrypto
import Foundation
import Testing

@testable import AESChatCore

/// Relay pinning: the `known_relays` file, the decisions before connecting, the prompt's answers and the texts.
@Suite struct RelayTrustTests {
    static let keyA = try! RelayPublicKey(bytes: Array(0..<32))
    static let keyB = try! RelayPublicKey(bytes: Array(repeating: 0xB0, count: 32))
    static let address = "127.0.0.1:7777"
    static let pinA = KnownRelay(key: keyA, firstSeen: "2026-12-03T09:47:12Z", source: .joinLine)

    // MARK: known_relays

    @Test func address_lowercasesTheHost_andBracketsIPv6() {
        #expect(KnownRelays.address(host: "Relay.Example.ORG", port: 7777) == "relay.example.org:7777")
        #expect(KnownRelays.address(host: "::1", port: 80) == "[::1]:80")
        #expect(KnownRelays.address(host: "FE80::A", port: 1) == "[fe80::a]:1")
        #expect(KnownRelays.address(host: "127.0.0.1", port: 7777) == Self.address)
    }

    @Test func store_appendsOneLinePerNewPin_keepsEveryLine_andTheLastLineWins() throws {
        let folder = TemporaryFolder()
        let path = folder.file("aeschat/known_relays")
        let store = try KnownRelays(path: path)
        #expect(store.pin(for: Self.address) == nil)
        store.record(Self.keyA, for: Self.address, source: .joinLine, now: 1_796_291_232)
        store.record(Self.keyA, for: Self.address, source: .firstUse, now: 1_796_291_300)  // the same key: no line
        store.record(Self.keyB, for: Self.address, source: .announcedBy("543bcbbf"), now: 1_796_377_632)
        store.record(Self.keyB, for: "[::1]:7777", source: .typedFingerprint, now: 1_796_377_632)
        let text = String(decoding: try #require(FileManager.default.contents(atPath: path)), as: UTF8.self)
        #expect(
            text == """
                127.0.0.1:7777 \(Self.keyA.text) 2026-12-03T09:47:12Z join-line
                127.0.0.1:7777 \(Self.keyB.text) 2026-12-04T09:47:12Z announced-by-543bcbbf
                [::1]:7777 \(Self.keyB.text) 2026-12-04T09:47:12Z typed-fingerprint

                """)
        let attributes = try FileManager.default.attributesOfItem(atPath: path)
        #expect(attributes[.posixPermissions] as? Int == 0o600)
        let reread = try KnownRelays(path: path)
        #expect(reread.pin(for: Self.address)?.key == Self.keyB)
        #expect(reread.pin(for: Self.address)?.source == .announcedBy("543bcbbf"))
        #expect(reread.keys(for: Self.address) == [Self.keyA, Self.keyB])
        #expect(reread.pin(for: "[::1]:7777")?.source == .typedFingerprint)
        #expect(reread.pin(for: "localhost:7777") == nil)
    }

    @Test func store_fileWithoutAFinalNewline_getsItsNextPinOnALineOfItsOwn_andCommentsAreKept() throws {
        let folder = TemporaryFolder()
        let path = folder.file("known_relays")
        let original = "# my relays\n\nr:1 \(Self.keyA.text) 2026-12-03 first-use"
        try Data(original.utf8).write(to: URL(fileURLWithPath: path))
        let store = try KnownRelays(path: path)
        #expect(store.pin(for: "r:1")?.firstSeen == "2026-12-03")
        store.record(Self.keyB, for: "r:1", source: .joinLine, now: 0)
        let text = String(decoding: try #require(folder.bytes("known_relays")), as: UTF8.self)
        #expect(text == original + "\nr:1 \(Self.keyB.text) 1970-01-01T00:00:00Z join-line\n")
    }

    @Test(arguments: [
        ("r:1 \(keyA.text) 2026-12-03", "expected 4 fields separated by spaces, found 3"),
        ("r \(keyA.text) 2026-12-03 join-line", "'r' is not host:port"),
        ("r:0 \(keyA.text) 2026-12-03 join-line", "'r:0' is not host:port"),
        ("::1:7777 \(keyA.text) 2026-12-03 join-line", "'::1:7777' is not host:port"),
        ("r:1 \(keyA.text.dropLast()) 2026-12-03 join-line", "the key is not 52 base32 characters"),
        ("r:1 \(String(repeating: "1", count: 52)) 2026-12-03 join-line", "the key is not 52 base32 characters"),
        ("r:1 \(keyA.text) 3 Dec 2026 join-line", "expected 4 fields separated by spaces, found 6"),
        ("r:1 \(keyA.text) 2026-12-3 join-line", "'2026-12-3' is not an ISO 8601 date"),
        ("r:1 \(keyA.text) 2026-12-03 tofu", "unknown way of pinning 'tofu'"),
        ("r:1 \(keyA.text) 2026-12-03 announced-by-543B", "unknown way of pinning 'announced-by-543B'"),
    ])
    func store_malformedLine_isAnError_namingTheLine_andTheFileIsNeverWritten(line: String, reason: String) throws {
        let folder = TemporaryFolder()
        let path = folder.file("known_relays")
        let text = "# fine\nr:1 \(Self.keyA.text) 2026-12-03T00:00:00Z join-line\n\(line)\n"
        try Data(text.utf8).write(to: URL(fileURLWithPath: path))
        #expect(throws: KnownRelaysError.malformed(path: path, line: 3, reason: reason)) {
            try KnownRelays(path: path)
        }
        #expect(folder.bytes("known_relays") == Array(text.utf8))
    }

    @Test func store_unreadableOrOversizedFile_isAnError() throws {
        let folder = TemporaryFolder()
        let path = folder.file("known_relays")
        try Data(repeating: UInt8(ascii: "#"), count: KnownRelays.maximumFileSize + 1).write(
            to: URL(fileURLWithPath: path))
        #expect {
            try KnownRelays(path: path)
        } throws: { error in
            guard case .unreadable(path, let reason) = error as? KnownRelaysError else { return false }
            return reason.contains("larger than")
        }
        try FileManager.default.createDirectory(atPath: folder.file("dir"), withIntermediateDirectories: false)
        #expect(throws: KnownRelaysError.self) { try KnownRelays(path: folder.file("dir")) }
        #expect(
            KnownRelaysError.unreadable(path: "p", reason: "r").description.contains(
                "will not connect without its pins"))
    }

    @Test func pinSource_roundTrips_throughItsField() {
        for source in [RelayPinSource.joinLine, .typedFingerprint, .firstUse, .announcedBy("0123abcd")] {
            #expect(RelayPinSource(field: source.description) == source)
        }
        #expect(RelayPinSource(field: "announced-by-0123abc") == nil)
        #expect(RelayPinSource(field: "join_line") == nil)
    }

    // MARK: Decisions before connecting

    @Test func decide_coversEveryCombination() {
        let a = Self.keyA
        let b = Self.keyB
        let refusal = RelayTrust.Decision.refuse(RelayTrustText.noTerminal(address: Self.address), .notPermitted)
        let cases: [(RelayTrust.Given, KnownRelay?, Bool, Bool, RelayTrust.Decision)] = [
            // A whole key pins without a prompt, replacing another pin (the documented re-pin).
            (.key(a), nil, false, false, .pin(a, .joinLine)),
            (.key(a), Self.pinA, false, false, .use(a)),
            (.key(b), Self.pinA, true, true, .pin(b, .joinLine)),
            // A fingerprint: the pin if it matches, else fetch and compare.
            (.fingerprint(a.fingerprintBytes), Self.pinA, false, false, .use(a)),
            (
                .fingerprint(b.fingerprintBytes), Self.pinA, false, false,
                .fetchAndCompare(fingerprint: b.fingerprintBytes)
            ),
            (.fingerprint(a.fingerprintBytes), nil, false, false, .fetchAndCompare(fingerprint: a.fingerprintBytes)),
            // Nothing given: the pin; else accept-new, ask, or refuse.
            (.none, Self.pinA, false, false, .use(a)),
            (.none, Self.pinA, true, true, .use(a)),
            (.none, nil, false, true, .fetchAndAccept),
            (.none, nil, true, true, .fetchAndAccept),
            (.none, nil, true, false, .fetchAndAsk),
            (.none, nil, false, false, refusal),
        ]
        for (given, known, canAsk, acceptNew, expected) in cases {
            let decision = RelayTrust.decide(
                address: Self.address, given: given, known: known, canAsk: canAsk, acceptNew: acceptNew)
            #expect(decision == expected, "\(given) \(String(describing: known)) \(canAsk) \(acceptNew)")
        }
    }

    @Test func given_comesFromTheParsedOption() {
        #expect(RelayTrust.Given(nil) == .none)
        #expect(RelayTrust.Given(.key(Self.keyA.text)) == .key(Self.keyA))
        #expect(
            RelayTrust.Given(.fingerprint("543bcbbf75962b435b78d432d912d096"))
                == .fingerprint(Self.keyA.fingerprintBytes))
    }

    @Test func afterFetch_pinsTheMatchingKey_orRefuses() {
        let both = [Self.keyB, Self.keyA]
        #expect(
            RelayTrust.afterFetch(
                .fetchAndCompare(fingerprint: Self.keyA.fingerprintBytes), address: Self.address, presented: both)
                == .pin(Self.keyA, .typedFingerprint))
        let mismatch = RelayTrust.afterFetch(
            .fetchAndCompare(fingerprint: Self.keyA.fingerprintBytes), address: Self.address, presented: [Self.keyB])
        #expect(
            mismatch
                == .refuse(
                    "the relay at 127.0.0.1:7777 presents \(Self.keyB.fingerprint), not the fingerprint given with "
                        + "--relay-key (\(Self.keyA.fingerprint)): nothing was pinned or sent", .notPermitted))
        #expect(
            RelayTrust.afterFetch(.fetchAndAccept, address: Self.address, presented: both) == .pin(Self.keyB, .firstUse)
        )
        #expect(RelayTrust.afterFetch(.fetchAndAsk, address: Self.address, presented: both) == .ask(Self.keyB))
        guard case .refuse(_, .notPermitted) = RelayTrust.afterFetch(.fetchAndAsk, address: Self.address, presented: [])
        else {
            Issue.record("no key presented must refuse")
            return
        }
    }

    @Test func answer_readsYesNoAndPastedFingerprints() {
        let key = Self.keyA
        let cases: [(String?, RelayTrust.Answer)] = [
            ("yes", .yes), ("YES ", .yes), ("y", .yes), ("no", .no), (" N", .no), (nil, .no), ("", .unclear),
            ("maybe", .unclear), ("yess", .unclear),
            (key.fingerprint, .matches), ("543bcbbf75962b435b78d432d912d096", .matches), (key.text, .matches),
            ("  " + key.fingerprint.uppercased() + "\t", .matches),
            (Self.keyB.fingerprint, .differs), (Self.keyB.text, .differs),
        ]
        for (text, expected) in cases {
            #expect(RelayTrust.answer(text, presented: key) == expected, "\(String(describing: text))")
        }
    }

    @Test func announcement_pinsTheNewCurrentKey_asAnnouncedByTheOldFingerprint() throws {
        let announced = try #require(RelayTrust.announcement([Self.keyB, Self.keyA], pinned: Self.keyA))
        #expect(announced.key == Self.keyB)
        #expect(announced.source == .announcedBy("543bcbbf"))
        #expect(RelayTrust.announcement([Self.keyA, Self.keyB], pinned: Self.keyA) == nil)
        #expect(RelayTrust.announcement([], pinned: Self.keyA) == nil)
    }

    // MARK: Texts

    @Test func prompt_andRefusals_readAsDocumented() {
        #expect(
            RelayTrustText.prompt(address: Self.address, presented: Self.keyA)
                == "127.0.0.1:7777 is new to this computer. Its relay key fingerprint is\n  relay 543b cbbf 7596 2b43 "
                + "5b78 d432 d912 d096\nCompare it with the one the relay's operator published. Trust it? "
                + "[yes / no / paste the fingerprint] ")
        #expect(
            RelayTrustText.noTerminal(address: Self.address)
                == "127.0.0.1:7777 is new to this computer and there is no terminal to confirm its relay key: give "
                + "--relay-key <key or fingerprint> from the relay's join line, or --accept-new-relay-key to trust the "
                + "key it presents")
        for line in [
            RelayTrustText.noTerminal(address: Self.address), RelayTrustText.declined(address: Self.address),
            RelayTrustText.pastedMismatch(address: Self.address, presented: Self.keyA),
            RelayTrustText.pinned(address: Self.address, key: Self.keyB, source: .joinLine, replacing: Self.pinA),
            RelayTrustText.rotated(address: Self.address, from: Self.keyA, to: Self.keyB),
            RelayTrustText.mismatchLine(
                host: "127.0.0.1", port: 7777, pinned: Self.pinA, presented: .keys([Self.keyB])),
        ] {
            #expect(!line.contains("\n"), "\(line)")
        }
    }

    @Test func mismatchScreen_saysWhatWasPinnedAndPresented_thatNothingWasSent_andTheOneCommand() {
        let screen = RelayTrustText.mismatchScreen(
            host: "127.0.0.1", port: 7777, name: "alice", pinned: Self.pinA, presented: .keys([Self.keyB]))
        #expect(
            screen == """
                The relay at 127.0.0.1:7777 did not prove that it holds the key pinned for it.

                  pinned:     relay 543b cbbf 7596 2b43 5b78 d432 d912 d096, on 2026-12-03T09:47:12Z, from a join line or --relay-key
                  presented:  \(Self.keyB.fingerprint)

                Nothing was sent: not your name, not the room, not a message.
                Message contents stay end-to-end encrypted either way, but whoever answered may be posing as the relay
                (to learn who talks with whom, or to drop messages and inject relay notices); or the relay's operator
                replaced its key.

                Ask the relay's operator for its fingerprint, through a channel you trust. If it is the one presented
                now, pin it and join with (adding your other options):

                  aeschat join --host 127.0.0.1 --port 7777 --relay-key '<the fingerprint the operator published>' --name alice
                """)
        #expect(!screen.lowercased().contains("continue"))
        #expect(!screen.contains("forget"))
        let same = RelayTrustText.mismatchScreen(
            host: "::1", port: 7, name: "bob", pinned: Self.pinA, presented: .keys([Self.keyA]))
        #expect(same.contains("The relay at [::1]:7 did not prove"))
        #expect(same.contains("the pinned key, yet the handshake with it failed"))
        #expect(same.contains("aeschat join --host ::1 --port 7 --relay-key"))
        let unknown = RelayTrustText.mismatchScreen(
            host: "h", port: 1, name: "c", pinned: Self.pinA, presented: .unknown("connection refused"))
        #expect(unknown.contains("  presented:  unknown (connection refused)"))
    }
}
