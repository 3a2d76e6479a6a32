import AESChatCrypto
import AESChatTesting
import Testing

@testable import AESChatCore

/// Roster-bound group messages (docs/PROTOCOL.md section 6.3, *Room views*): every group message carries the
/// sender's view of the room, and a receiver warns (`roster-mismatch`) when it matches none of its own recent views.
/// The relay here is hostile through ``InterceptingLink``s; the members' clocks follow the memory loop, so that
/// ``AutomaticKeySecurity/viewWindow`` can pass.
@Suite struct RoomViewTests {
    /// A room whose members' clocks are the memory loop's virtual time.
    final class Room {
        let harness = AutomaticHarness()
        let start = ContinuousClock.now
        var members: [String: AutomaticHarness.Member] = [:]

        @discardableResult
        func join(_ name: String, intercepted: Bool = false, settle: Bool = true) throws -> AutomaticHarness.Member {
            let loop = harness.loop
            let start = start
            let member = try harness.join(
                name, intercepted: intercepted, now: { start + loop.now }, settle: settle)
            members[name] = member
            return member
        }

        subscript(name: String) -> AutomaticHarness.Member { members[name]! }

        /// Lets the view window pass, and the relay's presence window with it.
        func waitPastTheWindow() {
            harness.loop.advance(by: AutomaticKeySecurity.viewWindow + .seconds(1))
        }

        /// A profile for a member only the relay knows.
        func ghostProfile(_ name: String) throws -> [UInt8] {
            try AutomaticKeys.makeProfile(
                identity: Ed25519PrivateKey(), sessionKey: X25519PrivateKey().publicKey, room: "lobby", name: name)
        }

        /// The hostile relay tells `member` something that did not happen.
        func tell(_ member: String, _ frame: RelayFrame) {
            self[member].link!.linkClientSide.write(frame.encoded())
            harness.loop.runUntilIdle()
        }

        func say(_ member: String, _ line: String) {
            self[member].client.submit(line: line)
            harness.loop.runUntilIdle()
        }
    }

    @Test func hiddenDeparture_isCaught_whenTheMemberItWasHiddenFromSpeaks_andOnceTheWindowPassed_whenTheOthersDo()
        throws
    {
        let room = Room()
        try room.join("alice")
        try room.join("bob", intercepted: true)
        try room.join("carol")
        room.waitPastTheWindow()
        // The relay tells bob that carol left; she did not, and keeps receiving what alice sends.
        room.tell("bob", .left(name: "carol"))
        room.say("bob", "just us now?")
        #expect(room["alice"].output.messages == ["bob: just us now?"])
        #expect(
            room["alice"].output.warnings("roster-mismatch") == [
                "bob sees a different room than you (2 members in their view, 3 in yours) — compare /verify room"
            ])
        // alice's next message right away: to bob it is the room he had a moment ago (alice may not have seen
        // carol leave yet), so the window hides it; once the window has passed, the same is a mismatch.
        room.say("alice", "carol is still here")
        #expect(room["bob"].output.messages == ["alice: carol is still here"])
        #expect(room["bob"].output.warnings("roster-mismatch").isEmpty)
        #expect(room["carol"].output.messages == ["alice: carol is still here"])
        room.waitPastTheWindow()
        room.say("alice", "still")
        #expect(
            room["bob"].output.warnings("roster-mismatch") == [
                "alice sees a different room than you (3 members in their view, 2 in yours) — compare /verify room"
            ])
        #expect(room["carol"].output.warnings("roster-mismatch").isEmpty)
    }

    @Test func ghostShownToOneMember_isCaughtAtItsNextMessage_andAtTheOthersOnceTheWindowPassed() throws {
        let room = Room()
        try room.join("dave", intercepted: true)
        try room.join("erin")
        room.waitPastTheWindow()
        room.tell("dave", .joined(MemberEntry(name: "ghost", profile: try room.ghostProfile("ghost"))))
        room.say("dave", "hello all three")
        #expect(room["erin"].output.messages == ["dave: hello all three"])
        #expect(
            room["erin"].output.warnings("roster-mismatch") == [
                "dave sees a different room than you (3 members in their view, 2 in yours) — compare /verify room"
            ])
        room.say("erin", "who?")
        #expect(room["dave"].output.warnings("roster-mismatch").isEmpty)
        room.waitPastTheWindow()
        room.say("erin", "who is that?")
        #expect(
            room["dave"].output.warnings("roster-mismatch") == [
                "erin sees a different room than you (2 members in their view, 3 in yours) — compare /verify room"
            ])
    }

    @Test func splitRoom_whereTwoHalvesSeeDifferentJoins_isCaughtAtTheNextMessageFromEitherHalf() throws {
        let room = Room()
        for name in ["alice", "bob", "carol", "dave"] { try room.join(name, intercepted: true) }
        // x is shown to alice and bob only, y to carol and dave only: each half has five members, not the same.
        for name in ["carol", "dave"] {
            room[name].link!.toClient = { frame in
                if case .joined(let member) = frame, member.name == "x" { return [] }
                return [frame]
            }
        }
        for name in ["alice", "bob"] {
            room[name].link!.toClient = { frame in
                if case .joined(let member) = frame, member.name == "y" { return [] }
                return [frame]
            }
        }
        try room.join("x")
        try room.join("y")
        room.say("alice", "from the first half")
        for name in ["carol", "dave"] {
            #expect(room[name].output.messages == ["alice: from the first half"])
            #expect(
                room[name].output.warnings("roster-mismatch") == [
                    "alice sees a different room than you (5 members in each view, not the same ones) — compare /verify room"
                ])
        }
        #expect(room["bob"].output.warnings("roster-mismatch").isEmpty)
        room.say("dave", "from the second half")
        for name in ["alice", "bob"] {
            #expect(
                room[name].output.warnings("roster-mismatch") == [
                    "dave sees a different room than you (5 members in each view, not the same ones) — compare /verify room"
                ])
        }
        #expect(room["carol"].output.warnings("roster-mismatch").count == 1)
    }

    @Test func mismatch_isShownOncePerEpisode_andAgainAfterTheViewsAgreed() throws {
        let room = Room()
        try room.join("dave", intercepted: true)
        try room.join("erin")
        room.waitPastTheWindow()
        room.tell("dave", .joined(MemberEntry(name: "ghost", profile: try room.ghostProfile("ghost"))))
        for line in ["one", "two", "three"] { room.say("dave", line) }
        #expect(room["erin"].output.messages == ["dave: one", "dave: two", "dave: three"])
        #expect(room["erin"].output.warnings("roster-mismatch").count == 1)
        // The ghost goes: dave's view is erin's again, and the episode ends at his next message.
        room.tell("dave", .left(name: "ghost"))
        room.say("dave", "four")
        #expect(room["erin"].output.warnings("roster-mismatch").count == 1)
        room.tell("dave", .joined(MemberEntry(name: "ghost2", profile: try room.ghostProfile("ghost2"))))
        room.say("dave", "five")
        #expect(room["erin"].output.warnings("roster-mismatch").count == 2)
        #expect(room["erin"].output.messages.last == "dave: five")
    }

    @Test(arguments: [UInt64(1), 2, 3])
    func honestChurn_joinsAndLeavesRacingWithMessages_neverRaisesIt(seed: UInt64) throws {
        var random = SeededGenerator(seed: seed)
        let room = Room()
        var present = ["m0", "m1", "m2"]
        for name in present { try room.join(name) }
        var next = 3
        var everyone = room.members
        var sent = 0
        for _ in 0..<40 {
            // A burst of operations with no settling in between: hellos, lines and byes cross in flight.
            for _ in 0..<Int.random(in: 2...7, using: &random) {
                switch Int.random(in: 0..<10, using: &random) {
                case 0..<5 where !present.isEmpty:
                    let speaker = present.randomElement(using: &random)!
                    room[speaker].client.submit(line: "line \(sent)")
                    sent += 1
                case 5..<7 where present.count > 1:
                    let leaver = present.remove(at: Int.random(in: 0..<present.count, using: &random))
                    room[leaver].client.endOfInput()
                default:
                    let name = "m\(next)"
                    next += 1
                    try room.join(name, settle: false)
                    everyone[name] = room[name]
                    present.append(name)
                }
                if Bool.random(using: &random) { room.harness.loop.runUntilIdle() }
            }
            room.harness.loop.advance(by: .seconds(Int.random(in: 0...20, using: &random)))
        }
        room.harness.loop.advance(by: .seconds(1))
        var delivered = 0
        var earlier = 0
        for (name, member) in everyone {
            #expect(member.output.warnings("roster-mismatch").isEmpty, "\(name): \(member.output.events)")
            #expect(member.output.warnings("tampered").isEmpty, "\(name): \(member.output.events)")
            delivered += member.output.messages.count
            earlier += member.security.earlierViewsAccepted
        }
        // The races happened: lines were read, and some carried a view the reader had already left behind.
        #expect(delivered > sent)
        #expect(earlier > 0)
    }

    @Test func groupMessageOfTheFirstFormat_isRefusedWithOneNotice_namingAnOlderAeschat() throws {
        let room = Room()
        try room.join("alice")
        let bob = try room.join("bob")
        // alice's identity signs the first format (kind 0x03, no room view) correctly: it is still refused.
        var old = [EnvelopeKind.groupFirstVersion.rawValue] + [UInt8](repeating: 0xC0, count: 16) + [0, 0, 0, 0]
        old += [UInt8](repeating: 0x55, count: 40)
        let outbox = RecordingOutbox()
        for _ in 0..<3 { outbox.record(bob.security.receive(old[...], from: "alice", isDirect: false)) }
        #expect(
            outbox.events == [
                .info(
                    "alice runs an older aeschat: its room messages do not carry the room view this version checks, "
                        + "and are not shown until alice updates")
            ])
    }
}
