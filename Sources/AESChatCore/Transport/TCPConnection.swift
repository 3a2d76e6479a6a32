#if canImport(Glibc)
    import Glibc
#elseif canImport(Darwin)
    import Darwin
#endif

/// A non-blocking TCP connection driven by a ``PosixEventLoop``.
///
/// Owns its descriptor: closes it exactly once, when the connection finishes (``close()``, end of
/// stream, a failure or the close timeout). Writes are queued as the arrays or
/// shared-buffer ranges given (shared, not copied) and sent with one `sendmsg` per loop iteration,
/// gathering up to 256 queued pieces. An idle connection holds no buffer: reads land in the loop's
/// shared read buffer, and the output queue's storage is released once it has grown past a few
/// entries and drained. Loop thread only.
///
/// Once protected (``protect(with:)``, the encrypted link), queued pieces stay plaintext until
/// `flush()`: each record takes up to the protection's maximum of them, is sealed from where they
/// wait into the loop's one scratch buffer (the cipher reads each byte once; nothing is copied
/// first) and sent; only the part of a record the kernel did not take is copied into the
/// connection (at most one record), and released once sent. Reads are
/// then opened in the loop's read buffer, and the handler gets the plaintext through
/// ``ConnectionHandler/connection(_:didRead:)``, or opened straight into the handler's storage for a large
/// frame (``ReadDestinationProvider``).
///
/// The fields marked `@exclusivity(unchecked)` are touched for every record a relay sends, and Swift's dynamic
/// exclusivity checks on class properties (a thread-local access set, entered and left per access) showed in the
/// relay's profile. No access to them overlaps another: each is a read or an in-place update that calls no code
/// that could reach the same field (handler callbacks and the cipher run outside them), which is what the checks
/// would have verified.
public final class TCPConnection: Connection, ReadinessHandler {
    /// One queued piece of output: an array, or a range of a shared buffer.
    private struct Segment {
        enum Storage {
            case array([UInt8])
            case shared(SharedBuffer)
        }
        var storage: Storage
        var start: Int
        var end: Int
        var count: Int { end - start }
    }

    /// The unsent rest of a sealed record, as it goes on the wire: allocated only while the kernel has not taken
    /// a whole record (an idle connection spends 8 bytes on it, not 24).
    private final class RecordTail {
        let bytes: [UInt8]
        /// How much of ``bytes`` has gone out.
        var sent = 0
        /// The plaintext bytes the record carries: counted in ``pendingOutputByteCount`` until the whole record
        /// has gone out, then in ``sentByteCount``.
        let plaintext: Int

        init(bytes: [UInt8], plaintext: Int) {
            self.bytes = bytes
            self.plaintext = plaintext
        }

        var unsentCount: Int { bytes.count - sent }
    }

    private enum State {
        case open
        /// Sending what is queued, then half-closing.
        case draining
        /// Our FIN is sent; reading (and discarding) until the peer's end of stream.
        case halfClosed
        case closed
    }

    public var handler: (any ConnectionHandler)? {
        didSet {
            readDestinationProvider = handler as? any ReadDestinationProvider
            observesDrain = handler is any OutputDrainObserver
        }
    }
    /// The handler, when it can have reads land in storage of its own.
    private var readDestinationProvider: (any ReadDestinationProvider)?
    public let peerDescription: String
    @exclusivity(unchecked) public private(set) var pendingOutputByteCount = 0
    @exclusivity(unchecked) public private(set) var sentByteCount = 0
    /// Bytes read since this side started closing (see ``maximumInputReadWhileClosing``).
    private var inputReadWhileClosing = 0
    /// Whether the connection no longer asks the loop about readability (closing, and the peer
    /// sent more than ``maximumInputReadWhileClosing``).
    private var stoppedReading = false
    /// Reading paused by the handler (``pauseReading()``): the descriptor is not watched for input.
    private var readingPaused = false
    /// Whether the descriptor is watched for input.
    private var watchesInput: Bool { !stoppedReading && !readingPaused }
    public var isOpen: Bool { state == .open }

    /// The descriptor's number, for system calls while ``owner`` holds it (and tests that set
    /// socket options).
    let descriptor: Int32
    /// The open descriptor; taken and closed when the connection finishes.
    private var owner: Descriptor?
    private unowned let loop: PosixEventLoop
    @exclusivity(unchecked) private var queue: [Segment] = []
    @exclusivity(unchecked) private var queueHead = 0
    @exclusivity(unchecked) private var headOffset = 0
    /// The record protection, once ``protect(with:)`` is called.
    @exclusivity(unchecked) private var protection: (any RecordProtection)?
    /// Queued bytes, from the head, that were written before ``protect(with:)``: they go out raw.
    @exclusivity(unchecked) private var rawBytesAhead = 0
    /// The unsent rest of the record in progress; nil when every sealed record has gone out.
    @exclusivity(unchecked) private var recordTail: RecordTail?
    /// The bytes of a sealed record that the kernel has not taken yet (for tests).
    var unsentRecordByteCount: Int { recordTail?.unsentCount ?? 0 }
    // The optional timer, then the one-byte fields, last: they fill the timer's padding (a connection is 16 bytes
    // smaller than with them apart).
    private var lingerTimer: TimerID?
    @exclusivity(unchecked) private var flushPending = false
    @exclusivity(unchecked) private var waitingForWritable = false
    @exclusivity(unchecked) private var state = State.open
    /// Whether the handler is an ``OutputDrainObserver``.
    private var observesDrain = false

    /// The most buffers gathered into one `sendmsg`.
    private static let maximumIOVectors = 256
    /// What a closing connection reads (and drops) before it stops reading: enough for a peer
    /// that is finishing a frame, so that it sees our last frame and end of stream rather than a
    /// reset; a peer that keeps sending after that costs nothing more until the close timeout.
    static let maximumInputReadWhileClosing = 256 * 1024

    /// Takes over a connected socket; on failure the socket is closed.
    init(descriptor: consuming Descriptor, peer: String, loop: PosixEventLoop) throws(TransportError) {
        self.descriptor = descriptor.rawValue
        self.peerDescription = peer
        self.loop = loop
        try System.configure(descriptor: descriptor.rawValue)
        System.setNoDelay(descriptor.rawValue)
        try loop.register(descriptor.rawValue, interest: .read, handler: self)
        self.owner = .some(descriptor)
    }

    // MARK: Connection

    public func write(_ bytes: [UInt8]) {
        guard state == .open, !bytes.isEmpty else { return }
        queue.append(Segment(storage: .array(bytes), start: 0, end: bytes.count))
        pendingOutputByteCount += bytes.count
        requestFlush()
    }

    public func write(_ buffer: SharedBuffer, range: Range<Int>) {
        guard state == .open, !range.isEmpty else { return }
        precondition(range.lowerBound >= 0 && range.upperBound <= buffer.count, "range outside the written bytes")
        // Ranges of one buffer queued back to back go out as one piece.
        if let last = queue.indices.last, last >= queueHead, case .shared(let tail) = queue[last].storage,
            tail === buffer, queue[last].end == range.lowerBound
        {
            queue[last].end = range.upperBound
        } else {
            queue.append(Segment(storage: .shared(buffer), start: range.lowerBound, end: range.upperBound))
        }
        pendingOutputByteCount += range.count
        requestFlush()
    }

    public func protect(with protection: any RecordProtection) {
        precondition(self.protection == nil, "a connection is protected at most once")
        self.protection = protection
        rawBytesAhead = pendingOutputByteCount
    }

    public func discardUnsentOutput(keepingPartlySent: (_ piece: UnsafeRawBufferPointer, _ sent: Int) -> Int) {
        guard queueHead < queue.count else { return }
        // Whatever has not started to go out (or, when protected, to be sealed) is dropped whole;
        // the head piece, if partly sent (sealed), is cut where the caller says. A record already
        // sealed stays whole in `recordTail`: the peer counts records, so none may be dropped.
        var kept = 0
        if headOffset > 0 {
            let head = queue[queueHead]
            let keep = Self.withBytes(of: head) { keepingPartlySent($0, headOffset) }
            precondition(keep >= headOffset && keep <= head.count, "kept less than was sent, or more than queued")
            kept = keep - headOffset
        }
        if kept > 0 {
            queue[queueHead].end = queue[queueHead].start + headOffset + kept
            queue.removeSubrange((queueHead + 1)...)
        } else {
            headOffset = 0
            queue.removeAll()
            queueHead = 0
        }
        pendingOutputByteCount = (recordTail?.plaintext ?? 0) + kept
        rawBytesAhead = min(rawBytesAhead, kept)
    }

    /// Calls `body` with the bytes of `segment`.
    private static func withBytes<R>(of segment: Segment, _ body: (UnsafeRawBufferPointer) -> R) -> R {
        switch segment.storage {
        case .array(let bytes):
            bytes.withUnsafeBytes { body(UnsafeRawBufferPointer(rebasing: $0[segment.start..<segment.end])) }
        case .shared(let buffer):
            buffer.withUnsafeBytes(in: segment.start..<segment.end, body)
        }
    }

    public func closeAfterFlushing(timeout: Duration) {
        guard state == .open else { return }
        state = .draining
        lingerTimer = loop.schedule(after: timeout) { [weak self] in self?.finish(error: nil) }
        if pendingOutputByteCount == 0 { halfClose() } else { requestFlush() }
    }

    public func close() {
        finish(error: nil)
    }

    public func pauseReading() {
        guard state != .closed, !readingPaused else { return }
        readingPaused = true
        loop.modify(descriptor, interest: waitingForWritable ? .write : [])
    }

    public func resumeReading() {
        guard readingPaused else { return }
        readingPaused = false
        guard state != .closed, !stoppedReading else { return }
        loop.modify(descriptor, interest: waitingForWritable ? [.read, .write] : .read)
    }

    // MARK: Loop callbacks

    func handle(_ readiness: Readiness) {
        if !watchesInput && readiness.failed {
            // The peer closed or reset while we did not read: nothing more can arrive or leave.
            finish(error: nil)
            return
        }
        if readiness.readable || readiness.failed { readAvailable() }
        if readiness.writable && state != .closed { flush() }
    }

    /// Called by the loop at the end of the iteration in which bytes were queued.
    func flushScheduled() {
        flushPending = false
        if !waitingForWritable { flush() }
    }

    private func requestFlush() {
        guard !flushPending, !waitingForWritable else { return }
        flushPending = true
        loop.scheduleFlush(self)
    }

    private func readAvailable() {
        for _ in 0..<4 {
            guard state != .closed, watchesInput else { return }
            let delivering = state == .open || state == .draining
            // A handler assembling a large frame has the bytes land in its own storage. When
            // protected, records land in the loop's read buffer and are opened from there straight
            // into that storage (see `deliver`).
            if delivering, protection == nil, let provider = readDestinationProvider,
                let destination = provider.readDestination(for: self), destination.count > 0
            {
                let count = System.read(descriptor, into: destination)
                if count > 0 {
                    provider.connection(self, didReadIntoDestination: count)
                    if count < destination.count { return }
                    continue
                }
                readGotNothing(count)
                return
            }
            // A protected connection reads up to a record boundary, so that bulk data's records are not cut.
            let length =
                delivering
                ? protection?.preferredReadLength(limit: loop.readBuffer.count) ?? loop.readBuffer.count
                : loop.readBuffer.count
            let buffer = UnsafeMutableRawBufferPointer(rebasing: loop.readBuffer[0..<length])
            let count = System.read(descriptor, into: buffer)
            if count > 0 {
                if delivering {
                    guard deliver(UnsafeMutableRawBufferPointer(rebasing: buffer[0..<count])) else { return }
                }
                if state != .open && state != .closed {
                    inputReadWhileClosing += count
                    if inputReadWhileClosing > Self.maximumInputReadWhileClosing {
                        stoppedReading = true
                        loop.modify(descriptor, interest: waitingForWritable ? .write : [])
                        return
                    }
                }
                if count < buffer.count { return }
            } else {
                readGotNothing(count)
                return
            }
        }
    }

    /// Hands bytes read to the handler: as they are, or the plaintext of the records among them when
    /// protected. Returns false if a record failed to open (the connection is then closed).
    ///
    /// When protected, a handler that lends storage (a large frame in progress: ``ReadDestinationProvider``) has
    /// each record's plaintext opened straight into it, as much as fits: the ciphertext lands in the loop's read
    /// buffer and the plaintext in the frame's buffer, with no copy between them.
    private func deliver(_ bytes: UnsafeMutableRawBufferPointer) -> Bool {
        guard let protection else {
            handler?.connection(self, didRead: UnsafeRawBufferPointer(bytes))
            return true
        }
        do throws(TransportError) {
            // The handler may close the connection on one record; later ones are dropped.
            try protection.openRecords(
                bytes,
                into: {
                    guard state == .open || state == .draining, let provider = readDestinationProvider,
                        let destination = provider.readDestination(for: self), destination.count > 0
                    else { return nil }
                    return destination
                },
                filled: { count in
                    guard state == .open || state == .draining else { return }
                    readDestinationProvider?.connection(self, didReadIntoDestination: count)
                },
                deliver: { plaintext in
                    guard state == .open || state == .draining else { return }
                    handler?.connection(self, didRead: plaintext)
                })
            return true
        } catch {
            finish(error: error)
            return false
        }
    }

    /// Handles a read that returned `count` ≤ 0: end of stream or an error closes the connection;
    /// nothing more to read now (EAGAIN) leaves it open.
    private func readGotNothing(_ count: Int) {
        if count == 0 {
            var error: TransportError?
            if state == .open || state == .draining {
                // An end of stream inside a record lost data: a link failure, not an orderly end.
                do throws(TransportError) {
                    try protection?.finishOpening()
                } catch let failure {
                    error = failure
                }
            }
            finish(error: error)
        } else if errno != EAGAIN && errno != EWOULDBLOCK {
            finish(error: .readFailed(reason: System.lastReason))
        }
    }

    /// What one step of `flush()` came to.
    private enum SendOutcome {
        /// Bytes went out; there may be more to send.
        case progressed
        /// The kernel takes no more for now.
        case blocked
        case failed(TransportError)
    }

    private func flush() {
        guard state == .open || state == .draining else { return }
        while recordTail != nil || queueHead < queue.count {
            let outcome: SendOutcome
            if let recordTail {
                outcome = sendRest(of: recordTail)
            } else if let protection, rawBytesAhead == 0 {
                outcome = sealAndSendRecord(protection)
            } else {
                outcome = sendQueuedRaw()
            }
            switch outcome {
            case .progressed:
                continue
            case .blocked:
                if !waitingForWritable {
                    waitingForWritable = true
                    loop.modify(descriptor, interest: watchesInput ? [.read, .write] : .write)
                }
                return
            case .failed(let error):
                finish(error: error)
                return
            }
        }
        queue.removeAll(keepingCapacity: queue.capacity <= 4)
        queueHead = 0
        if waitingForWritable {
            waitingForWritable = false
            loop.modify(descriptor, interest: watchesInput ? .read : [])
        }
        if state == .draining {
            halfClose()
        } else if observesDrain, let observer = handler as? any OutputDrainObserver {
            observer.connectionDidDrainOutput(self)
        }
    }

    /// The outcome of a send that failed (returned -1): blocked on EAGAIN, failed otherwise.
    private static func failedSend() -> SendOutcome {
        errno == EAGAIN || errno == EWOULDBLOCK ? .blocked : .failed(.writeFailed(reason: System.lastReason))
    }

    /// Sends queued pieces as they are: all of them before protection, the ones queued before it
    /// after.
    private func sendQueuedRaw() -> SendOutcome {
        let sent = sendQueued(limit: protection == nil ? Int.max : rawBytesAhead)
        guard sent >= 0 else { return Self.failedSend() }
        pendingOutputByteCount -= sent
        sentByteCount += sent
        if protection != nil { rawBytesAhead -= sent }
        consume(sent)
        return .progressed
    }

    /// Seals up to one record's plaintext, read straight from the queued pieces, into the loop's scratch buffer
    /// and sends it; what the kernel does not take is kept in ``recordTail``.
    private func sealAndSendRecord(_ protection: any RecordProtection) -> SendOutcome {
        let header = protection.recordHeaderLength
        let trailer = protection.recordTrailerLength
        let maximum = protection.maximumRecordPlaintext
        let scratch = loop.recordScratch(count: header + maximum + trailer)
        let pieceLimit = min(queue.count - queueHead, Self.maximumIOVectors)
        let sealed = withUnsafeTemporaryAllocation(of: UnsafeRawBufferPointer.self, capacity: pieceLimit) {
            pieces -> Result<Int, TransportError> in
            // The pieces' storage stays alive in `queue` during the call (nothing is consumed until the record is
            // sealed), so their addresses stay valid; they do not escape the closure.
            var gathered = 0
            var used = 0
            while gathered < maximum && used < pieceLimit {
                let segment = queue[queueHead + used]
                let start = segment.start + (used == 0 ? headOffset : 0)
                let take = min(segment.end - start, maximum - gathered)
                let base: UnsafeRawPointer
                switch segment.storage {
                case .array(let bytes): base = bytes.withUnsafeBytes { UnsafeRawPointer($0.baseAddress!) }
                case .shared(let buffer): base = UnsafeRawPointer(buffer.storage)
                }
                pieces.initializeElement(at: used, to: UnsafeRawBufferPointer(start: base + start, count: take))
                gathered += take
                used += 1
            }
            let record = UnsafeMutableRawBufferPointer(rebasing: scratch[0..<(header + gathered + trailer)])
            do throws(TransportError) {
                try protection.sealRecord(record, gathering: UnsafeBufferPointer(rebasing: pieces[0..<used]))
            } catch {
                return .failure(error)
            }
            return .success(gathered)
        }
        let gathered: Int
        switch sealed {
        case .success(let count): gathered = count
        case .failure(let error): return .failed(error)
        }
        consume(gathered)
        let recordLength = header + gathered + trailer
        let sent = System.retryingInterrupts {
            send(descriptor, scratch.baseAddress, recordLength, System.noSignalFlag)
        }
        if sent == recordLength {
            pendingOutputByteCount -= gathered
            sentByteCount += gathered
            return .progressed
        }
        // The record is sealed: it must go out whole, so its unsent part moves into the connection.
        recordTail = RecordTail(
            bytes: Array(UnsafeRawBufferPointer(rebasing: scratch[max(sent, 0)..<recordLength])), plaintext: gathered)
        // A short send means the kernel's buffer is full; waiting for writability beats asking again.
        return sent < 0 ? Self.failedSend() : .blocked
    }

    /// Sends what is left of the record in progress; releases it once it has all gone out.
    private func sendRest(of tail: RecordTail) -> SendOutcome {
        let sent = tail.bytes.withUnsafeBytes { bytes in
            System.retryingInterrupts {
                send(descriptor, bytes.baseAddress! + tail.sent, bytes.count - tail.sent, System.noSignalFlag)
            }
        }
        guard sent >= 0 else { return Self.failedSend() }
        tail.sent += sent
        guard tail.unsentCount == 0 else { return .blocked }
        pendingOutputByteCount -= tail.plaintext
        sentByteCount += tail.plaintext
        recordTail = nil
        return .progressed
    }

    /// Sends as much of the queue as the kernel takes in one call, at most `limit` bytes; returns
    /// the byte count or -1.
    private func sendQueued(limit: Int) -> Int {
        let count = min(queue.count - queueHead, Self.maximumIOVectors)
        return withUnsafeTemporaryAllocation(of: iovec.self, capacity: count) { vectors in
            // The arrays stay alive in `queue` for the duration of the call, so their base
            // addresses stay valid; the pointers do not escape the closure.
            var used = 0
            var remaining = limit
            while used < count && remaining > 0 {
                let segment = queue[queueHead + used]
                let start = segment.start + (used == 0 ? headOffset : 0)
                let length = min(segment.end - start, remaining)
                remaining -= length
                switch segment.storage {
                case .array(let bytes):
                    bytes.withUnsafeBytes { raw in
                        vectors[used] = iovec(
                            iov_base: UnsafeMutableRawPointer(mutating: raw.baseAddress! + start), iov_len: length)
                    }
                case .shared(let buffer):
                    vectors[used] = iovec(iov_base: buffer.storage + start, iov_len: length)
                }
                used += 1
            }
            if used == 1 {
                // One piece (the common case in a fan-out): send(2) skips sendmsg's header copying.
                let piece = vectors[0]
                return System.retryingInterrupts {
                    send(descriptor, piece.iov_base, piece.iov_len, System.noSignalFlag)
                }
            }
            var message = msghdr()
            message.msg_iov = vectors.baseAddress
            message.msg_iovlen = numericCast(used)
            return System.retryingInterrupts { sendmsg(descriptor, &message, System.noSignalFlag) }
        }
    }

    /// Moves the head of the queue past `count` bytes (sent, or gathered into a record).
    private func consume(_ count: Int) {
        var remaining = count
        while remaining > 0 {
            let available = queue[queueHead].count - headOffset
            if remaining >= available {
                remaining -= available
                queue[queueHead] = Segment(storage: .array([]), start: 0, end: 0)
                queueHead += 1
                headOffset = 0
            } else {
                headOffset += remaining
                remaining = 0
            }
        }
        if queueHead > 32 && queueHead * 2 > queue.count {
            queue.removeSubrange(0..<queueHead)
            queueHead = 0
        }
    }

    private func halfClose() {
        state = .halfClosed
        _ = shutdown(descriptor, Int32(SHUT_WR))
    }

    private func finish(error: TransportError?) {
        guard state != .closed else { return }
        state = .closed
        if let lingerTimer { loop.cancel(lingerTimer) }
        loop.deregister(descriptor)
        owner.take()?.close()
        queue.removeAll()
        queueHead = 0
        headOffset = 0
        recordTail = nil
        rawBytesAhead = 0
        pendingOutputByteCount = 0
        loop.runLater { [self] in
            let handler = self.handler
            self.handler = nil
            handler?.connection(self, didCloseWith: error)
        }
    }
}
