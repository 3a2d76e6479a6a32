import AESChatCrypto
import Foundation
import Testing

@testable import AESChatCore

/// A sender's and a receiver's ``FileTransfers`` wired to each other: what one sends, the other gets.
final class TransferPair {
    let senderHost = RecordingTransferHost()
    let receiverHost = RecordingTransferHost()
    let sender: RecordedTransfers
    let receiver: RecordedTransfers
    private var controlsSeen = (sender: 0, receiver: 0)
    private var framesSeen = 0

    init(inbox: Inbox, policy: IncomingFilePolicy) {
        senderHost.ownName = "alice"
        senderHost.presentMembers = ["bob"]
        receiverHost.ownName = "bob"
        sender = RecordedTransfers(host: senderHost, inbox: nil, maximumFileSize: nil)
        receiver = RecordedTransfers(host: receiverHost, inbox: inbox, maximumFileSize: nil, policy: policy)
    }

    /// Carries controls and chunks both ways until nothing moves: a round's chunks before its controls
    /// (an offer comes in an earlier round than its chunks, a done after them).
    func run() {
        var moved = true
        while moved {
            moved = false
            while framesSeen < senderHost.frames.count {
                let frame = senderHost.frames[framesSeen]
                framesSeen += 1
                // A direct frame to "bob": type, length, str8 "bob", then the envelope.
                receiver.handleChunk(frame[(Frame.headerSize + 1 + 4)...], from: "alice")
                moved = true
            }
            while controlsSeen.sender < senderHost.controls.count {
                let (content, _) = senderHost.controls[controlsSeen.sender]
                controlsSeen.sender += 1
                receiver.handleControl(content, from: "alice", isPrivate: true)
                moved = true
            }
            while controlsSeen.receiver < receiverHost.controls.count {
                let (content, _) = receiverHost.controls[controlsSeen.receiver]
                controlsSeen.receiver += 1
                sender.handleControl(content, from: "bob", isPrivate: true)
                moved = true
            }
        }
    }
}

@Suite struct FileConsentTests {
    static func offered(_ host: RecordingTransferHost) -> [(number: Int, name: String)] {
        host.events.compactMap {
            if case .fileOffered(let number, let name, _, _, _) = $0 { return (number, name) }
            return nil
        }
    }

    static func declineReason(_ host: RecordingTransferHost) -> String? {
        for (content, _) in host.controls.reversed() {
            if case .fileReply(_, false, _, let reason) = content { return reason }
        }
        return nil
    }

    @Test func ask_showsTheOffer_repliesNothing_untilAccepted_thenTheFileLands() throws {
        let folder = InboxFolder()
        let host = RecordingTransferHost()
        let transfers = RecordedTransfers(
            host: host, inbox: try Inbox(path: folder.path), maximumFileSize: nil, policy: .ask)
        let sender = FakeSender(data: Array(repeating: 5, count: 3000))
        transfers.handleControl(.fileOffer(sender.offer), from: "alice", isPrivate: false)
        #expect(Self.offered(host).map(\.name) == ["report.pdf"])
        #expect(host.controls.isEmpty)
        #expect(host.timers.contains { $0.0 == .seconds(60) && $0.1 == .askTimeout(Self.offered(host)[0].number) })
        #expect(host.totals.last?.asking == [Self.offered(host)[0].number])
        transfers.answer(nil, accept: true)
        guard case .fileReply(_, true, 0, _) = host.controls.last?.0 else {
            Issue.record("no acceptance")
            return
        }
        #expect(host.totals.last?.asking == [])
        for index in 0..<sender.offer.chunkCount { transfers.handleChunk(sender.chunk(index)[...], from: "alice") }
        transfers.handleControl(sender.done, from: "alice", isPrivate: false)
        #expect(folder.contents("report.pdf") == sender.data)
        // The timer that fires after the answer finds nothing to decline.
        transfers.timerFired(.askTimeout(Self.offered(host)[0].number))
        #expect(host.failures.isEmpty)
    }

    @Test func ask_declined_tellsTheSender_andKeepsNothing() throws {
        let folder = InboxFolder()
        let host = RecordingTransferHost()
        let transfers = RecordedTransfers(
            host: host, inbox: try Inbox(path: folder.path), maximumFileSize: nil, policy: .ask)
        transfers.handleControl(.fileOffer(FakeSender(data: [1, 2]).offer), from: "alice", isPrivate: false)
        transfers.answer(Self.offered(host)[0].number, accept: false)
        #expect(Self.declineReason(host) == "not wanted")
        #expect(host.controls.last?.1 == "alice")
        #expect(folder.names.isEmpty)
        transfers.answer(nil, accept: true)
        guard case .error(let message) = host.events.last else {
            Issue.record("no error for an answer with nothing asked")
            return
        }
        #expect(message.hasPrefix("no file offer is waiting for an answer"))
    }

    @Test func ask_unanswered_declinesAfterTheTimeout_withOneLineEachSide() throws {
        let folder = InboxFolder()
        let host = RecordingTransferHost()
        let transfers = RecordedTransfers(
            host: host, inbox: try Inbox(path: folder.path), maximumFileSize: nil, policy: .ask)
        transfers.handleControl(.fileOffer(FakeSender(data: [1, 2]).offer), from: "alice", isPrivate: false)
        transfers.timerFired(.askTimeout(Self.offered(host)[0].number))
        #expect(Self.declineReason(host) == "no answer within 60 s")
        #expect(host.failures == ["not accepted within 60 s, so declined"])
        #expect(host.totals.last?.asking == [])
    }

    @Test func none_declinesEveryOffer_sayingWhy() throws {
        let folder = InboxFolder()
        let host = RecordingTransferHost()
        let transfers = RecordedTransfers(
            host: host, inbox: try Inbox(path: folder.path), maximumFileSize: nil, policy: .none)
        transfers.handleControl(.fileOffer(FakeSender(data: [1, 2]).offer), from: "alice", isPrivate: false)
        #expect(Self.declineReason(host) == "bob takes no files (--accept-files none)")
        #expect(Self.offered(host).isEmpty)
    }

    @Test func senderWithdrawing_anOfferBeingAsked_endsTheQuestion() throws {
        let folder = InboxFolder()
        let host = RecordingTransferHost()
        let transfers = RecordedTransfers(
            host: host, inbox: try Inbox(path: folder.path), maximumFileSize: nil, policy: .ask)
        let offer = FakeSender(data: [1, 2]).offer
        transfers.handleControl(.fileOffer(offer), from: "alice", isPrivate: false)
        transfers.handleControl(
            .fileAbort(fileID: offer.fileID, reason: "alice cancelled"), from: "alice", isPrivate: true)
        #expect(host.failures == ["alice withdrew the offer: alice cancelled"])
        #expect(host.totals.last?.asking == [])
        transfers.handleControl(.fileOffer(FakeSender(data: [3]).offer), from: "alice", isPrivate: false)
        transfers.memberLeft("alice")
        #expect(host.failures.last == "alice left; the offer is withdrawn")
    }

    @Test func theSender_getsOneLinePerDecliningReceiver() throws {
        let folder = InboxFolder()
        let path = folder.path + "/report.pdf"
        #expect(FileManager.default.createFile(atPath: path, contents: Data([1, 2, 3])))
        let host = RecordingTransferHost()
        host.ownName = "alice"
        host.presentMembers = ["bob", "carol"]
        let transfers = RecordedTransfers(host: host, inbox: nil, maximumFileSize: nil)
        transfers.send(path: path, to: nil)
        #expect(host.timers.contains { $0.0 == FileTransfers.offerReplyTimeout })
        guard case .fileOffer(let offer)? = host.controls.first?.0 else {
            Issue.record("no offer")
            return
        }
        transfers.handleControl(
            .fileReply(fileID: offer.fileID, accept: false, resumeFrom: 0, reason: "not wanted"), from: "bob",
            isPrivate: true)
        transfers.handleControl(
            .fileReply(fileID: offer.fileID, accept: false, resumeFrom: 0, reason: "no answer within 60 s"),
            from: "carol", isPrivate: true)
        #expect(
            host.failures == [
                "bob declined: not wanted", "carol declined: no answer within 60 s", "nobody accepted the file",
            ])
    }

    @Test func cancel_incoming_keepsThePart_andTellsTheSender() throws {
        let folder = InboxFolder()
        let host = RecordingTransferHost()
        let transfers = RecordedTransfers(host: host, inbox: try Inbox(path: folder.path), maximumFileSize: nil)
        let sender = FakeSender(data: Array(repeating: 9, count: 5000))
        transfers.handleControl(.fileOffer(sender.offer), from: "alice", isPrivate: false)
        transfers.handleChunk(sender.chunk(0)[...], from: "alice")
        transfers.list()
        guard case .transfers(let list) = host.events.last else {
            Issue.record("no list")
            return
        }
        #expect(list.count == 1)
        #expect(list.first?.sending == false)
        #expect(list.first?.bytes == 1024)
        #expect(list.first?.state == .moving)
        transfers.cancel("#\(list[0].number)")
        #expect(host.failures.first?.hasPrefix("bob cancelled; the 1.0 kB received are kept in") == true)
        #expect(
            host.controls.contains {
                if case .fileAbort(_, "bob cancelled") = $0.0, $0.1 == "alice" { true } else { false }
            })
        #expect(folder.names.count == 1)
        transfers.cancel(nil)
        guard case .error("no file transfer to cancel") = host.events.last else {
            Issue.record("cancel with nothing to cancel said nothing")
            return
        }
    }

    @Test func cancel_outgoing_byName_abortsForTheReceivers() throws {
        let folder = InboxFolder()
        let path = folder.path + "/notes.txt"
        #expect(FileManager.default.createFile(atPath: path, contents: Data([1, 2, 3])))
        let host = RecordingTransferHost()
        host.ownName = "alice"
        host.presentMembers = ["bob"]
        let transfers = RecordedTransfers(host: host, inbox: nil, maximumFileSize: nil)
        transfers.send(path: path, to: nil)
        transfers.cancel("nothing.txt")
        guard case .error(let message) = host.events.last else {
            Issue.record("no error")
            return
        }
        #expect(message == "no transfer 'nothing.txt' to cancel; /transfers lists them")
        transfers.cancel("notes.txt")
        #expect(
            host.controls.contains {
                if case .fileAbort(_, "alice cancelled") = $0.0, $0.1 == nil { true } else { false }
            })
        #expect(host.failures == ["alice cancelled"])
        #expect(!transfers.transfers.isBusy)
    }

    @Test func folder_arrivesUnderItsRelativePaths_askedOnce_linksAndHiddenFilesSkipped() throws {
        let source = InboxFolder()
        let inbox = InboxFolder()
        let outside = InboxFolder()
        let top = source.path + "/photos"
        try FileManager.default.createDirectory(atPath: top + "/2024/june", withIntermediateDirectories: true)
        #expect(FileManager.default.createFile(atPath: top + "/a.txt", contents: Data("a".utf8)))
        #expect(FileManager.default.createFile(atPath: top + "/2024/b.txt", contents: Data("bb".utf8)))
        #expect(FileManager.default.createFile(atPath: top + "/2024/june/c.txt", contents: Data("ccc".utf8)))
        #expect(FileManager.default.createFile(atPath: top + "/.hidden", contents: Data("h".utf8)))
        #expect(FileManager.default.createFile(atPath: outside.path + "/secret", contents: Data("s".utf8)))
        try FileManager.default.createSymbolicLink(atPath: top + "/link", withDestinationPath: outside.path + "/secret")
        try FileManager.default.createSymbolicLink(atPath: top + "/linkdir", withDestinationPath: outside.path)
        let pair = TransferPair(inbox: try Inbox(path: inbox.path), policy: .ask)
        pair.sender.send(path: top + "/", to: nil)
        guard case .info(let line)? = pair.senderHost.events.first else {
            Issue.record("no folder line")
            return
        }
        #expect(line.hasPrefix("offering the folder photos/ (3 files, 6 B) to the room, one file at a time"))
        #expect(line.hasSuffix("3 links, hidden or special entries skipped"))
        pair.run()
        #expect(Self.offered(pair.receiverHost).map(\.name) == ["photos/2024/b.txt"])
        pair.receiver.answer(nil, accept: true)
        pair.run()
        #expect(Self.offered(pair.receiverHost).count == 1, "a folder is asked about once")
        #expect(FileManager.default.contents(atPath: inbox.path + "/photos/a.txt") == Data("a".utf8))
        #expect(FileManager.default.contents(atPath: inbox.path + "/photos/2024/b.txt") == Data("bb".utf8))
        #expect(FileManager.default.contents(atPath: inbox.path + "/photos/2024/june/c.txt") == Data("ccc".utf8))
        #expect(!FileManager.default.fileExists(atPath: inbox.path + "/photos/link"))
        #expect(!FileManager.default.fileExists(atPath: inbox.path + "/photos/.hidden"))
        #expect(pair.senderHost.events.contains { $0 == .info("sent the folder photos/ (3 files)") })
        #expect(!pair.sender.transfers.isBusy)
    }

    @Test func folder_declinedByEveryone_stopsAfterItsFirstFile() throws {
        let source = InboxFolder()
        let inbox = InboxFolder()
        for name in ["a", "b", "c"] {
            #expect(FileManager.default.createFile(atPath: source.path + "/" + name, contents: Data([1])))
        }
        let pair = TransferPair(inbox: try Inbox(path: inbox.path), policy: .ask)
        pair.sender.send(path: source.path, to: "bob")
        pair.run()
        pair.receiver.answer(nil, accept: false)
        pair.run()
        #expect(Self.offered(pair.receiverHost).count == 1)
        let folderName = String(source.path.split(separator: "/").last!)
        #expect(
            pair.senderHost.failures.last
                == "0 of 3 files sent; nobody accepted \(folderName)/a, so the rest was not offered")
        #expect(inbox.names.isEmpty)
    }
}

@Suite struct ReceiverCancelTests {
    /// A receiver that cancels while another has not answered yet leaves the transfer waiting for that answer.
    @Test func aCancelBeforeEveryReplyCame_keepsWaitingForTheOthers() throws {
        let folder = InboxFolder()
        let path = folder.path + "/x.bin"
        #expect(FileManager.default.createFile(atPath: path, contents: Data([1, 2, 3])))
        let host = RecordingTransferHost()
        host.ownName = "alice"
        host.presentMembers = ["bob", "carol"]
        let transfers = RecordedTransfers(host: host, inbox: nil, maximumFileSize: nil)
        transfers.send(path: path, to: nil)
        guard case .fileOffer(let offer)? = host.controls.first?.0 else {
            Issue.record("no offer")
            return
        }
        let id = offer.fileID
        transfers.handleControl(
            .fileReply(fileID: id, accept: true, resumeFrom: 0, reason: ""), from: "bob", isPrivate: true)
        transfers.handleControl(
            .fileResult(fileID: id, accepted: false, reason: "bob cancelled"), from: "bob", isPrivate: true)
        transfers.handleControl(.fileAbort(fileID: id, reason: "bob cancelled"), from: "bob", isPrivate: true)
        #expect(host.failures == ["bob stopped receiving: bob cancelled"])
        #expect(transfers.transfers.isBusy)
        transfers.handleControl(
            .fileReply(fileID: id, accept: true, resumeFrom: 0, reason: ""), from: "carol", isPrivate: true)
        #expect(host.frames.count == 1)
        transfers.handleControl(.fileResult(fileID: id, accepted: true, reason: ""), from: "carol", isPrivate: true)
        #expect(host.events.last == .fileSent(name: "x.bin", bytes: 3, to: ["carol"]))
    }
}

@Suite struct InboxConfinementTests {
    @Test(arguments: [
        ("photos/a.jpg", ["photos"], "a.jpg"), ("a/b/c.txt", ["a", "b"], "c.txt"),
        ("../x", [], "x"), ("/etc/x", [], "x"), ("a/../../x", [], "x"), ("a//x", [], "x"), ("./x", [], "x"),
        ("a/./x", [], "x"), (".git/config", [], "config"), ("a\u{0}b/x", [], "x"), ("a\\b/x", [], "x"),
        ("a/\u{1B}[2J/x", [], "x"), ("a/", [], "file"), ("", [], "file"),
        (String(repeating: "d/", count: 17) + "x", [], "x"),
        (String(repeating: "é", count: 200) + "/x", [], "x"),
    ])
    func relativePath_keepsOnlyPlainFolders(offered: String, folders: [String], name: String) {
        let path = SafeFileName.relativePath(offered)
        #expect(path.folders == folders)
        #expect(path.name == name)
    }

    @Test func veryLongPaths_keepOnlyTheBaseName() {
        let long = String(repeating: String(repeating: "a", count: 255) + "/", count: 16) + "x"
        #expect(long.utf8.count > SafeFileName.maximumPathBytes)
        #expect(SafeFileName.relativePath(long).folders == [])
    }

    @Test func aLinkPlantedInsideTheInbox_isNotFollowed() throws {
        let inbox = InboxFolder()
        let outside = InboxFolder()
        try FileManager.default.createSymbolicLink(atPath: inbox.path + "/photos", withDestinationPath: outside.path)
        #expect(FileManager.default.createFile(atPath: inbox.path + "/docs", contents: Data([1])))
        let opened = try Inbox(path: inbox.path)
        #expect(throws: InboxError.self) { try opened.openFolders(["photos"]) }
        #expect(throws: InboxError.self) { try opened.openFolders(["docs", "x"]) }
        let folder = try opened.openFolders(["made", "inside"])
        close(folder)
        var status = stat()
        #expect(lstat(inbox.path + "/made/inside", &status) == 0)
        #expect(status.st_mode & S_IFMT == S_IFDIR)
        #expect(status.st_mode & 0o777 == 0o700)
        #expect(outside.names.isEmpty)
    }

    @Test func aFileBoundForAPlantedLink_failsAndNothingLandsOutside() throws {
        let inbox = InboxFolder()
        let outside = InboxFolder()
        try FileManager.default.createSymbolicLink(atPath: inbox.path + "/photos", withDestinationPath: outside.path)
        let host = RecordingTransferHost()
        let transfers = RecordedTransfers(host: host, inbox: try Inbox(path: inbox.path), maximumFileSize: nil)
        let sender = FakeSender(data: [1, 2, 3], name: "photos/a.jpg")
        transfers.handleControl(.fileOffer(sender.offer), from: "alice", isPrivate: false)
        transfers.handleChunk(sender.chunk(0)[...], from: "alice")
        transfers.handleControl(sender.done, from: "alice", isPrivate: false)
        #expect(host.received.isEmpty)
        #expect(host.failures.first?.hasPrefix("cannot use the folder 'photos' in the inbox") == true)
        #expect(outside.names.isEmpty)
    }
}

@Suite struct FileConsentWireTests {
    /// The decline docs/PROTOCOL.md (7.1, Consent) shows, byte for byte.
    @Test func decline_isTheDocumentedReply() throws {
        let fileID = Array(UInt8(0x10)...UInt8(0x1f))
        let decline = MessageContent.fileReply(fileID: fileID, accept: false, resumeFrom: 0, reason: "not wanted")
        let documented = "21 101112131415161718191a1b1c1d1e1f 00 0000000000000000 000a 6e6f742077616e746564"
        #expect(Hex.encode(decline.encoded()) == documented.replacingOccurrences(of: " ", with: ""))
        #expect(try MessageContent(decoding: decline.encoded()) == decline)
    }

    /// The out-of-bounds offer of docs/PROTOCOL.md (7.1, chunk size) decodes, and the receiver's decline is the
    /// documented reply, byte for byte.
    @Test func offerWithAChunkSizeOutOfBounds_decodes_andIsDeclinedWithTheDocumentedReply() throws {
        let documentedOffer =
            "20 101112131415161718191a1b1c1d1e1f 0000000000001388 0098967f "
            + "404142434445464748494a4b4c4d4e4f505152535455565758595a5b5c5d5e5f 000a 7265706f72742e706466"
        let documentedReply =
            "21 101112131415161718191a1b1c1d1e1f 00 0000000000000000 0040 "
            + "6368756e6b2073697a652039393939393939206f7574206f6620626f756e64732028616c6c6f776564203130323420746f20"
            + "3431393433303420627974657329"
        let bytes = try #require(Hex.decode(documentedOffer.replacingOccurrences(of: " ", with: "")))
        guard case .fileOffer(let offer) = try MessageContent(decoding: bytes) else {
            Issue.record("not an offer")
            return
        }
        #expect(offer.chunkSize == 9_999_999 && offer.size == 5000 && offer.name == "report.pdf")
        let folder = InboxFolder()
        let host = RecordingTransferHost()
        let transfers = RecordedTransfers(host: host, inbox: try Inbox(path: folder.path), maximumFileSize: nil)
        transfers.handleControl(.fileOffer(offer), from: "alice", isPrivate: false)
        #expect(host.controls.count == 1)
        #expect(host.controls.first?.1 == "alice")
        #expect(
            host.controls.first.map { Hex.encode($0.0.encoded()) }
                == documentedReply.replacingOccurrences(of: " ", with: ""))
        #expect(host.failures == ["chunk size 9999999 out of bounds (allowed 1024 to 4194304 bytes)"])
        #expect(host.timers.isEmpty && folder.names.isEmpty)
    }

    /// Every field of an offer that can be out of bounds is declined with its own reason, at once, and nothing is
    /// asked, scheduled or written; the bounds themselves are accepted.
    @Test(arguments: [
        (UInt32(0), UInt64(10), true, "chunk size 0 out of bounds (allowed 1024 to 4194304 bytes)"),
        (1023, 10, true, "chunk size 1023 out of bounds (allowed 1024 to 4194304 bytes)"),
        (4_194_305, 10, true, "chunk size 4194305 out of bounds (allowed 1024 to 4194304 bytes)"),
        (.max, .max, true, "chunk size 4294967295 out of bounds (allowed 1024 to 4194304 bytes)"),
        (1024, (1 << 53) + 1, true, "the offer declares 9007199254740993 bytes, more than a transfer can carry"),
        (4_194_304, 10, false, "the file name is not valid UTF-8"),
    ])
    func offerOutOfBounds_isDeclinedWithItsReason(chunkSize: UInt32, size: UInt64, validName: Bool, reason: String)
        throws
    {
        var plaintext = MessageContent.fileOffer(
            FileOffer(
                fileID: Array(repeating: 3, count: 16), size: size, chunkSize: chunkSize,
                key: Array(repeating: 4, count: 32), name: "ab")
        ).encoded()
        if !validName { plaintext[plaintext.count - 1] = 0xFF }
        guard case .fileOffer(let offer) = try MessageContent(decoding: plaintext) else {
            Issue.record("not an offer")
            return
        }
        #expect(offer.nameIsValid == validName)
        let folder = InboxFolder()
        let host = RecordingTransferHost()
        let transfers = RecordedTransfers(
            host: host, inbox: try Inbox(path: folder.path), maximumFileSize: nil, policy: .ask)
        transfers.handleControl(.fileOffer(offer), from: "alice", isPrivate: true)
        guard case .fileReply(let fileID, false, 0, let sent) = host.controls.last?.0 else {
            Issue.record("no decline")
            return
        }
        #expect(fileID == offer.fileID && sent.hasPrefix(reason))
        #expect(host.controls.count == 1 && host.timers.isEmpty && folder.names.isEmpty)
        #expect(!host.events.contains { if case .fileOffered = $0 { true } else { false } })
        // The bounds themselves hold.
        for inBounds in [FileOffer.minimumChunkSize, FileOffer.maximumChunkSize] {
            #expect(
                FileOffer(fileID: fileID, size: 1 << 53, chunkSize: inBounds, key: offer.key, name: "a").problem == nil)
        }
    }

    /// At the sender, a decline shows the receiver's reason at once (no waiting for the 75 s of the offer).
    @Test func declineWithAReason_isShownAtTheSenderAtOnce() throws {
        let folder = InboxFolder()
        let path = folder.path + "/report.pdf"
        #expect(FileManager.default.createFile(atPath: path, contents: Data(repeating: 1, count: 3000)))
        let host = RecordingTransferHost()
        host.ownName = "alice"
        host.presentMembers = ["bob"]
        let transfers = RecordedTransfers(host: host, inbox: nil, maximumFileSize: nil)
        transfers.send(path: path, to: "bob")
        guard case .fileOffer(let offer) = host.controls.last?.0 else {
            Issue.record("no offer")
            return
        }
        transfers.handleControl(
            .fileReply(
                fileID: offer.fileID, accept: false, resumeFrom: 0,
                reason: "chunk size 9999999 out of bounds (allowed 1024 to 4194304 bytes)"),
            from: "bob", isPrivate: true)
        #expect(
            host.failures.first == "bob declined: chunk size 9999999 out of bounds (allowed 1024 to 4194304 bytes)")
        #expect(host.failures.dropFirst() == ["nobody accepted the file"])
    }
}
