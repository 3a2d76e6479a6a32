#if canImport(Glibc)
    import Glibc
#elseif canImport(Darwin)
    import Darwin
#endif
#if os(Linux)
    import CLinux
#endif

/// Thin helpers over the C library: errno text, retries on EINTR, and the few calls whose names or
/// constants differ between Linux and Darwin.
enum System {
    /// The text for an errno value, such as "Connection refused".
    static func describe(errno code: Int32) -> String {
        guard let text = strerror(code) else { return "error \(code)" }
        return String(cString: text)
    }

    /// The text for the current errno.
    static var lastError: String { describe(errno: errno) }

    /// Calls `body` until it does not fail with EINTR; returns its result (-1 with errno set on
    /// failure).
    @inline(__always)
    static func retryingInterrupts<T: BinaryInteger>(_ body: () -> T) -> T {
        while true {
            let result = body()
            if result == -1 && errno == EINTR { continue }
            return result
        }
    }

    /// Flag that stops `send` from raising SIGPIPE (Linux); Darwin uses SO_NOSIGPIPE instead.
    static var noSignalFlag: Int32 {
        #if os(Linux)
            Int32(MSG_NOSIGNAL)
        #else
            0
        #endif
    }

    /// The current errno as a transport failure's reason (its text and the code).
    static var lastReason: TransportError.Reason { TransportError.Reason(errno: errno) }

    /// read(2) into `buffer`, retried on EINTR.
    /// - Returns: the byte count, 0 at end of file, or -1 with errno set (EAGAIN included: the
    ///   caller decides whether that is a failure).
    static func read(_ descriptor: Int32, into buffer: UnsafeMutableRawBufferPointer) -> Int {
        retryingInterrupts { cRead(descriptor, buffer.baseAddress, buffer.count) }
    }

    /// write(2) from `buffer`, retried on EINTR.
    /// - Returns: the byte count taken, or -1 with errno set.
    static func write(_ descriptor: Int32, from buffer: UnsafeRawBufferPointer) -> Int {
        retryingInterrupts { cWrite(descriptor, buffer.baseAddress, buffer.count) }
    }

    /// Writes all of `bytes`, repeating `write` while the system takes less.
    /// - Returns: nil once everything is written, or the errno read right after the write that
    ///   failed (or took nothing).
    static func writeAll(_ descriptor: Int32, _ bytes: UnsafeRawBufferPointer) -> Int32? {
        var written = 0
        while written < bytes.count {
            let count = write(descriptor, from: UnsafeRawBufferPointer(rebasing: bytes[written...]))
            guard count > 0 else { return errno }
            written += count
        }
        return nil
    }

    /// Writes all of an array (see the buffer form).
    static func writeAll(_ descriptor: Int32, _ bytes: [UInt8]) -> Int32? {
        bytes.withUnsafeBytes { writeAll(descriptor, $0) }
    }

    /// connect(2), once (a non-blocking socket answers EINPROGRESS; an interrupted one goes on
    /// connecting, so EINTR is not retried).
    /// - Returns: 0, or -1 with errno set.
    static func connect(_ descriptor: Int32, to address: ResolvedAddress) -> Int32 {
        address.withSocketAddress { cConnect(descriptor, $0, $1) }
    }

    /// The pending error of a socket (`SO_ERROR`), which a finished non-blocking connect leaves: 0
    /// when it succeeded.
    static func pendingError(_ descriptor: Int32) -> Int32 {
        var socketError: Int32 = 0
        var length = socklen_t(MemoryLayout<Int32>.size)
        guard getsockopt(descriptor, SOL_SOCKET, SO_ERROR, &socketError, &length) == 0 else { return errno }
        return socketError
    }

    /// Installs `handler` for `signal` with `flags` (such as `SA_RESTART`) and an empty mask;
    /// stores the action it replaces in `previous` when given.
    static func setSignalHandler(
        _ signal: Int32, _ handler: @convention(c) (Int32) -> Void, flags: Int32,
        previous: UnsafeMutablePointer<sigaction>? = nil
    ) {
        var action = sigaction()
        #if canImport(Darwin)
            action.__sigaction_u.__sa_handler = handler
        #else
            action.__sigaction_handler.sa_handler = handler
        #endif
        action.sa_flags = flags
        sigemptyset(&action.sa_mask)
        _ = sigaction(signal, &action, previous)
    }

    /// A file's modification time from `stat`, whose field names differ between the C libraries.
    static func modificationTime(_ status: stat) -> (seconds: Int, nanoseconds: Int) {
        #if canImport(Darwin)
            (Int(status.st_mtimespec.tv_sec), Int(status.st_mtimespec.tv_nsec))
        #else
            (Int(status.st_mtim.tv_sec), Int(status.st_mtim.tv_nsec))
        #endif
    }

    /// Makes a pipe whose two ends are non-blocking and close-on-exec.
    /// - Returns: the read end and the write end.
    static func makeNonBlockingPipe() throws(TransportError) -> Pipe {
        var fds: [Int32] = [0, 0]
        guard pipe(&fds) == 0 else { throw .systemCall("pipe", reason: lastReason) }
        for fd in fds {
            _ = fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) | O_NONBLOCK)
            _ = fcntl(fd, F_SETFD, FD_CLOEXEC)
        }
        return Pipe(read: Descriptor(fds[0]), write: Descriptor(fds[1]))
    }

    /// The two ends of a pipe.
    struct Pipe: ~Copyable, Sendable {
        var read: Descriptor
        var write: Descriptor
    }

    /// Makes a descriptor non-blocking and close-on-exec.
    static func configure(descriptor: Int32) throws(TransportError) {
        let flags = fcntl(descriptor, F_GETFL)
        guard flags >= 0, fcntl(descriptor, F_SETFL, flags | O_NONBLOCK) == 0 else {
            throw .systemCall("fcntl(O_NONBLOCK)", reason: lastReason)
        }
        _ = fcntl(descriptor, F_SETFD, FD_CLOEXEC)
        #if canImport(Darwin)
            var one: Int32 = 1
            _ = setsockopt(descriptor, SOL_SOCKET, SO_NOSIGPIPE, &one, socklen_t(MemoryLayout<Int32>.size))
        #endif
    }

    /// Sets an integer socket option, ignoring failure (used for best-effort tuning).
    static func setOption(_ descriptor: Int32, _ level: Int32, _ name: Int32, _ value: Int32) {
        var value = value
        _ = setsockopt(descriptor, level, name, &value, socklen_t(MemoryLayout<Int32>.size))
    }

    /// Disables Nagle's algorithm so chat lines leave at once.
    static func setNoDelay(_ descriptor: Int32) {
        setOption(descriptor, Int32(IPPROTO_TCP), TCP_NODELAY, 1)
    }

    /// Ignores SIGPIPE for the whole process: a peer that vanishes while we write must give EPIPE,
    /// never kill us.
    static func ignoreSIGPIPE() {
        _ = signal(SIGPIPE, SIG_IGN)
    }

    /// Hands memory that the allocator holds but no longer uses back to the system (glibc keeps
    /// freed pages in the middle of its heap otherwise, so a burst such as thousands of joins at
    /// once would stay in the resident size). Does nothing where there is no such call.
    static func releaseFreeMemory() {
        #if os(Linux)
            _ = malloc_trim(0)
        #endif
    }

    /// The stream socket type constant, whose Swift type differs between the C libraries.
    static var streamType: Int32 {
        #if os(Linux)
            Int32(SOCK_STREAM.rawValue)
        #else
            SOCK_STREAM
        #endif
    }

    /// Formats a socket address as `host:port` (IPv6 in brackets).
    static func describe(address: UnsafePointer<sockaddr>, length: socklen_t) -> (text: String, port: UInt16) {
        var host = [CChar](repeating: 0, count: Int(NI_MAXHOST))
        var service = [CChar](repeating: 0, count: Int(NI_MAXSERV))
        let flags = NI_NUMERICHOST | NI_NUMERICSERV
        guard
            getnameinfo(address, length, &host, socklen_t(host.count), &service, socklen_t(service.count), flags) == 0
        else { return ("?", 0) }
        let hostText = String(decoding: host.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }, as: UTF8.self)
        let serviceText = String(decoding: service.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }, as: UTF8.self)
        let port = UInt16(serviceText) ?? 0
        let shown = address.pointee.sa_family == sa_family_t(AF_INET6) ? "[\(hostText)]" : hostText
        return ("\(shown):\(serviceText)", port)
    }

    /// Resolves `host` and `port` into socket addresses.
    static func resolve(host: String, port: UInt16, passive: Bool) throws(TransportError) -> [ResolvedAddress] {
        var hints = addrinfo()
        hints.ai_family = AF_UNSPEC
        hints.ai_socktype = streamType
        hints.ai_flags = passive ? AI_PASSIVE : 0
        var list: UnsafeMutablePointer<addrinfo>?
        let unbracketed = host.hasPrefix("[") && host.hasSuffix("]") ? String(host.dropFirst().dropLast()) : host
        let status = getaddrinfo(unbracketed, String(port), &hints, &list)
        guard status == 0, let first = list else {
            let reason =
                status == EAI_SYSTEM ? lastReason : TransportError.Reason(String(cString: gai_strerror(status)))
            throw .resolveFailed(host: host, reason: reason)
        }
        defer { freeaddrinfo(first) }
        var result: [ResolvedAddress] = []
        var cursor: UnsafeMutablePointer<addrinfo>? = first
        while let entry = cursor {
            if let address = entry.pointee.ai_addr {
                let bytes = Array(UnsafeRawBufferPointer(start: address, count: Int(entry.pointee.ai_addrlen)))
                result.append(ResolvedAddress(family: entry.pointee.ai_family, storage: bytes))
            }
            cursor = entry.pointee.ai_next
        }
        return result
    }
}

/// Process-wide resource limits.
public enum ProcessLimits {
    /// Raises the soft limit on open descriptors to the hard limit, so a relay (or the load tool)
    /// can hold as many connections as the system allows it.
    /// - Returns: the soft limit now in force, or nil when it cannot be read.
    @discardableResult
    public static func raiseDescriptorLimit() -> Int? {
        var limit = rlimit()
        #if os(Linux)
            let resource = Int32(RLIMIT_NOFILE.rawValue)
        #else
            let resource = RLIMIT_NOFILE
        #endif
        guard getrlimit(resource, &limit) == 0 else { return nil }
        if limit.rlim_cur < limit.rlim_max {
            var raised = limit
            raised.rlim_cur = limit.rlim_max
            #if canImport(Darwin)
                raised.rlim_cur = min(limit.rlim_max, rlim_t(OPEN_MAX))
            #endif
            if setrlimit(resource, &raised) == 0 { limit = raised }
        }
        return Int(clamping: limit.rlim_cur)
    }
}

extension Duration {
    /// The duration in whole milliseconds, rounded toward zero.
    var wholeMilliseconds: Int64 {
        components.seconds * 1000 + components.attoseconds / 1_000_000_000_000_000
    }

    /// The duration in whole seconds, rounded toward zero.
    var wholeSeconds: Int64 { components.seconds }

    /// The duration in seconds, with its fraction.
    var secondsWithFraction: Double {
        Double(components.seconds) + Double(components.attoseconds) / 1e18
    }
}

/// A socket address copied out of `getaddrinfo`.
struct ResolvedAddress {
    var family: Int32
    var storage: [UInt8]

    func withSocketAddress<R>(_ body: (UnsafePointer<sockaddr>, socklen_t) -> R) -> R {
        storage.withUnsafeBytes { raw in
            body(raw.baseAddress!.assumingMemoryBound(to: sockaddr.self), socklen_t(raw.count))
        }
    }

    var description: String { withSocketAddress { System.describe(address: $0, length: $1).text } }
}

// The C calls, from outside ``System`` whose own `read`, `write` and `connect` hide them.

private func cRead(_ descriptor: Int32, _ buffer: UnsafeMutableRawPointer?, _ count: Int) -> Int {
    read(descriptor, buffer, count)
}

private func cWrite(_ descriptor: Int32, _ buffer: UnsafeRawPointer?, _ count: Int) -> Int {
    write(descriptor, buffer, count)
}

private func cConnect(_ descriptor: Int32, _ address: UnsafePointer<sockaddr>, _ length: socklen_t) -> Int32 {
    connect(descriptor, address, length)
}
