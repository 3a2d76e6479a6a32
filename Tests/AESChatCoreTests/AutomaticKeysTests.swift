import AESChatCrypto
import AESChatTesting
import Testing

@testable import AESChatCore

/// A malicious relay between one client and the relay: sees and rewrites every frame in both
/// directions. It ends the client's encrypted link (the client pins its key,
/// ``TestRelayKeys/current``; ``clientEnd`` has the link started) and has its own to the relay.
final class InterceptingLink {
    final class Side: ConnectionHandler {
        var decoder = FrameDecoder()
        let onFrame: (Frame) -> Void
        let onClose: () -> Void
        init(onFrame: @escaping (Frame) -> Void, onClose: @escaping () -> Void) {
            self.onFrame = onFrame
            self.onClose = onClose
        }
        func connection(_ connection: any Connection, didRead bytes: UnsafeRawBufferPointer) {
            for frame in decoder.frames(after: bytes).frames { onFrame(frame) }
        }
        func connection(_ connection: any Connection, didCloseWith error: TransportError?) { onClose() }
    }

    let clientEnd: MemoryConnection
    let linkClientSide: MemoryConnection
    let linkRelaySide: MemoryConnection
    var toRelay: (ClientFrame) -> [ClientFrame] = { [$0] }
    var toClient: (RelayFrame) -> [RelayFrame] = { [$0] }
    var published: [[UInt8]] = []
    var delivered: [RelayFrame] = []
    private var sides: [Side] = []

    init(harness: RelayHarness) {
        let (client, linkSide) = MemoryConnection.pair(loop: harness.loop)
        clientEnd = client
        linkClientSide = linkSide
        linkRelaySide = startLink(on: harness.listener.connect(), pinning: harness.relayKey, loop: harness.loop)
        let fromClient = Side(
            onFrame: { [unowned self] frame in
                guard let decoded = try? ClientFrame(frame) else { return }
                if case .publish(let payload) = decoded { self.published.append(Array(payload)) }
                for out in self.toRelay(decoded) { self.linkRelaySide.write(out.encoded()) }
            }, onClose: { [unowned self] in self.linkRelaySide.close() })
        let fromRelay = Side(
            onFrame: { [unowned self] frame in
                guard let decoded = try? RelayFrame(frame) else { return }
                self.delivered.append(decoded)
                for out in self.toClient(decoded) { self.linkClientSide.write(out.encoded()) }
            }, onClose: { [unowned self] in self.linkClientSide.close() })
        sides = [fromClient, fromRelay]
        TestLinkResponder(linkClientSide) { $0.handler = fromClient }
        linkRelaySide.handler = fromRelay
        startLink(on: clientEnd, loop: harness.loop)
    }
}

/// Records what a security mode sends and shows, in order.
final class RecordingOutbox {
    enum Item: Equatable {
        case publish([UInt8])
        case direct([UInt8], to: String)
        case event(ClientEvent)
        case release(ReleasedLine)
    }
    var items: [Item] = []
    /// Records the actions a security mode returned.
    func record(_ actions: [SecurityAction]) {
        for action in actions {
            switch action {
            case .publish(let envelope): items.append(.publish(envelope))
            case .direct(let envelope, let name): items.append(.direct(envelope, to: name))
            case .show(let event): items.append(.event(event))
            case .release(let line): items.append(.release(line))
            case .deliver(let content, let sender, let isPrivate):
                if let event = ClientEvent(content: content, from: sender, isPrivate: isPrivate) {
                    items.append(.event(event))
                }
            }
        }
    }
    var events: [ClientEvent] {
        items.compactMap {
            if case .event(let event) = $0 { return event }
            return nil
        }
    }
}

final class AutomaticHarness {
    let relayHarness: RelayHarness
    var loop: MemoryEventLoop { relayHarness.loop }
    var identities: [String: Ed25519PrivateKey] = [:]
    var pins: [String: KnownPeers] = [:]
    var securities: [String: AutomaticKeySecurity] = [:]

    /// Members with automatic keys on `relayHarness` (a fresh relay by default).
    init(relayHarness: RelayHarness = RelayHarness()) {
        self.relayHarness = relayHarness
    }

    struct Member {
        let client: ChatRoom
        let output: EventCollector
        let security: AutomaticKeySecurity
        let link: InterceptingLink?
        let outcome: Box<ClientOutcome?>
    }

    func identity(_ name: String) -> Ed25519PrivateKey {
        if let known = identities[name] { return known }
        let made = Ed25519PrivateKey()
        identities[name] = made
        return made
    }

    func join(
        _ name: String, identity override: Ed25519PrivateKey? = nil, room: String = "lobby", intercepted: Bool = false,
        features: MemberFeatures? = MemberFeatures([MemberFeatures.files]),
        now: @escaping () -> ContinuousClock.Instant = { .now }, settle: Bool = true
    ) throws -> Member {
        let store = pins[name] ?? KnownPeers()
        pins[name] = store
        let security = try AutomaticKeySecurity(
            identity: override ?? identity(name), name: name, room: room, relay: "memory:1", knownPeers: store,
            features: features, now: now)
        securities[name] = security
        let output = EventCollector()
        let outcome = Box<ClientOutcome?>(nil)
        var link: InterceptingLink?
        let connection: MemoryConnection
        if intercepted {
            link = InterceptingLink(harness: relayHarness)
            connection = link!.clientEnd
        } else {
            connection = startLink(
                on: relayHarness.listener.connect(chunkSize: 777), pinning: relayHarness.relayKey, loop: loop)
        }
        let client = ChatRoom(
            name: name, room: room, security: security, connection: connection, output: output, loop: loop
        ) {
            outcome.value = $0
        }
        client.start()
        if settle { loop.runUntilIdle() }
        return Member(client: client, output: output, security: security, link: link, outcome: outcome)
    }
}

extension EventCollector {
    func warnings(_ kind: String) -> [String] {
        events.compactMap {
            if case .warning(kind, _, let message) = $0 { return message }
            // A different room key is shown in words, and is a `tampered` warning in JSON.
            if kind == "tampered", case .differentRoomKey(_, let message) = $0 { return message }
            return nil
        }
    }

    var roomCodes: [String] {
        events.compactMap {
            if case .roomCode(let code, _, _) = $0 { return code }
            return nil
        }
    }

    var memberStatuses: [MemberStatus] {
        events.compactMap {
            if case .member(let status) = $0 { return status }
            return nil
        }
    }
}

@Suite struct AutomaticKeysTests {
    @Test func threeMembers_exchangeMessages_onceAndInOrder_withoutAnySharedSecret() throws {
        let harness = AutomaticHarness()
        let members = try ["alice", "bob", "carol"].map { try harness.join($0) }
        for round in 0..<40 {
            for member in members { member.client.submit(line: "m\(round)") }
        }
        harness.loop.runUntilIdle()
        let names = ["alice", "bob", "carol"]
        for (index, member) in members.enumerated() {
            for (other, otherName) in names.enumerated() where other != index {
                #expect(
                    member.output.messages.filter { $0.hasPrefix(otherName + ":") }
                        == (0..<40).map { "\(otherName): m\($0)" })
            }
            #expect(member.output.warnings.isEmpty, "\(member.output.events)")
        }
    }

    /// The relay delays alice's `joined dave`, so alice publishes once before she knows dave: dave gets a message
    /// whose key was never meant for him, then alice's key. That is the ordinary race of a join, not an alarm.
    @Test func messageSentBeforeTheSenderSawANewcomer_isDroppedQuietlyAtTheNewcomer() throws {
        let harness = AutomaticHarness()
        let alice = try harness.join("alice", intercepted: true)
        _ = try harness.join("bob")
        var delayed: [RelayFrame] = []
        alice.link!.toClient = { frame in
            guard case .joined(let member) = frame, member.name == "dave" else { return [frame] }
            delayed.append(frame)
            return []
        }
        let dave = try harness.join("dave")
        alice.client.submit(line: "before alice saw dave")
        harness.loop.runUntilIdle()
        #expect(delayed.count == 1)
        for frame in delayed { alice.link!.linkClientSide.write(frame.encoded()) }
        harness.loop.runUntilIdle()
        alice.client.submit(line: "after")
        harness.loop.runUntilIdle()
        #expect(dave.output.messages == ["alice: after"])
        #expect(dave.output.warnings("undecryptable").isEmpty)
        #expect(dave.output.warnings("replay").isEmpty)
    }

    @Test func messagesWhoseKeyNeverArrives_areReportedOnceTheGraceHasPassed() throws {
        let harness = AutomaticHarness()
        let alice = try harness.join("alice", intercepted: true)
        _ = try harness.join("bob")
        alice.link!.toClient = { frame in
            guard case .joined(let member) = frame, member.name == "dave" else { return [frame] }
            return []
        }
        let start = ContinuousClock.now
        let elapsed = Box<Duration>(.zero)
        let dave = try harness.join("dave", now: { start + elapsed.value })
        alice.client.submit(line: "one")
        harness.loop.runUntilIdle()
        #expect(dave.output.warnings("undecryptable").isEmpty)
        elapsed.value = AutomaticKeySecurity.firstKeyGrace + .seconds(1)
        alice.client.submit(line: "two")
        harness.loop.runUntilIdle()
        #expect(dave.output.warnings("undecryptable").count == 1)
        #expect(dave.output.messages.isEmpty)
    }

    @Test func messageRightAfterReady_andRightAfterJoined_reachesEveryone() throws {
        let harness = AutomaticHarness()
        let alice = try harness.join("alice")
        let bob = try harness.join("bob")
        // carol types before her welcome even arrives; alice sends the moment she sees carol.
        let carolSecurity = try AutomaticKeySecurity(
            identity: Ed25519PrivateKey(), name: "carol", room: "lobby", relay: "memory:1",
            knownPeers: KnownPeers())
        let carolOutput = EventCollector()
        let carol = ChatRoom(
            name: "carol", room: "lobby", security: carolSecurity,
            connection: startLink(
                on: harness.relayHarness.listener.connect(), pinning: harness.relayHarness.relayKey, loop: harness.loop),
            output: carolOutput, loop: harness.loop
        ) { _ in }
        carol.start()
        carol.submit(line: "first words")
        harness.loop.runUntilIdle()
        alice.client.submit(line: "welcome carol")
        harness.loop.runUntilIdle()
        #expect(alice.output.messages == ["carol: first words"])
        #expect(bob.output.messages == ["carol: first words", "alice: welcome carol"])
        #expect(carolOutput.messages == ["alice: welcome carol"])
        #expect(carolOutput.warnings.isEmpty && alice.output.warnings.isEmpty && bob.output.warnings.isEmpty)
    }

    @Test func newMember_isAnnouncedUnverified_withFingerprint_beforeAnyKeyIsSent() throws {
        let harness = AutomaticHarness()
        let security = try AutomaticKeySecurity(
            identity: Ed25519PrivateKey(), name: "alice", room: "lobby", relay: "r", knownPeers: KnownPeers())
        let outbox = RecordingOutbox()
        let bobIdentity = harness.identity("bob")
        let bobProfile = try AutomaticKeys.makeProfile(
            identity: bobIdentity, sessionKey: X25519PrivateKey().publicKey, room: "lobby", name: "bob")
        outbox.record(security.memberJoined(MemberEntry(name: "bob", profile: bobProfile)))
        let announce = outbox.items.firstIndex {
            if case .event(.member(let status)) = $0 { return status.trust == .new && status.name == "bob" }
            return false
        }
        let firstKey = outbox.items.firstIndex {
            if case .direct(_, "bob") = $0 { return true }
            return false
        }
        #expect(announce != nil && firstKey != nil)
        #expect(announce! < firstKey!)
        guard case .event(.member(let status)) = outbox.items[announce!] else { return }
        #expect(status.fingerprint == Identity.fingerprint(of: bobIdentity.publicKey))
    }

    @Test func privateMessage_reachesOnlyItsRecipient() throws {
        let harness = AutomaticHarness()
        let alice = try harness.join("alice")
        let bob = try harness.join("bob")
        let carol = try harness.join("carol", intercepted: true)
        alice.client.submit(line: "/msg bob for your eyes only")
        harness.loop.runUntilIdle()
        #expect(bob.output.events.contains(.message(from: "alice", text: "for your eyes only", isPrivate: true)))
        #expect(!carol.output.events.contains { $0.json.contains("for your eyes only") })
        let toCarol = carol.link!.delivered.filter {
            if case .deliver(_, _, let payload) = $0 {
                return String(decoding: payload, as: UTF8.self).contains("eyes")
            }
            return false
        }
        #expect(toCarol.isEmpty)
    }

    @Test func substitutedSessionKey_isDetected_andGetsNoKeys() throws {
        let harness = AutomaticHarness()
        let alice = try harness.join("alice", intercepted: true)
        alice.link!.toClient = { frame in
            guard case .joined(var member) = frame, member.name == "bob" else { return [frame] }
            // The relay swaps bob's session key for one of its own; the signature no longer matches.
            member.profile.replaceSubrange(33..<65, with: X25519PrivateKey().publicKey)
            return [.joined(member)]
        }
        let bob = try harness.join("bob")
        bob.client.submit(line: "hello")
        harness.loop.runUntilIdle()
        #expect(alice.output.warnings("tampered").count >= 1)
        #expect(alice.output.messages.isEmpty)
        // The `member` event docs/CLI.md documents for a refused member: status invalid, right after the warning.
        let refused = ClientEvent.member(MemberStatus(name: "bob", fingerprint: nil, trust: .invalid))
        let index = try #require(alice.output.events.firstIndex(of: refused))
        guard case .warning("tampered", "bob", _) = alice.output.events[index - 1] else {
            Issue.record("no tampered warning right before the member event: \(alice.output.events)")
            return
        }
        #expect(
            !alice.output.events.contains {
                if case .member(let s) = $0 { s.name == "bob" && s.trust != .invalid } else { false }
            })
        alice.client.submit(line: "/who")
        harness.loop.runUntilIdle()
        guard case .who(let members, _) = alice.output.events.last else {
            Issue.record("no who event")
            return
        }
        #expect(members == [MemberStatus(name: "bob", fingerprint: nil, trust: .invalid)])
    }

    @Test func substitutedIdentityKey_forAPinnedName_raisesKeyChanged() throws {
        let harness = AutomaticHarness()
        let alice = try harness.join("alice", intercepted: true)
        let bob = try harness.join("bob")
        bob.client.endOfInput()
        harness.loop.runUntilIdle()
        // bob comes back, but the relay presents a profile signed by an identity of its own.
        let forger = Ed25519PrivateKey()
        alice.link!.toClient = { frame in
            guard case .joined(let member) = frame, member.name == "bob" else { return [frame] }
            let forged = try! AutomaticKeys.makeProfile(
                identity: forger, sessionKey: X25519PrivateKey().publicKey, room: "lobby", name: "bob")
            return [.joined(MemberEntry(name: "bob", profile: forged))]
        }
        _ = try harness.join("bob")
        #expect(alice.output.warnings("key-changed").count == 1)
        #expect(alice.output.memberStatuses.last?.trust == .changed)
    }

    @Test func rejoiningWithAnotherIdentityFile_raisesKeyChanged_atTheOthers() throws {
        let harness = AutomaticHarness()
        let alice = try harness.join("alice")
        let carol = try harness.join("carol")
        let bob = try harness.join("bob")
        bob.client.endOfInput()
        harness.loop.runUntilIdle()
        _ = try harness.join("bob", identity: Ed25519PrivateKey())
        #expect(alice.output.warnings("key-changed").count == 1)
        #expect(carol.output.warnings("key-changed").count == 1)
        #expect(alice.output.warnings("key-changed")[0].contains("CHANGED"))
    }

    @Test func verifiedPeerWithChangedKey_holdsSending_untilTrust() throws {
        let harness = AutomaticHarness()
        let alice = try harness.join("alice")
        var bob = try harness.join("bob")
        alice.client.submit(line: "/trust bob")
        harness.loop.runUntilIdle()
        #expect(alice.output.events.contains { if case .trusted("bob", _) = $0 { true } else { false } })
        bob.client.endOfInput()
        harness.loop.runUntilIdle()
        bob = try harness.join("bob", identity: Ed25519PrivateKey())
        alice.client.submit(line: "are you really bob?")
        harness.loop.runUntilIdle()
        #expect(bob.output.messages.isEmpty)
        #expect(alice.output.events.contains { if case .info(let text) = $0 { text.contains("held") } else { false } })
        alice.client.submit(line: "/trust bob")
        harness.loop.runUntilIdle()
        #expect(bob.output.messages == ["alice: are you really bob?"])
    }

    @Test func verifiedPeerWithChangedKey_holdsLinesOnlyForThem_theOthersKeepReceiving() throws {
        let harness = AutomaticHarness()
        let alice = try harness.join("alice")
        var bob = try harness.join("bob")
        let carol = try harness.join("carol")
        alice.client.submit(line: "/trust bob")
        harness.loop.runUntilIdle()
        bob.client.endOfInput()
        harness.loop.runUntilIdle()
        bob = try harness.join("bob", identity: Ed25519PrivateKey())
        #expect(alice.output.events.contains(.holding(members: ["bob"])))
        alice.client.submit(line: "carol still hears me")
        alice.client.submit(line: "second line")
        harness.loop.runUntilIdle()
        // Carol gets every line at once; bob (whose key changed) gets none, and nothing says they were held
        // for nobody: they went out.
        #expect(carol.output.messages.suffix(2) == ["alice: carol still hears me", "alice: second line"])
        #expect(bob.output.messages.isEmpty)
        #expect(
            !alice.output.events.contains { if case .info(let text) = $0 { text.contains("not sent") } else { false } })
        alice.client.submit(line: "/trust bob")
        harness.loop.runUntilIdle()
        // Trusted: bob gets what was held for him, in order; carol does not see it twice.
        #expect(bob.output.messages == ["alice: carol still hears me", "alice: second line"])
        #expect(carol.output.messages.filter { $0.hasPrefix("alice:") }.count == 2)
        #expect(alice.output.events.last == .holding(members: []))
        alice.client.submit(line: "after trust")
        harness.loop.runUntilIdle()
        #expect(bob.output.messages.last == "alice: after trust")
        #expect(carol.output.messages.last == "alice: after trust")
    }

    @Test func heldLines_whenTheConnectionEnds_areNamedAsNeverSent() throws {
        let harness = AutomaticHarness()
        let alice = try harness.join("alice")
        var bob = try harness.join("bob")
        let carol = try harness.join("carol")
        alice.client.submit(line: "/trust bob")
        harness.loop.runUntilIdle()
        bob.client.endOfInput()
        harness.loop.runUntilIdle()
        bob = try harness.join("bob", identity: Ed25519PrivateKey())
        alice.client.submit(line: "held for bob")
        alice.client.submit(line: "held again")
        harness.loop.runUntilIdle()
        #expect(carol.output.messages.suffix(2) == ["alice: held for bob", "alice: held again"])
        #expect(alice.security.heldLines.map(\.name) == ["bob"])
        #expect(alice.security.heldLines.map(\.count) == [2])
        harness.relayHarness.relay.shutdown {}
        harness.loop.runUntilIdle()
        #expect(
            alice.output.events.contains(
                .warning(
                    kind: "undelivered", name: "bob",
                    message:
                        "2 lines held for bob will not reach them: the connection to the relay was lost before they "
                        + "could go out")))
        #expect(bob.output.messages.isEmpty)
        // Nothing held elsewhere: nothing said.
        #expect(carol.output.warnings("undelivered").isEmpty)
    }

    @Test func heldLines_goToTheirMemberAlone_notToSomeoneWhoJoinedSince_andTheUserIsTold() throws {
        let harness = AutomaticHarness()
        let alice = try harness.join("alice")
        var bob = try harness.join("bob")
        alice.client.submit(line: "/trust bob")
        harness.loop.runUntilIdle()
        bob.client.endOfInput()
        harness.loop.runUntilIdle()
        bob = try harness.join("bob", identity: Ed25519PrivateKey())
        alice.client.submit(line: "typed before dave came")
        harness.loop.runUntilIdle()
        // Nobody else could read it: held, and the user is told it was not sent.
        #expect(
            alice.output.events.contains {
                if case .info(let text) = $0 { text.hasPrefix("message held, not sent") } else { false }
            })
        let dave = try harness.join("dave")
        alice.client.submit(line: "/trust bob")
        harness.loop.runUntilIdle()
        #expect(dave.output.messages.isEmpty)
        #expect(bob.output.events.contains(.message(from: "alice", text: "typed before dave came", isPrivate: true)))
        #expect(
            alice.output.events.contains(
                .info(
                    "sending held lines privately, to the members they missed alone (1 line to bob): dave joined "
                        + "since, and must not see them")))
    }

    @Test func verifyAlone_whoAndVerifyName_showTheUsersOwnFingerprint() throws {
        let harness = AutomaticHarness()
        let alice = try harness.join("alice")
        let bob = try harness.join("bob")
        let own = try #require(alice.security.ownFingerprint)
        for line in ["/verify", "/who", "/verify bob", "/verify room"] { alice.client.submit(line: line) }
        harness.loop.runUntilIdle()
        let answers = Array(alice.output.events.suffix(4))
        #expect(answers[0] == .identity(name: "alice", fingerprint: own))
        guard case .who(_, let you) = answers[1], case .verify("bob", let theirs, _, let yours) = answers[2],
            case .roomCode(_, 2, true) = answers[3]
        else {
            Issue.record("unexpected answers \(answers)")
            return
        }
        #expect(you?.name == "alice" && you?.fingerprint == own)
        #expect(theirs == bob.security.ownFingerprint && yours == own)
        // What each says in plain words: how to compare, and no jargon.
        #expect(answers[0].humanText.contains(own))
        #expect(answers[1].humanText.hasPrefix("* here: you (alice, fingerprint \(own)), bob"))
        #expect(answers[2].humanText.contains("read the safety number"))
        #expect(answers[2].humanText.contains("/trust bob"))
        #expect(answers[2].json.hasSuffix(#","your-fingerprint":"\#(own)"}"#))
        #expect(answers[1].json.contains(#""you":"alice","your-fingerprint":"\#(own)""#))
        for event in alice.output.events { #expect(!event.humanText.contains("ghost")) }
    }

    @Test func verifiedPeer_withAChangedKey_inAnotherRoomOfTheRelay_holdsSending_untilTrust() throws {
        let harness = AutomaticHarness()
        let alice = try harness.join("alice")
        let bob = try harness.join("bob")
        alice.client.submit(line: "/trust bob")
        harness.loop.runUntilIdle()
        alice.client.endOfInput()
        bob.client.endOfInput()
        harness.loop.runUntilIdle()
        // Someone else calls themselves bob in another room of the same relay.
        let impostor = try harness.join("bob", identity: Ed25519PrivateKey(), room: "ops")
        let aliceInOps = try harness.join("alice", room: "ops")
        #expect(aliceInOps.output.warnings("key-changed").count == 1)
        #expect(aliceInOps.output.memberStatuses.map(\.trust) == [.changed])
        aliceInOps.client.submit(line: "bob, is that you?")
        harness.loop.runUntilIdle()
        #expect(impostor.output.messages.isEmpty)
        #expect(
            aliceInOps.output.events.contains { if case .info(let text) = $0 { text.contains("held") } else { false } })
    }

    @Test func messagedPeer_withAChangedKey_holdsSending_untilTrust() throws {
        let harness = AutomaticHarness()
        let alice = try harness.join("alice")
        var bob = try harness.join("bob")
        for text in ["one", "two", "three"] { alice.client.submit(line: "/msg bob \(text)") }
        harness.loop.runUntilIdle()
        #expect(bob.output.messages.count == 3)
        #expect(harness.pins["alice"]!.pin(relay: "memory:1", name: "bob")?.state == .messaged)
        bob.client.endOfInput()
        harness.loop.runUntilIdle()
        bob = try harness.join("bob", identity: Ed25519PrivateKey())
        #expect(
            alice.output.warnings("key-changed").first?.contains("held for them (the others still get them)") == true)
        alice.client.submit(line: "still there?")
        alice.client.submit(line: "/msg bob secret")
        harness.loop.runUntilIdle()
        #expect(bob.output.messages.isEmpty)
        alice.client.submit(line: "/trust bob")
        harness.loop.runUntilIdle()
        #expect(bob.output.messages == ["alice: still there?"])
    }

    @Test func replay_isRefused_dropped_showsMissing_farAheadIndex_isRefusedAtOnce() throws {
        let harness = AutomaticHarness()
        let bob = try harness.join("bob")
        let alice = try harness.join("alice", intercepted: true)
        var count = 0
        alice.link!.toRelay = { frame in
            guard case .publish = frame else { return [frame] }
            count += 1
            switch count {
            case 1: return [frame, frame]
            case 2: return []
            default: return [frame]
            }
        }
        for text in ["zero", "one", "two"] { alice.client.submit(line: text) }
        harness.loop.runUntilIdle()
        #expect(bob.output.messages == ["alice: zero", "alice: two"])
        #expect(bob.output.warnings("replay").count == 1)
        #expect(bob.output.warnings("missing") == ["1 messages from alice missing"])

        // An index of 2^32 - 2, properly signed by alice: refused without ratcheting 4 billion times.
        let chainID = Array(alice.link!.published[0][1..<17])
        let forged = try AutomaticKeys.sealGroupMessage(
            MessageContent.text("far").encoded(), chainID: chainID, index: UInt32.max - 1,
            messageKey: SecretBytes(Array(repeating: 7, count: 32)),
            view: AutomaticKeys.roomView(room: "lobby", members: []),
            room: "lobby", sender: "alice", identity: harness.identity("alice"))
        let clock = ContinuousClock()
        let elapsed = clock.measure {
            RecordingOutbox().record(bob.security.receive(forged[...], from: "alice", isDirect: false))
        }
        let outbox = RecordingOutbox()
        outbox.record(bob.security.receive(forged[...], from: "alice", isDirect: false))
        #expect(outbox.events.count == 1)
        #expect(
            outbox.events.first.map {
                if case .warning("tampered", _, let m) = $0 { m.contains("too far ahead") } else { false }
            } == true)
        #expect(elapsed < .seconds(1))
    }

    @Test func memberForgingAnotherMembersMessage_isRefused() throws {
        let harness = AutomaticHarness()
        let alice = try harness.join("alice")
        let bob = try harness.join("bob", intercepted: true)
        _ = try harness.join("carol")
        bob.client.submit(line: "genuine")
        harness.loop.runUntilIdle()
        // carol knows bob's chain key (she is a member) and builds the next message as bob,
        // but she can only sign it with her own identity.
        let chainID = Array(bob.link!.published[0][1..<17])
        let forged = try AutomaticKeys.sealGroupMessage(
            MessageContent.text("forged").encoded(), chainID: chainID, index: 1,
            messageKey: SecretBytes(Array(repeating: 1, count: 32)),
            view: AutomaticKeys.roomView(room: "lobby", members: []),
            room: "lobby", sender: "bob", identity: harness.identity("carol"))
        alice.client.carryOut(alice.security.receive(forged[...], from: "bob", isDirect: false))
        #expect(alice.output.messages == ["bob: genuine"])
        #expect(alice.output.warnings("tampered").count == 1)
    }

    @Test func memberWhoLeft_cannotDecryptLaterTraffic_withTheStateItHad() throws {
        let harness = AutomaticHarness()
        let alice = try harness.join("alice", intercepted: true)
        let bob = try harness.join("bob")
        let carol = try harness.join("carol")
        alice.client.submit(line: "before")
        harness.loop.runUntilIdle()
        #expect(carol.output.messages == ["alice: before"])
        let carolState = carol.security
        carol.client.endOfInput()
        harness.loop.runUntilIdle()
        alice.client.submit(line: "after carol left")
        harness.loop.runUntilIdle()
        #expect(bob.output.messages == ["alice: before", "alice: after carol left"])
        let captured = try #require(alice.link!.published.last)
        let outbox = RecordingOutbox()
        outbox.record(carolState.receive(captured[...], from: "alice", isDirect: false))
        #expect(!outbox.events.contains { if case .message = $0 { true } else { false } })
        #expect(outbox.events.contains { if case .warning("undecryptable", _, _) = $0 { true } else { false } })
    }

    @Test func lateJoiner_cannotReadEarlierMessages() throws {
        let harness = AutomaticHarness()
        let alice = try harness.join("alice", intercepted: true)
        _ = try harness.join("bob")
        alice.client.submit(line: "early")
        harness.loop.runUntilIdle()
        let early = try #require(alice.link!.published.last)
        let dave = try harness.join("dave")
        alice.client.submit(line: "late")
        harness.loop.runUntilIdle()
        #expect(dave.output.messages == ["alice: late"])
        let outbox = RecordingOutbox()
        outbox.record(dave.security.receive(early[...], from: "alice", isDirect: false))
        #expect(!outbox.events.contains { if case .message = $0 { true } else { false } })
    }

    @Test func replayAfterReceiverReconnects_isRefused() throws {
        let harness = AutomaticHarness()
        let alice = try harness.join("alice", intercepted: true)
        var bob = try harness.join("bob")
        alice.client.submit(line: "once")
        harness.loop.runUntilIdle()
        let captured = try #require(alice.link!.published.last)
        bob.client.endOfInput()
        harness.loop.runUntilIdle()
        bob = try harness.join("bob")
        alice.link!.linkRelaySide.write(ClientFrame.publish(payload: captured[...]).encoded())
        harness.loop.runUntilIdle()
        #expect(bob.output.messages.isEmpty)
        // Before alice's first key reaches the new bob, the replay could be a line she sent before she saw him
        // join; her key (a new chain, as bob left) shows it was not, and the replay is reported then.
        alice.client.submit(line: "fresh")
        harness.loop.runUntilIdle()
        #expect(bob.output.messages == ["alice: fresh"])
        #expect(!bob.output.warnings("undecryptable").isEmpty || !bob.output.warnings("replay").isEmpty)
    }

    @Test func roomCode_isTheSameEverywhere_andChangesOnJoinAndLeave() throws {
        let harness = AutomaticHarness()
        let alice = try harness.join("alice")
        let bob = try harness.join("bob")
        let carol = try harness.join("carol")
        let codeWithThree = try #require(alice.output.roomCodes.last)
        #expect(bob.output.roomCodes.last == codeWithThree)
        #expect(carol.output.roomCodes.last == codeWithThree)
        #expect(Set(alice.output.roomCodes).count == 3)
        carol.client.endOfInput()
        harness.loop.runUntilIdle()
        #expect(alice.output.roomCodes.last == bob.output.roomCodes.last)
        #expect(alice.output.roomCodes.last != codeWithThree)
        #expect(alice.output.roomCodes.last == alice.output.roomCodes[1])
    }

    @Test func relayHidingAMember_orAddingAGhost_changesTheRoomCode_atTheAffectedClient() throws {
        let harness = AutomaticHarness()
        let alice = try harness.join("alice", intercepted: true)
        alice.link!.toClient = { frame in
            if case .joined(let member) = frame, member.name == "carol" { return [] }
            return [frame]
        }
        let bob = try harness.join("bob")
        _ = try harness.join("carol")
        #expect(alice.output.roomCodes.last != bob.output.roomCodes.last)

        let other = AutomaticHarness()
        let dave = try other.join("dave", intercepted: true)
        let erin = try other.join("erin")
        #expect(dave.output.roomCodes.last == erin.output.roomCodes.last)
        let ghost = Ed25519PrivateKey()
        let ghostProfile = try AutomaticKeys.makeProfile(
            identity: ghost, sessionKey: X25519PrivateKey().publicKey, room: "lobby", name: "ghost")
        dave.link!.linkClientSide.write(RelayFrame.joined(MemberEntry(name: "ghost", profile: ghostProfile)).encoded())
        other.loop.runUntilIdle()
        #expect(dave.output.roomCodes.last != erin.output.roomCodes.last)
    }

    @Test func leaves_rotateLazily_oncePerBurst_justBeforeTheNextMessage() throws {
        let harness = AutomaticHarness()
        let alice = try harness.join("alice", intercepted: true)
        let bob = try harness.join("bob")
        let leavers = try ["carol", "dave", "erin"].map { try harness.join($0) }
        alice.client.submit(line: "before")
        harness.loop.runUntilIdle()
        var directs: [String] = []
        alice.link!.toRelay = { frame in
            if case .direct(let to, _) = frame { directs.append(to) }
            return [frame]
        }
        for leaver in leavers { leaver.client.endOfInput() }
        harness.loop.runUntilIdle()
        // Three leaves: alice sends no key yet.
        #expect(directs.isEmpty)
        alice.client.submit(line: "after three left")
        alice.client.submit(line: "and again")
        harness.loop.runUntilIdle()
        // One new chain, to the one member left, before the first message; none before the second.
        #expect(directs == ["bob"])
        let chainIDs = alice.link!.published.map { Array($0[1..<17]) }
        #expect(chainIDs.count == 3 && chainIDs[0] != chainIDs[1] && chainIDs[1] == chainIDs[2])
        #expect(bob.output.messages == ["alice: before", "alice: after three left", "alice: and again"])
        #expect(bob.output.warnings.isEmpty)
        // A leaver's state cannot read what was sent after the leave.
        let outbox = RecordingOutbox()
        outbox.record(leavers[0].security.receive(alice.link!.published[1][...], from: "alice", isDirect: false))
        #expect(!outbox.events.contains { if case .message = $0 { true } else { false } })
    }

    @Test func aNewcomerAfterALeave_getsTheFreshChain_notTheOneTheLeaverKnew() throws {
        let harness = AutomaticHarness()
        let alice = try harness.join("alice", intercepted: true)
        _ = try harness.join("bob")
        let carol = try harness.join("carol")
        alice.client.submit(line: "before")
        harness.loop.runUntilIdle()
        carol.client.endOfInput()
        harness.loop.runUntilIdle()
        var directs: [String] = []
        alice.link!.toRelay = { frame in
            if case .direct(let to, _) = frame { directs.append(to) }
            return [frame]
        }
        let dave = try harness.join("dave")
        #expect(directs.isEmpty)
        alice.client.submit(line: "hello dave")
        harness.loop.runUntilIdle()
        #expect(directs.sorted() == ["bob", "dave"])
        #expect(dave.output.messages == ["alice: hello dave"])
    }

    @Test func chains_rotateEvery100Messages_andAfter24Hours() throws {
        let harness = AutomaticHarness()
        var clockOffset: Duration = .zero
        let start = ContinuousClock.now
        let bob = try harness.join("bob")
        let alice = try harness.join("alice", intercepted: true, now: { start + clockOffset })
        for n in 0..<150 { alice.client.submit(line: "n\(n)") }
        harness.loop.runUntilIdle()
        clockOffset = .seconds(25 * 3600)
        alice.client.submit(line: "next day")
        harness.loop.runUntilIdle()
        let chainIDs = alice.link!.published.map { Array($0[1..<17]) }
        #expect(Set(chainIDs).count == 3)
        #expect(chainIDs.prefix(100).allSatisfy { $0 == chainIDs[0] })
        #expect(bob.output.messages.count == 151)
        #expect(bob.output.warnings.isEmpty)
    }

    @Test func verify_givesTheSameSafetyNumberOnBothSides() throws {
        let harness = AutomaticHarness()
        let alice = try harness.join("alice")
        let bob = try harness.join("bob")
        alice.client.submit(line: "/verify bob")
        bob.client.submit(line: "/verify alice")
        harness.loop.runUntilIdle()
        guard case .verify("bob", _, let fromAlice, _) = alice.output.events.last,
            case .verify("alice", _, let fromBob, _) = bob.output.events.last
        else {
            Issue.record("no verify events")
            return
        }
        #expect(fromAlice == fromBob)
        #expect(fromAlice.count == 35)
    }
}

@Suite struct HandshakeFailsClosedTests {
    /// carol, with a fresh identity, registering through `link`: her client (started), what it shows and how it
    /// ends.
    static func startCarol(through link: InterceptingLink, loop: MemoryEventLoop) throws -> (
        client: ChatRoom, output: EventCollector, outcome: Box<ClientOutcome?>
    ) {
        let output = EventCollector()
        let outcome = Box<ClientOutcome?>(nil)
        let security = try AutomaticKeySecurity(
            identity: Ed25519PrivateKey(), name: "carol", room: "lobby", relay: "m", knownPeers: KnownPeers())
        let client = ChatRoom(
            name: "carol", room: "lobby", security: security, connection: link.clientEnd, output: output, loop: loop
        ) {
            outcome.value = $0
        }
        client.start()
        return (client, output, outcome)
    }

    @Test func droppedWelcome_endsRegistration_afterTheTimeout() throws {
        let dropping = AutomaticHarness()
        let link = InterceptingLink(harness: dropping.relayHarness)
        link.toClient = { frame in if case .welcome = frame { return [] } else { return [frame] } }
        let (client, _, outcome) = try Self.startCarol(through: link, loop: dropping.loop)
        client.submit(line: "never sent")
        dropping.loop.runUntilIdle()
        #expect(outcome.value == nil)
        dropping.loop.advance(by: .seconds(16))
        #expect(outcome.value == .relayLost("the relay did not answer the registration within 15 seconds"))
        #expect(link.published.isEmpty)
    }

    @Test(arguments: ["duplicate", "truncate", "wrong name"])
    func corruptedWelcome_failsRegistration_withAClearError(corruption: String) throws {
        let harness = AutomaticHarness()
        let link = InterceptingLink(harness: harness.relayHarness)
        link.toClient = { frame in
            guard case .welcome(let version, _, let room, let members) = frame else { return [frame] }
            switch corruption {
            case "duplicate": return [frame, frame]
            case "wrong name": return [.welcome(version: version, name: "mallory", room: room, members: members)]
            default: return []
            }
        }
        if corruption == "truncate" {
            // Deliver a welcome cut short by hand.
            link.toClient = { frame in
                if case .welcome = frame {
                    var bytes = frame.encoded()
                    bytes.removeLast(3)
                    bytes.replaceSubrange(0..<4, with: [0, 0, 0, UInt8(bytes.count - 4)])
                    link.linkClientSide.write(bytes)
                    return []
                }
                return [frame]
            }
        }
        let carol = try Self.startCarol(through: link, loop: harness.loop)
        harness.loop.runUntilIdle()
        guard case .protocolViolation = carol.outcome.value else {
            Issue.record("expected a protocol violation, got \(String(describing: carol.outcome.value))")
            return
        }
        #expect(
            carol.output.events.contains {
                if case .error(let message) = $0 { message.contains("invalid data") } else { false }
            })
    }

    @Test func duplicatedJoined_isIgnoredWithAWarning() throws {
        let harness = AutomaticHarness()
        let alice = try harness.join("alice", intercepted: true)
        alice.link!.toClient = { frame in if case .joined = frame { return [frame, frame] } else { return [frame] } }
        let bob = try harness.join("bob")
        bob.client.submit(line: "hi")
        harness.loop.runUntilIdle()
        #expect(alice.output.messages == ["bob: hi"])
        #expect(alice.output.warnings("tampered").count == 1)
    }
}
