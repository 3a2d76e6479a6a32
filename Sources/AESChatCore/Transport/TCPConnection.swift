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

    private enum State {
        case open
        /// Sending what is queued, then half-closing.
        case draining
        /// Our FIN is sent; reading (and discarding) until the peer's end of stream.
        case halfClosed
        case closed
    }

    public var handler: (any ConnectionHandler)? {
        didSet { readDestinationProvider = handler as? any ReadDestinationProvider }
    }
    /// The handler, when it can have reads land in storage of its own.
    private var readDestinationProvider: (any ReadDestinationProvider)?
    public let peerDescription: String
    public private(set) var pendingOutputByteCount = 0
    public private(set) var sentByteCount = 0
    /// Bytes read since this side started closing (see ``maximumInputReadWhileClosing``).
    private var inputReadWhileClosing = 0
    /// Whether the connection no longer asks the loop about readability (closing, and the peer
    /// sent more than ``maximumInputReadWhileClosing``).
    private var stoppedReading = false
    public var isOpen: Bool { state == .open }

    /// The descriptor's number, for system calls while ``owner`` holds it.
    private let descriptor: Int32
    /// The open descriptor; taken and closed when the connection finishes.
    private var owner: Descriptor?
    private unowned let loop: PosixEventLoop
    private var state = State.open
    private var queue: [Segment] = []
    private var queueHead = 0
    private var headOffset = 0
    private var flushPending = false
    private var waitingForWritable = false
    private var lingerTimer: TimerID?

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

    public func discardUnsentOutput(keepingPartlySent: (_ piece: UnsafeRawBufferPointer, _ sent: Int) -> Int) {
        guard queueHead < queue.count else { return }
        // Whatever has not started to go out is dropped whole; the head piece, if partly sent, is
        // cut where the caller says.
        var kept = 0
        if headOffset > 0 {
            let head = queue[queueHead]
            let keep = Self.withBytes(of: head) { keepingPartlySent($0, headOffset) }
            precondition(keep >= headOffset && keep <= head.count, "kept less than was sent, or more than queued")
            queue[queueHead].end = head.start + keep
            kept = keep - headOffset
            queue.removeSubrange((queueHead + 1)...)
        } else {
            queue.removeAll()
            queueHead = 0
        }
        pendingOutputByteCount = kept
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

    // MARK: Loop callbacks

    func handle(_ readiness: Readiness) {
        if stoppedReading && readiness.failed {
            // The peer closed or reset while we no longer read: nothing more can arrive or leave.
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
            guard state != .closed, !stoppedReading else { return }
            let delivering = state == .open || state == .draining
            // A handler assembling a large frame has the bytes land in its own storage.
            if delivering, let provider = readDestinationProvider,
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
            let buffer = loop.readBuffer
            let count = System.read(descriptor, into: buffer)
            if count > 0 {
                if delivering {
                    handler?.connection(self, didRead: UnsafeRawBufferPointer(rebasing: buffer[0..<count]))
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

    /// Handles a read that returned `count` ≤ 0: end of stream or an error closes the connection;
    /// nothing more to read now (EAGAIN) leaves it open.
    private func readGotNothing(_ count: Int) {
        if count == 0 {
            finish(error: nil)
        } else if errno != EAGAIN && errno != EWOULDBLOCK {
            finish(error: .readFailed(reason: System.lastReason))
        }
    }

    private func flush() {
        guard state == .open || state == .draining else { return }
        while queueHead < queue.count {
            let sent = sendQueued()
            if sent < 0 {
                if errno == EAGAIN || errno == EWOULDBLOCK {
                    if !waitingForWritable {
                        waitingForWritable = true
                        loop.modify(descriptor, interest: stoppedReading ? .write : [.read, .write])
                    }
                    return
                }
                finish(error: .writeFailed(reason: System.lastReason))
                return
            }
            consume(sent)
        }
        queue.removeAll(keepingCapacity: queue.capacity <= 4)
        queueHead = 0
        if waitingForWritable {
            waitingForWritable = false
            loop.modify(descriptor, interest: stoppedReading ? [] : .read)
        }
        if state == .draining {
            halfClose()
        } else {
            handler?.connectionDidDrainOutput(self)
        }
    }

    /// Sends as much of the queue as the kernel takes in one call; returns the byte count or -1.
    private func sendQueued() -> Int {
        let count = min(queue.count - queueHead, Self.maximumIOVectors)
        return withUnsafeTemporaryAllocation(of: iovec.self, capacity: count) { vectors in
            // The arrays stay alive in `queue` for the duration of the call, so their base
            // addresses stay valid; the pointers do not escape the closure.
            for index in 0..<count {
                let segment = queue[queueHead + index]
                let start = segment.start + (index == 0 ? headOffset : 0)
                switch segment.storage {
                case .array(let bytes):
                    bytes.withUnsafeBytes { raw in
                        vectors[index] = iovec(
                            iov_base: UnsafeMutableRawPointer(mutating: raw.baseAddress! + start),
                            iov_len: segment.end - start)
                    }
                case .shared(let buffer):
                    vectors[index] = iovec(iov_base: buffer.storage + start, iov_len: segment.end - start)
                }
            }
            if count == 1 {
                // One piece (the common case in a fan-out): send(2) skips sendmsg's header copying.
                let piece = vectors[0]
                return System.retryingInterrupts {
                    send(descriptor, piece.iov_base, piece.iov_len, System.noSignalFlag)
                }
            }
            var message = msghdr()
            message.msg_iov = vectors.baseAddress
            message.msg_iovlen = numericCast(count)
            return System.retryingInterrupts { sendmsg(descriptor, &message, System.noSignalFlag) }
        }
    }

    private func consume(_ sent: Int) {
        var remaining = sent
        pendingOutputByteCount -= sent
        sentByteCount += sent
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
        pendingOutputByteCount = 0
        loop.runLater { [self] in
            let handler = self.handler
            self.handler = nil
            handler?.connection(self, didCloseWith: error)
        }
    }
}
