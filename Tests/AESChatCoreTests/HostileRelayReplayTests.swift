import AESChatCrypto
import Testing

@testable import AESChatCore

/// A malicious relay replaying, truncating, reflecting and relabelling: in automatic-key mode (a
/// past session's profile and frames) and in pre-shared-key mode (recordings, dropped first
/// messages, a member's own messages, room messages relabelled as private, private file offers
/// handed to someone else).
@Suite struct HostileRelayReplayTests {
    // MARK: Automatic keys

    @Test func pastSessionReplayed_afterItsMemberLeft_isRefused_andNotShownAsPresent() throws {
        let harness = AutomaticHarness()
        let bob = try harness.join("bob", intercepted: true)
        let alice = try harness.join("alice")
        alice.client.submit(line: "first")
        alice.client.submit(line: "second")
        harness.loop.runUntilIdle()
        #expect(bob.output.messages == ["alice: first", "alice: second"])
        // What the relay recorded toward bob: alice's joined (her profile) and every frame from her.
        let recorded = bob.link!.delivered.filter {
            switch $0 {
            case .joined(let entry): entry.name == "alice"
            case .deliver(let from, _, _): from == "alice"
            default: false
            }
        }
        #expect(recorded.count >= 3)
        alice.client.interrupt()
        harness.loop.runUntilIdle()
        #expect(bob.output.events.contains(.left(name: "alice")))
        let eventsBefore = bob.output.events.count
        for frame in recorded { bob.link!.linkClientSide.write(frame.encoded()) }
        harness.loop.runUntilIdle()
        let after = Array(bob.output.events[eventsBefore...])
        #expect(!after.contains(.joined(name: "alice")))
        #expect(
            bob.output.warnings("replay").contains { $0.contains("session key already seen in this session") })
        #expect(bob.output.messages == ["alice: first", "alice: second"])
        // alice really coming back, with a new session key, is welcome.
        let back = try harness.join("alice")
        back.client.submit(line: "back again")
        harness.loop.runUntilIdle()
        #expect(bob.output.messages == ["alice: first", "alice: second", "alice: back again"])
    }

    @Test func ownProfileReflected_isRefused() throws {
        let harness = AutomaticHarness()
        let bob = try harness.join("bob", intercepted: true)
        bob.link!.linkClientSide.write(
            RelayFrame.joined(MemberEntry(name: "mallory", profile: bob.security.profile)).encoded())
        harness.loop.runUntilIdle()
        #expect(!bob.output.events.contains(.joined(name: "mallory")))
        #expect(bob.output.warnings("replay").count == 1)
    }

    @Test func seenSessionKeys_forgetTheOldestBeyondTheirCapacity() {
        var seen = SeenSessionKeys(capacity: 3)
        for byte in UInt8(1)...4 {
            let inserted = seen.insert([byte])
            #expect(inserted)
        }
        #expect(!seen.contains([1]))
        #expect(seen.contains([2]) && seen.contains([4]))
        let again = seen.insert([3])
        #expect(!again)
    }

    // MARK: Pre-shared key

    final class RoomKeyRoom {
        let harness = RelayHarness()
        var loop: MemoryEventLoop { harness.loop }
        let key = RoomKey(bytes: Array(repeating: 0x61, count: 32))
        var clock: UInt64 = 1_796_256_000_000

        struct Member {
            let client: ChatRoom
            let output: EventCollector
            let link: InterceptingLink
        }

        func join(_ name: String) -> Member {
            let link = InterceptingLink(harness: harness)
            let output = EventCollector()
            let security = RoomKeySecurity(roomKey: key, room: "lobby", name: name) { [unowned self] in self.clock }
            let client = ChatRoom(
                name: name, room: "lobby", security: security, connection: link.clientEnd, output: output,
                loop: loop, inbox: nil
            ) { _ in }
            client.start()
            loop.runUntilIdle()
            return Member(client: client, output: output, link: link)
        }

        func seal(_ content: MessageContent, from sender: String, to recipient: String? = nil, counter: UInt64 = 0)
            throws -> [UInt8]
        {
            try RoomKeySealer(
                roomKey: key, room: "lobby", sender: sender, fixedSessionID: SecureRandom.bytes(count: 16),
                counter: counter, clock: { [clock] in clock }
            ).seal(content, to: recipient)
        }
    }

    @Test func recordingOfAnAbsentSender_isRefused_evenByAFreshReceiver() throws {
        let room = RoomKeyRoom()
        let carol = room.join("carol")
        let recording = try room.seal(.text("said yesterday"), from: "carol")
        carol.client.interrupt()
        room.loop.runUntilIdle()
        let bob = room.join("bob")
        bob.link.linkClientSide.write(
            RelayFrame.deliver(from: "carol", isDirect: false, payload: recording[...]).encoded())
        room.loop.runUntilIdle()
        #expect(bob.output.messages.isEmpty)
        #expect(bob.output.warnings("tampered").contains { $0.contains("not in the room") })
    }

    @Test func recordingOlderThanTheWindow_isRefusedAsReplay_whileItsSenderIsPresent() throws {
        let room = RoomKeyRoom()
        let alice = room.join("alice")
        let recording = try room.seal(.text("an hour ago"), from: "alice")
        room.clock += 60 * 60 * 1000
        let bob = room.join("bob")
        bob.link.linkClientSide.write(
            RelayFrame.deliver(from: "alice", isDirect: false, payload: recording[...]).encoded())
        room.loop.runUntilIdle()
        #expect(bob.output.messages.isEmpty)
        #expect(bob.output.warnings("replay").contains { $0.contains("sent 60 min ago") })
        // Within the window, and a fresh session of a member present before bob: accepted.
        alice.client.submit(line: "now")
        room.loop.runUntilIdle()
        #expect(bob.output.messages == ["alice: now"])
        // A date far ahead is refused too.
        let ahead = RoomKeyOpener(roomKey: room.key, room: "lobby") { [clock = room.clock] in clock - 11 * 60 * 1000 }
        if case .replayed(let reason) = ahead.open(try room.seal(.text("x"), from: "alice")[...], from: "alice") {
            #expect(reason.contains("ahead"))
        } else {
            Issue.record("a message dated 11 minutes ahead was accepted")
        }
    }

    @Test func firstMessagesOfANewSession_dropped_areReportedMissing() {
        let room = RoomKeyRoom()
        let bob = room.join("bob")
        let alice = room.join("alice")
        var dropped = 0
        alice.link.toRelay = { frame in
            guard case .publish = frame, dropped < 2 else { return [frame] }
            dropped += 1
            return []
        }
        for text in ["one", "two", "three"] { alice.client.submit(line: text) }
        room.loop.runUntilIdle()
        #expect(bob.output.messages == ["alice: three"])
        #expect(bob.output.warnings("missing") == ["2 messages from alice missing"])
    }

    @Test func lateJoiner_seesNoFalseGap_inASessionAlreadyUnderway() {
        let room = RoomKeyRoom()
        let alice = room.join("alice")
        _ = room.join("carol")
        for text in ["one", "two"] { alice.client.submit(line: text) }
        room.loop.runUntilIdle()
        let bob = room.join("bob")
        alice.client.submit(line: "three")
        room.loop.runUntilIdle()
        #expect(bob.output.messages == ["alice: three"])
        #expect(bob.output.warnings.isEmpty)
    }

    @Test func ownMessageReflected_isRefused() throws {
        let room = RoomKeyRoom()
        let bob = room.join("bob")
        _ = room.join("alice")
        bob.client.submit(line: "mine")
        room.loop.runUntilIdle()
        let published = try #require(bob.link.published.last)
        bob.link.linkClientSide.write(
            RelayFrame.deliver(from: "bob", isDirect: false, payload: published[...]).encoded())
        room.loop.runUntilIdle()
        #expect(bob.output.messages.isEmpty)
        #expect(bob.output.warnings("tampered").contains { $0.contains("your own name") })
    }

    @Test func roomMessageRelabelledAsPrivate_failsAuthentication() throws {
        let room = RoomKeyRoom()
        let bob = room.join("bob")
        let alice = room.join("alice")
        alice.client.submit(line: "to everyone")
        room.loop.runUntilIdle()
        let published = try #require(alice.link.published.last)
        bob.link.linkClientSide.write(
            RelayFrame.deliver(from: "alice", isDirect: true, payload: published[...]).encoded())
        room.loop.runUntilIdle()
        #expect(bob.output.messages == ["alice: to everyone"])
        #expect(bob.output.warnings("tampered").count == 1)
    }

    @Test func privateFileOffer_handedToAnotherMember_isRefusedThere() throws {
        let room = RoomKeyRoom()
        let bob = room.join("bob")
        let carol = room.join("carol")
        _ = room.join("alice")
        let offer = FileOffer(
            fileID: Array(repeating: 4, count: 16), size: 10, chunkSize: 1024, key: Array(repeating: 5, count: 32),
            name: "for-bob.txt")
        let toBob = try room.seal(.fileOffer(offer), from: "alice", to: "bob")
        carol.link.linkClientSide.write(
            RelayFrame.deliver(from: "alice", isDirect: true, payload: toBob[...]).encoded())
        bob.link.linkClientSide.write(RelayFrame.deliver(from: "alice", isDirect: true, payload: toBob[...]).encoded())
        room.loop.runUntilIdle()
        #expect(carol.output.warnings("tampered").count == 1)
        // bob has no inbox in this room: the offer reaches his client (no tampered warning).
        #expect(bob.output.warnings("tampered").isEmpty)
    }
}
