#if canImport(Glibc)
    import Glibc
#elseif canImport(Darwin)
    import Darwin
#endif

extension TCPConnection {
    /// Connects to the unix-domain stream socket at `path` without blocking the loop, as
    /// ``connect(host:port:loop:timeout:_:)`` does for TCP (the connection is a ``TCPConnection`` all the same: the
    /// same non-blocking stream).
    /// - Parameter completion: called once, on the loop thread and never from inside this call, with the connection
    ///   or ``TransportError/connectFailed(address:reason:)`` (a path too long for a socket address included).
    @discardableResult
    public static func connect(
        unixPath path: String, loop: PosixEventLoop, timeout: Duration = .seconds(10),
        _ completion: @escaping (Result<TCPConnection, TransportError>) -> Void
    ) -> PendingConnect {
        let attempt = PendingConnect(loop: loop, timeout: timeout, completion: completion)
        let shown = "unix:\(path)"
        guard let address = unixAddress(path) else {
            attempt.complete(.failure(.connectFailed(address: shown, reason: "socket path too long or empty")))
            return attempt
        }
        attempt.start(addresses: [address], shown: shown)
        return attempt
    }

    /// A `sockaddr_un` for `path`, or nil when the path is empty, holds a NUL byte or does not fit.
    static func unixAddress(_ path: String) -> ResolvedAddress? {
        var address = sockaddr_un()
        let bytes = Array(path.utf8)
        let capacity = MemoryLayout.size(ofValue: address.sun_path)
        guard !bytes.isEmpty, bytes.count < capacity, !bytes.contains(0) else { return nil }
        address.sun_family = sa_family_t(AF_UNIX)
        #if canImport(Darwin)
            address.sun_len = UInt8(MemoryLayout<sockaddr_un>.size)
        #endif
        withUnsafeMutableBytes(of: &address.sun_path) { raw in
            raw.copyBytes(from: bytes)
            raw[bytes.count] = 0
        }
        let storage = withUnsafeBytes(of: &address) { Array($0) }
        return ResolvedAddress(family: AF_UNIX, storage: storage)
    }
}
