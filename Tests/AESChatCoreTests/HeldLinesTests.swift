import AESChatCrypto
import Testing

@testable import AESChatCore

/// Lines held for a member whose verified key changed (issue 14 item 7): they survive a reconnect, go out after
/// `/trust` only to those they were meant for, are tracked like typed lines, and `/hold all` holds every line.
/// The last `holding` event shown.
func holding(_ output: EventCollector) -> (members: [String], all: Bool)? {
    for event in output.events.reversed() {
        if case .holding(let members, let all) = event { return (members, all) }
    }
    return nil
}

@Suite struct HeldLinesTests {
    /// Alice verified bob; bob's name now presents another key (`impostor`), with carol present throughout.
    func changedBob(_ harness: AutomaticHarness, alice: AutomaticHarness.Member) throws -> (
        impostor: AutomaticHarness.Member, carol: AutomaticHarness.Member
    ) {
        let bob = try harness.join("bob")
        let carol = try harness.join("carol")
        alice.client.submit(line: "/trust bob")
        harness.loop.runUntilIdle()
        bob.client.endOfInput()
        harness.loop.runUntilIdle()
        let impostor = try harness.join("bob", identity: Ed25519PrivateKey())
        #expect(holding(alice.output)?.members == ["bob"])
        return (impostor, carol)
    }

    @Test func afterTrust_heldLinesGoToBobAlonePrivately_whenSomeoneJoinedSince_andTheNewcomerSeesNothing() throws {
        let harness = AutomaticHarness()
        let alice = try harness.join("alice")
        let (bob, carol) = try changedBob(harness, alice: alice)
        alice.client.submit(line: "typed before dave came")
        alice.client.submit(line: "/me waves")
        harness.loop.runUntilIdle()
        #expect(carol.output.events.contains(.message(from: "alice", text: "typed before dave came", isPrivate: false)))
        let dave = try harness.join("dave")
        alice.client.submit(line: "/trust bob")
        harness.loop.runUntilIdle()
        let received = bob.output.events.filter {
            switch $0 {
            case .message, .action: true
            default: false
            }
        }
        #expect(
            received
                == [
                    .message(from: "alice", text: "typed before dave came", isPrivate: true),
                    .action(from: "alice", text: "waves", isPrivate: true),
                ])
        #expect(dave.output.messages.isEmpty)
        #expect(carol.output.messages == ["alice: typed before dave came"])
        #expect(
            alice.output.events.contains(
                .info(
                    "sending held lines privately, to the members they missed alone (2 lines to bob): dave joined "
                        + "since, and must not see them")))
        #expect(holding(alice.output)! == ([], false))
    }

    @Test func releasedLines_areTrackedUntilTheRelayConfirmsThem_withTheirMessageIDs() throws {
        let harness = AutomaticHarness()
        let alice = try harness.join("alice", intercepted: true)
        let (bob, carol) = try changedBob(harness, alice: alice)
        alice.client.submit(line: "//starts with a slash")
        harness.loop.runUntilIdle()
        #expect(carol.output.messages == ["alice: /starts with a slash"])
        #expect(alice.client.linesNotConfirmed.isEmpty)
        // The relay's confirmations stop: the line sent again after /trust stays unconfirmed, with the text and
        // message id that send it again as it was.
        alice.link!.toRelay = {
            if case .ping = $0 { return [] }
            return [$0]
        }
        alice.client.submit(line: "/trust bob")
        harness.loop.runUntilIdle()
        #expect(bob.output.messages == ["alice: /starts with a slash"])
        #expect(carol.output.messages == ["alice: /starts with a slash"])
        let pending = alice.client.linesNotConfirmed
        #expect(pending.map(\.text) == ["//starts with a slash"])
        #expect(pending.map(\.onlyTo) == [nil])
        // The same id: a copy sent again after a reconnect is dropped by those who have it.
        let envelope = try #require(alice.link!.published.last)
        #expect(!envelope.isEmpty)
        #expect(alice.output.events.contains(.info("sending 1 line held until now")))
    }

    @Test func holdAll_sendsNothingWhileAChangedKeyWaits_thenEveryoneGetsTheLinesOnce() throws {
        let harness = AutomaticHarness()
        let alice = try harness.join("alice")
        alice.client.submit(line: "/hold all")
        harness.loop.runUntilIdle()
        let (bob, carol) = try changedBob(harness, alice: alice)
        #expect(holding(alice.output)! == (["bob"], true))
        #expect(
            alice.output.events.last(where: { if case .holding = $0 { true } else { false } })?.json
                == #"{"event":"holding","members":["bob"],"all":true}"#)
        alice.client.submit(line: "nobody gets this yet")
        harness.loop.runUntilIdle()
        #expect(carol.output.messages.isEmpty)
        #expect(bob.output.messages.isEmpty)
        #expect(
            alice.output.events.contains {
                if case .info(let text) = $0 {
                    text.hasPrefix("message held, not sent: you hold every line")
                } else {
                    false
                }
            })
        #expect(alice.security.heldLines.map(\.name) == ["bob", "carol"])
        alice.client.submit(line: "/trust bob")
        harness.loop.runUntilIdle()
        #expect(carol.output.messages == ["alice: nobody gets this yet"])
        #expect(bob.output.messages == ["alice: nobody gets this yet"])
        #expect(alice.security.heldLines.isEmpty)
    }

    @Test func holdChanged_afterHoldAll_letsTheOthersHaveTheLines_andKeepsThemHeldForBob() throws {
        let harness = AutomaticHarness()
        let alice = try harness.join("alice")
        alice.client.submit(line: "/hold all")
        harness.loop.runUntilIdle()
        let (bob, carol) = try changedBob(harness, alice: alice)
        alice.client.submit(line: "held for all")
        harness.loop.runUntilIdle()
        alice.client.submit(line: "/hold")
        alice.client.submit(line: "/hold changed")
        harness.loop.runUntilIdle()
        #expect(
            alice.output.events.contains {
                if case .info(let text) = $0 { text.hasPrefix("/hold all: while a changed key waits") } else { false }
            })
        #expect(carol.output.messages == ["alice: held for all"])
        #expect(bob.output.messages.isEmpty)
        #expect(alice.output.events.contains(.holding(members: ["bob"], all: false)))
        #expect(alice.security.heldLines.map(\.name) == ["bob"])
        alice.client.submit(line: "/trust bob")
        harness.loop.runUntilIdle()
        #expect(bob.output.messages == ["alice: held for all"])
        #expect(carol.output.messages == ["alice: held for all"])
    }

    @Test func holdAll_whenBobLeaves_sendsTheLinesToThoseStillHere() throws {
        let harness = AutomaticHarness()
        let alice = try harness.join("alice")
        alice.client.submit(line: "/hold all")
        harness.loop.runUntilIdle()
        let (bob, carol) = try changedBob(harness, alice: alice)
        alice.client.submit(line: "wait for it")
        harness.loop.runUntilIdle()
        bob.client.endOfInput()
        harness.loop.runUntilIdle()
        #expect(carol.output.messages == ["alice: wait for it"])
        #expect(
            alice.output.events.contains(
                .info("bob left before you trusted their new key: 1 line you sent meanwhile did not reach them")))
    }

    @Test func holdAll_withANewcomer_sendsTheLinesPrivatelyToEachMemberTheyWereMeantFor_withoutPinningThem() throws {
        let harness = AutomaticHarness()
        let alice = try harness.join("alice")
        alice.client.submit(line: "/hold all")
        harness.loop.runUntilIdle()
        let (bob, carol) = try changedBob(harness, alice: alice)
        alice.client.submit(line: "for bob and carol")
        harness.loop.runUntilIdle()
        let dave = try harness.join("dave")
        alice.client.submit(line: "/trust bob")
        harness.loop.runUntilIdle()
        let privately = ClientEvent.message(from: "alice", text: "for bob and carol", isPrivate: true)
        #expect(bob.output.events.contains(privately))
        #expect(carol.output.events.contains(privately))
        #expect(dave.output.messages.isEmpty)
        // Not a private message the user wrote: carol's pin is not marked as messaged.
        #expect(harness.pins["alice"]?.pin(relay: "memory:1", name: "carol")?.holdsMessagesOnChange == false)
        alice.client.submit(line: "/msg carol a real one")
        harness.loop.runUntilIdle()
        #expect(harness.pins["alice"]?.pin(relay: "memory:1", name: "carol")?.holdsMessagesOnChange == true)
    }

    @Test func holdCommand_parsesItsTwoChoices_andRefusesAnythingElse() {
        #expect(ChatCommand(parsing: "/hold") == .hold(all: nil))
        #expect(ChatCommand(parsing: "/hold all") == .hold(all: true))
        #expect(ChatCommand(parsing: "/hold changed") == .hold(all: false))
        for bad in ["/hold none", "/hold all now"] {
            guard case .invalid(let message) = ChatCommand(parsing: bad) else {
                Issue.record("\(bad) accepted")
                continue
            }
            #expect(message.hasPrefix("/hold takes 'all'"))
        }
        #expect(SlashCommand.named("/hold")?.handler == .client)
    }

    @Test func outgoingLine_resending_givesTheTextThatSendsTheSameContentAgain() {
        #expect(OutgoingLine(resending: .identified(id: 7, .text("hi"))) == OutgoingLine("hi", messageID: 7))
        #expect(OutgoingLine(resending: .identified(id: 8, .text("/x"))) == OutgoingLine("//x", messageID: 8))
        #expect(
            OutgoingLine(resending: .identified(id: 9, .action("waves")), onlyTo: "bob")
                == OutgoingLine("/me waves", messageID: 9, onlyTo: "bob"))
        #expect(OutgoingLine(resending: .text("no id")) == nil)
        for text in ["hi", "/x", "//y"] {
            let line = OutgoingLine(resending: .identified(id: 1, .text(text)))
            #expect(line.map { ChatCommand(parsing: $0.text) } == .message(text))
        }
    }

    @Test func heldLines_keepTheLimit_andCountTheDropped() {
        var held = HeldLines()
        for id in 0..<(HeldLines.maximumLines + 3) {
            held.append(
                HeldLine(
                    content: .identified(id: UInt64(id), .text("\(id)")), meantFor: ["bob", "carol"],
                    missing: ["bob"], publishedBefore: id))
        }
        #expect(held.lines.count == HeldLines.maximumLines)
        #expect(held.counts.map(\.name) == ["bob"])
        #expect(held.counts.map(\.count) == [HeldLines.maximumLines + 3])
        #expect(held.detached(linesPublished: 100).lines.first?.publishedBefore == 3 - 100)
        #expect(held.forget("bob") == HeldLines.maximumLines + 3)
        #expect(held.isEmpty)
    }
}

/// Held lines across a reconnect of alice's session (``ReconnectingSession``).
@Suite struct HeldLinesAcrossReconnectTests {
    /// Alice's session with automatic keys, and bob and carol on the same relay; alice verified bob, whose name
    /// then presents another key.
    final class Scene {
        let session: SessionHarness
        let others: AutomaticHarness
        let pins = KnownPeers()
        let identity = Ed25519PrivateKey()
        var bob: AutomaticHarness.Member!
        var carol: AutomaticHarness.Member!

        init() throws {
            let pins = self.pins
            let identity = self.identity
            session = SessionHarness { _ in
                try AutomaticKeySecurity(
                    identity: identity, name: "alice", room: "lobby", relay: "memory:1", knownPeers: pins)
            }
            others = AutomaticHarness(relayHarness: session.chat.relayHarness)
            let realBob = try others.join("bob")
            carol = try others.join("carol")
            session.session.submit(line: "/trust bob")
            session.loop.runUntilIdle()
            realBob.client.endOfInput()
            session.loop.runUntilIdle()
            bob = try others.join("bob", identity: Ed25519PrivateKey())
            #expect(holding(session.output)?.members == ["bob"])
        }
    }

    @Test func heldLines_surviveAReconnect_andGoToBobAfterTrust_withCarolSeeingThemOnce() throws {
        let scene = try Scene()
        scene.session.session.submit(line: "held across the loss")
        scene.session.loop.runUntilIdle()
        #expect(scene.carol.output.messages == ["alice: held across the loss"])
        scene.session.cut()
        scene.session.loop.advance(by: .seconds(1))
        #expect(scene.session.output.events.contains(.reconnected))
        #expect(scene.session.output.warnings("undelivered").isEmpty)
        // Held again on the new connection, as bob's key still waits.
        #expect(holding(scene.session.output)! == (["bob"], false))
        scene.session.loop.advance(by: .seconds(10))
        #expect(scene.session.output.warnings("undelivered").isEmpty)
        scene.session.session.submit(line: "/trust bob")
        scene.session.loop.runUntilIdle()
        #expect(scene.bob.output.messages == ["alice: held across the loss"])
        #expect(scene.carol.output.messages == ["alice: held across the loss"])
    }

    @Test func heldLines_forSomeoneNotBackAfterAReconnect_areNamedAsUndelivered_afterTheGrace() throws {
        let scene = try Scene()
        scene.session.session.submit(line: "bob never gets this")
        scene.session.loop.runUntilIdle()
        scene.session.relayDown = true
        scene.session.cut()
        scene.bob.client.endOfInput()
        scene.session.loop.runUntilIdle()
        scene.session.relayDown = false
        scene.session.loop.advance(by: .seconds(3))
        #expect(scene.session.output.events.contains(.reconnected))
        #expect(scene.session.output.warnings("undelivered").isEmpty)
        scene.session.loop.advance(by: .seconds(6))
        #expect(
            scene.session.output.events.contains(
                .warning(
                    kind: "undelivered", name: "bob",
                    message: "1 line held for bob will not reach them: they were not back within 5 s of reconnecting")))
    }

    @Test func holdAll_isKeptForTheNextConnection() throws {
        let scene = try Scene()
        scene.session.session.submit(line: "/hold all")
        scene.session.loop.runUntilIdle()
        scene.session.cut()
        scene.session.loop.advance(by: .seconds(1))
        scene.session.session.submit(line: "after the reconnect")
        scene.session.loop.runUntilIdle()
        #expect(scene.carol.output.messages.isEmpty)
        #expect(scene.session.output.events.contains(.holding(members: ["bob"], all: true)))
    }
}
