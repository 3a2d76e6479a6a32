import AESChatCrypto

#if canImport(Glibc)
    import Glibc
#elseif canImport(Darwin)
    import Darwin
#endif

/// Sends and receives files: streamed in chunks in constant memory, each chunk authenticated,
/// the whole file's SHA-256 authenticated by the sender, confined to the inbox, resumable, and
/// flow-controlled end to end so that no receiver makes the relay buffer without bound.
/// Each entry point returns what the client is to do (``FileTransferAction``), in order.
/// Loop thread only.
public final class FileTransfers {
    /// Chunks a sender may be ahead of its slowest active receiver's acknowledgement.
    public static let window: UInt64 = 32
    /// Receivers acknowledge every this many chunks.
    public static let acknowledgeEvery: UInt64 = 8
    /// Output queued toward the relay above which the sender stops reading the file.
    public static let outputHighWater = 4 * 1024 * 1024
    /// How long a sender waits for replies to an offer, and for results after the last chunk.
    public static let replyTimeout: Duration = .seconds(15)
    /// A receiver that acknowledges nothing for this long while the sender waits on it is dropped
    /// (the default; `AESCHAT_TRANSFER_STALL_SECONDS` changes it, for tests). An incoming transfer
    /// that receives nothing for twice this long (30 s) is dropped by its receiver: longer than a
    /// sender may wait on another, slower receiver before dropping it.
    public static let defaultStallTimeout: Duration = .seconds(15)
    /// Incoming transfers at once from one sender; more offers are declined with a reason.
    public static let maximumIncomingPerSender = 4
    /// Incoming transfers at once in all.
    public static let maximumIncoming = 16
    /// A transfer that moved nothing for this long shows as stalled (progress with rate 0) at the
    /// watchdog's next round, so that a frozen readout never looks live.
    public static let stalledAfter: Duration = .seconds(3)
    /// How long a receiver that asks its user (`--accept-files ask`) waits for an answer before it
    /// declines the offer (the default).
    public static let defaultAskTimeout: Duration = .seconds(60)
    /// How long a sender waits for replies to an offer: a receiver's question
    /// (``defaultAskTimeout``) and its answer's way back fit in it.
    public static let offerReplyTimeout: Duration = .seconds(75)
    /// Files of one folder (`/send DIR`) at most; a larger folder is refused with a reason.
    public static let maximumFolderFiles = 10_000
    /// How long the user's answer to a file of a folder holds for that folder's next files from the
    /// same sender (renewed by each): a folder is asked about once.
    public static let folderAnswerLifetime: Duration = .seconds(120)

    /// An offer waiting for the user's answer.
    private struct PendingOffer {
        var number: Int
        var sender: String
        var offer: FileOffer
    }

    /// Why every transfer ends at once (``closeAll(_:)``).
    public enum Interruption: Sendable {
        /// The connection to the relay was lost (the session reconnects).
        case connectionLost
        /// The user left, or the session ended.
        case leaving
    }

    private let ownName: String
    private let outputBacklog: () -> Int
    /// Where received files go; without one (a send-only `join` with no `--inbox`), every offer is declined.
    private let inbox: Inbox?
    private let maximumFileSize: UInt64?
    private let now: () -> ContinuousClock.Instant
    private let stallTimeout: Duration
    private var outgoing: [OutgoingTransfer] = []
    private var incoming: [String: IncomingTransfer] = [:]
    private var watchdogRunning = false
    private var nextSerial: UInt64 = 0
    /// What happens to offers: taken, asked about, or declined.
    private let policy: IncomingFilePolicy
    private let askTimeout: Duration
    /// Offers waiting for the user's answer, oldest first.
    private var asking: [PendingOffer] = []
    /// Folders being sent, each with the files not offered yet.
    private var folders: [FolderSend] = []
    /// The user's answer for the rest of a folder, by sender and folder name, until it lapses.
    private var folderAnswers: [String: (accept: Bool, until: ContinuousClock.Instant)] = [:]
    /// The totals last handed to the output.
    private var lastTotals = TransferTotals.none
    /// What the current entry point asks the client to do, in order.
    private var actions: [FileTransferAction] = []
    /// Bytes of the chunk frames in ``actions``: queued toward the relay once the client has
    /// carried them out, so counted with ``outputBacklog`` already.
    private var frameBytesInActions = 0

    /// Creates the transfers of one client.
    /// - Parameters:
    ///   - ownName: the user's registered name.
    ///   - outputBacklog: bytes queued toward the relay.
    ///   - inbox: where received files go; `nil` declines every offer, with a reason the sender sees.
    ///   - maximumFileSize: larger offers are declined; nil: no limit.
    ///   - policy: whether offers are taken, asked about, or declined.
    ///   - askTimeout: how long a question waits for the user's answer before it declines.
    public init(
        ownName: String, outputBacklog: @escaping () -> Int, inbox: Inbox?, maximumFileSize: UInt64?,
        policy: IncomingFilePolicy = .all, askTimeout: Duration = defaultAskTimeout,
        stallTimeout: Duration = defaultStallTimeout,
        now: @escaping () -> ContinuousClock.Instant = { .now }
    ) {
        self.policy = policy
        self.askTimeout = askTimeout
        self.ownName = ownName
        self.outputBacklog = outputBacklog
        self.inbox = inbox
        self.maximumFileSize = maximumFileSize
        self.stallTimeout = stallTimeout
        self.now = now
    }

    /// Whether any transfer is under way (the client waits for them before leaving).
    public var isBusy: Bool { !outgoing.isEmpty || !folders.isEmpty }

    // MARK: Entry points

    /// Offers the file at `path` to the room (`recipient` nil) or to one member.
    /// - Parameters:
    ///   - members: the other members present now.
    ///   - takingNoFiles: those of them whose profile says they take no files (docs/PROTOCOL.md section 6.5): no
    ///     offer is made to them, and a send to one of them alone fails at once.
    public func send(path: String, to recipient: String?, members: [String], takingNoFiles: Set<String> = [])
        -> [FileTransferAction]
    {
        startSending(path: path, to: recipient, members: members, takingNoFiles: takingNoFiles)
        return takeActions()
    }

    /// Answers the offer with `number` (`/accept`, `/decline`), or the oldest one waiting for nil.
    public func answer(_ number: Int?, accept: Bool) -> [FileTransferAction] {
        answerOffer(number, accept: accept)
        return takeActions()
    }

    /// Shows every transfer in both directions (`/transfers`).
    public func list() -> [FileTransferAction] {
        show(.transfers(statuses()))
        return takeActions()
    }

    /// Cancels the transfer with this number, those of this file or folder name, or (nil) every
    /// one (`/cancel [NAME]`); the other side is told.
    public func cancel(_ target: String?) -> [FileTransferAction] {
        cancelTransfers(target)
        return takeActions()
    }

    /// Sends chunks while the connection, the window and the receivers allow; called whenever
    /// one of them moves.
    public func pump() -> [FileTransferAction] {
        pumpChunks()
        return takeActions()
    }

    /// Handles file control that arrived through the end-to-end layer.
    public func handleControl(_ content: MessageContent, from sender: String, isPrivate: Bool) -> [FileTransferAction] {
        receiveControl(content, from: sender, isPrivate: isPrivate)
        return takeActions()
    }

    /// Handles a chunk envelope from `sender`, from a copy of `payload` (see
    /// ``receiveChunk(inPlace:from:)``).
    public func receiveChunk(_ payload: ArraySlice<UInt8>, from sender: String) -> [FileTransferAction] {
        var copy = Array(payload)
        copy.withUnsafeMutableBytes { handleChunk(inPlace: $0, from: sender) }
        return takeActions()
    }

    /// Handles a chunk envelope from `sender` where it lies: the chunk is authenticated and
    /// decrypted in place (so the bytes of `payload` are overwritten), then written and hashed
    /// from there.
    /// - Parameters:
    ///   - payload: the envelope (kind 0x04 first); valid and writable during the call only.
    ///   - sender: the member the relay says sent it (bound into the chunk's associated data).
    public func receiveChunk(inPlace payload: UnsafeMutableRawBufferPointer, from sender: String)
        -> [FileTransferAction]
    {
        handleChunk(inPlace: payload, from: sender)
        return takeActions()
    }

    /// A member left: its incoming transfers fail (keeping their part for a resume), and it is
    /// dropped from outgoing ones.
    public func memberLeft(_ name: String) -> [FileTransferAction] {
        dropMember(name)
        return takeActions()
    }

    /// A timer asked for with ``FileTransferAction/schedule(after:_:)`` is due.
    public func timerFired(_ timer: FileTransferTimer) -> [FileTransferAction] {
        switch timer {
        case .offerTimeout(let serial):
            if let transfer = outgoing.first(where: { $0.serial == serial }), transfer.phase == .offering {
                startStreaming(transfer, timedOut: true)
            }
        case .resultsTimeout(let serial):
            if let transfer = outgoing.first(where: { $0.serial == serial }), transfer.phase == .finishing {
                for name in transfer.receivers.keys.sorted() where transfer.results[name] == nil {
                    transfer.results[name] = "\(name) did not confirm the file"
                }
                reportResults(transfer)
            }
        case .askTimeout(let number):
            if let index = asking.firstIndex(where: { $0.number == number }) {
                let pending = asking.remove(at: index)
                let seconds = askTimeout.wholeSeconds
                sendControl(
                    .fileReply(
                        fileID: pending.offer.fileID, accept: false, resumeFrom: 0,
                        reason: "no answer within \(seconds) s"),
                    to: pending.sender)
                show(
                    .fileFailed(
                        name: Self.displayName(pending.offer.name), from: pending.sender, to: nil,
                        reason: "not accepted within \(seconds) s, so declined"))
            }
        case .watchdog:
            watchdog()
        }
        return takeActions()
    }

    /// Hands over what the entry point asked for, with the totals when they changed.
    private func takeActions() -> [FileTransferAction] {
        let totals = currentTotals()
        // Whole percentages and shown rates: the readout changes a few times a second at most.
        var unchanged = totals
        unchanged.bytes = lastTotals.bytes
        unchanged.total = lastTotals.total
        if unchanged != lastTotals || totals.percent != lastTotals.percent {
            lastTotals = totals
            actions.append(.totals(totals))
        }
        defer {
            actions = []
            frameBytesInActions = 0
        }
        return actions
    }

    /// What the transfers under way add up to (percentages rounded, so that they change rarely).
    private func currentTotals() -> TransferTotals {
        var count = 0
        var bytes: UInt64 = 0
        var total: UInt64 = 0
        var rate: UInt64 = 0
        var single: (name: String, sending: Bool)?
        for transfer in outgoing where transfer.phase != .done {
            count += 1
            let size = transfer.offer.size
            let sent =
                transfer.phase == .offering ? 0 : min(transfer.nextChunk &* UInt64(transfer.offer.chunkSize), size)
            bytes = bytes &+ sent
            total = total &+ size
            if !transfer.shownStalled { rate = rate &+ transfer.lastRate }
            single = (transfer.offer.name, true)
        }
        for transfer in incoming.values {
            count += 1
            let size = transfer.offer.size
            bytes = bytes &+ min(transfer.nextChunk &* UInt64(transfer.offer.chunkSize), size)
            total = total &+ size
            if !transfer.shownStalled { rate = rate &+ transfer.lastRate }
            single = (Self.displayName(transfer.offer.name), false)
        }
        return TransferTotals(
            count: count, bytes: bytes, total: total, bytesPerSecond: rate, single: count == 1 ? single : nil,
            asking: asking.map(\.number))
    }

    private func show(_ event: ClientEvent) { actions.append(.show(event)) }

    private func sendControl(_ content: MessageContent, to recipient: String?) {
        actions.append(.sendControl(content, to: recipient))
    }

    private func schedule(after delay: Duration, _ timer: FileTransferTimer) {
        actions.append(.schedule(after: delay, timer))
    }

    // MARK: Sending

    private func startSending(path: String, to recipient: String?, members: [String], takingNoFiles: Set<String>) {
        let home = getenv("HOME").map { String(cString: $0) } ?? ""
        let expanded = path == "~" ? home : path.hasPrefix("~/") ? home + path.dropFirst(1) : path
        let targets: [String]
        if let recipient {
            guard members.contains(recipient) else {
                show(.error(message: "no member named '\(recipient)' here; /who lists the members"))
                return
            }
            guard !takingNoFiles.contains(recipient) else {
                show(
                    .error(
                        message: "\(recipient) takes no files (its client says so: no inbox, or --accept-files none); "
                            + "nothing was offered"))
                return
            }
            targets = [recipient]
        } else {
            targets = members.filter { !takingNoFiles.contains($0) }
            if !members.isEmpty, targets.isEmpty {
                show(
                    .error(
                        message: "nobody here takes files (their clients say so: no inbox, or --accept-files none); "
                            + "nothing was offered"))
                return
            }
        }
        guard !targets.isEmpty else {
            show(.error(message: "nobody else is in the room to send '\(path)' to"))
            return
        }
        var status = stat()
        guard stat(expanded, &status) == 0 else {
            show(.error(message: "cannot read '\(path)': \(System.lastError)"))
            return
        }
        if (status.st_mode & S_IFMT) == S_IFDIR {
            startFolder(path: path, expanded: expanded, to: recipient, targets: targets)
            return
        }
        let name = String(expanded.split(separator: "/").last ?? "file")
        offerFile(path: path, opening: expanded, name: name, to: recipient, targets: targets, folder: nil)
    }

    /// Offers one file; `name` is what the receivers see (a path inside the folder for a folder's file).
    @discardableResult
    private func offerFile(
        path: String, opening: String, name: String, to recipient: String?, targets: [String], folder: FolderSend?
    ) -> Bool {
        // A folder's files are opened without following a link (the walk skipped links already).
        let flags = O_RDONLY | O_CLOEXEC | O_NONBLOCK | (folder == nil ? 0 : O_NOFOLLOW)
        guard let file = Descriptor(returned: open(opening, flags)) else {
            show(.error(message: "cannot read '\(folder == nil ? path : opening)': \(System.lastError)"))
            return false
        }
        var status = stat()
        guard fstat(file.rawValue, &status) == 0, (status.st_mode & S_IFMT) == S_IFREG else {
            show(.error(message: "cannot send '\(folder == nil ? path : opening)': not a regular file"))
            return false
        }
        var identity = ByteWriter(capacity: 96)
        identity.write(contentsOf: Array("aeschat/1 file id".utf8))
        identity.writeLongString(name)
        identity.write(UInt64(status.st_size))
        let modified = System.modificationTime(status)
        identity.write(UInt64(bitPattern: Int64(modified.seconds)))
        identity.write(UInt64(bitPattern: Int64(modified.nanoseconds)))
        identity.write(UInt64(status.st_ino))
        let fileID = Array(SHA256.hash(identity.bytes).prefix(MessageContent.fileIDSize))
        let key = SecureRandom.bytes(count: 32)
        let offer = FileOffer(
            fileID: fileID, size: UInt64(status.st_size), chunkSize: FileChunk.defaultChunkSize, key: key, name: name)
        let cipher: AESGCM
        do {
            cipher = try AESGCM(key: key)
        } catch {
            show(.error(message: "cannot send '\(path)': \(error.description)"))
            return false
        }
        nextSerial += 1
        let transfer = OutgoingTransfer(
            serial: nextSerial, path: path, offer: offer, file: file, cipher: cipher, recipient: recipient,
            targets: targets)
        transfer.folder = folder
        transfer.folderPath = folder == nil ? nil : path
        transfer.startedAt = now()
        outgoing.append(transfer)
        sendControl(.fileOffer(offer), to: recipient)
        if folder == nil {
            show(
                .info(
                    "offering \(name) (\(ClientEvent.formatBytes(offer.size))) to \(recipient ?? "the room"); waiting for replies"
                )
            )
        }
        schedule(after: Self.offerReplyTimeout, .offerTimeout(transfer.serial))
        startWatchdog()
        return true
    }

    /// `/send DIR`: lists the folder's files (links, hidden names and special files skipped) and
    /// offers them one at a time, each under the folder's name and its path inside it.
    private func startFolder(path: String, expanded: String, to recipient: String?, targets: [String]) {
        var trimmed = expanded
        while trimmed.count > 1, trimmed.hasSuffix("/") { trimmed.removeLast() }
        var folderName = String(trimmed.split(separator: "/").last ?? "")
        if folderName == "." || folderName == ".." || folderName.isEmpty {
            if let resolved = realpath(trimmed, nil) {
                folderName = String(String(cString: resolved).split(separator: "/").last ?? "")
                free(resolved)
            }
        }
        folderName = SafeFileName.sanitize(folderName)
        var entries: [FolderEntry] = []
        var skipped = 0
        var tooMany = false
        func walk(_ directory: String, _ relative: [String]) {
            guard let listing = opendir(directory) else {
                skipped += 1
                return
            }
            defer { closedir(listing) }
            var names: [String] = []
            while let entry = readdir(listing) {
                let name = withUnsafeBytes(of: entry.pointee.d_name) { raw in
                    String(decoding: raw.prefix { $0 != 0 }, as: UTF8.self)
                }
                if name != "." && name != ".." { names.append(name) }
            }
            for name in names.sorted() {
                guard !tooMany else { return }
                let full = directory + "/" + name
                var status = stat()
                // Links are never followed; hidden and unsafe names would not land as they are.
                guard lstat(full, &status) == 0, SafeFileName.sanitize(name) == name else {
                    skipped += 1
                    continue
                }
                let inside = relative + [name]
                let offered = ([folderName] + inside).joined(separator: "/")
                switch status.st_mode & S_IFMT {
                case S_IFDIR where inside.count < SafeFileName.maximumFolderDepth:
                    walk(full, inside)
                case S_IFREG where offered.utf8.count <= SafeFileName.maximumPathBytes:
                    guard entries.count < Self.maximumFolderFiles else {
                        tooMany = true
                        return
                    }
                    entries.append(FolderEntry(path: full, name: offered, size: UInt64(status.st_size)))
                default:
                    skipped += 1
                }
            }
        }
        walk(trimmed, [])
        guard !tooMany else {
            show(
                .error(
                    message: "cannot send the folder '\(path)': it holds more than \(Self.maximumFolderFiles) files"))
            return
        }
        guard !entries.isEmpty else {
            show(.error(message: "the folder '\(path)' holds no file to send"))
            return
        }
        nextSerial += 1
        let folder = FolderSend(number: Int(nextSerial), name: folderName, recipient: recipient, entries: entries)
        folder.targets = targets
        folder.path = path
        folders.append(folder)
        let bytes = entries.reduce(UInt64(0)) { $0 &+ $1.size }
        let skippedNote = skipped == 0 ? "" : "; \(skipped) links, hidden or special entries skipped"
        show(
            .info(
                "offering the folder \(folderName)/ (\(entries.count) file\(entries.count == 1 ? "" : "s"), "
                    + "\(ClientEvent.formatBytes(bytes))) to \(recipient ?? "the room"), one file at a time\(skippedNote)"
            ))
        offerNextInFolder(folder)
    }

    /// Offers the folder's next file, or ends the folder with one line when none is left.
    private func offerNextInFolder(_ folder: FolderSend) {
        while let entry = folder.remaining.first {
            folder.remaining.removeFirst()
            guard !folder.targets.isEmpty else { break }
            if offerFile(
                path: folder.path, opening: entry.path, name: entry.name, to: folder.recipient,
                targets: folder.targets, folder: folder)
            {
                return
            }
            folder.failed += 1
        }
        folders.removeAll { $0 === folder }
        let total = folder.count
        if folder.stopped == nil, folder.failed == 0, folder.remaining.isEmpty {
            show(.info("sent the folder \(folder.name)/ (\(folder.sent) file\(folder.sent == 1 ? "" : "s"))"))
        } else {
            let reason = folder.stopped.map { "; \($0)" } ?? ""
            show(
                .fileFailed(
                    name: folder.name + "/", from: ownName, to: folder.recipient,
                    reason: "\(folder.sent) of \(total) files sent\(reason)"))
        }
    }

    private func reply(
        to transfer: OutgoingTransfer, from name: String, accept: Bool, resumeFrom: UInt64, reason: String
    ) {
        guard transfer.phase == .offering, transfer.targets.contains(name), transfer.receivers[name] == nil else {
            return
        }
        if accept {
            let start = min(resumeFrom, transfer.offer.chunkCount - 1)
            transfer.receivers[name] = ReceiverProgress(acknowledged: start, resumeFrom: start, lastProgress: now())
        } else {
            transfer.declined.insert(name)
            show(
                .fileFailed(
                    name: transfer.offer.name, from: ownName, to: name, reason: "\(name) declined: \(reason)"))
        }
        if transfer.receivers.count + transfer.declined.count == transfer.targets.count {
            startStreaming(transfer, timedOut: false)
        }
    }

    private func startStreaming(_ transfer: OutgoingTransfer, timedOut: Bool) {
        if timedOut {
            for name in transfer.targets where transfer.receivers[name] == nil && !transfer.declined.contains(name) {
                show(
                    .fileFailed(
                        name: transfer.offer.name, from: ownName, to: name,
                        reason: "\(name) did not answer the offer"))
            }
        }
        guard !transfer.receivers.isEmpty else {
            transfer.folder?.stopped = "nobody accepted \(transfer.offer.name), so the rest was not offered"
            finishOutgoing(transfer, reason: "nobody accepted the file")
            return
        }
        transfer.phase = .streaming
        let start = transfer.receivers.values.map(\.resumeFrom).min() ?? 0
        // The digest covers the whole file: hash the part the receivers already hold.
        var offset: UInt64 = 0
        let end = start * UInt64(transfer.offer.chunkSize)
        while offset < end {
            let length = Int(min(UInt64(transfer.offer.chunkSize), end - offset))
            guard readChunk(transfer, at: offset, length: length, into: &transfer.buffer) else {
                abortOutgoing(transfer, reason: "the file changed or became unreadable while sending")
                return
            }
            transfer.buffer.withUnsafeBytes { transfer.hasher.update(UnsafeRawBufferPointer(rebasing: $0[0..<length])) }
            offset += UInt64(length)
        }
        transfer.nextChunk = start
        transfer.bytesAtStart = end
        transfer.startedAt = now()
        transfer.lastChunkSent = transfer.startedAt
        pumpChunks()
    }

    private func pumpChunks() {
        var progressed = true
        while progressed {
            progressed = false
            for transfer in outgoing where transfer.phase == .streaming {
                guard outputBacklog() + frameBytesInActions < Self.outputHighWater else { return }
                guard transfer.nextChunk < transfer.offer.chunkCount else { continue }
                let slowest = transfer.receivers.values.map(\.acknowledged).min() ?? transfer.nextChunk
                guard transfer.nextChunk < slowest + Self.window else { continue }
                sendNextChunk(transfer)
                progressed = true
            }
        }
    }

    private func sendNextChunk(_ transfer: OutgoingTransfer) {
        let offer = transfer.offer
        let index = transfer.nextChunk
        let offset = index * UInt64(offer.chunkSize)
        let length = Int(min(UInt64(offer.chunkSize), offer.size - offset))
        let isFinal = index == offer.chunkCount - 1
        let flags = isFinal ? FileChunk.finalFlag : 0
        // Chunks go only to the members that accepted (and are still receiving), 255 per frame.
        let recipients = transfer.receivers.keys.sorted()
        let sealedCount = length + AESGCM.tagSize
        // The chunk is read straight into its place in the frame, hashed while it is in the cache,
        // and sealed where it lies.
        let total = FileChunk.frameHeaderLength(recipients: recipients.prefix(255)) + sealedCount
        var frame = transfer.takeFrameBuffer(capacity: total)
        FileChunk.writeFrameHeader(
            fileID: offer.fileID, index: index, flags: flags, recipients: recipients.prefix(255),
            sealedCount: sealedCount, into: &frame)
        let sealed = UnsafeMutableRawBufferPointer(rebasing: frame.unusedSpace[0..<sealedCount])
        guard readChunk(transfer, at: offset, length: length, to: sealed.baseAddress!) else {
            abortOutgoing(transfer, reason: "the file changed or became unreadable while sending")
            return
        }
        transfer.hasher.update(UnsafeRawBufferPointer(rebasing: sealed[0..<length]))
        do {
            try transfer.cipher.sealInPlace(
                sealed, nonce: FileChunk.nonce(index),
                authenticating: FileChunk.associatedData(
                    fileID: offer.fileID[...], index: index, flags: flags, sender: ownName))
        } catch {
            abortOutgoing(transfer, reason: error.description)
            return
        }
        frame.commit(sealedCount)
        actions.append(.sendFrame(frame, range: 0..<total))
        frameBytesInActions += total
        // More than 255 receivers: the same sealed chunk goes out behind another header.
        var start = 255
        while start < recipients.count {
            let group = recipients[start..<min(start + 255, recipients.count)]
            var other = FileChunk.frameHeader(
                fileID: offer.fileID, index: index, flags: flags, recipients: group, sealedCount: sealedCount)
            other.append(contentsOf: UnsafeRawBufferPointer(sealed))
            frameBytesInActions += other.count
            actions.append(.sendFrameBytes(other))
            start += 255
        }
        // Its time starts the stall clock of the receivers that had acknowledged everything (stallClockStart).
        transfer.chunkSent(at: now())
        transfer.shownStalled = false
        if let rate = showProgress(
            name: offer.name, peer: transfer.recipient ?? "the room", sending: true, bytes: offset + UInt64(length),
            total: offer.size, since: transfer.startedAt, base: transfer.bytesAtStart,
            throttle: &transfer.lastProgressShown,
            force: isFinal)
        {
            transfer.lastRate = rate
        }
        if isFinal {
            transfer.phase = .finishing
            let digest = transfer.hasher.finalize()
            transfer.digest = digest
            sendControl(.fileDone(fileID: offer.fileID, sha256: digest, size: offer.size), to: transfer.recipient)
            schedule(after: Self.replyTimeout, .resultsTimeout(transfer.serial))
        }
    }

    /// Reads `length` bytes at `offset` into the start of `buffer`; false if the file is shorter.
    private func readChunk(_ transfer: OutgoingTransfer, at offset: UInt64, length: Int, into buffer: inout [UInt8])
        -> Bool
    {
        if buffer.count < length { buffer = [UInt8](repeating: 0, count: Int(transfer.offer.chunkSize)) }
        return buffer.withUnsafeMutableBytes { readChunk(transfer, at: offset, length: length, to: $0.baseAddress!) }
    }

    /// Reads `length` bytes at `offset` to `destination`; false if the file is shorter. (Not an
    /// overload of the array version: `&array` would convert to a pointer and pick this one.)
    private func readChunk(
        _ transfer: OutgoingTransfer, at offset: UInt64, length: Int, to destination: UnsafeMutableRawPointer
    ) -> Bool {
        var done = 0
        while done < length {
            let count = System.retryingInterrupts {
                pread(transfer.descriptor, destination + done, length - done, off_t(offset) + off_t(done))
            }
            if count <= 0 { return false }
            done += count
        }
        return true
    }

    private func abortOutgoing(_ transfer: OutgoingTransfer, reason: String) {
        sendControl(.fileAbort(fileID: transfer.offer.fileID, reason: reason), to: transfer.recipient)
        finishOutgoing(transfer, reason: reason)
    }

    private func finishOutgoing(_ transfer: OutgoingTransfer, reason: String?) {
        guard transfer.phase != .done else { return }
        transfer.phase = .done
        transfer.closeFile()
        outgoing.removeAll { $0 === transfer }
        if let reason {
            show(
                .fileFailed(name: transfer.offer.name, from: ownName, to: transfer.recipient, reason: reason))
        }
        if let folder = transfer.folder, folders.contains(where: { $0 === folder }) {
            if transfer.results.values.contains(where: { $0 == nil }) { folder.sent += 1 } else { folder.failed += 1 }
            if folder.stopped != nil { folder.remaining.removeAll() }
            offerNextInFolder(folder)
        }
        pumpChunks()
    }

    private func reportResults(_ transfer: OutgoingTransfer) {
        let delivered = transfer.results.filter { $0.value == nil }.keys.sorted()
        for (name, failure) in transfer.results.sorted(by: { $0.key < $1.key }) {
            if let failure {
                show(.fileFailed(name: transfer.offer.name, from: ownName, to: name, reason: failure))
            }
        }
        if !delivered.isEmpty {
            show(.fileSent(name: transfer.offer.name, bytes: transfer.offer.size, to: delivered))
        }
        finishOutgoing(transfer, reason: delivered.isEmpty ? "no receiver accepted the file" : nil)
    }

    private func dropReceiver(_ name: String, from transfer: OutgoingTransfer, reason: String) {
        guard transfer.receivers.removeValue(forKey: name) != nil else { return }
        show(.fileFailed(name: transfer.offer.name, from: ownName, to: name, reason: reason))
        // Still waiting for other replies: the transfer starts (or ends) once they are all in.
        if transfer.phase == .offering {
            transfer.declined.insert(name)
            if transfer.receivers.count + transfer.declined.count == transfer.targets.count {
                startStreaming(transfer, timedOut: false)
            }
            return
        }
        if transfer.receivers.isEmpty {
            // Each receiver's line said what happened: the transfer ends without another.
            sendControl(.fileAbort(fileID: transfer.offer.fileID, reason: "no receiver left"), to: transfer.recipient)
            finishOutgoing(transfer, reason: nil)
        } else if transfer.phase == .finishing, transfer.results.count == transfer.receivers.count {
            reportResults(transfer)
        } else if transfer.phase == .streaming {
            // The receiver may have been the slowest: the window moves now, not at the watchdog's next round (a
            // member gone with its relay would otherwise hold everyone else's transfer for seconds).
            pumpChunks()
        }
    }

    private func startWatchdog() {
        guard !watchdogRunning else { return }
        watchdogRunning = true
        schedule(after: min(.seconds(5), stallTimeout / 2), .watchdog)
    }

    /// Drops receivers that hold a transfer back without acknowledging anything for too long.
    private func watchdog() {
        watchdogRunning = false
        let current = now()
        for transfer in outgoing where transfer.phase == .streaming {
            // Judged all at once, before any is dropped: a drop moves the window, and the chunks it lets out must
            // not make a receiver that had everything look stalled.
            let stalled = transfer.receivers.filter { _, progress in
                progress.acknowledged < transfer.nextChunk
                    && current - transfer.stallClockStart(of: progress) > stallTimeout
            }
            for name in stalled.keys.sorted() {
                let seconds = stallTimeout.wholeSeconds
                sendControl(
                    .fileAbort(
                        fileID: transfer.offer.fileID, reason: "too slow: nothing acknowledged for \(seconds) s"),
                    to: name)
                dropReceiver(
                    name, from: transfer, reason: "\(name) was too slow (nothing acknowledged for \(seconds) s)")
            }
        }
        let idleLimit = stallTimeout * 2
        for transfer in incoming.values.sorted(by: { $0.partKey < $1.partKey })
        where current - transfer.lastActivity > idleLimit {
            failIncoming(
                transfer,
                reason: "nothing arrived from \(transfer.sender) for \(idleLimit.wholeSeconds) s",
                keepPart: true, tellSender: true)
        }
        showStalledTransfers(at: current)
        pumpChunks()
        if !outgoing.isEmpty || !incoming.isEmpty { startWatchdog() }
    }

    // MARK: Receiving

    private func receiveControl(_ content: MessageContent, from sender: String, isPrivate: Bool) {
        switch content {
        case .fileOffer(let offer):
            receiveOffer(offer, from: sender, isPrivate: isPrivate)
        case .fileReply(let fileID, let accept, let resumeFrom, let reason):
            guard let transfer = outgoingTransfer(fileID) else { return }
            reply(to: transfer, from: sender, accept: accept, resumeFrom: resumeFrom, reason: reason)
        case .fileProgress(let fileID, let nextChunk):
            guard let transfer = outgoingTransfer(fileID), var progress = transfer.receivers[sender] else { return }
            progress.acknowledged = max(progress.acknowledged, min(nextChunk, transfer.nextChunk))
            progress.lastProgress = now()
            transfer.receivers[sender] = progress
            pumpChunks()
        case .fileResult(let fileID, let accepted, let reason):
            guard let transfer = outgoingTransfer(fileID), transfer.receivers[sender] != nil else { return }
            transfer.results[sender] = accepted ? .some(nil) : "\(sender): \(reason)"
            if transfer.phase == .finishing, transfer.results.count == transfer.receivers.count {
                reportResults(transfer)
            }
        case .fileAbort(let fileID, let reason):
            if let transfer = outgoingTransfer(fileID), transfer.receivers[sender] != nil {
                // Its failed result (sent just before) ends with it: the others' results are still awaited.
                transfer.results[sender] = nil
                dropReceiver(sender, from: transfer, reason: "\(sender) stopped receiving: \(reason)")
            } else if let transfer = incoming[Self.key(sender, fileID)] {
                failIncoming(
                    transfer, reason: "\(sender) stopped sending: \(reason)", keepPart: true, tellSender: false)
            } else if let index = asking.firstIndex(where: { $0.sender == sender && $0.offer.fileID == fileID }) {
                let pending = asking.remove(at: index)
                show(
                    .fileFailed(
                        name: Self.displayName(pending.offer.name), from: sender, to: nil,
                        reason: "\(sender) withdrew the offer: \(reason)"))
            }
        case .fileDone(let fileID, let digest, let size):
            guard let transfer = incoming[Self.key(sender, fileID)] else { return }
            complete(transfer, digest: digest, size: size)
        case .text, .action, .identified, .unsupported:
            break
        }
    }

    private func outgoingTransfer(_ fileID: [UInt8]) -> OutgoingTransfer? {
        outgoing.first { $0.offer.fileID == fileID }
    }

    static func key(_ sender: String, _ fileID: [UInt8]) -> String { sender + "/" + Hex.encode(fileID) }

    /// The name a received file is shown under: its folders inside the inbox, if any, then its safe base name.
    static func displayName(_ offered: String) -> String {
        let (folders, name) = SafeFileName.relativePath(offered)
        return (folders + [name]).joined(separator: "/")
    }

    /// The key of the answer that holds for the rest of a folder: the sender and the folder's name; nil for a
    /// file sent on its own.
    static func folderKey(_ sender: String, _ offered: String) -> String? {
        SafeFileName.relativePath(offered).folders.first.map { sender + "/" + $0 }
    }

    private func receiveOffer(_ offer: FileOffer, from sender: String, isPrivate: Bool) {
        let key = Self.key(sender, offer.fileID)
        if let previous = incoming[key] {
            failIncoming(previous, reason: "offered again", keepPart: true, tellSender: false)
        }
        asking.removeAll { $0.sender == sender && $0.offer.fileID == offer.fileID }
        func decline(_ reason: String) {
            sendControl(.fileReply(fileID: offer.fileID, accept: false, resumeFrom: 0, reason: reason), to: sender)
            show(.fileFailed(name: Self.displayName(offer.name), from: sender, to: nil, reason: reason))
        }
        // Out of bounds first (chunk size, size, key, name): nothing below computes with the offer's numbers before.
        if let problem = offer.problem {
            decline(problem)
            return
        }
        guard inbox != nil else {
            decline("\(ownName) takes no files: it joined without --inbox")
            return
        }
        guard policy != .none else {
            decline("\(ownName) takes no files (--accept-files none)")
            return
        }
        if let maximumFileSize, offer.size > maximumFileSize {
            decline(
                "the file is \(offer.size) bytes, more than the \(maximumFileSize) bytes this member accepts (--max-file-size)"
            )
            return
        }
        guard (try? AESGCM(key: offer.key)) != nil else {
            decline("the offer is malformed")
            return
        }
        // An offer waiting for the user's answer holds its place like a transfer.
        let fromSender =
            incoming.values.filter { $0.sender == sender }.count + asking.filter { $0.sender == sender }.count
        guard fromSender < Self.maximumIncomingPerSender else {
            decline(
                "\(ownName) is already receiving \(fromSender) files from you, the most at once; "
                    + "send it again when one is done")
            return
        }
        guard incoming.count + asking.count < Self.maximumIncoming else {
            decline(
                "\(ownName) is already receiving \(incoming.count + asking.count) files, the most at once; try again later"
            )
            return
        }
        if policy == .ask {
            let folderKey = Self.folderKey(sender, offer.name)
            if let folderKey, let answer = folderAnswers[folderKey], now() < answer.until {
                folderAnswers[folderKey] = (answer.accept, now() + Self.folderAnswerLifetime)
                guard answer.accept else {
                    decline("not wanted (its folder was declined)")
                    return
                }
            } else {
                nextSerial += 1
                let number = Int(nextSerial)
                asking.append(PendingOffer(number: number, sender: sender, offer: offer))
                show(
                    .fileOffered(
                        number: number, name: Self.displayName(offer.name), from: sender, bytes: offer.size,
                        seconds: Int(askTimeout.wholeSeconds)))
                schedule(after: askTimeout, .askTimeout(number))
                return
            }
        }
        nextSerial += 1
        acceptOffer(offer, from: sender, number: Int(nextSerial))
    }

    /// `/accept`, `/decline`: answers an offer waiting for the user.
    private func answerOffer(_ number: Int?, accept: Bool) {
        let index = number.map { wanted in asking.firstIndex { $0.number == wanted } } ?? asking.indices.first
        guard let index else {
            let which =
                number.map { "no file offer #\($0) is waiting for an answer" }
                ?? "no file offer is waiting for an answer"
            show(.error(message: which + "; /transfers lists the transfers"))
            return
        }
        let pending = asking.remove(at: index)
        if let folderKey = Self.folderKey(pending.sender, pending.offer.name) {
            folderAnswers = folderAnswers.filter { now() < $0.value.until }
            folderAnswers[folderKey] = (accept, now() + Self.folderAnswerLifetime)
        }
        if accept {
            acceptOffer(pending.offer, from: pending.sender, number: pending.number)
        } else {
            sendControl(
                .fileReply(fileID: pending.offer.fileID, accept: false, resumeFrom: 0, reason: "not wanted"),
                to: pending.sender)
            show(.info("declined \(Self.displayName(pending.offer.name)) from \(pending.sender)"))
        }
    }

    /// Takes an offer: opens its part file in the inbox (resuming a verified prefix) and accepts it.
    private func acceptOffer(_ offer: FileOffer, from sender: String, number: Int) {
        let key = Self.key(sender, offer.fileID)
        func decline(_ reason: String) {
            sendControl(.fileReply(fileID: offer.fileID, accept: false, resumeFrom: 0, reason: reason), to: sender)
            show(.fileFailed(name: Self.displayName(offer.name), from: sender, to: nil, reason: reason))
        }
        guard let inbox, let cipher = try? AESGCM(key: offer.key) else { return }
        let fromSender = incoming.values.filter { $0.sender == sender }
        let group = Inbox.partGroup(ofSender: sender)
        let partKey =
            group + "-"
            + Hex.encode(
                Array(SHA256.hash(Array("aeschat/1 part".utf8) + Array(sender.utf8) + [0] + offer.fileID).prefix(16)))
        let opened: Inbox.PartFile?
        do {
            opened = try inbox.openPart(
                key: partKey, chunkSize: Int(offer.chunkSize), group: group,
                keeping: Set(fromSender.map(\.partKey)))
        } catch {
            decline(error.description)
            return
        }
        guard let part = opened else { return }
        var resumeFrom = UInt64(part.length) / UInt64(offer.chunkSize)
        if resumeFrom >= offer.chunkCount || UInt64(part.length) > offer.size {
            resumeFrom = 0
        }
        let kept = resumeFrom * UInt64(offer.chunkSize)
        if ftruncate(part.file.rawValue, off_t(kept)) != 0 {
            decline("cannot prepare the file in the inbox: \(System.lastError)")
            return
        }
        let transfer = IncomingTransfer(
            number: number, sender: sender, offer: offer, cipher: cipher, partKey: partKey, part: part,
            start: resumeFrom)
        // Re-hash the verified prefix kept from an interrupted transfer.
        var offset: UInt64 = 0
        var buffer = [UInt8](repeating: 0, count: Int(offer.chunkSize))
        while offset < kept {
            let count = buffer.withUnsafeMutableBytes { raw in
                System.retryingInterrupts { pread(transfer.descriptor, raw.baseAddress!, raw.count, off_t(offset)) }
            }
            guard count > 0 else { break }
            buffer.withUnsafeBytes { transfer.hasher.update(UnsafeRawBufferPointer(rebasing: $0[0..<count])) }
            offset += UInt64(count)
        }
        transfer.startedAt = now()
        transfer.lastActivity = transfer.startedAt
        incoming[key] = transfer
        sendControl(.fileReply(fileID: offer.fileID, accept: true, resumeFrom: resumeFrom, reason: ""), to: sender)
        show(
            .fileIncoming(name: Self.displayName(offer.name), from: sender, bytes: offer.size, resumeFrom: kept))
        startWatchdog()
    }

    /// The body of ``receiveChunk(inPlace:from:)``: what it asks for waits in ``actions``.
    private func handleChunk(inPlace payload: UnsafeMutableRawBufferPointer, from sender: String) {
        guard payload.count >= FileChunk.headerSize + AESGCM.tagSize,
            let header = FileChunk.Header(UnsafeRawBufferPointer(payload))
        else { return }
        let (fileID, index, flags) = (header.fileID, header.index, header.flags)
        guard let transfer = incoming[Self.key(sender, fileID)] else { return }
        let offer = transfer.offer
        guard index >= transfer.start else { return }  // already held from an earlier attempt
        guard index == transfer.nextChunk else {
            failIncoming(
                transfer,
                reason: index < transfer.nextChunk
                    ? "chunk \(index) arrived twice" : "chunks \(transfer.nextChunk) to \(index - 1) are missing",
                keepPart: true, tellSender: true)
            return
        }
        let sealed = UnsafeMutableRawBufferPointer(rebasing: payload[FileChunk.headerSize...])
        let isLast = index == offer.chunkCount - 1
        let offset = index * UInt64(offer.chunkSize)
        let expected = index < offer.chunkCount ? (isLast ? offer.size - offset : UInt64(offer.chunkSize)) : 0
        guard index < offer.chunkCount, UInt64(sealed.count - AESGCM.tagSize) == expected,
            (flags & FileChunk.finalFlag != 0) == isLast
        else {
            failIncoming(
                transfer, reason: "the sender sent more or less than the \(offer.size) bytes it declared",
                keepPart: true, tellSender: true)
            return
        }
        let aad = FileChunk.associatedData(fileID: fileID[...], index: index, flags: flags, sender: sender)
        let length = Int(expected)
        do {
            try transfer.cipher.openInPlace(sealed, nonce: FileChunk.nonce(index), authenticating: aad)
        } catch {
            failIncoming(
                transfer, reason: "chunk \(index) failed authentication (tampered)", keepPart: true, tellSender: true)
            return
        }
        let plaintext = UnsafeRawBufferPointer(rebasing: sealed[0..<length])
        do throws(InboxError) {
            try Inbox.write(plaintext, to: transfer.descriptor, at: Int(offset))
        } catch {
            failIncoming(transfer, reason: error.description, keepPart: !error.isDiskFull, tellSender: true)
            return
        }
        transfer.hasher.update(plaintext)
        transfer.nextChunk = index + 1
        transfer.lastActivity = now()
        transfer.shownStalled = false
        if transfer.nextChunk % Self.acknowledgeEvery == 0 || isLast {
            sendControl(.fileProgress(fileID: offer.fileID, nextChunk: transfer.nextChunk), to: sender)
        }
        if let rate = showProgress(
            name: Self.displayName(offer.name), peer: sender, sending: false, bytes: offset + expected,
            total: offer.size,
            since: transfer.startedAt, base: transfer.start * UInt64(offer.chunkSize),
            throttle: &transfer.lastProgressShown,
            force: isLast)
        {
            transfer.lastRate = rate
        }
    }

    private func complete(_ transfer: IncomingTransfer, digest: [UInt8], size: UInt64) {
        let offer = transfer.offer
        guard transfer.nextChunk == offer.chunkCount, size == offer.size else {
            failIncoming(transfer, reason: "the stream ended before its final chunk", keepPart: true, tellSender: true)
            return
        }
        let computed = transfer.hasher.finalize()
        guard constantTimeEquals(computed, digest) else {
            failIncoming(
                transfer, reason: "the SHA-256 of the file does not match the sender's", keepPart: false,
                tellSender: true)
            return
        }
        // An incoming transfer exists only with an inbox (offers are declined without one).
        guard let inbox else { return }
        let finalName: String
        do {
            finalName = try inbox.finalize(
                key: transfer.partKey, partDescriptor: transfer.descriptor, offeredName: offer.name)
        } catch {
            failIncoming(transfer, reason: error.description, keepPart: true, tellSender: true)
            return
        }
        transfer.closeFile()
        incoming[Self.key(transfer.sender, offer.fileID)] = nil
        sendControl(.fileResult(fileID: offer.fileID, accepted: true, reason: ""), to: transfer.sender)
        let path = inbox.path.hasSuffix("/") ? inbox.path + finalName : inbox.path + "/" + finalName
        show(
            .fileReceived(
                from: transfer.sender, name: finalName, path: path, bytes: offer.size, sha256: Hex.encode(computed)))
    }

    private func failIncoming(_ transfer: IncomingTransfer, reason: String, keepPart: Bool, tellSender: Bool) {
        let key = Self.key(transfer.sender, transfer.offer.fileID)
        guard incoming[key] === transfer else { return }
        incoming[key] = nil
        transfer.closeFile()
        // A part that holds nothing is not worth keeping (an offer flood must not leave files behind).
        if !keepPart || transfer.nextChunk == 0 { inbox?.removePart(key: transfer.partKey) }
        if tellSender {
            sendControl(
                .fileResult(fileID: transfer.offer.fileID, accepted: false, reason: reason), to: transfer.sender)
            sendControl(.fileAbort(fileID: transfer.offer.fileID, reason: reason), to: transfer.sender)
        }
        let kept = keepPart && transfer.nextChunk > 0 ? "; " + keptPartNote(transfer) : ""
        show(
            .fileFailed(
                name: Self.displayName(transfer.offer.name), from: transfer.sender, to: nil, reason: reason + kept)
        )
    }

    private func dropMember(_ name: String) {
        for pending in asking where pending.sender == name {
            show(
                .fileFailed(
                    name: Self.displayName(pending.offer.name), from: name, to: nil,
                    reason: "\(name) left; the offer is withdrawn"))
        }
        asking.removeAll { $0.sender == name }
        for folder in folders { folder.targets.removeAll { $0 == name } }
        for transfer in incoming.values where transfer.sender == name {
            failIncoming(
                transfer, reason: "\(name) left before the file was complete", keepPart: true, tellSender: false)
        }
        for transfer in outgoing {
            if transfer.phase == .offering, transfer.targets.contains(name), transfer.receivers[name] == nil,
                !transfer.declined.contains(name)
            {
                transfer.declined.insert(name)
                if transfer.receivers.count + transfer.declined.count == transfer.targets.count {
                    startStreaming(transfer, timedOut: false)
                }
            } else if transfer.receivers[name] != nil {
                if transfer.phase == .finishing, transfer.results[name] != nil { continue }
                dropReceiver(name, from: transfer, reason: "\(name) left before the file was complete")
            }
        }
    }

    /// Where the part of an interrupted incoming transfer is kept, how much it holds, and how it resumes.
    private func keptPartNote(_ transfer: IncomingTransfer) -> String {
        let held = min(transfer.nextChunk &* UInt64(transfer.offer.chunkSize), transfer.offer.size)
        // An incoming transfer exists only with an inbox (offers are declined without one).
        let path = inbox?.path ?? "."
        let folder = path.hasSuffix("/") ? path : path + "/"
        return
            "the \(ClientEvent.formatBytes(held)) received are kept in \(folder)\(Inbox.partName(for: transfer.partKey)) "
            + "and the transfer resumes there when \(transfer.sender) sends the file again"
    }

    /// The session is over: every transfer ends with one line saying how to resume it (an incoming
    /// one keeps its part, and says where and how large it is), and every open file is closed.
    /// Nothing is sent: the connection is gone or going.
    public func closeAll(_ interruption: Interruption) -> [FileTransferAction] {
        let cause =
            interruption == .connectionLost ? "the connection to the relay was lost" : "you left before it was complete"
        for transfer in outgoing where transfer.phase != .done {
            let when = interruption == .connectionLost ? "once reconnected" : "when you are back"
            show(
                .fileFailed(
                    name: transfer.offer.name, from: ownName, to: transfer.recipient,
                    reason: "\(cause); \(transfer.resendCommand) \(when) resumes it"))
            transfer.phase = .done
            transfer.closeFile()
        }
        for transfer in incoming.values.sorted(by: { $0.partKey < $1.partKey }) {
            transfer.closeFile()
            let note: String
            if transfer.nextChunk > 0 {
                note = keptPartNote(transfer)
            } else {
                inbox?.removePart(key: transfer.partKey)
                note = "nothing was received yet; \(transfer.sender) may send it again"
            }
            show(
                .fileFailed(
                    name: Self.displayName(transfer.offer.name), from: transfer.sender, to: nil,
                    reason: "\(cause); \(note)"))
        }
        for pending in asking {
            show(
                .fileFailed(
                    name: Self.displayName(pending.offer.name), from: pending.sender, to: nil,
                    reason: "\(cause) before you answered; \(pending.sender) may offer it again"))
        }
        for folder in folders where !folder.remaining.isEmpty {
            let when = interruption == .connectionLost ? "once reconnected" : "when you are back"
            let quoted = folder.path.contains(" ") ? "\"\(folder.path)\"" : folder.path
            show(
                .fileFailed(
                    name: folder.name + "/", from: ownName, to: folder.recipient,
                    reason: "\(cause) with \(folder.remaining.count) files not offered yet; "
                        + "/send \(quoted)\(folder.recipient.map { " " + $0 } ?? "") \(when) sends the folder again, "
                        + "resuming what arrived"))
        }
        outgoing.removeAll()
        incoming.removeAll()
        asking.removeAll()
        folders.removeAll()
        return takeActions()
    }

    /// Shows transfers that moved nothing for ``stalledAfter`` as stalled (progress with rate 0), once
    /// until they move again.
    private func showStalledTransfers(at current: ContinuousClock.Instant) {
        for transfer in outgoing
        where transfer.phase == .streaming && !transfer.shownStalled
            && transfer.lastProgressShown != nil && current - transfer.lastChunkSent >= Self.stalledAfter
        {
            transfer.shownStalled = true
            let sent = min(transfer.nextChunk &* UInt64(transfer.offer.chunkSize), transfer.offer.size)
            show(
                .fileProgress(
                    name: transfer.offer.name, peer: transfer.recipient ?? "the room", sending: true, bytes: sent,
                    total: transfer.offer.size, bytesPerSecond: 0))
        }
        for transfer in incoming.values.sorted(by: { $0.partKey < $1.partKey })
        where !transfer.shownStalled && transfer.lastProgressShown != nil
            && current - transfer.lastActivity >= Self.stalledAfter
        {
            transfer.shownStalled = true
            let held = min(transfer.nextChunk &* UInt64(transfer.offer.chunkSize), transfer.offer.size)
            show(
                .fileProgress(
                    name: Self.displayName(transfer.offer.name), peer: transfer.sender, sending: false,
                    bytes: held, total: transfer.offer.size, bytesPerSecond: 0))
        }
    }

    // MARK: Progress

    /// Shows a transfer's progress, at most twice a second unless forced.
    /// - Returns: the rate shown, or nil when nothing was shown.
    @discardableResult
    private func showProgress(
        name: String, peer: String, sending: Bool, bytes: UInt64, total: UInt64, since start: ContinuousClock.Instant,
        base: UInt64, throttle: inout ContinuousClock.Instant?, force: Bool
    ) -> UInt64? {
        let current = now()
        if !force, let last = throttle, current - last < .milliseconds(500) { return nil }
        throttle = current
        let elapsed = current - start
        let seconds = elapsed.secondsWithFraction
        let rate = seconds > 0 ? Double(bytes - min(bytes, base)) / seconds : 0
        show(
            .fileProgress(
                name: name, peer: peer, sending: sending, bytes: bytes, total: total, bytesPerSecond: UInt64(rate)))
        return UInt64(rate)
    }

    // MARK: Listing and cancelling

    /// Every transfer, numbered: folders' queued files, outgoing, incoming, then offers asked about.
    private func statuses() -> [TransferStatus] {
        var list: [TransferStatus] = []
        for transfer in outgoing where transfer.phase != .done {
            let state: TransferStatus.State
            switch transfer.phase {
            case .offering: state = .offering
            case .streaming: state = .moving
            case .finishing, .done: state = .finishing
            }
            let sent = min(transfer.nextChunk &* UInt64(transfer.offer.chunkSize), transfer.offer.size)
            list.append(
                TransferStatus(
                    number: Int(transfer.serial), sending: true, name: transfer.offer.name,
                    peer: transfer.recipient ?? "the room", bytes: state == .offering ? 0 : sent,
                    total: transfer.offer.size, state: state))
        }
        for folder in folders where !folder.remaining.isEmpty {
            list.append(
                TransferStatus(
                    number: folder.number, sending: true,
                    name:
                        "\(folder.name)/ (\(folder.remaining.count) more file\(folder.remaining.count == 1 ? "" : "s"))",
                    peer: folder.recipient ?? "the room", bytes: 0,
                    total: folder.remaining.reduce(UInt64(0)) { $0 &+ $1.size }, state: .queued))
        }
        for transfer in incoming.values {
            list.append(
                TransferStatus(
                    number: transfer.number, sending: false, name: Self.displayName(transfer.offer.name),
                    peer: transfer.sender,
                    bytes: min(transfer.nextChunk &* UInt64(transfer.offer.chunkSize), transfer.offer.size),
                    total: transfer.offer.size, state: .moving))
        }
        for pending in asking {
            list.append(
                TransferStatus(
                    number: pending.number, sending: false, name: Self.displayName(pending.offer.name),
                    peer: pending.sender, bytes: 0, total: pending.offer.size, state: .asking))
        }
        return list.sorted { $0.number < $1.number }
    }

    /// `/cancel [NAME]`: NAME is a number from `/transfers` (`3` or `#3`), a file's or folder's name, or
    /// nothing for every transfer. An outgoing transfer is aborted for its receivers, an incoming one
    /// is stopped (its part kept for a resume) and its sender told, an offer asked about is declined.
    private func cancelTransfers(_ target: String?) {
        let number = target.flatMap { Int($0.hasPrefix("#") ? String($0.dropFirst()) : $0) }
        func matches(_ candidate: Int, _ names: [String]) -> Bool {
            guard let target else { return true }
            if let number { return candidate == number }
            let trimmed = target.hasSuffix("/") ? String(target.dropLast()) : target
            return names.contains {
                $0 == target || $0 == trimmed || $0.split(separator: "/").last.map(String.init) == target
            }
        }
        var cancelled = 0
        let reason = "\(ownName) cancelled"
        for folder in folders where matches(folder.number, [folder.name]) {
            folder.stopped = "cancelled"
            folder.remaining.removeAll()
            for transfer in outgoing where transfer.folder === folder {
                abortOutgoing(transfer, reason: reason)
            }
            if folders.contains(where: { $0 === folder }) { offerNextInFolder(folder) }
            cancelled += 1
        }
        for transfer in outgoing
        where transfer.phase != .done && matches(Int(transfer.serial), [transfer.offer.name]) {
            transfer.folder?.stopped = "cancelled"
            transfer.folder?.remaining.removeAll()
            abortOutgoing(transfer, reason: reason)
            cancelled += 1
        }
        for transfer in incoming.values.sorted(by: { $0.number < $1.number })
        where matches(transfer.number, [Self.displayName(transfer.offer.name)]) {
            failIncoming(transfer, reason: reason, keepPart: true, tellSender: true)
            cancelled += 1
        }
        for pending in asking where matches(pending.number, [Self.displayName(pending.offer.name)]) {
            answerOffer(pending.number, accept: false)
            cancelled += 1
        }
        if cancelled == 0 {
            show(
                .error(
                    message: target.map { "no transfer '\($0)' to cancel; /transfers lists them" }
                        ?? "no file transfer to cancel"))
        }
    }
}
