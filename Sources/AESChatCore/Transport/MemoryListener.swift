/// Hands out in-memory connections to an accept handler, like a listening socket would.
public final class MemoryListener: Listener {
    public var acceptHandler: ((any Connection) -> Void)?
    public let localDescription = "memory"
    public let localPort: UInt16 = 0
    private let loop: MemoryEventLoop
    private var isClosed = false

    /// Creates a listener on `loop`.
    public init(loop: MemoryEventLoop) { self.loop = loop }

    /// Opens a connection as ``TCPConnection/connect(host:port:loop:timeout:_:)`` does: the server
    /// end goes to the accept handler now, and the client end to `completion` on the loop's next
    /// ``MemoryEventLoop/runUntilIdle()``, never from inside this call.
    public func connect(
        chunkSize: Int = 4096, _ completion: @escaping (Result<MemoryConnection, TransportError>) -> Void
    ) {
        let client = connect(chunkSize: chunkSize)
        loop.enqueue { completion(.success(client)) }
    }

    /// Opens a connection at once; the server end goes to the accept handler.
    /// - Returns: the client end.
    public func connect(chunkSize: Int = 4096) -> MemoryConnection {
        let (client, server) = MemoryConnection.pair(loop: loop, chunkSize: chunkSize)
        if isClosed { server.close() } else { acceptHandler?(server) }
        return client
    }

    public func close() { isClosed = true }
}
