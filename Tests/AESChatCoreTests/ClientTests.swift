import AESChatCrypto
import AESChatTesting
import Testing

@testable import AESChatCore

final class EventCollector: ClientOutput {
    var events: [ClientEvent] = []
    func emit(_ event: ClientEvent) { events.append(event) }

    var messages: [String] {
        events.compactMap {
            if case .message(let from, let text, _) = $0 { return "\(from): \(text)" }
            return nil
        }
    }

    var warnings: [String] {
        events.compactMap {
            if case .warning(let kind, _, _) = $0 { return kind }
            // A different room key is shown in words, and is a `tampered` warning in JSON.
            if case .differentRoomKey = $0 { return "tampered" }
            return nil
        }
    }
}

/// Sits between a client and the relay on two in-memory connections and lets a test rewrite or
/// drop the frames the client publishes. It ends the client's encrypted link (the client pins its
/// key, ``TestRelayKeys/current``: see ``ChatHarness/tamperedEnds()``) and has its own to the relay.
final class TamperingLink: ConnectionHandler {
    let towardRelay: RawPeer
    var decoder = FrameDecoder()
    var rewrite: (ClientFrame) -> [ClientFrame] = { [$0] }
    var published: [[UInt8]] = []

    init(relayEnd: MemoryConnection) { towardRelay = RawPeer(relayEnd) }

    func connection(_ connection: any Connection, didRead bytes: UnsafeRawBufferPointer) {
        for frame in decoder.frames(after: bytes).frames {
            guard let decoded = try? ClientFrame(frame) else { break }
            if case .publish(let payload) = decoded { published.append(Array(payload)) }
            for out in rewrite(decoded) { towardRelay.send(out) }
        }
    }

    func connection(_ connection: any Connection, didCloseWith error: TransportError?) {
        towardRelay.connection.close()
    }
}

final class ChatHarness {
    let relayHarness = RelayHarness()
    var loop: MemoryEventLoop { relayHarness.loop }
    let key = RoomKey(bytes: Array(0..<32))

    func client(_ name: String, room: String = "lobby", key: RoomKey? = nil) -> (
        ChatRoom, EventCollector, Box<ClientOutcome?>
    ) {
        let output = EventCollector()
        let outcome = Box<ClientOutcome?>(nil)
        let connection = linked(relayHarness.listener.connect(chunkSize: 999), pinning: relayHarness.relayKey)
        let client = ChatRoom(
            name: name, room: room, roomKey: key ?? self.key, connection: connection, output: output, loop: loop
        ) { outcome.value = $0 }
        client.start()
        loop.runUntilIdle()
        return (client, output, outcome)
    }

    /// A client's end whose frames pass through a ``TamperingLink``, with the encrypted link
    /// started on it (pinning the tampering link's key).
    func tamperedEnds() -> (client: MemoryConnection, link: TamperingLink) {
        let (clientEnd, linkEnd) = MemoryConnection.pair(loop: loop)
        let link = TamperingLink(relayEnd: relayHarness.listener.connect())
        TestLinkResponder(linkEnd) { $0.handler = link }
        link.towardRelay.connection.handler = ForwardToClient(clientSide: linkEnd)
        return (linked(clientEnd, pinning: TestRelayKeys.pinned(TestRelayKeys.current)), link)
    }

    /// Starts the client's encrypted link on `connection`, pinning `key` (see ``startLink(on:pinning:loop:)``).
    func linked(_ connection: MemoryConnection, pinning key: RelayPublicKey) -> MemoryConnection {
        startLink(on: connection, pinning: key, loop: loop)
    }

    /// A client whose published frames pass through a ``TamperingLink``.
    func tamperedClient(_ name: String) -> (ChatRoom, EventCollector, TamperingLink) {
        let output = EventCollector()
        let (clientEnd, link) = tamperedEnds()
        let client = ChatRoom(
            name: name, room: "lobby", roomKey: key, connection: clientEnd, output: output, loop: loop
        ) { _ in }
        client.start()
        loop.runUntilIdle()
        return (client, output, link)
    }
}

/// Passes relay bytes straight back to the client end of a link.
final class ForwardToClient: ConnectionHandler {
    let clientSide: MemoryConnection
    init(clientSide: MemoryConnection) { self.clientSide = clientSide }
    func connection(_ connection: any Connection, didRead bytes: UnsafeRawBufferPointer) {
        clientSide.write(Array(bytes))
    }
    func connection(_ connection: any Connection, didCloseWith error: TransportError?) { clientSide.close() }
}

final class Box<T> {
    var value: T
    init(_ value: T) { self.value = value }
}

@Suite struct ChatClientTests {
    @Test func threeClients_receiveEachOthersMessages_onceAndInOrder() {
        let harness = ChatHarness()
        let clients = ["alice", "bob", "carol"].map { harness.client($0) }
        for round in 0..<30 {
            for (client, _, _) in clients { client.submit(line: "m\(round)") }
        }
        harness.loop.runUntilIdle()
        for (index, (_, output, _)) in clients.enumerated() {
            let others = ["alice", "bob", "carol"].enumerated().filter { $0.offset != index }.map(\.element)
            for other in others {
                #expect(output.messages.filter { $0.hasPrefix(other + ":") } == (0..<30).map { "\(other): m\($0)" })
            }
            #expect(output.messages.count == 60)
            #expect(output.warnings.isEmpty)
        }
    }

    @Test func linesTypedBeforeWelcome_areHeld_thenSent() {
        let harness = ChatHarness()
        let (_, bobOutput, _) = harness.client("bob")
        let output = EventCollector()
        let connection = harness.linked(
            harness.relayHarness.listener.connect(), pinning: harness.relayHarness.relayKey)
        let alice = ChatRoom(
            name: "alice", room: "lobby", roomKey: harness.key, connection: connection, output: output,
            loop: harness.loop
        ) { _ in }
        alice.start()
        alice.submit(line: "early one")
        alice.submit(line: "early two")
        alice.endOfInput()
        harness.loop.runUntilIdle()
        #expect(bobOutput.messages == ["alice: early one", "alice: early two"])
        #expect(bobOutput.events.last == .left(name: "alice"))
    }

    @Test func endOfInput_leavesCleanly_afterEverythingWasSent() {
        let harness = ChatHarness()
        let (_, bobOutput, _) = harness.client("bob")
        let (alice, _, aliceOutcome) = harness.client("alice")
        for n in 0..<200 { alice.submit(line: "line \(n)") }
        alice.endOfInput()
        harness.loop.runUntilIdle()
        #expect(bobOutput.messages.count == 200)
        #expect(aliceOutcome.value == .finished)
    }

    @Test func flippedBit_isReportedAsTampered_neverShown() {
        let harness = ChatHarness()
        let (_, bobOutput, _) = harness.client("bob")
        let (alice, _, link) = harness.tamperedClient("alice")
        var publishes = 0
        link.rewrite = { frame in
            guard case .publish(let payload) = frame else { return [frame] }
            publishes += 1
            guard publishes == 2 else { return [frame] }
            var bytes = Array(payload)
            bytes[bytes.count - 5] ^= 0x80
            return [.publish(payload: bytes[...])]
        }
        alice.submit(line: "first, intact")
        alice.submit(line: "top secret")
        harness.loop.runUntilIdle()
        // Within a session that already opened, a failure can only be an alteration: called tampered.
        #expect(bobOutput.messages == ["alice: first, intact"])
        let warnings = bobOutput.events.filter { if case .warning = $0 { true } else { false } }
        #expect(
            warnings == [
                .warning(
                    kind: "tampered", name: "alice",
                    message: "tampered message refused: message from alice failed authentication")
            ])
    }

    @Test func wrongRoomKey_saysDifferentRoomKey_notTampered_neverShown() throws {
        let harness = ChatHarness()
        let (_, bobOutput, _) = harness.client("bob")
        let (alice, _, _) = harness.client("alice", key: RoomKey(bytes: Array(repeating: 7, count: 32)))
        alice.submit(line: "under another key")
        alice.submit(line: "still another key")
        harness.loop.runUntilIdle()
        #expect(bobOutput.messages.isEmpty)
        let shown = bobOutput.events.compactMap { event -> ClientEvent? in
            if case .differentRoomKey = event { return event }
            if case .warning = event { return event }
            return nil
        }
        #expect(shown.count == 2)
        for event in shown {
            guard case .differentRoomKey(let name, _) = event else {
                Issue.record("not shown as a different room key: \(event)")
                continue
            }
            #expect(name == "alice")
            #expect(event.humanText.contains("different room key?"))
            #expect(!event.humanText.contains("tampered"))
            // JSON keeps the documented kind (a failed authentication) and names the likely cause.
            #expect(event.json.hasPrefix(#"{"event":"warning","kind":"tampered","name":"alice","message":"#))
            #expect(event.json.hasSuffix(#","cause":"different-room-key"}"#))
        }
    }

    @Test func replayedFrame_isRefused_andDroppedFrame_showsAsMissing() {
        let harness = ChatHarness()
        let (_, bobOutput, _) = harness.client("bob")
        let (alice, _, link) = harness.tamperedClient("alice")
        var count = 0
        link.rewrite = { frame in
            guard case .publish = frame else { return [frame] }
            count += 1
            switch count {
            case 1: return [frame, frame]  // replay of message 0
            case 2: return []  // message 1 dropped
            default: return [frame]
            }
        }
        for text in ["zero", "one", "two"] { alice.submit(line: text) }
        harness.loop.runUntilIdle()
        #expect(bobOutput.messages == ["alice: zero", "alice: two"])
        #expect(bobOutput.warnings == ["replay", "missing"])
        let missing = bobOutput.events.first { if case .warning("missing", _, _) = $0 { true } else { false } }
        #expect(missing == .warning(kind: "missing", name: "alice", message: "1 messages from alice missing"))
    }

    @Test func relayRelabellingTheSender_failsAuthentication() {
        // Carol's envelope replayed by a malicious relay as if bob had sent it.
        let harness = ChatHarness()
        let (_, aliceOutput, _) = harness.client("alice")
        let (_, _, link) = harness.tamperedClient("carol")
        let sealer = RoomKeySealer(roomKey: harness.key, room: "lobby", sender: "carol")
        let envelope = try! sealer.seal(.text("from carol"))
        let opener = RoomKeyOpener(roomKey: harness.key, room: "lobby")
        #expect(opener.open(envelope[...], from: "bob").isRefused)
        let otherRoom = RoomKeyOpener(roomKey: harness.key, room: "elsewhere")
        #expect(otherRoom.open(envelope[...], from: "carol").isRefused)
        if case .content(.text("from carol"), 0) = opener.open(envelope[...], from: "carol") {
        } else {
            Issue.record("genuine message refused")
        }
        _ = (aliceOutput, link)
    }

    @Test func registrationRefused_endsWithRefusedOutcome() {
        let harness = ChatHarness()
        _ = harness.client("alice")
        let (_, output, outcome) = harness.client("alice")
        #expect(
            outcome.value
                == .refused(
                    "the name 'alice' is already in use in lobby; it frees up in about 120 s if its holder stays "
                        + "silent, or choose another with --name"))
        #expect(output.events.count == 1)
    }

    @Test func relayVanishing_endsWithRelayLost() {
        let harness = ChatHarness()
        let (_, output, outcome) = harness.client("alice")
        harness.relayHarness.relay.shutdown {}
        harness.loop.runUntilIdle()
        #expect(outcome.value == .relayLost("relay is shutting down"))
        // An `error` in JSON, as always; the terminal shows it in the status row, not in red.
        #expect(output.events.last == .connectionLost(reason: "relay is shutting down"))
        #expect(output.events.last?.json == #"{"event":"error","message":"relay is shutting down"}"#)
    }

    @Test func oversizedLine_isRefusedWithAnError_notSent() {
        let harness = ChatHarness()
        let (_, bobOutput, _) = harness.client("bob")
        let (alice, aliceOutput, _) = harness.client("alice")
        alice.submit(line: String(repeating: "x", count: ChatRoom.maximumMessageBytes + 1))
        harness.loop.runUntilIdle()
        #expect(bobOutput.messages.isEmpty)
        if case .error(let message) = aliceOutput.events.last {
            #expect(message.contains("limit"))
        } else {
            Issue.record("no error shown")
        }
    }
}

@Suite struct RoomKeyEnvelopeTests {
    let key = RoomKey(bytes: Array(repeating: 0x42, count: 32))

    @Test func sealer_neverRepeatsANonce_andSessionsDiffer() throws {
        let first = RoomKeySealer(roomKey: key, room: "lobby", sender: "alice")
        let second = RoomKeySealer(roomKey: key, room: "lobby", sender: "alice")
        let a = try first.seal(.text("same"))
        let b = try first.seal(.text("same"))
        let c = try second.seal(.text("same"))
        #expect(a[1..<17] == b[1..<17])  // one session
        #expect(a[17..<25] != b[17..<25])  // counters differ
        #expect(a[1..<17] != c[1..<17])  // a restart draws a new session id
        #expect(a[25...] != b[25...] && a[25...] != c[25...])
    }

    @Test func envelope_layout_and_size() throws {
        let sealer = RoomKeySealer(roomKey: key, room: "lobby", sender: "alice")
        let envelope = try sealer.seal(.text("hi"))
        #expect(envelope.count == RoomKeyEnvelope.headerSize + 3 + 16)
        #expect(envelope[0] == EnvelopeKind.roomKey.rawValue)
        #expect(Array(envelope[17..<25]) == [0, 0, 0, 0, 0, 0, 0, 0])
    }

    @Test func derivedKey_matchesHKDFDefinition() throws {
        // Key derivation as docs/PROTOCOL.md states it, computed independently of the sealer.
        let sessionID = [UInt8](repeating: 0xA5, count: 16)
        var info = Array("aeschat/1 room-key message".utf8) + [0]
        info += [5] + Array("lobby".utf8) + [5] + Array("alice".utf8)
        let expected = try HKDFSHA256.deriveKey(
            inputKeyMaterial: Array(repeating: 0x42, count: 32), salt: sessionID, info: info, outputByteCount: 32)
        #expect(
            try RoomKeyEnvelope.messageKey(roomKey: key, sessionID: sessionID[...], room: "lobby", sender: "alice")
                .withUnsafeBytes { Array($0) } == expected)
    }

    @Test func opener_refusesTruncatedAndUnknownEnvelopes() throws {
        let opener = RoomKeyOpener(roomKey: key, room: "lobby")
        let sealer = RoomKeySealer(roomKey: key, room: "lobby", sender: "alice")
        let envelope = try sealer.seal(.text("hello"))
        for cut in [0, 1, 24, 25, 41, envelope.count - 1] {
            if opener.open(envelope.prefix(cut), from: "alice").isRefused {
            } else {
                Issue.record("cut \(cut) accepted")
            }
        }
        var wrongKind = envelope
        wrongKind[0] = 0x02
        if case .tampered = opener.open(wrongKind[...], from: "alice") {} else { Issue.record("unknown kind accepted") }
        if case .content(.text("hello"), 0) = opener.open(envelope[...], from: "alice") {
        } else {
            Issue.record("refused")
        }
    }

    @Test func opener_refusesMessagesFromARetiredSession() throws {
        let opener = RoomKeyOpener(roomKey: key, room: "lobby")
        let old = try RoomKeySealer(roomKey: key, room: "lobby", sender: "alice").seal(.text("old"))
        let newer = RoomKeySealer(roomKey: key, room: "lobby", sender: "alice")
        _ = opener.open(old[...], from: "alice")
        _ = opener.open(try newer.seal(.text("new"))[...], from: "alice")
        if case .replayed = opener.open(old[...], from: "alice") {} else { Issue.record("old session accepted") }
    }
}

/// A line is confirmed by the pong to the ping that follows it; a line the relay did not confirm
/// is handed back when the connection is lost, and members drop a second copy by its id.
@Suite struct LineConfirmationTests {
    private static func dropping(_ drop: @escaping (ClientFrame) -> Bool) -> (ClientFrame) -> [ClientFrame] {
        { drop($0) ? [] : [$0] }
    }

    @Test func messageIDContent_roundTrips_andOnlyWrapsTextOrAction() throws {
        let line = MessageContent.identified(id: 0x0102_0304_0506_0708, .text("hi"))
        #expect(line.encoded() == [0x03, 1, 2, 3, 4, 5, 6, 7, 8, 0x01, 0x68, 0x69])
        #expect(try MessageContent(decoding: line.encoded()) == line)
        let action = MessageContent.identified(id: 7, .action("waves"))
        #expect(try MessageContent(decoding: action.encoded()) == action)
        #expect(!line.isFileControl)
        let nested = [0x03] + [UInt8](repeating: 0, count: 8) + line.encoded()
        #expect(throws: WireError.self) { try MessageContent(decoding: nested) }
        let wrappedFile = [0x03] + [UInt8](repeating: 0, count: 8) + [0x24] + [UInt8](repeating: 0, count: 18)
        #expect(throws: WireError.self) { try MessageContent(decoding: wrappedFile) }
        #expect(throws: WireError.self) { try MessageContent(decoding: [0x03, 1, 2, 3]) }
        #expect(throws: WireError.self) { try MessageContent(decoding: [0x03, 1, 2, 3, 4, 5, 6, 7, 8]) }
    }

    @Test func recentMessageIDs_dropRepeats_perSender_andStayBounded() {
        let recent = RecentMessageIDs()
        #expect(recent.recordIfNew(1, from: "alice"))
        #expect(!recent.recordIfNew(1, from: "alice"))
        #expect(recent.recordIfNew(1, from: "bob"))
        for id in UInt64(2)...UInt64(RecentMessageIDs.idsPerSender) { #expect(recent.recordIfNew(id, from: "alice")) }
        #expect(!recent.recordIfNew(1, from: "alice"))
        // One more pushes the oldest id out.
        #expect(recent.recordIfNew(1000, from: "alice"))
        #expect(recent.recordIfNew(1, from: "alice"))
        for index in 0..<(RecentMessageIDs.maximumSenders + 10) { _ = recent.recordIfNew(5, from: "m\(index)") }
        #expect(recent.senderCount == RecentMessageIDs.maximumSenders)
        // The senders heard from most recently are the ones kept.
        #expect(!recent.recordIfNew(5, from: "m\(RecentMessageIDs.maximumSenders + 9)"))
    }

    @Test func aLine_isConfirmedByThePongToItsPing() {
        let harness = ChatHarness()
        _ = harness.client("bob")
        let (alice, _, link) = harness.tamperedClient("alice")
        var pings = 0
        link.rewrite = {
            if case .ping = $0 { pings += 1 }
            return [$0]
        }
        alice.submit(line: "one")
        alice.submit(line: "two")
        #expect(alice.linesNotConfirmed.map(\.text) == ["one", "two"])
        harness.loop.runUntilIdle()
        #expect(pings == 2)
        #expect(alice.linesNotConfirmed.isEmpty)
    }

    @Test func aLineTheRelayNeverGot_isHandedBack_andArrivesOnceWhenSentAgain() {
        let harness = ChatHarness()
        let (_, bobOutput, _) = harness.client("bob")
        let (alice, _, link) = harness.tamperedClient("alice")
        alice.submit(line: "before")
        harness.loop.runUntilIdle()
        // The connection dies with the line in flight: neither it nor its ping reach the relay.
        link.rewrite = Self.dropping { _ in true }
        alice.submit(line: "lost in flight")
        harness.loop.runUntilIdle()
        link.towardRelay.connection.close()
        harness.loop.runUntilIdle()
        let leftover = alice.linesNotConfirmed
        #expect(leftover.map(\.text) == ["lost in flight"])
        #expect(bobOutput.messages == ["alice: before"])
        let (again, _, _) = harness.tamperedClient("alice")
        for line in leftover { again.submit(line) }
        harness.loop.runUntilIdle()
        #expect(bobOutput.messages == ["alice: before", "alice: lost in flight"])
        #expect(again.linesNotConfirmed.isEmpty)
    }

    @Test func aLineDeliveredWhoseConfirmationWasLost_isShownOnce() {
        let harness = ChatHarness()
        let (_, bobOutput, _) = harness.client("bob")
        let (alice, _, link) = harness.tamperedClient("alice")
        // The message reaches the relay but the ping does not, as if the pong were lost in the cut.
        link.rewrite = Self.dropping {
            if case .ping = $0 { return true }
            return false
        }
        alice.submit(line: "/me waves")
        alice.submit(line: "/who")
        alice.submit(line: "delivered")
        harness.loop.runUntilIdle()
        link.towardRelay.connection.close()
        harness.loop.runUntilIdle()
        let leftover = alice.linesNotConfirmed
        #expect(leftover.map(\.text) == ["/me waves", "delivered"])
        let (again, _, _) = harness.tamperedClient("alice")
        for line in leftover { again.submit(line) }
        again.submit(line: "new")
        harness.loop.runUntilIdle()
        #expect(bobOutput.messages == ["alice: delivered", "alice: new"])
        let actions = bobOutput.events.filter {
            if case .action = $0 { return true }
            return false
        }
        #expect(actions.count == 1)
        #expect(bobOutput.warnings.isEmpty)
    }

    @Test func aRelayThatStopsAnswering_countsAsLost_andTheLinesAreHandedBack() {
        let harness = ChatHarness()
        _ = harness.client("bob")
        let output = EventCollector()
        let (clientEnd, link) = harness.tamperedEnds()
        let outcome = Box<ClientOutcome?>(nil)
        let alice = ChatRoom(
            name: "alice", room: "lobby", roomKey: harness.key, connection: clientEnd, output: output,
            loop: harness.loop
        ) { outcome.value = $0 }
        alice.start()
        harness.loop.runUntilIdle()
        link.rewrite = Self.dropping {
            if case .ping = $0 { return true }
            return false
        }
        alice.submit(line: "unanswered")
        // Bytes from the relay (a member joining) are a sign of life: the watch starts over.
        harness.loop.advance(by: .seconds(20))
        _ = harness.client("carol")
        harness.loop.advance(by: .seconds(20))
        #expect(outcome.value == nil)
        harness.loop.advance(by: .seconds(20))
        #expect(outcome.value == .relayLost("the relay has not answered for 30 seconds; 1 line(s) unconfirmed"))
        #expect(alice.linesNotConfirmed.map(\.text) == ["unanswered"])
    }

    @Test func atMostSixtyFourLinesAreUnconfirmed_laterOnesWait_andInputEndsOnlyOnceAllAreConfirmed() {
        let harness = ChatHarness()
        let (_, bobOutput, _) = harness.client("bob")
        let (alice, _, link) = harness.tamperedClient("alice")
        var heldPings: [ClientFrame] = []
        link.rewrite = {
            if case .ping = $0 {
                heldPings.append($0)
                return []
            }
            return [$0]
        }
        for n in 0..<100 { alice.submit(line: "line \(n)") }
        alice.endOfInput()
        harness.loop.runUntilIdle()
        #expect(bobOutput.messages.count == ChatRoom.maximumUnconfirmedLines)
        #expect(alice.linesNotConfirmed.count == 100)
        #expect(bobOutput.events.last != .left(name: "alice"))
        link.rewrite = { [$0] }
        for ping in heldPings { link.towardRelay.send(ping) }
        harness.loop.runUntilIdle()
        #expect(bobOutput.messages == (0..<100).map { "alice: line \($0)" })
        #expect(alice.linesNotConfirmed.isEmpty)
        #expect(bobOutput.events.last == .left(name: "alice"))
    }
}
