#if canImport(Glibc)
    import Glibc
#elseif canImport(Darwin)
    import Darwin
#endif

extension TCPConnection {
    /// Connects to `host:port` without blocking the loop: each resolved address in turn gets a
    /// non-blocking connect, completed when the socket turns writable, and at most `timeout`.
    /// Resolving the name is the only wait (as `getaddrinfo` is).
    /// - Parameter completion: called once, on the loop thread and never from inside this call,
    ///   with the connection, or with ``TransportError/resolveFailed(host:reason:)`` or
    ///   ``TransportError/connectFailed(address:reason:)`` carrying the last address's reason.
    /// - Returns: the attempt, which ``PendingConnect/cancel()`` abandons.
    @discardableResult
    public static func connect(
        host: String, port: UInt16, loop: PosixEventLoop, timeout: Duration = .seconds(10),
        _ completion: @escaping (Result<TCPConnection, TransportError>) -> Void
    ) -> PendingConnect {
        let attempt = PendingConnect(loop: loop, timeout: timeout, completion: completion)
        do {
            let addresses = try System.resolve(host: host, port: port, passive: false)
            let shownHost = host.contains(":") && !host.hasPrefix("[") ? "[\(host)]" : host
            attempt.start(addresses: addresses, shown: "\(shownHost):\(port)")
        } catch {
            attempt.complete(.failure(error))
        }
        return attempt
    }
}

/// A TCP connect in progress on a ``PosixEventLoop``: one address at a time, a non-blocking
/// `connect` that the selector completes by reporting the socket writable, and a timer per
/// address. Owns the socket until it becomes a ``TCPConnection``. Loop thread only.
public final class PendingConnect: ReadinessHandler {
    private unowned let loop: PosixEventLoop
    private let timeout: Duration
    private var completion: ((Result<TCPConnection, TransportError>) -> Void)?
    private var addresses: [ResolvedAddress] = []
    private var nextAddress = 0
    private var shown = ""
    private var lastReason: TransportError.Reason = "no address found"
    /// The socket of the address being tried, registered for writability.
    private var pending: Descriptor?
    /// Its number, while ``pending`` holds it.
    private var socketNumber: Int32 = -1
    private var timer: TimerID?
    /// Whether the result has been handed to ``complete(_:)``.
    private var isFinished = false

    init(
        loop: PosixEventLoop, timeout: Duration, completion: @escaping (Result<TCPConnection, TransportError>) -> Void
    ) {
        self.loop = loop
        self.timeout = timeout
        self.completion = completion
    }

    /// Whether the attempt has neither finished nor been cancelled.
    public var isPending: Bool { completion != nil && !isFinished }

    /// Abandons the attempt: closes its socket; the completion is never called.
    public func cancel() {
        completion = nil
        isFinished = true
        dropSocket()
    }

    func start(addresses: [ResolvedAddress], shown: String) {
        self.addresses = addresses
        self.shown = shown
        tryNextAddress()
    }

    /// Starts connecting to the next address; completes with the last reason when none is left.
    private func tryNextAddress() {
        while !isFinished, nextAddress < addresses.count {
            let address = addresses[nextAddress]
            nextAddress += 1
            guard let descriptor = Descriptor(returned: socket(address.family, System.streamType, 0)) else {
                lastReason = System.lastReason
                continue
            }
            do {
                try System.configure(descriptor: descriptor.rawValue)
            } catch {
                lastReason = TransportError.Reason(error.description, errno: error.errno)
                continue
            }
            if System.connect(descriptor.rawValue, to: address) == 0 {
                connected(descriptor, to: address)
                return
            }
            let code = errno
            guard code == EINPROGRESS else {
                lastReason = TransportError.Reason(errno: code)
                continue
            }
            do {
                try loop.register(descriptor.rawValue, interest: .write, handler: self)
            } catch {
                lastReason = TransportError.Reason(error.description, errno: error.errno)
                continue
            }
            socketNumber = descriptor.rawValue
            pending = .some(descriptor)
            timer = loop.schedule(after: timeout) { [weak self] in self?.timedOut() }
            return
        }
        complete(.failure(.connectFailed(address: shown, reason: lastReason)))
    }

    func handle(_ readiness: Readiness) {
        guard socketNumber >= 0, readiness.writable || readiness.failed else { return }
        let code = System.pendingError(socketNumber)
        if code == 0 {
            // A report meant for an earlier owner of this number (see PosixEventLoop) finds the
            // connect still in progress: not connected yet, and no error either.
            guard isConnected(socketNumber) else { return }
            let address = addresses[nextAddress - 1]
            loop.deregister(socketNumber)
            if let timer { loop.cancel(timer) }
            socketNumber = -1
            guard let descriptor = pending.take() else { return }
            connected(descriptor, to: address)
            return
        }
        lastReason = TransportError.Reason(errno: code)
        dropSocket()
        tryNextAddress()
    }

    private func timedOut() {
        timer = nil
        guard socketNumber >= 0 else { return }
        lastReason = TransportError.Reason("connection timed out", errno: ETIMEDOUT)
        dropSocket()
        tryNextAddress()
    }

    private func connected(_ descriptor: consuming Descriptor, to address: ResolvedAddress) {
        do {
            let connection = try TCPConnection(descriptor: descriptor, peer: address.description, loop: loop)
            complete(.success(connection))
        } catch {
            complete(.failure(error))
        }
    }

    /// Takes the current socket off the selector and closes it.
    private func dropSocket() {
        if let timer { loop.cancel(timer) }
        timer = nil
        if socketNumber >= 0 { loop.deregister(socketNumber) }
        socketNumber = -1
        pending.take()?.close()
    }

    /// Hands the result over on the loop, after the current handler (never from inside `connect`).
    func complete(_ result: Result<TCPConnection, TransportError>) {
        guard !isFinished else { return }
        isFinished = true
        loop.runLater { [self] in
            guard let completion = self.completion else {
                // Cancelled meanwhile: a connection made for nobody is closed.
                if case .success(let connection) = result { connection.close() }
                return
            }
            self.completion = nil
            completion(result)
        }
    }

    /// Whether a socket whose connect reported no error has a peer (it is not still connecting).
    private func isConnected(_ descriptor: Int32) -> Bool {
        var storage = sockaddr_storage()
        var length = socklen_t(MemoryLayout<sockaddr_storage>.size)
        return withUnsafeMutablePointer(to: &storage) { pointer in
            pointer.withMemoryRebound(to: sockaddr.self, capacity: 1) { getpeername(descriptor, $0, &length) == 0 }
        }
    }
}
