#if canImport(Glibc)
    import Glibc
#elseif canImport(Darwin)
    import Darwin
#endif

/// A listening TCP socket on a ``PosixEventLoop``. Owns its descriptor. Loop thread only.
public final class TCPListener: Listener, ReadinessHandler {
    public var acceptHandler: ((any Connection) -> Void)?
    public let localDescription: String
    public let localPort: UInt16

    /// The descriptor's number, for system calls while ``owner`` holds it.
    private let descriptor: Int32
    /// The listening socket; taken and closed by ``close()``.
    private var owner: Descriptor?
    private unowned let loop: PosixEventLoop
    private var isClosed = false
    private var isPausedForDescriptors = false

    /// Binds and listens on `host:port`; `::` also accepts IPv4 where the system allows.
    /// - Throws: ``TransportError/listenFailed(address:reason:)``.
    public init(host: String, port: UInt16, loop: PosixEventLoop, backlog: Int32 = 1024) throws(TransportError) {
        let shownHost = host.contains(":") && !host.hasPrefix("[") ? "[\(host)]" : host
        let shown = "\(shownHost):\(port)"
        let addresses: [ResolvedAddress]
        do {
            addresses = try System.resolve(host: host, port: port, passive: true)
        } catch {
            throw .listenFailed(address: shown, reason: TransportError.Reason(error.description, errno: error.errno))
        }
        guard let address = addresses.first else { throw .listenFailed(address: shown, reason: "no address") }
        guard let owner = Descriptor(returned: socket(address.family, System.streamType, 0)) else {
            throw .listenFailed(address: shown, reason: System.lastReason)
        }
        let descriptor = owner.rawValue
        System.setOption(descriptor, SOL_SOCKET, SO_REUSEADDR, 1)
        if address.family == AF_INET6 { System.setOption(descriptor, Int32(IPPROTO_IPV6), IPV6_V6ONLY, 0) }
        let bound = address.withSocketAddress { bind(descriptor, $0, $1) }
        guard bound == 0, listen(descriptor, backlog) == 0 else {
            throw .listenFailed(address: shown, reason: System.lastReason)
        }
        var storage = sockaddr_storage()
        var length = socklen_t(MemoryLayout<sockaddr_storage>.size)
        let described: (text: String, port: UInt16) = withUnsafeMutablePointer(to: &storage) { pointer in
            pointer.withMemoryRebound(to: sockaddr.self, capacity: 1) { address in
                getsockname(descriptor, address, &length) == 0
                    ? System.describe(address: address, length: length) : (text: shown, port: port)
            }
        }
        self.descriptor = descriptor
        self.localDescription = described.text
        self.localPort = described.port
        self.loop = loop
        do {
            try System.configure(descriptor: descriptor)
            try loop.register(descriptor, interest: .read, handler: self)
        } catch {
            throw .listenFailed(address: shown, reason: TransportError.Reason(error.description, errno: error.errno))
        }
        self.owner = .some(owner)
    }

    public func close() {
        guard !isClosed else { return }
        isClosed = true
        if !isPausedForDescriptors { loop.deregister(descriptor) }
        owner.take()?.close()
    }

    func handle(_ readiness: Readiness) {
        for _ in 0..<256 {
            guard !isClosed else { return }
            var storage = sockaddr_storage()
            var length = socklen_t(MemoryLayout<sockaddr_storage>.size)
            let acceptedNumber = withUnsafeMutablePointer(to: &storage) { pointer in
                pointer.withMemoryRebound(to: sockaddr.self, capacity: 1) { address in
                    System.retryingInterrupts { accept(descriptor, address, &length) }
                }
            }
            guard let accepted = Descriptor(returned: acceptedNumber) else {
                switch errno {
                case EAGAIN, EWOULDBLOCK, ECONNABORTED, EPROTO:
                    return
                case EMFILE, ENFILE, ENOBUFS, ENOMEM:
                    pauseAccepting()
                    return
                default:
                    return
                }
            }
            let peer = withUnsafePointer(to: &storage) { pointer in
                pointer.withMemoryRebound(to: sockaddr.self, capacity: 1) {
                    System.describe(address: $0, length: length).text
                }
            }
            // A connection that cannot be set up is closed by its descriptor's owner.
            if let connection = try? TCPConnection(descriptor: accepted, peer: peer, loop: loop) {
                acceptHandler?(connection)
            }
        }
    }

    /// Out of descriptors: stop polling the listening socket for a moment instead of spinning on a
    /// readiness that accept cannot clear, then try again.
    private func pauseAccepting() {
        guard !isPausedForDescriptors else { return }
        isPausedForDescriptors = true
        loop.deregister(descriptor)
        loop.schedule(after: .milliseconds(100)) { [weak self] in
            guard let self, !self.isClosed else { return }
            self.isPausedForDescriptors = false
            try? self.loop.register(self.descriptor, interest: .read, handler: self)
        }
    }
}
