import AESChatCrypto
import AESChatTesting
import Foundation
import Testing

@testable import AESChatCore

/// An output that records events and lets a test act on one as it is shown.
final class WatchingOutput: ClientOutput {
    var events: [ClientEvent] = []
    var onEvent: ((ClientEvent) -> Void)?
    func emit(_ event: ClientEvent) {
        events.append(event)
        onEvent?(event)
    }

    var errors: [String] {
        events.compactMap {
            if case .error(let message) = $0 { return message }
            return nil
        }
    }

    var failures: [(to: String?, reason: String)] {
        events.compactMap {
            if case .fileFailed(_, _, let to, let reason) = $0 { return (to, reason) }
            return nil
        }
    }
}

extension EventCollector {
    var errors: [String] {
        events.compactMap {
            if case .error(let message) = $0 { return message }
            return nil
        }
    }
}

/// Replies from the relay to traffic the client sent on its own are not the user's errors; replies to
/// what the user typed still are (issue 14, item 1).
@Suite struct RelayReplyCorrelationTests {
    @Test func aKeySentToAMemberWhoJoinedAndLeftAtOnce_bringsNoError() throws {
        let harness = AutomaticHarness()
        let alice = try harness.join("alice", intercepted: true)
        let bob = try harness.join("bob")
        // piper registers and says goodbye in one breath, as `echo hi | aeschat join` may: the relay
        // handles both before alice's key for piper arrives.
        let piperSecurity = try AutomaticKeySecurity(
            identity: Ed25519PrivateKey(), name: "piper", room: "lobby", relay: "memory:1", knownPeers: KnownPeers())
        let piper = harness.relayHarness.peer()
        piper.send(.hello(version: relayProtocolVersion, name: "piper", room: "lobby", profile: piperSecurity.profile))
        piper.send(.bye)
        harness.loop.runUntilIdle()
        // The relay did answer alice's automatic key with error 9 …
        let refusals = alice.link!.delivered.filter {
            if case .error(let code, _) = $0 { return code == RelayErrorCode.unknownRecipient.rawValue }
            return false
        }
        #expect(refusals.count >= 1, "the race did not happen: \(alice.link!.delivered)")
        // … and nobody sees an error for it.
        #expect(alice.output.errors == [])
        #expect(bob.output.errors == [])
        #expect(alice.output.events.contains(.left(name: "piper")))
        // The room still works.
        alice.client.submit(line: "still fine")
        harness.loop.runUntilIdle()
        #expect(bob.output.messages == ["alice: still fine"])
    }

    @Test func aPrivateMessageTypedToAMemberWhoJustLeft_isStillTheUsersError() throws {
        let harness = AutomaticHarness()
        let alice = try harness.join("alice")
        let bob = try harness.join("bob")
        let carol = try harness.join("carol")
        // bob leaves; alice types before she has read that he left, so her client still knows him.
        bob.client.interrupt()
        alice.client.submit(line: "/msg bob are you there?")
        harness.loop.runUntilIdle()
        #expect(alice.output.events.contains(.left(name: "bob")))
        #expect(alice.output.errors == ["no member named 'bob' in lobby"])
        #expect(carol.output.errors == [])
    }

    @Test func aDirectFrameTheClientSentOnItsOwn_toAMemberWhoLeft_bringsNoError() throws {
        let harness = ChatHarness()
        let (alice, aliceOutput, _) = harness.client("alice")
        let (bob, _, _) = harness.client("bob")
        // The relay answers a direct frame to bob after he left: one alice sent on her own (as a chunk
        // is), then nothing typed is waiting, so it is quiet.
        bob.interrupt()
        harness.loop.runUntilIdle()
        #expect(aliceOutput.events.contains(.left(name: "bob")))
        alice.carryOut([.direct([1, 2, 3], to: "bob")])
        harness.loop.runUntilIdle()
        #expect(aliceOutput.errors == [])
        _ = alice
    }

    @Test func quotedName_isReadFromTheRelaysMessage() {
        #expect(ChatRoom.quotedName(in: "no member named 'piper' in lobby") == "piper")
        #expect(ChatRoom.quotedName(in: "no member named '' in lobby") == nil)
        #expect(ChatRoom.quotedName(in: "something else") == nil)
    }
}

/// A file transfer on the in-memory relay between two clients with inboxes.
final class TransferRoom {
    let harness = ChatHarness()
    let folder = InboxFolder()
    var loop: MemoryEventLoop { harness.loop }

    func client(_ name: String, output: WatchingOutput) throws -> (ChatRoom, Box<ClientOutcome?>) {
        let outcome = Box<ClientOutcome?>(nil)
        let connection = harness.linked(
            harness.relayHarness.listener.connect(chunkSize: 64 * 1024), pinning: harness.relayHarness.relayKey)
        let client = ChatRoom(
            name: name, room: "lobby",
            security: RoomKeySecurity(roomKey: harness.key, room: "lobby", name: name),
            connection: connection, output: output, loop: loop, inbox: try Inbox(path: folder.path + "/inbox-" + name)
        ) { outcome.value = $0 }
        client.start()
        loop.runUntilIdle()
        return (client, outcome)
    }

    func file(bytes: Int) -> String {
        let path = folder.path + "/movie.bin"
        let data = (0..<bytes).map { UInt8(truncatingIfNeeded: $0 &* 31 &+ $0 >> 11) }
        FileManager.default.createFile(atPath: path, contents: Data(data))
        return path
    }
}

/// A receiver leaving mid-transfer gives the sender one line per failed receiver (issue 14, item 2).
@Suite struct ReceiverLeavingTests {
    @Test func aReceiverLeavingMidTransfer_givesTheSenderOneLine_andNoError() throws {
        let room = TransferRoom()
        let aliceOutput = WatchingOutput()
        let bobOutput = WatchingOutput()
        let (alice, _) = try room.client("alice", output: aliceOutput)
        let (bob, _) = try room.client("bob", output: bobOutput)
        // bob leaves as soon as the first chunk arrived, with many more in flight toward him.
        bobOutput.onEvent = { event in
            if case .fileProgress = event { room.loop.enqueue { bob.interrupt() } }
        }
        let path = room.file(bytes: 40 * Int(FileChunk.defaultChunkSize))
        alice.submit(line: "/send \(path) bob")
        room.loop.runUntilIdle()
        room.loop.advance(by: .seconds(20))
        #expect(aliceOutput.events.contains(.left(name: "bob")))
        #expect(aliceOutput.errors == [], "\(aliceOutput.events)")
        let failures = aliceOutput.failures
        #expect(failures.count == 1, "\(failures)")
        #expect(failures.first?.to == "bob")
        #expect(failures.first?.reason == "bob left before the file was complete")
    }

    @Test func transfers_receiverLeaving_isOneFailure_forAPrivateAndForARoomTransfer() throws {
        for recipient in ["bob", nil] as [String?] {
            let folder = InboxFolder()
            let path = folder.path + "/source.bin"
            #expect(FileManager.default.createFile(atPath: path, contents: Data(repeating: 7, count: 3_000_000)))
            let host = RecordingTransferHost()
            host.ownName = "alice"
            host.presentMembers = ["bob"]
            let transfers = RecordedTransfers(
                host: host, inbox: try Inbox(path: folder.path + "/inbox"), maximumFileSize: nil)
            transfers.send(path: path, to: recipient)
            guard case .fileOffer(let offer)? = host.controls.first?.0 else {
                Issue.record("no offer")
                return
            }
            transfers.handleControl(
                .fileReply(fileID: offer.fileID, accept: true, resumeFrom: 0, reason: ""), from: "bob", isPrivate: true)
            #expect(!host.frames.isEmpty)
            transfers.memberLeft("bob")
            #expect(host.failures == ["bob left before the file was complete"])
            #expect(!transfers.transfers.isBusy)
        }
    }
}

/// Every transfer ends visibly when the connection goes; a stalled one never looks live (issue 14, item 3).
@Suite struct InterruptedTransferTests {
    @Test func connectionLost_endsAnIncomingTransfer_sayingWhereThePartIsAndHowLarge() throws {
        let folder = InboxFolder()
        let host = RecordingTransferHost()
        let transfers = RecordedTransfers(host: host, inbox: try Inbox(path: folder.path), maximumFileSize: nil)
        let sender = FakeSender(data: Array(repeating: 9, count: 5000), chunkSize: 1024)
        transfers.handleControl(.fileOffer(sender.offer), from: "alice", isPrivate: false)
        transfers.handleChunk(sender.chunk(0)[...], from: "alice")
        transfers.handleChunk(sender.chunk(1)[...], from: "alice")
        transfers.closeAll(.connectionLost)
        #expect(host.failures.count == 1)
        let reason = try #require(host.failures.first)
        let part = try #require(folder.names.first { $0.hasSuffix(".part") })
        #expect(reason.hasPrefix("the connection to the relay was lost; the 2.0 kB received are kept in "))
        #expect(reason.contains(folder.path + "/" + part))
        #expect(reason.hasSuffix("resumes there when alice sends the file again"))
        let size = try FileManager.default.attributesOfItem(atPath: folder.path + "/" + part)[.size] as? Int
        #expect(size == 2048)
    }

    @Test func connectionLost_endsAnOutgoingTransfer_withTheCommandThatResumesIt() throws {
        let folder = InboxFolder()
        let path = folder.path + "/my report.pdf"
        #expect(FileManager.default.createFile(atPath: path, contents: Data(repeating: 1, count: 3_000_000)))
        let host = RecordingTransferHost()
        host.ownName = "alice"
        host.presentMembers = ["bob"]
        let transfers = RecordedTransfers(
            host: host, inbox: try Inbox(path: folder.path + "/inbox"), maximumFileSize: nil)
        transfers.send(path: path, to: "bob")
        transfers.closeAll(.connectionLost)
        #expect(
            host.failures == [
                "the connection to the relay was lost; /send \"\(path)\" bob once reconnected resumes it"
            ])
        #expect(!transfers.transfers.isBusy)
    }

    @Test func aTransferThatStopsMoving_showsAsStalled_notWithItsLastRate() throws {
        let folder = InboxFolder()
        let host = RecordingTransferHost()
        var clock = ContinuousClock.now
        let transfers = RecordedTransfers(
            host: host, inbox: try Inbox(path: folder.path), maximumFileSize: nil, now: { clock })
        let sender = FakeSender(data: Array(repeating: 9, count: 5000), chunkSize: 1024)
        transfers.handleControl(.fileOffer(sender.offer), from: "alice", isPrivate: false)
        clock += .milliseconds(10)
        transfers.handleChunk(sender.chunk(0)[...], from: "alice")
        guard case .fileProgress(_, _, _, _, _, let rate)? = host.events.last else {
            Issue.record("no progress: \(host.events)")
            return
        }
        #expect(rate > 0)
        // Nothing more arrives; the watchdog's next round says so.
        clock += .seconds(4)
        transfers.timerFired(.watchdog)
        let stalled = host.events.compactMap { event -> ClientEvent? in
            if case .fileProgress(_, _, _, _, _, 0) = event { return event }
            return nil
        }
        #expect(stalled.count == 1)
        #expect(stalled.first?.humanText == "~ report.pdf ← alice: 20% 1.0 kB/5.0 kB, stalled")
        #expect(stalled.first?.json.contains("\"rate\":0") == true)
        // Once, until it moves again.
        clock += .seconds(4)
        transfers.timerFired(.watchdog)
        #expect(host.events.filter { if case .fileProgress(_, _, _, _, _, 0) = $0 { true } else { false } }.count == 1)
    }

    @Test func theRelayGoingAway_endsEveryTransferWithALine_onBothSides() throws {
        let room = TransferRoom()
        let aliceOutput = WatchingOutput()
        let bobOutput = WatchingOutput()
        let (alice, _) = try room.client("alice", output: aliceOutput)
        _ = try room.client("bob", output: bobOutput)
        var cut = false
        bobOutput.onEvent = { event in
            if case .fileProgress = event, !cut {
                cut = true
                room.loop.enqueue { room.harness.relayHarness.relay.shutdown {} }
            }
        }
        let path = room.file(bytes: 40 * Int(FileChunk.defaultChunkSize))
        alice.submit(line: "/send \(path) bob")
        room.loop.runUntilIdle()
        #expect(cut)
        #expect(aliceOutput.failures.count == 1, "\(aliceOutput.events)")
        #expect(aliceOutput.failures.first?.reason.contains("/send \(path) bob once reconnected resumes it") == true)
        #expect(bobOutput.failures.count == 1, "\(bobOutput.events)")
        #expect(bobOutput.failures.first?.reason.contains("received are kept in ") == true)
        // The last thing either status row was told about the transfer is that it ended.
        for output in [aliceOutput, bobOutput] {
            let last = output.events.last {
                if case .fileProgress = $0 { true } else if case .fileFailed = $0 { true } else { false }
            }
            if case .fileFailed? = last {} else { Issue.record("the transfer did not end last: \(output.events)") }
        }
    }
}

/// Lines queued while the relay was unreachable wait for the members known before (issue 14, item 4).
@Suite struct QueuedLinesWaitForMembersTests {
    /// bob and carol are in the room with alice's reconnecting session; the relay drops alice, and carol
    /// is gone too when alice is back.
    static func outage() -> (SessionHarness, EventCollector) {
        let harness = SessionHarness()
        let (_, bobOutput, _) = harness.chat.client("bob")
        let (carol, _, _) = harness.chat.client("carol")
        harness.cut()
        carol.interrupt()
        harness.loop.runUntilIdle()
        harness.session.submit(line: "typed while away")
        harness.loop.advance(by: .seconds(1))  // alice is back (after 500 ms); carol is not
        return (harness, bobOutput)
    }

    @Test func aQueuedLine_waitsForAMemberWhoIsNotBackYet_andReachesIt() {
        let (harness, bobOutput) = Self.outage()
        #expect(harness.output.events.contains(.reconnected))
        #expect(bobOutput.messages == [])
        harness.session.submit(line: "typed while waiting")
        harness.loop.advance(by: .seconds(2))
        let (_, carolOutput, _) = harness.chat.client("carol")
        harness.loop.runUntilIdle()
        #expect(carolOutput.messages == ["alice: typed while away", "alice: typed while waiting"])
        #expect(bobOutput.messages == ["alice: typed while away", "alice: typed while waiting"])
        #expect(harness.output.warnings.isEmpty)
        #expect(
            harness.output.events.contains(
                .info("waiting up to 5 s for carol to be back before sending 1 queued line(s)")))
    }

    @Test func aMemberNotBackWithinTheGrace_isNamedAsNotReceivingTheLines() {
        let (harness, bobOutput) = Self.outage()
        harness.loop.advance(by: .seconds(4))
        #expect(bobOutput.messages == [])
        harness.loop.advance(by: .seconds(2))
        #expect(bobOutput.messages == ["alice: typed while away"])
        #expect(
            harness.output.events.contains(
                .warning(
                    kind: "undelivered", name: "carol",
                    message:
                        "carol was not back within 5 s of reconnecting and did not receive the 1 line(s) queued while "
                        + "the relay was unreachable")))
        let warning = harness.output.events.first { if case .warning = $0 { true } else { false } }
        #expect(warning?.humanText.hasPrefix("! not delivered to carol: carol was not back within 5 s") == true)
        // Later lines go out at once.
        harness.session.submit(line: "later")
        harness.loop.runUntilIdle()
        #expect(bobOutput.messages == ["alice: typed while away", "alice: later"])
    }

    @Test func withNothingQueued_orEveryoneBack_nothingWaits() {
        let harness = SessionHarness()
        let (_, bobOutput, _) = harness.chat.client("bob")
        harness.cut()
        harness.session.submit(line: "typed while away")
        harness.loop.advance(by: .seconds(1))
        #expect(bobOutput.messages == ["alice: typed while away"])
        #expect(
            !harness.output.events.contains {
                if case .info(let text) = $0 { text.hasPrefix("waiting") } else { false }
            })
    }
}
