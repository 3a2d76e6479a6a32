/// One end of an in-memory byte stream. Bytes written at one end arrive at the other on the next
/// ``MemoryEventLoop/runUntilIdle()``, in chunks of at most `chunkSize` bytes (so tests see
/// frames split across reads). Loop thread only.
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
    private var heldOutput: [[UInt8]] = []

    /// Every byte this end has written, for tests that inspect the wire.
    public private(set) var writtenBytes: [UInt8] = []
    /// Whether the test wants to record written bytes.
    public var recordsWrites = false
    /// The other end of this stream, while it exists.
    public var otherEnd: MemoryConnection? { peer }

    private let loop: MemoryEventLoop
    private weak var peer: MemoryConnection?
    private var isClosed = false
    private var isClosing = false
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
            heldOutput.append(bytes)
            pendingOutputByteCount += bytes.count
            return
        }
        hand(bytes)
    }

    /// Hands the writes held back by ``holdsOutput`` to the peer, in order, and stops holding.
    public func releaseHeldOutput() {
        holdsOutput = false
        let held = heldOutput
        heldOutput = []
        pendingOutputByteCount = 0
        for bytes in held { hand(bytes) }
        if isClosing { loop.enqueue { [weak self] in self?.finish(error: nil, notifyPeer: true) } }
    }

    /// Drops the writes held back by ``holdsOutput``; none is ever partly sent.
    public func discardUnsentOutput(keepingPartlySent: (_ piece: UnsafeRawBufferPointer, _ sent: Int) -> Int) {
        heldOutput = []
        pendingOutputByteCount = 0
    }

    private func hand(_ bytes: [UInt8]) {
        sentByteCount += bytes.count
        let chunkSize = chunkSize
        loop.enqueue { [weak peer] in
            guard let peer, !peer.isClosed else { return }
            var offset = 0
            while offset < bytes.count, !peer.isClosed {
                let end = min(offset + chunkSize, bytes.count)
                bytes[offset..<end].withUnsafeBytes { peer.handler?.connection(peer, didRead: $0) }
                offset = end
            }
        }
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
            loop.enqueue { [weak peer] in peer?.finish(error: nil, notifyPeer: false) }
        }
    }
}
