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
    public init(
        ownName: String, outputBacklog: @escaping () -> Int, inbox: Inbox?, maximumFileSize: UInt64?,
        stallTimeout: Duration = defaultStallTimeout,
        now: @escaping () -> ContinuousClock.Instant = { .now }
    ) {
        self.ownName = ownName
        self.outputBacklog = outputBacklog
        self.inbox = inbox
        self.maximumFileSize = maximumFileSize
        self.stallTimeout = stallTimeout
        self.now = now
    }

    /// Whether any transfer is under way (the client waits for them before leaving).
    public var isBusy: Bool { !outgoing.isEmpty }

    // MARK: Entry points

    /// Offers the file at `path` to the room (`recipient` nil) or to one member.
    /// - Parameter members: the other members present now.
    public func send(path: String, to recipient: String?, members: [String]) -> [FileTransferAction] {
        startSending(path: path, to: recipient, members: members)
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
        case .watchdog:
            watchdog()
        }
        return takeActions()
    }

    /// Hands over what the entry point asked for.
    private func takeActions() -> [FileTransferAction] {
        defer {
            actions = []
            frameBytesInActions = 0
        }
        return actions
    }

    private func show(_ event: ClientEvent) { actions.append(.show(event)) }

    private func sendControl(_ content: MessageContent, to recipient: String?) {
        actions.append(.sendControl(content, to: recipient))
    }

    private func schedule(after delay: Duration, _ timer: FileTransferTimer) {
        actions.append(.schedule(after: delay, timer))
    }

    // MARK: Sending

    private func startSending(path: String, to recipient: String?, members: [String]) {
        let home = getenv("HOME").map { String(cString: $0) } ?? ""
        let expanded = path.hasPrefix("~/") ? home + path.dropFirst(1) : path
        let targets: [String]
        if let recipient {
            guard members.contains(recipient) else {
                show(.error(message: "no member named '\(recipient)' here; /who lists the members"))
                return
            }
            targets = [recipient]
        } else {
            targets = members
        }
        guard !targets.isEmpty else {
            show(.error(message: "nobody else is in the room to send '\(path)' to"))
            return
        }
        guard let file = Descriptor(returned: open(expanded, O_RDONLY | O_CLOEXEC | O_NONBLOCK)) else {
            show(.error(message: "cannot read '\(path)': \(System.lastError)"))
            return
        }
        var status = stat()
        guard fstat(file.rawValue, &status) == 0, (status.st_mode & S_IFMT) == S_IFREG else {
            show(.error(message: "cannot send '\(path)': not a regular file"))
            return
        }
        let name = String(expanded.split(separator: "/").last ?? "file")
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
            return
        }
        nextSerial += 1
        let transfer = OutgoingTransfer(
            serial: nextSerial, path: path, offer: offer, file: file, cipher: cipher, recipient: recipient,
            targets: targets)
        transfer.startedAt = now()
        outgoing.append(transfer)
        sendControl(.fileOffer(offer), to: recipient)
        show(
            .info(
                "offering \(name) (\(ClientEvent.formatBytes(offer.size))) to \(recipient ?? "the room"); waiting for replies"
            )
        )
        schedule(after: Self.replyTimeout, .offerTimeout(transfer.serial))
        startWatchdog()
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
        transfer.nextChunk += 1
        transfer.lastChunkSent = now()
        transfer.shownStalled = false
        showProgress(
            name: offer.name, peer: transfer.recipient ?? "the room", sending: true, bytes: offset + UInt64(length),
            total: offer.size, since: transfer.startedAt, base: transfer.bytesAtStart,
            throttle: &transfer.lastProgressShown,
            force: isFinal)
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
        if transfer.receivers.isEmpty {
            // Each receiver's line said what happened: the transfer ends without another.
            sendControl(.fileAbort(fileID: transfer.offer.fileID, reason: "no receiver left"), to: transfer.recipient)
            finishOutgoing(transfer, reason: nil)
        } else if transfer.phase == .finishing, transfer.results.count == transfer.receivers.count {
            reportResults(transfer)
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
            for (name, progress) in transfer.receivers
            where progress.acknowledged < transfer.nextChunk && current - progress.lastProgress > stallTimeout {
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
                dropReceiver(sender, from: transfer, reason: "\(sender) stopped receiving: \(reason)")
            } else if let transfer = incoming[Self.key(sender, fileID)] {
                failIncoming(
                    transfer, reason: "\(sender) stopped sending: \(reason)", keepPart: true, tellSender: false)
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

    private func receiveOffer(_ offer: FileOffer, from sender: String, isPrivate: Bool) {
        let key = Self.key(sender, offer.fileID)
        if let previous = incoming[key] {
            failIncoming(previous, reason: "offered again", keepPart: true, tellSender: false)
        }
        func decline(_ reason: String) {
            sendControl(.fileReply(fileID: offer.fileID, accept: false, resumeFrom: 0, reason: reason), to: sender)
            show(.fileFailed(name: SafeFileName.sanitize(offer.name), from: sender, to: nil, reason: reason))
        }
        guard let inbox else {
            decline("\(ownName) takes no files: it joined without --inbox")
            return
        }
        guard offer.size <= FileOffer.maximumSize else {
            decline(
                "the offer declares \(offer.size) bytes, more than a transfer can carry (at most 2^53 bytes); refused")
            return
        }
        if let maximumFileSize, offer.size > maximumFileSize {
            decline(
                "the file is \(offer.size) bytes, more than the \(maximumFileSize) bytes this member accepts (--max-file-size)"
            )
            return
        }
        guard offer.key.count == 32, let cipher = try? AESGCM(key: offer.key) else {
            decline("the offer is malformed")
            return
        }
        let fromSender = incoming.values.filter { $0.sender == sender }
        guard fromSender.count < Self.maximumIncomingPerSender else {
            decline(
                "\(ownName) is already receiving \(fromSender.count) files from you, the most at once; "
                    + "send it again when one is done")
            return
        }
        guard incoming.count < Self.maximumIncoming else {
            decline("\(ownName) is already receiving \(incoming.count) files, the most at once; try again later")
            return
        }
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
            sender: sender, offer: offer, cipher: cipher, partKey: partKey, part: part,
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
            .fileIncoming(name: SafeFileName.sanitize(offer.name), from: sender, bytes: offer.size, resumeFrom: kept))
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
        showProgress(
            name: SafeFileName.sanitize(offer.name), peer: sender, sending: false, bytes: offset + expected,
            total: offer.size,
            since: transfer.startedAt, base: transfer.start * UInt64(offer.chunkSize),
            throttle: &transfer.lastProgressShown,
            force: isLast)
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
                name: SafeFileName.sanitize(transfer.offer.name), from: transfer.sender, to: nil, reason: reason + kept)
        )
    }

    private func dropMember(_ name: String) {
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
                    name: SafeFileName.sanitize(transfer.offer.name), from: transfer.sender, to: nil,
                    reason: "\(cause); \(note)"))
        }
        outgoing.removeAll()
        incoming.removeAll()
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
                    name: SafeFileName.sanitize(transfer.offer.name), peer: transfer.sender, sending: false,
                    bytes: held, total: transfer.offer.size, bytesPerSecond: 0))
        }
    }

    // MARK: Progress

    private func showProgress(
        name: String, peer: String, sending: Bool, bytes: UInt64, total: UInt64, since start: ContinuousClock.Instant,
        base: UInt64, throttle: inout ContinuousClock.Instant?, force: Bool
    ) {
        let current = now()
        if !force, let last = throttle, current - last < .milliseconds(500) { return }
        throttle = current
        let elapsed = current - start
        let seconds = elapsed.secondsWithFraction
        let rate = seconds > 0 ? Double(bytes - min(bytes, base)) / seconds : 0
        show(
            .fileProgress(
                name: name, peer: peer, sending: sending, bytes: bytes, total: total, bytesPerSecond: UInt64(rate)))
    }
}
