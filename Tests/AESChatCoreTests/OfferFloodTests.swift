import AESChatCrypto
import Foundation
import Testing

@testable import AESChatCore

/// A member flooding another with file offers: concurrent incoming transfers are capped per sender
/// and in all, transfers that make no progress are dropped, and part files are bounded.
@Suite struct OfferFloodTests {
    final class Receiver {
        let folder = InboxFolder()
        let host = RecordingTransferHost()
        let now = Box(ContinuousClock.now)
        let inbox: Inbox
        let transfers: RecordedTransfers

        init() throws {
            inbox = try Inbox(path: folder.path)
            transfers = RecordedTransfers(host: host, inbox: inbox, maximumFileSize: nil) { [now] in now.value }
        }

        func offer(_ sender: FakeSender, from name: String) {
            transfers.handleControl(.fileOffer(sender.offer), from: name, isPrivate: true)
        }

        func replies(from index: Int = 0) -> (accepted: Int, declined: [String]) {
            var accepted = 0
            var declined: [String] = []
            for (content, _) in host.controls[index...] {
                if case .fileReply(_, let accept, _, let reason) = content {
                    if accept { accepted += 1 } else { declined.append(reason) }
                }
            }
            return (accepted, declined)
        }

        /// Runs the timers scheduled so far (the watchdog), as the loop would.
        func runTimers() {
            let due = host.timers
            host.timers.removeAll()
            for (_, timer) in due { transfers.timerFired(timer) }
        }
    }

    @Test func elevenHundredOffers_fromOneSender_holdFourDescriptors_andTheRestAreDeclined() throws {
        let receiver = try Receiver()
        for _ in 0..<1_100 { receiver.offer(FakeSender(data: [1, 2, 3]), from: "mallory") }
        #if os(Linux)
            // Descriptors open on files in this inbox (tests running beside this one open others).
            let open = ((try? FileManager.default.contentsOfDirectory(atPath: "/proc/self/fd")) ?? []).filter {
                let target = (try? FileManager.default.destinationOfSymbolicLink(atPath: "/proc/self/fd/" + $0)) ?? ""
                return target.hasPrefix(receiver.folder.path + "/")
            }
            #expect(open.count == FileTransfers.maximumIncomingPerSender)
        #endif
        let (accepted, declined) = receiver.replies()
        #expect(accepted == FileTransfers.maximumIncomingPerSender)
        #expect(declined.count == 1_100 - FileTransfers.maximumIncomingPerSender)
        #expect(declined.allSatisfy { $0.contains("the most at once") })
        // Someone else's file still gets through.
        let genuine = FakeSender(data: Array(repeating: 7, count: 3000), name: "genuine.txt")
        let mark = receiver.host.controls.count
        receiver.offer(genuine, from: "alice")
        #expect(receiver.replies(from: mark).accepted == 1)
        for index in 0..<genuine.offer.chunkCount {
            receiver.transfers.handleChunk(genuine.chunk(index)[...], from: "alice")
        }
        receiver.transfers.handleControl(genuine.done, from: "alice", isPrivate: true)
        #expect(receiver.folder.contents("genuine.txt") == genuine.data)
    }

    @Test func incomingTransfers_areCappedInAll() throws {
        let receiver = try Receiver()
        for sender in 0..<6 {
            for _ in 0..<FileTransfers.maximumIncomingPerSender {
                receiver.offer(FakeSender(data: [1]), from: "member\(sender)")
            }
        }
        let (accepted, declined) = receiver.replies()
        #expect(accepted == FileTransfers.maximumIncoming)
        #expect(declined.count == 6 * FileTransfers.maximumIncomingPerSender - FileTransfers.maximumIncoming)
    }

    @Test func threeThousandOfferAndAbortPairs_leaveNoPartFiles() throws {
        let receiver = try Receiver()
        for _ in 0..<3_000 {
            let sender = FakeSender(data: [1, 2, 3])
            receiver.offer(sender, from: "mallory")
            receiver.transfers.handleControl(
                .fileAbort(fileID: sender.offer.fileID, reason: "never mind"), from: "mallory", isPrivate: true)
        }
        #expect(receiver.inbox.partNames == [])
        #expect(receiver.replies().declined == [])
    }

    @Test func partFilesFromOneSender_areCappedInNumber_oldestRemovedFirst() throws {
        let receiver = try Receiver()
        var first: FakeSender?
        for number in 0..<20 {
            var sender = FakeSender(data: Array(repeating: UInt8(number), count: 4096), name: "part\(number)")
            sender.name = "mallory"
            if number == 0 { first = sender }
            receiver.offer(sender, from: "mallory")
            receiver.transfers.handleChunk(sender.chunk(0)[...], from: "mallory")
            receiver.transfers.handleControl(
                .fileAbort(fileID: sender.offer.fileID, reason: "later"), from: "mallory", isPrivate: true)
        }
        #expect(receiver.inbox.partNames.count == Inbox.maximumPartsPerSender)
        // Another sender's part is not touched by mallory's.
        let alice = FakeSender(data: Array(repeating: 9, count: 4096))
        receiver.offer(alice, from: "alice")
        receiver.transfers.handleChunk(alice.chunk(0)[...], from: "alice")
        receiver.transfers.handleControl(
            .fileAbort(fileID: alice.offer.fileID, reason: "later"), from: "alice", isPrivate: true)
        #expect(receiver.inbox.partNames.count == Inbox.maximumPartsPerSender + 1)
        // The oldest of mallory's was removed: offered again, it starts from the beginning.
        let mark = receiver.host.controls.count
        receiver.offer(first!, from: "mallory")
        let resumed = receiver.host.controls[mark...].compactMap { content, _ -> UInt64? in
            if case .fileReply(_, true, let resumeFrom, _) = content { return resumeFrom }
            return nil
        }
        #expect(resumed == [0])
    }

    @Test func incomingTransferWithoutProgress_isDropped_after30Seconds_andTheSenderIsTold() throws {
        let receiver = try Receiver()
        var sender = FakeSender(data: Array(repeating: 3, count: 5000))
        sender.name = "mallory"
        receiver.offer(sender, from: "mallory")
        receiver.transfers.handleChunk(sender.chunk(0)[...], from: "mallory")
        receiver.now.value += .seconds(29)
        receiver.runTimers()
        #expect(receiver.host.failures == [])
        receiver.now.value += .seconds(2)
        receiver.runTimers()
        #expect(receiver.host.failures.contains { $0.hasPrefix("nothing arrived from mallory for 30 s") })
        #expect(
            receiver.host.controls.contains {
                if case .fileAbort(let id, _) = $0.0, id == sender.offer.fileID { true } else { false }
            })
    }
}
