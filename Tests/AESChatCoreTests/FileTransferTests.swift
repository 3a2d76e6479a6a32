import AESChatCrypto
import Foundation
import Testing

@testable import AESChatCore

/// Stands where the client would for ``FileTransfers``: records what they ask to send, show and
/// schedule, with a manual clock.
final class RecordingTransferHost {
    var ownName = "bob"
    var presentMembers = ["alice"]
    var outputBacklog = 0
    var controls: [(MessageContent, String?)] = []
    var frames: [[UInt8]] = []
    var events: [ClientEvent] = []
    var timers: [(Duration, FileTransferTimer)] = []
    var totals: [TransferTotals] = []

    func record(_ actions: [FileTransferAction]) {
        for action in actions {
            switch action {
            case .sendControl(let content, let recipient): controls.append((content, recipient))
            case .sendFrame(let buffer, let range): frames.append(buffer.withUnsafeBytes(in: range) { Array($0) })
            case .sendFrameBytes(let frame): frames.append(frame)
            case .show(let event): events.append(event)
            case .schedule(let delay, let timer): timers.append((delay, timer))
            case .totals(let latest): totals.append(latest)
            }
        }
    }

    var failures: [String] {
        events.compactMap {
            if case .fileFailed(_, _, _, let reason) = $0 { return reason }
            return nil
        }
    }

    var received: [(name: String, path: String)] {
        events.compactMap {
            if case .fileReceived(_, let name, let path, _, _) = $0 { return (name, path) }
            return nil
        }
    }
}

/// ``FileTransfers`` driven as the client drives them, everything they return recorded by a host.
final class RecordedTransfers {
    let host: RecordingTransferHost
    let transfers: FileTransfers

    init(
        host: RecordingTransferHost, inbox: Inbox?, maximumFileSize: UInt64?, policy: IncomingFilePolicy = .all,
        now: @escaping () -> ContinuousClock.Instant = { .now }
    ) {
        self.host = host
        transfers = FileTransfers(
            ownName: host.ownName, outputBacklog: { [unowned host] in host.outputBacklog }, inbox: inbox,
            maximumFileSize: maximumFileSize, policy: policy, now: now)
    }

    func answer(_ number: Int?, accept: Bool) { host.record(transfers.answer(number, accept: accept)) }
    func list() { host.record(transfers.list()) }
    func cancel(_ target: String?) { host.record(transfers.cancel(target)) }

    func send(path: String, to recipient: String?) {
        host.record(transfers.send(path: path, to: recipient, members: host.presentMembers))
    }
    func handleControl(_ content: MessageContent, from sender: String, isPrivate: Bool) {
        host.record(transfers.handleControl(content, from: sender, isPrivate: isPrivate))
    }
    func handleChunk(_ payload: ArraySlice<UInt8>, from sender: String) {
        host.record(transfers.receiveChunk(payload, from: sender))
    }
    func memberLeft(_ name: String) { host.record(transfers.memberLeft(name)) }
    func timerFired(_ timer: FileTransferTimer) { host.record(transfers.timerFired(timer)) }
    func closeAll(_ interruption: FileTransfers.Interruption = .leaving) {
        host.record(transfers.closeAll(interruption))
    }
}

/// Builds what a sender sends, chunk by chunk, so tests can drop, repeat or alter any of it.
struct FakeSender {
    let data: [UInt8]
    let offer: FileOffer
    let cipher: AESGCM
    var name = "alice"

    init(
        data: [UInt8], name: String = "report.pdf", chunkSize: UInt32 = 1024,
        fileID: [UInt8] = SecureRandom.bytes(count: 16)
    ) {
        self.data = data
        let key = SecureRandom.bytes(count: 32)
        offer = FileOffer(fileID: fileID, size: UInt64(data.count), chunkSize: chunkSize, key: key, name: name)
        cipher = try! AESGCM(key: key)
    }

    /// The chunk envelope (deliver payload) of chunk `index`.
    func chunk(_ index: UInt64, finalFlag: Bool? = nil, length: Int? = nil) -> [UInt8] {
        let start = Int(index) * Int(offer.chunkSize)
        let end = min(data.count, start + (length ?? Int(offer.chunkSize)))
        let plaintext = start < end ? Array(data[start..<end]) : []
        let isFinal = finalFlag ?? (index == offer.chunkCount - 1)
        let frame = plaintext.withUnsafeBytes {
            try! FileChunk.sealFrame(
                $0, fileID: offer.fileID, index: index, isFinal: isFinal, sender: name, recipients: ["bob"],
                cipher: cipher)
        }
        return Array(frame[(Frame.headerSize + 1 + 4)...])
    }

    var done: MessageContent { .fileDone(fileID: offer.fileID, sha256: SHA256.hash(data), size: UInt64(data.count)) }
}

final class InboxFolder {
    let path: String
    init() {
        path = FileManager.default.temporaryDirectory.appendingPathComponent("aeschat-inbox-\(UUID().uuidString)").path
        try? FileManager.default.createDirectory(atPath: path, withIntermediateDirectories: true)
    }
    deinit { try? FileManager.default.removeItem(atPath: path) }
    var names: [String] { ((try? FileManager.default.contentsOfDirectory(atPath: path)) ?? []).sorted() }
    func contents(_ name: String) -> [UInt8]? {
        FileManager.default.contents(atPath: path + "/" + name).map(Array.init)
    }
}

@Suite struct FileTransferReceivingTests {
    func receive(
        _ sender: FakeSender, into folder: InboxFolder, host: RecordingTransferHost = RecordingTransferHost(),
        chunks: [[UInt8]]? = nil, sendDone: Bool = true
    ) throws -> RecordingTransferHost {
        let transfers = RecordedTransfers(host: host, inbox: try Inbox(path: folder.path), maximumFileSize: nil)
        transfers.handleControl(.fileOffer(sender.offer), from: "alice", isPrivate: false)
        for chunk in chunks ?? (0..<sender.offer.chunkCount).map({ sender.chunk($0) }) {
            transfers.handleChunk(chunk[...], from: "alice")
        }
        if sendDone { transfers.handleControl(sender.done, from: "alice", isPrivate: false) }
        return host
    }

    @Test(arguments: [0, 1, 1024, 1025, 5000])
    func sizes_arriveByteForByte(size: Int) throws {
        let folder = InboxFolder()
        let data = (0..<size).map { UInt8(truncatingIfNeeded: $0 &* 13) }
        let host = try receive(FakeSender(data: data), into: folder)
        #expect(host.failures == [])
        #expect(folder.names == ["report.pdf"])
        #expect(folder.contents("report.pdf") == data)
        #expect(host.controls.contains { if case .fileResult(_, true, _) = $0.0 { true } else { false } })
    }

    @Test(arguments: [
        ("../../x", "x"), ("/etc/passwd", "passwd"), (".bashrc", "bashrc"), ("..", "file"), ("a\nb", "ab"),
        ("\u{1B}]0;pwned\u{07}evil\u{1B}[2J.txt", "]0;pwnedevil[2J.txt"), ("..\\..\\win.ini", "win.ini"),
        ("\u{202E}fdp.exe", "fdp.exe"), ("   ", "file"), ("a/", "file"),
    ])
    func hostileNames_landSafelyInsideTheInbox(offered: String, expected: String) throws {
        let folder = InboxFolder()
        let host = try receive(FakeSender(data: [1, 2, 3], name: offered), into: folder)
        #expect(host.failures == [])
        #expect(folder.names == [expected])
        #expect(host.received.first?.path == folder.path + "/" + expected)
    }

    @Test func tenKilobyteName_isCutTo255Bytes_keepingItsExtension() throws {
        let folder = InboxFolder()
        _ = try receive(FakeSender(data: [1], name: String(repeating: "é", count: 5000) + ".txt"), into: folder)
        let name = try #require(folder.names.first)
        #expect(name.utf8.count <= 255)
        #expect(name.hasSuffix(".txt"))
    }

    @Test func existingThingsUnderTheOfferedName_areNeverFollowedOrReplaced() throws {
        let folder = InboxFolder()
        let outside = FileManager.default.temporaryDirectory.appendingPathComponent("outside-\(UUID().uuidString)").path
        _ = FileManager.default.createFile(atPath: outside, contents: Data("precious".utf8))
        defer { try? FileManager.default.removeItem(atPath: outside) }
        let base = folder.path + "/"
        try FileManager.default.createSymbolicLink(atPath: base + "link.txt", withDestinationPath: outside)
        try FileManager.default.createSymbolicLink(
            atPath: base + "dangling.txt", withDestinationPath: outside + "-missing")
        try FileManager.default.linkItem(atPath: outside, toPath: base + "hard.txt")
        #expect(mkfifo(base + "fifo.txt", 0o600) == 0)
        try FileManager.default.createDirectory(atPath: base + "dir.txt", withIntermediateDirectories: false)
        for name in ["link.txt", "dangling.txt", "hard.txt", "fifo.txt", "dir.txt"] {
            let host = try receive(FakeSender(data: Array(name.utf8), name: name), into: folder)
            #expect(host.failures == [], "\(name)")
            let stem = String(name.dropLast(4))
            #expect(folder.contents("\(stem) (1).txt") == Array(name.utf8), "\(name)")
        }
        #expect(FileManager.default.contents(atPath: outside) == Data("precious".utf8))
        #expect(!FileManager.default.fileExists(atPath: outside + "-missing"))
    }

    @Test func sameFileTwice_keepsBothCopies_withoutExecuteBits() throws {
        let folder = InboxFolder()
        _ = try receive(FakeSender(data: [1, 2, 3], name: "tool.sh"), into: folder)
        _ = try receive(FakeSender(data: [4, 5, 6], name: "tool.sh"), into: folder)
        #expect(folder.names == ["tool (1).sh", "tool.sh"])
        for name in folder.names {
            let mode = try #require(
                try FileManager.default.attributesOfItem(atPath: folder.path + "/" + name)[.posixPermissions] as? Int)
            #expect(mode & 0o111 == 0)
        }
    }

    @Test func tamperedDroppedDuplicatedOrCutStreams_fail_andLeaveNoFinalFile() throws {
        let data = (0..<5000).map { UInt8(truncatingIfNeeded: $0) }
        let sender = FakeSender(data: data)
        var tampered = sender.chunk(1)
        tampered[tampered.count - 20] ^= 1
        let cases: [(String, [[UInt8]], Bool)] = [
            ("tampered", [sender.chunk(0), tampered], false),
            ("dropped", [sender.chunk(0), sender.chunk(2)], false),
            ("duplicated", [sender.chunk(0), sender.chunk(0)], false),
            ("reordered", [sender.chunk(1), sender.chunk(0)], false),
            ("cut before final", [sender.chunk(0), sender.chunk(1)], true),
            ("final flag early", [sender.chunk(0), sender.chunk(1, finalFlag: true)], false),
            ("short chunk", [sender.chunk(0, length: 100)], false),
            ("more than declared", (0..<5).map { sender.chunk($0) } + [sender.chunk(5)], true),
        ]
        for (label, chunks, sendDone) in cases {
            let folder = InboxFolder()
            let host = try receive(sender, into: folder, chunks: chunks, sendDone: sendDone)
            #expect(host.failures.count == 1, "\(label): \(host.failures)")
            #expect(!folder.names.contains("report.pdf"), "\(label)")
            #expect(host.received.isEmpty, "\(label)")
        }
    }

    /// The chunk-envelope parser against seeded random damage: one chunk of a five-chunk stream is
    /// altered (bits flipped, cut short, lengthened, or replaced by random bytes under the right
    /// kind and file id). Every run must fail with one reason and leave nothing under a final name.
    @Test func seededDamagedChunks_alwaysFail_andNeverLeaveAFinalFile() throws {
        var generator = SeededGenerator(seed: 17)
        let data = (0..<5000).map { UInt8(truncatingIfNeeded: $0 &* 7) }
        let sender = FakeSender(data: data)
        let intact = (0..<sender.offer.chunkCount).map { sender.chunk($0) }
        for round in 0..<200 {
            var chunks = intact
            let victim = Int.random(in: 0..<chunks.count, using: &generator)
            var chunk = chunks[victim]
            switch round % 4 {
            case 0:
                for _ in 0..<Int.random(in: 1...4, using: &generator) {
                    let index = Int.random(in: 1..<chunk.count, using: &generator)
                    chunk[index] ^= UInt8.random(in: 1...255, using: &generator)
                }
            case 1:
                chunk.removeLast(Int.random(in: 1...(chunk.count - 1), using: &generator))
            case 2:
                chunk += (0..<Int.random(in: 1...64, using: &generator)).map { _ in
                    UInt8.random(in: 0...255, using: &generator)
                }
            default:
                chunk =
                    [EnvelopeKind.fileChunk.rawValue] + sender.offer.fileID
                    + (0..<Int.random(in: 0...1100, using: &generator)).map { _ in
                        UInt8.random(in: 0...255, using: &generator)
                    }
            }
            chunks[victim] = chunk
            let folder = InboxFolder()
            let host = try receive(sender, into: folder, chunks: chunks)
            #expect(host.failures.count == 1, "round \(round): \(host.failures)")
            #expect(host.received.isEmpty, "round \(round)")
            #expect(!folder.names.contains("report.pdf"), "round \(round)")
        }
    }

    @Test func wrongDigest_failsAndRemovesThePart() throws {
        let folder = InboxFolder()
        let sender = FakeSender(data: [1, 2, 3])
        let host = RecordingTransferHost()
        let transfers = RecordedTransfers(host: host, inbox: try Inbox(path: folder.path), maximumFileSize: nil)
        transfers.handleControl(.fileOffer(sender.offer), from: "alice", isPrivate: false)
        transfers.handleChunk(sender.chunk(0)[...], from: "alice")
        transfers.handleControl(
            .fileDone(fileID: sender.offer.fileID, sha256: SHA256.hash([9]), size: 3), from: "alice", isPrivate: false)
        #expect(host.failures.first?.contains("SHA-256") == true)
        #expect(folder.names.isEmpty)
    }

    @Test func interruptedTransfer_resumesFromItsVerifiedPrefix() throws {
        let folder = InboxFolder()
        let data = (0..<10_000).map { UInt8(truncatingIfNeeded: $0 &* 7) }
        let fileID = SecureRandom.bytes(count: 16)
        let first = FakeSender(data: data, fileID: fileID)
        let host = RecordingTransferHost()
        let transfers = RecordedTransfers(host: host, inbox: try Inbox(path: folder.path), maximumFileSize: nil)
        transfers.handleControl(.fileOffer(first.offer), from: "alice", isPrivate: false)
        for index in 0..<4 { transfers.handleChunk(first.chunk(UInt64(index))[...], from: "alice") }
        transfers.memberLeft("alice")
        #expect(folder.names.count == 1 && folder.names[0].hasSuffix(".part"))
        // The same file offered again (new key, same file id): the reply asks to resume at chunk 4.
        let second = FakeSender(data: data, fileID: fileID)
        transfers.handleControl(.fileOffer(second.offer), from: "alice", isPrivate: false)
        let reply = host.controls.last { if case .fileReply = $0.0 { true } else { false } }
        #expect(reply.map { "\($0.0)" }?.contains("resumeFrom: 4") == true)
        for index in 4..<second.offer.chunkCount { transfers.handleChunk(second.chunk(index)[...], from: "alice") }
        transfers.handleControl(second.done, from: "alice", isPrivate: false)
        #expect(folder.contents("report.pdf") == data)
        #expect(folder.names == ["report.pdf"])
    }

    @Test func offersAboveTheMaximum_areDeclinedWithAReason() throws {
        let folder = InboxFolder()
        let host = RecordingTransferHost()
        let transfers = RecordedTransfers(host: host, inbox: try Inbox(path: folder.path), maximumFileSize: 100)
        transfers.handleControl(
            .fileOffer(FakeSender(data: Array(repeating: 0, count: 101)).offer), from: "alice", isPrivate: false)
        guard case .fileReply(_, false, _, let reason) = host.controls.last?.0 else {
            Issue.record("no decline")
            return
        }
        #expect(reason.contains("--max-file-size"))
        #expect(folder.names.isEmpty)
    }

    @Test func withoutAnInbox_everyOfferIsDeclinedWithAReason_andChunksAreIgnored() throws {
        let host = RecordingTransferHost()
        let transfers = RecordedTransfers(host: host, inbox: nil, maximumFileSize: nil)
        let sender = FakeSender(data: Array(repeating: 7, count: 3000))
        transfers.handleControl(.fileOffer(sender.offer), from: "alice", isPrivate: true)
        guard case .fileReply(_, false, _, let reason) = host.controls.last?.0 else {
            Issue.record("no decline")
            return
        }
        #expect(reason == "bob takes no files: it joined without --inbox")
        #expect(host.controls.last?.1 == "alice")
        #expect(host.failures == ["bob takes no files: it joined without --inbox"])
        for index in 0..<sender.offer.chunkCount { transfers.handleChunk(sender.chunk(index)[...], from: "alice") }
        transfers.handleControl(sender.done, from: "alice", isPrivate: false)
        #expect(host.received.isEmpty)
        #expect(host.failures.count == 1)
    }

    @Test func fullDisk_givesAClearMessage_andTellsTheSender() throws {
        let full = open("/dev/full", O_WRONLY)
        try #require(full >= 0)
        defer { close(full) }
        #expect(throws: InboxError(description: "the disk holding the inbox is full", isDiskFull: true)) {
            try [UInt8](repeating: 1, count: 10).withUnsafeBytes { raw in
                do throws(InboxError) { try Inbox.write(raw, to: full, at: 0) } catch { throw error }
            }
        }
    }

    @Test func staleParts_areRemovedAfterADay_andNothingElse() throws {
        let folder = InboxFolder()
        let inbox = try Inbox(path: folder.path)
        _ = FileManager.default.createFile(atPath: folder.path + "/.aeschat-old.part", contents: Data([1]))
        _ = FileManager.default.createFile(atPath: folder.path + "/keep.txt", contents: Data([1]))
        inbox.removeStaleParts(now: Int(time(nil)) + 3600)
        #expect(folder.names == [".aeschat-old.part", "keep.txt"])
        inbox.removeStaleParts(now: Int(time(nil)) + 25 * 3600)
        #expect(folder.names == ["keep.txt"])
    }
}

@Suite struct SafeFileNameTests {
    @Test func alternatives_countUp_beforeTheExtension() {
        #expect(SafeFileName.alternative("report.pdf", number: 1) == "report (1).pdf")
        #expect(SafeFileName.alternative("archive", number: 2) == "archive (2)")
        #expect(SafeFileName.alternative(".x", number: 1) == ".x (1)")
    }
}

@Suite struct FileTransferSendingTests {
    /// The frames a sender produced, opened with the offer's key: (index, flags, plaintext).
    static func open(_ frames: [[UInt8]], offer: FileOffer, sender: String) throws -> [(UInt64, UInt8, [UInt8])] {
        let cipher = try AESGCM(key: offer.key)
        return try frames.map { frame in
            // length, direct, str8 recipient, then the envelope.
            #expect(frame[4] == FrameType.direct)
            let envelope = Array(frame[(6 + Int(frame[5]))...])
            #expect(envelope[0] == EnvelopeKind.fileChunk.rawValue)
            #expect(Array(envelope[1..<17]) == offer.fileID)
            let index = envelope[17..<25].reduce(UInt64(0)) { $0 << 8 | UInt64($1) }
            let flags = envelope[25]
            let plaintext = try cipher.open(
                Array(envelope[26...]), nonce: FileChunk.nonce(index),
                authenticating: FileChunk.associatedData(
                    fileID: offer.fileID[...], index: index, flags: flags, sender: sender))
            return (index, flags, plaintext)
        }
    }

    /// Resuming from chunk 2 hashes the first two chunks from the file before sending the rest
    /// (a heap overwrite there once hung or crashed the process, hence the time limit).
    @Test(.timeLimit(.minutes(1)), arguments: [0, 2])
    func chunksAreSealedInPlace_andTheDigestCoversTheWholeFile(resumeFrom: UInt64) throws {
        let folder = InboxFolder()
        let chunk = Int(FileChunk.defaultChunkSize)
        let data = (0..<(3 * chunk + 1000)).map { UInt8(truncatingIfNeeded: $0 &* 7 &+ $0 >> 9) }
        let path = folder.path + "/source.bin"
        #expect(FileManager.default.createFile(atPath: path, contents: Data(data)))
        let host = RecordingTransferHost()
        host.ownName = "alice"
        host.presentMembers = ["bob"]
        let transfers = RecordedTransfers(
            host: host, inbox: try Inbox(path: folder.path + "/inbox"), maximumFileSize: nil)
        transfers.send(path: path, to: "bob")
        guard case .fileOffer(let offer)? = host.controls.first?.0 else {
            Issue.record("no offer")
            return
        }
        transfers.handleControl(
            .fileReply(fileID: offer.fileID, accept: true, resumeFrom: resumeFrom, reason: ""), from: "bob",
            isPrivate: true)
        let opened = try Self.open(host.frames, offer: offer, sender: "alice")
        #expect(opened.map(\.0) == Array(resumeFrom..<4))
        #expect(opened.map(\.1) == (resumeFrom..<4).map { $0 == 3 ? FileChunk.finalFlag : 0 })
        for (index, _, plaintext) in opened {
            #expect(plaintext == Array(data[(Int(index) * chunk)..<min(data.count, (Int(index) + 1) * chunk)]))
        }
        let done = host.controls.compactMap { content, _ -> [UInt8]? in
            if case .fileDone(_, let digest, let size) = content, size == UInt64(data.count) { return digest }
            return nil
        }
        #expect(done == [SHA256.hash(data)])
        _ = transfers.closeAll(.leaving)
    }

    /// A receiver that holds the window back leaves (its relay was cut from the cluster, say): the chunks the window
    /// now allows go out at once to the others, not at the watchdog's next round seconds later.
    @Test func aReceiverHoldingTheWindowBackLeaves_theNextChunksGoOutAtOnce() throws {
        let folder = InboxFolder()
        guard let (transfers, offer, chunkCount) = try alicesFileAtTheWindow(in: folder) else { return }
        let host = transfers.host
        transfers.handleControl(
            .fileProgress(fileID: offer.fileID, nextChunk: FileTransfers.window), from: "bob", isPrivate: true)
        #expect(host.frames.count == Int(FileTransfers.window))
        transfers.memberLeft("carol")
        #expect(host.failures == ["carol left before the file was complete"])
        // Everything left fits the window now that only bob counts: it goes out as far as the output allows, each
        // chunk to bob alone.
        let sent = host.frames.count - Int(FileTransfers.window)
        #expect(sent > 0, "the transfer waits for the watchdog")
        #expect(host.frames.dropFirst(Int(FileTransfers.window)).allSatisfy { $0[4] == FrameType.direct })
        for _ in 0..<8 { host.record(transfers.transfers.pump()) }
        #expect(host.frames.count == chunkCount)
        _ = transfers.closeAll(.leaving)
    }

    /// The slow receiver is dropped by the watchdog; the one that had acknowledged everything and was only waiting
    /// at the window is not, although the drop lets new chunks out at once (it used to be judged against them).
    @Test func theWatchdogDropsTheStalledReceiver_notTheOneWaitingAtTheWindow() throws {
        let folder = InboxFolder()
        guard let (transfers, _, chunkCount) = try bobStalledWhileCarolWaitsAtTheWindow(in: folder) else { return }
        let host = transfers.host
        #expect(host.failures.count == 1 && host.failures.first?.hasPrefix("bob was too slow") == true)
        let aborts = host.controls.compactMap { if case .fileAbort = $0.0 { $0.1 } else { nil } }
        #expect(aborts == ["bob"])
        // The window moved with bob gone: the rest goes to carol.
        for _ in 0..<8 { host.record(transfers.transfers.pump()) }
        #expect(host.frames.count == chunkCount)
        _ = transfers.closeAll(.leaving)
    }

    /// A receiver that had acknowledged everything sent and waited at the window is not stalled while it waits: its
    /// stall clock starts when the next chunk goes out (here, when the watchdog drops the receiver that held the
    /// window back), not at its last acknowledgement; and from then on it runs.
    @Test func aReceiverWaitingAtTheWindow_startsItsStallClockWhenTheNextChunkGoesOut() throws {
        let folder = InboxFolder()
        // Two windows and more: after bob's drop, carol's window stops the transfer while it is still streaming.
        guard
            let (transfers, clock, _) = try bobStalledWhileCarolWaitsAtTheWindow(
                in: folder, chunkCount: 2 * Int(FileTransfers.window) + 8)
        else { return }
        let host = transfers.host
        for _ in 0..<8 { host.record(transfers.transfers.pump()) }
        #expect(host.frames.count == 2 * Int(FileTransfers.window))
        // Well within the stall timeout of the chunks carol now lacks, though long past her acknowledgement.
        clock.now += .seconds(5)
        transfers.timerFired(.watchdog)
        #expect(host.failures.count == 1, "carol was dropped: \(host.failures)")
        // Acknowledging nothing of them for longer than the timeout, she is.
        clock.now += FileTransfers.defaultStallTimeout
        transfers.timerFired(.watchdog)
        #expect(host.failures.count == 2 && host.failures.last?.hasPrefix("carol was too slow") == true)
        _ = transfers.closeAll(.leaving)
    }

    /// ``alicesFileAtTheWindow(in:chunkCount:now:)`` on a clock the test moves; carol acknowledges everything sent so
    /// far and waits at the window, bob acknowledges nothing, and the watchdog runs once the stall timeout has passed
    /// (it drops bob). Returns the transfers, the clock and the chunk count.
    private func bobStalledWhileCarolWaitsAtTheWindow(
        in folder: InboxFolder, chunkCount: Int = Int(FileTransfers.window) + 8
    ) throws -> (RecordedTransfers, ManualClock, Int)? {
        let clock = ManualClock()
        guard
            let (transfers, offer, chunkCount) = try alicesFileAtTheWindow(
                in: folder, chunkCount: chunkCount, now: { clock.now })
        else { return nil }
        transfers.handleControl(
            .fileProgress(fileID: offer.fileID, nextChunk: FileTransfers.window), from: "carol", isPrivate: true)
        clock.now += FileTransfers.defaultStallTimeout + .seconds(1)
        transfers.timerFired(.watchdog)
        return (transfers, clock, chunkCount)
    }

    /// Alice sends a file of `chunkCount` chunks (default: the window + 8) to the room; bob and carol accept, and the
    /// chunks go out until the window (nothing acknowledged yet) stops them. Nil, with the issue recorded, if no offer
    /// was made.
    private func alicesFileAtTheWindow(
        in folder: InboxFolder, chunkCount: Int = Int(FileTransfers.window) + 8,
        now: @escaping () -> ContinuousClock.Instant = { .now }
    ) throws -> (RecordedTransfers, FileOffer, Int)? {
        let path = folder.path + "/source.bin"
        #expect(
            FileManager.default.createFile(
                atPath: path, contents: Data(count: chunkCount * Int(FileChunk.defaultChunkSize))))
        let host = RecordingTransferHost()
        host.ownName = "alice"
        host.presentMembers = ["bob", "carol"]
        let transfers = RecordedTransfers(
            host: host, inbox: try Inbox(path: folder.path + "/inbox"), maximumFileSize: nil, now: now)
        transfers.send(path: path, to: nil)
        guard case .fileOffer(let offer)? = host.controls.first?.0 else {
            Issue.record("no offer")
            return nil
        }
        for name in ["bob", "carol"] {
            transfers.handleControl(
                .fileReply(fileID: offer.fileID, accept: true, resumeFrom: 0, reason: ""), from: name,
                isPrivate: true)
        }
        // The client pumps whenever its output drains: the window stops it.
        for _ in 0..<8 { host.record(transfers.transfers.pump()) }
        #expect(host.frames.count == Int(FileTransfers.window))
        return (transfers, offer, chunkCount)
    }
}

/// A clock that moves only when a test moves it.
private final class ManualClock {
    var now = ContinuousClock.now
}
