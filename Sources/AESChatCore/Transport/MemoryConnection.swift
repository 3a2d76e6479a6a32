/// One end of an in-memory byte stream. Bytes written at one end arrive at the other on the next
/// ``MemoryEventLoop/runUntilIdle()``, in chunks of at most `chunkSize` bytes (so tests see
/// frames split across reads). Loop thread only.
///
/// Once protected (``protect(with:)``), each write is sealed when it is handed over (held output when it is
/// released), in records of at most the protection's maximum, and the reading end opens them as they arrive, handing
/// the plaintext to its handler in chunks of at most `chunkSize` bytes.
public final class MemoryConnection: Connection {
    public var handler: (any ConnectionHandler)?
    public let peerDescription: String
    /// Bytes held by ``holdsOutput``; 0 otherwise, since writes reach the peer at once.
    public private(set) var pendingOutputByteCount = 0
    public private(set) var sentByteCount = 0
    public var isOpen: Bool { !isClosed && !isClosing }
    /// When true, writes are held back and counted as pending, as they are for a peer that stops
    /// reading, until ``releaseHeldOutput()`` hands them over.
    public var holdsOutput = false
    /// Held writes, as written, each with whether it is to be sealed (written after ``protect(with:)``).
    private var heldOutput: [(bytes: [UInt8], sealed: Bool)] = []
    /// The record protection, once ``protect(with:)`` is called.
    private var protection: (any RecordProtection)?

    /// Every byte this end has written (the plaintext, before any sealing), for tests that inspect
    /// the stream.
    public private(set) var writtenBytes: [UInt8] = []
    /// Whether the test wants to record written bytes.
    public var recordsWrites = false
    /// The other end of this stream, while it exists.
    public var otherEnd: MemoryConnection? { peer }

    private let loop: MemoryEventLoop
    private weak var peer: MemoryConnection?
    private var isClosed = false
    private var isClosing = false
    /// Reading paused (``pauseReading()``): what arrives waits here.
    private var readingPaused = false
    private var waitingInput: [ArraySlice<UInt8>] = []
    private let chunkSize: Int

    private init(loop: MemoryEventLoop, description: String, chunkSize: Int) {
        self.loop = loop
        self.peerDescription = description
        self.chunkSize = chunkSize
    }

    /// Makes two connected ends.
    /// - Parameter chunkSize: the largest read the receiving handler sees.
    public static func pair(
        loop: MemoryEventLoop, chunkSize: Int = 4096
    ) -> (client: MemoryConnection, server: MemoryConnection) {
        let client = MemoryConnection(loop: loop, description: "memory-server", chunkSize: chunkSize)
        let server = MemoryConnection(loop: loop, description: "memory-client", chunkSize: chunkSize)
        client.peer = server
        server.peer = client
        return (client, server)
    }

    public func write(_ bytes: [UInt8]) {
        guard isOpen, !bytes.isEmpty else { return }
        if recordsWrites { writtenBytes.append(contentsOf: bytes) }
        if holdsOutput {
            heldOutput.append((bytes, protection != nil))
            pendingOutputByteCount += bytes.count
            return
        }
        send(bytes, sealed: protection != nil)
    }

    public func protect(with protection: any RecordProtection) {
        self.protection = protection
    }

    /// Hands the writes held back by ``holdsOutput`` to the peer, in order, and stops holding.
    public func releaseHeldOutput() {
        holdsOutput = false
        let held = heldOutput
        heldOutput = []
        pendingOutputByteCount = 0
        for piece in held { send(piece.bytes, sealed: piece.sealed) }
        if isClosing { loop.enqueue { [weak self] in self?.finish(error: nil, notifyPeer: true) } }
    }

    /// Drops the writes held back by ``holdsOutput``; none is ever partly sent.
    public func discardUnsentOutput(keepingPartlySent: (_ piece: UnsafeRawBufferPointer, _ sent: Int) -> Int) {
        heldOutput = []
        pendingOutputByteCount = 0
    }

    /// Hands `bytes` to the peer, sealed into records first if `sealed`; a record that cannot be
    /// sealed closes the connection.
    private func send(_ bytes: [UInt8], sealed: Bool) {
        guard !isClosed else { return }
        guard sealed, let protection else {
            hand(bytes, plaintextCount: bytes.count)
            return
        }
        do {
            hand(try Self.seal(bytes, with: protection), plaintextCount: bytes.count)
        } catch {
            finish(error: error, notifyPeer: true)
        }
    }

    /// `plaintext` as records of at most the protection's maximum each.
    private static func seal(_ plaintext: [UInt8], with protection: any RecordProtection) throws(TransportError)
        -> [UInt8]
    {
        let header = protection.recordHeaderLength
        let overhead = header + protection.recordTrailerLength
        let maximum = protection.maximumRecordPlaintext
        var wire: [UInt8] = []
        wire.reserveCapacity(plaintext.count + (plaintext.count / maximum + 1) * overhead)
        var offset = 0
        while offset < plaintext.count {
            let chunk = min(maximum, plaintext.count - offset)
            let start = wire.count
            wire.append(contentsOf: repeatElement(0, count: header))
            wire.append(contentsOf: plaintext[offset..<(offset + chunk)])
            wire.append(contentsOf: repeatElement(0, count: protection.recordTrailerLength))
            let failure = wire.withUnsafeMutableBytes { buffer -> TransportError? in
                do throws(TransportError) {
                    try protection.sealRecord(
                        UnsafeMutableRawBufferPointer(rebasing: buffer[start..<(start + chunk + overhead)]))
                    return nil
                } catch {
                    return error
                }
            }
            if let failure { throw failure }
            offset += chunk
        }
        return wire
    }

    private func hand(_ bytes: [UInt8], plaintextCount: Int) {
        sentByteCount += plaintextCount
        let chunkSize = chunkSize
        loop.enqueue { [weak peer] in
            guard let peer, !peer.isClosed else { return }
            var offset = 0
            while offset < bytes.count, !peer.isClosed {
                let end = min(offset + chunkSize, bytes.count)
                peer.receive(bytes[offset..<end])
                offset = end
            }
        }
    }

    /// Hands bytes that arrived to the handler: as they are, or opened when protected.
    public func pauseReading() {
        readingPaused = true
    }

    public func resumeReading() {
        guard readingPaused else { return }
        readingPaused = false
        loop.enqueue { [weak self] in self?.handOverWaitingInput() }
    }

    /// Hands over what waited while reading was paused, in order, until reading is paused again.
    private func handOverWaitingInput() {
        while !readingPaused, !isClosed, !waitingInput.isEmpty {
            open(waitingInput.removeFirst())
        }
    }

    private func receive(_ piece: ArraySlice<UInt8>) {
        // Bytes that arrive while earlier ones still wait go behind them.
        guard !readingPaused, waitingInput.isEmpty else {
            waitingInput.append(piece)
            if !readingPaused { handOverWaitingInput() }
            return
        }
        open(piece)
    }

    private func open(_ piece: ArraySlice<UInt8>) {
        guard let protection else {
            piece.withUnsafeBytes { handler?.connection(self, didRead: $0) }
            return
        }
        var bytes = Array(piece)
        let failure = bytes.withUnsafeMutableBytes { buffer -> TransportError? in
            do throws(TransportError) {
                try protection.openRecords(buffer) { plaintext in
                    var offset = 0
                    while offset < plaintext.count, !isClosed {
                        let end = min(offset + chunkSize, plaintext.count)
                        handler?.connection(self, didRead: UnsafeRawBufferPointer(rebasing: plaintext[offset..<end]))
                        offset = end
                    }
                }
                return nil
            } catch {
                return error
            }
        }
        if let failure { finish(error: failure, notifyPeer: true) }
    }

    public func closeAfterFlushing(timeout: Duration) {
        guard isOpen else { return }
        isClosing = true
        // A connection holding output closes once it is released, after handing it over.
        guard !holdsOutput else { return }
        // Writes are delivered in order, so closing after the queued deliveries flushes them.
        loop.enqueue { [weak self] in self?.finish(error: nil, notifyPeer: true) }
    }

    public func close() {
        finish(error: nil, notifyPeer: true)
    }

    /// Simulates the peer vanishing with an error, as a reset connection does.
    public func failFromNetwork(_ error: TransportError) {
        finish(error: error, notifyPeer: true)
    }

    private func finish(error: TransportError?, notifyPeer: Bool) {
        guard !isClosed else { return }
        isClosed = true
        loop.enqueue { [self] in
            let handler = self.handler
            self.handler = nil
            handler?.connection(self, didCloseWith: error)
        }
        if notifyPeer, let peer {
            loop.enqueue { [weak peer] in peer?.peerEnded() }
        }
    }

    /// The other end closed: an orderly end of stream, unless it ended inside a record.
    private func peerEnded() {
        guard !isClosed else { return }
        var error: TransportError?
        do throws(TransportError) {
            try protection?.finishOpening()
        } catch let failure {
            error = failure
        }
        finish(error: error, notifyPeer: false)
    }
}
