import AESChatCLI
import AESChatCrypto
import Foundation
import Testing

@testable import AESChatCore

/// `join` choosing its relay key with a scripted fetch and terminal: what is asked, what is pinned, what refuses.
@Suite struct JoinRelayKeyTests {
    @Test func verifyRelay_showsTheKeyInUse_withWhenAndHowItWasPinned() {
        let knownRelays = KnownRelays()
        var options = JoinOptions(name: "alice", inbox: "in")
        options.host = "Relay.Example.org"
        let current = TestRelayKeys.pinned(TestRelayKeys.current)
        let later = TestRelayKeys.pinned(TestRelayKeys.other)
        knownRelays.record(current, for: "relay.example.org:7777", source: .typedFingerprint, now: 1_764_755_232)
        knownRelays.record(later, for: "relay.example.org:7777", source: .announcedBy("4f1c93a0"), now: 1_764_755_300)
        let shown = JoinMode.describeRelay(current, options: options, knownRelays: knownRelays)
        #expect(
            shown
                == .relayKey(
                    address: "Relay.Example.org:7777", fingerprint: current.fingerprint,
                    pinnedAt: "2025-12-03T09:47:12Z", how: "typed-fingerprint"))
        #expect(shown.humanText.contains("after its fingerprint was checked"))
        #expect(
            JoinMode.describeRelay(later, options: options, knownRelays: knownRelays).humanText.contains(
                "as announced by its previous key"))
        // A key no pin names (a pin that could not be saved) says so.
        let unsaved = JoinMode.describeRelay(current, options: options, knownRelays: KnownRelays())
        #expect(
            unsaved.json
                == #"{"event":"relay-key","relay":"Relay.Example.org:7777","fingerprint":"\#(current.fingerprint)"}"#)
        #expect(unsaved.humanText.hasSuffix("for this session only (it could not be saved)"))
    }

    @Test func verifyRelay_isAnsweredByTheClient_inEitherKeyMode() {
        let harness = ChatHarness()
        let (alice, output, _) = harness.client("alice")
        alice.describeRelay = {
            .relayKey(address: "memory:1", fingerprint: "relay 0000", pinnedAt: nil, how: "first-use")
        }
        alice.submit(line: "/verify relay")
        alice.submit(line: "/verify")
        harness.loop.runUntilIdle()
        #expect(
            output.events.suffix(2).first
                == .relayKey(address: "memory:1", fingerprint: "relay 0000", pinnedAt: nil, how: "first-use"))
        // With a room key there is no fingerprint of one's own: the answer says what works instead.
        guard case .error(let message) = output.events.last else {
            Issue.record("no answer to /verify")
            return
        }
        #expect(message.contains("/verify relay shows the relay's key"))
        #expect(
            output.events.suffix(2).first?.humanText.contains(
                "compare this fingerprint with the one the relay's operator published") == true)
    }

    static let keyA = try! RelayPublicKey(bytes: Array(0..<32))
    static let keyB = try! RelayPublicKey(bytes: Array(repeating: 0xB0, count: 32))
    static let day = 1_796_291_232  // 2026-12-03T09:47:12Z

    /// A scripted run: the answers typed, what the relay presents, and what was asked, fetched and told.
    final class Script {
        var answers: [String?]
        var presented: Result<[RelayPublicKey], JoinRelayKey.FetchFailure>
        var questions: [String] = []
        var fetches = 0
        var infos: [String] = []

        init(answers: [String?] = [], presented: Result<[RelayPublicKey], JoinRelayKey.FetchFailure> = .success([])) {
            self.answers = answers
            self.presented = presented
        }

        func choose(
            _ options: JoinOptions, _ store: KnownRelays, canAsk: Bool = true
        ) -> Result<RelayPublicKey, JoinMode.SetupFailure> {
            JoinRelayKey.choose(
                options: options, knownRelays: store, canAsk: canAsk,
                fetch: {
                    self.fetches += 1
                    return self.presented
                },
                ask: { question in
                    self.questions.append(question)
                    return self.answers.isEmpty ? nil : self.answers.removeFirst()
                }, info: { self.infos.append($0) }, now: JoinRelayKeyTests.day)
        }
    }

    /// The message and code of a failure, or nil for a key.
    static func failure(_ result: Result<RelayPublicKey, JoinMode.SetupFailure>) -> String? {
        guard case .failure(let failure) = result else { return nil }
        return "\(failure.code.rawValue) \(failure.message)"
    }

    static func options(_ relayKey: RelayKeyArgument? = nil, acceptNew: Bool = false) -> JoinOptions {
        var options = JoinOptions(name: "alice", inbox: "in")
        options.relayKey = relayKey
        options.acceptNewRelayKey = acceptNew
        return options
    }

    @Test func joinLineKey_pinsWithoutFetchingOrAsking_andIsUsedNextTime() throws {
        let folder = TemporaryFolder()
        let store = try KnownRelays(path: folder.file("known_relays"))
        let script = Script()
        #expect(try script.choose(Self.options(.key(Self.keyA.text)), store).get() == Self.keyA)
        #expect(script.fetches == 0 && script.questions.isEmpty)
        #expect(
            script.infos == [
                "pinned the relay key of 127.0.0.1:7777, \(Self.keyA.fingerprint), as given with --relay-key"
            ])
        #expect(
            String(decoding: try #require(folder.bytes("known_relays")), as: UTF8.self)
                == "127.0.0.1:7777 \(Self.keyA.text) 2026-12-03T09:47:12Z join-line\n")
        let next = Script()
        #expect(try next.choose(Self.options(), try KnownRelays(path: folder.file("known_relays"))).get() == Self.keyA)
        #expect(next.fetches == 0 && next.questions.isEmpty && next.infos.isEmpty)
    }

    @Test func question_yesPinsAsFirstUse_aPastedFingerprintAsTyped() throws {
        for (answer, source) in [("yes", RelayPinSource.firstUse), (Self.keyA.fingerprint, .typedFingerprint)] {
            let store = KnownRelays()
            let script = Script(answers: [answer], presented: .success([Self.keyA]))
            #expect(try script.choose(Self.options(), store).get() == Self.keyA)
            #expect(script.fetches == 1)
            #expect(script.questions == [RelayTrustText.prompt(address: "127.0.0.1:7777", presented: Self.keyA)])
            #expect(store.pin(for: "127.0.0.1:7777")?.source == source)
        }
    }

    @Test func question_noOrEndOfInputOrAWrongFingerprint_storesNothing_andExits77() throws {
        let cases: [([String?], String)] = [
            (["no"], RelayTrustText.declined(address: "127.0.0.1:7777")),
            ([nil], RelayTrustText.declined(address: "127.0.0.1:7777")),
            (["maybe", "", "what"], RelayTrustText.declined(address: "127.0.0.1:7777")),
            ([Self.keyB.fingerprint], RelayTrustText.pastedMismatch(address: "127.0.0.1:7777", presented: Self.keyA)),
        ]
        for (answers, message) in cases {
            let folder = TemporaryFolder()
            let store = try KnownRelays(path: folder.file("known_relays"))
            let script = Script(answers: answers, presented: .success([Self.keyA]))
            #expect(Self.failure(script.choose(Self.options(), store)) == "77 \(message)")
            #expect(store.pin(for: "127.0.0.1:7777") == nil)
            #expect(folder.bytes("known_relays") == nil)
            #expect(script.infos.isEmpty)
        }
    }

    @Test func question_isAskedAgain_afterAnUnclearAnswer() throws {
        let script = Script(answers: ["sure", "y"], presented: .success([Self.keyA]))
        #expect(try script.choose(Self.options(), KnownRelays()).get() == Self.keyA)
        #expect(script.questions.count == 2 && script.questions[1] == RelayTrustText.promptAgain)
    }

    @Test func noTerminal_refusesNamingBothOptions_withoutFetching() {
        let script = Script(presented: .success([Self.keyA]))
        let result = script.choose(Self.options(), KnownRelays(), canAsk: false)
        #expect(Self.failure(result) == "77 " + RelayTrustText.noTerminal(address: "127.0.0.1:7777"))
        #expect(script.fetches == 0)
    }

    @Test func acceptNew_pinsThePresentedKey_asFirstUse_withoutAsking() throws {
        let store = KnownRelays()
        let script = Script(presented: .success([Self.keyB, Self.keyA]))
        #expect(try script.choose(Self.options(acceptNew: true), store, canAsk: false).get() == Self.keyB)
        #expect(script.questions.isEmpty)
        #expect(store.pin(for: "127.0.0.1:7777")?.source == .firstUse)
    }

    @Test func fingerprint_pinsTheMatchingPresentedKey_orRefuses() throws {
        let store = KnownRelays()
        store.record(Self.keyB, for: "127.0.0.1:7777", source: .firstUse, now: 0)
        let fingerprint = RelayKeyArgument.fingerprint(Hex.encode(Self.keyA.fingerprintBytes))
        let script = Script(presented: .success([Self.keyA]))
        #expect(try script.choose(Self.options(fingerprint), store, canAsk: false).get() == Self.keyA)
        #expect(store.pin(for: "127.0.0.1:7777")?.source == .typedFingerprint)
        #expect(script.infos.count == 1 && script.infos[0].contains("replaces \(Self.keyB.fingerprint)"))
        // The pin matches now: no fetch.
        let again = Script()
        #expect(try again.choose(Self.options(fingerprint), store).get() == Self.keyA)
        #expect(again.fetches == 0)
        let other = KnownRelays()
        let wrong = Script(presented: .success([Self.keyB]))
        guard case .failure(let failure) = wrong.choose(Self.options(fingerprint), other) else {
            Issue.record("a fingerprint that matches nothing must refuse")
            return
        }
        #expect(failure.code == .notPermitted && failure.message.contains("not the fingerprint given"))
        #expect(other.pin(for: "127.0.0.1:7777") == nil)
    }

    @Test func fetchFailure_isUnavailable() {
        let script = Script(presented: .failure(.init(reason: "connection refused")))
        #expect(
            Self.failure(script.choose(Self.options(acceptNew: true), KnownRelays()))
                == "69 cannot fetch the relay key of 127.0.0.1:7777 to confirm it: connection refused")
    }

    @Test func announcedKey_isPinnedAsAnnouncedBy_once() throws {
        let store = KnownRelays()
        store.record(Self.keyA, for: "127.0.0.1:7777", source: .joinLine, now: 0)
        let pinned = try #require(
            JoinRelayKey.pinAnnounced(
                [Self.keyB, Self.keyA], vouchedBy: Self.keyA, options: Self.options(), knownRelays: store))
        #expect(pinned.key == Self.keyB)
        #expect(pinned.line == RelayTrustText.rotated(address: "127.0.0.1:7777", from: Self.keyA, to: Self.keyB))
        #expect(store.pin(for: "127.0.0.1:7777")?.source == .announcedBy("543bcbbf"))
        #expect(
            JoinRelayKey.pinAnnounced([Self.keyB], vouchedBy: Self.keyB, options: Self.options(), knownRelays: store)
                == nil)
    }

    @Test func mismatch_usesThePresentedKeys_orFetchesThem() {
        let store = KnownRelays()
        store.record(Self.keyA, for: "127.0.0.1:7777", source: .typedFingerprint, now: Self.day)
        var fetches = 0
        let given = JoinRelayKey.mismatch(
            pinned: Self.keyA, presented: [Self.keyB], options: Self.options(), knownRelays: store,
            fetch: {
                fetches += 1
                return .success([])
            })
        #expect(fetches == 0)
        #expect(given.screen.contains("  pinned:     \(Self.keyA.fingerprint), on 2026-12-03T09:47:12Z, after its"))
        #expect(given.screen.contains("  presented:  \(Self.keyB.fingerprint)"))
        #expect(!given.line.contains("\n"))
        let fetched = JoinRelayKey.mismatch(
            pinned: Self.keyA, presented: nil, options: Self.options(), knownRelays: store,
            fetch: { .failure(.init(reason: "timed out")) })
        #expect(fetched.screen.contains("  presented:  unknown (timed out)"))
    }

    @Test func legacyNames_areEarlierKeysNewestFirst_thenTheAddressConnectedTo_thenAsTyped() {
        let store = KnownRelays()
        let keyC = try! RelayPublicKey(bytes: Array(repeating: 0xC0, count: 32))
        store.record(Self.keyA, for: "127.0.0.1:7777", source: .joinLine, now: 0)
        store.record(keyC, for: "127.0.0.1:7777", source: .joinLine, now: 0)
        store.record(Self.keyB, for: "127.0.0.1:7777", source: .joinLine, now: 0)
        var options = Self.options()
        options.host = "localhost"
        store.record(Self.keyA, for: "localhost:7777", source: .joinLine, now: 0)
        #expect(
            JoinRelayKey.legacyRelayNames(
                current: Self.keyA, options: options, knownRelays: store, connectedTo: "[::ffff:127.0.0.1]:7777")
                == ["127.0.0.1:7777", "localhost:7777"])
        options.host = "127.0.0.1"
        #expect(
            JoinRelayKey.legacyRelayNames(
                current: Self.keyB, options: options, knownRelays: store, connectedTo: "127.0.0.1:7777")
                == [
                    KnownPeers.relayIdentity(of: keyC), KnownPeers.relayIdentity(of: Self.keyA), "127.0.0.1:7777",
                    "127.0.0.1:7777",
                ])
    }
}
