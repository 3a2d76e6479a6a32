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
            ProcessLimits.raiseDescriptorLimit()
            let loop = try PosixEventLoop()
            let listener = try TCPListener(host: options.host, port: options.port, loop: loop)
            var configuration = RelayConfiguration()
            configuration.maximumPendingOutput = options.maxPendingOutput
            configuration.maximumFrameLength = options.maxFrameSize
            configuration.limits.handshakeTimeout = .seconds(options.handshakeTimeout)
            configuration.limits.handshakeRate = options.handshakeRate
            configuration.limits.handshakeBurst = options.handshakeBurst
            configuration.limits.maximumConnections = options.maxConnections
            configuration.limits.maximumConnectionsPerAddress = options.maxConnectionsPerAddress
            configuration.limits.messageRate = options.messageRate
            configuration.limits.messageBurst = options.messageBurst
            configuration.limits.idleTimeout = .seconds(options.idleTimeout)
            configuration.limits.byteRate = options.byteRate
            configuration.limits.byteBurst = options.byteBurst
            configuration.limits.incompleteFrameGrace = .seconds(options.frameGrace)
            configuration.limits.minimumFrameRate = options.minFrameRate
            configuration.limits.incompleteFrameBudget = options.frameBudget
            configuration.limits.incompleteFrameBudgetPerAddress = options.frameBudgetPerAddress
            let handshakes = WorkerHandshakes(loop: loop)
            defer { handshakes.stop() }
            let relay = Relay(configuration: configuration, loop: loop, handshakes: handshakes, log: log)
            relay.attach(to: listener)
            giveBackMemory(relay: relay, loop: loop, seen: relay.membershipChanges)
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

extension ServeMode {
    /// Every two seconds, if members came or went in the last four seconds, lets the relay hand back
    /// the memory a burst of joins or leaves left free (see ``Relay/releaseIdleMemory()``). The
    /// second round catches what a burst still held when the first one ran.
    fileprivate static func giveBackMemory(relay: Relay, loop: PosixEventLoop, seen: Int, settling: Bool = false) {
        loop.schedule(after: .seconds(2)) { [weak relay] in
            guard let relay else { return }
            let changed = relay.membershipChanges != seen
            if changed || settling { relay.releaseIdleMemory() }
            giveBackMemory(relay: relay, loop: loop, seen: relay.membershipChanges, settling: changed)
        }
    }
}
