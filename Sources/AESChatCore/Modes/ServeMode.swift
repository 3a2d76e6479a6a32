public import AESChatCLI

#if canImport(Glibc)
    import Glibc
#elseif canImport(Darwin)
    import Darwin
#endif

/// `aeschat serve`: runs a relay until SIGINT or SIGTERM, then tells every client and stops.
public enum ServeMode {
    /// Runs the relay.
    /// - Returns: the process exit code.
    public static func run(_ options: ServeOptions, log: @escaping (String) -> Void = StandardError.write) -> ExitCode {
        do {
            let loop = try PosixEventLoop()
            let listener = try TCPListener(host: options.host, port: options.port, loop: loop)
            let relay = Relay(loop: loop, log: log)
            relay.attach(to: listener)
            let watcher = try SignalWatcher(loop: loop, signals: SignalWatcher.terminating) { number in
                log(
                    "received \(number == SIGINT ? "SIGINT" : number == SIGTERM ? "SIGTERM" : "signal \(number)"); telling clients and stopping"
                )
                listener.close()
                relay.shutdown { loop.stop() }
            }
            log("aeschat relay \(aeschatVersion) listening on \(listener.localDescription)")
            try loop.run()
            withExtendedLifetime(watcher) {}
            log("relay stopped")
            return .success
        } catch {
            log("Error: \(error.description)")
            return .unavailable
        }
    }
}

/// Writes lines to standard error.
public enum StandardError {
    /// Writes one line (a newline is added).
    public static func write(_ line: String) {
        var bytes = Array(line.utf8)
        bytes.append(0x0A)
        var written = 0
        while written < bytes.count {
            let count = bytes.withUnsafeBytes { raw in
                System.retryingInterrupts { Glibc_write(2, raw.baseAddress! + written, raw.count - written) }
            }
            if count <= 0 { return }
            written += count
        }
    }
}
