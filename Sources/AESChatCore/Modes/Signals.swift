#if canImport(Glibc)
    import Glibc
#elseif canImport(Darwin)
    import Darwin
#endif

/// The write end of the signal pipe, read by the handler. Written once, before any handler is
/// installed; only read afterwards.
nonisolated(unsafe) private var signalPipeWriteEnd: Int32 = -1

/// The process-wide handler: writes the signal number to the pipe and returns. Only
/// async-signal-safe work (one `write`).
private let writeSignalToPipe: @convention(c) (Int32) -> Void = { number in
    var byte = UInt8(truncatingIfNeeded: number)
    _ = write(signalPipeWriteEnd, &byte, 1)
}

/// Turns SIGINT, SIGTERM and SIGHUP into calls on the event loop (the self-pipe trick), so the loop
/// can shut down in order instead of dying mid-write. A signal that arrives at any moment after
/// `init` returns is kept in the pipe until the loop reads it: none is lost. Also ignores SIGPIPE
/// for the process. One watcher per process.
public final class SignalWatcher: ReadinessHandler {
    /// The signal pipe's read end. Its write end is left open for the life of the process: a handler
    /// may still run after the watcher is gone, and must not write into a reused descriptor number.
    private let readEnd: Descriptor
    private let handler: (Int32) -> Void
    private let loop: PosixEventLoop

    /// The signals that end a relay or a client in order.
    public static var terminating: [Int32] { [SIGINT, SIGTERM, SIGHUP] }

    /// Installs the handlers; `handler` is called on the loop thread with each signal's number.
    /// - Throws: ``TransportError`` when the pipe cannot be made or registered.
    public init(loop: PosixEventLoop, signals: [Int32], handler: @escaping (Int32) -> Void) throws(TransportError) {
        System.ignoreSIGPIPE()
        let pipe = try System.makeNonBlockingPipe()
        signalPipeWriteEnd = pipe.write.release()
        readEnd = pipe.read
        self.handler = handler
        self.loop = loop
        try loop.register(readEnd.rawValue, interest: .read, handler: self)
        for number in signals {
            System.setSignalHandler(number, writeSignalToPipe, flags: SA_RESTART)
        }
    }

    deinit {
        loop.deregister(readEnd.rawValue)
    }

    func handle(_ readiness: Readiness) {
        var bytes = [UInt8](repeating: 0, count: 16)
        while true {
            let count = bytes.withUnsafeMutableBytes { System.read(readEnd.rawValue, into: $0) }
            guard count > 0 else { return }
            for byte in bytes[0..<count] { handler(Int32(byte)) }
        }
    }
}
