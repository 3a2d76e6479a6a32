public import AESChatCLI
public import AESChatCrypto

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
        if let cluster = options.cluster {
            // The Redis plumbing exists (Redis/), the relay side that would use it does not yet: refuse rather than
            // run a relay on its own that its operator believes shares rooms.
            log(
                "Error: --cluster \(cluster) is not available yet: this aeschat cannot share rooms between relays; "
                    + "run without --cluster for a relay on its own")
            return .unavailable
        }
        let keys: (current: X25519PrivateKey, previous: X25519PrivateKey?)
        do {
            keys = try relayKeys(options, log: log)
        } catch {
            log("Error: \(error.description)")
            return .ioError
        }
        if options.showKey {
            for line in keyLines(current: keys.current, previous: keys.previous, options: options) { print(line) }
            return .success
        }
        do {
            ProcessLimits.raiseDescriptorLimit()
            let loop = try PosixEventLoop()
            let listener = try TCPListener(host: options.host, port: options.port, loop: loop)
            var configuration = RelayConfiguration(relayKey: keys.current, previousRelayKey: keys.previous)
            configuration.maximumPendingOutput = options.maxPendingOutput
            configuration.maximumFrameLength = options.maxFrameSize
            configuration.presenceWindow = RelayConfiguration.servePresenceWindow
            configuration.presenceWindowPerMember = RelayConfiguration.servePresenceWindowPerMember
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
            for line in keyLines(current: keys.current, previous: keys.previous, options: options) { log(line) }
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
    /// The relay's keys: the current one from `--relay-key` or the default file (made if missing, see
    /// ``RelayKeyFile``), and the previous one from `--previous-relay-key` (read, never made).
    /// - Parameters:
    ///   - options: the serve options.
    ///   - log: told when a key is made and when a key file can be read by other users.
    /// - Returns: both keys.
    /// - Throws: ``KeyFileError`` when a key file cannot be read, parsed or made, or when both files hold one key.
    public static func relayKeys(_ options: ServeOptions, log: (String) -> Void) throws(KeyFileError) -> (
        current: X25519PrivateKey, previous: X25519PrivateKey?
    ) {
        let path = options.relayKeyFile ?? RelayKeyFile.defaultPath()
        let current = try RelayKeyFile.loadOrCreate(
            path: path,
            created: { log("made a new relay key in '\($0)' (mode 0600); keep it: members pin it") },
            warn: { log("warning: \($0)") })
        guard let previousPath = options.previousRelayKeyFile else { return (current, nil) }
        let previous = try RelayKeyFile.load(path: previousPath, warn: { log("warning: \($0)") })
        guard previous.publicKey != current.publicKey else {
            throw .malformed(
                .relayKey, path: previousPath, reason: "it holds the current key; give the key the relay had before")
        }
        return (current, previous)
    }

    /// The lines that show the relay's key: its fingerprint and the join line members copy (the host as they would
    /// reach the relay: the listening address, or the loopback address with a hint for a wildcard), and the
    /// previous key's fingerprint during a rotation.
    /// - Parameters:
    ///   - current: the relay's key.
    ///   - previous: its previous key, if any.
    ///   - options: the serve options (host and port).
    /// - Returns: the lines.
    static func keyLines(current: X25519PrivateKey, previous: X25519PrivateKey?, options: ServeOptions) -> [String] {
        guard let key = try? RelayPublicKey(bytes: current.publicKey) else { return [] }
        let wildcard = ["0.0.0.0", "::"].contains(options.host)
        let host = options.host == "::" ? "::1" : wildcard ? "127.0.0.1" : options.host
        var lines = [
            "relay key fingerprint: \(key.fingerprint)",
            "join line: aeschat join --host \(host) --port \(options.port) --relay-key \(key.text)",
        ]
        if wildcard {
            lines.append("(members on other machines put this machine's name or address after --host)")
        }
        if let previous, let old = try? RelayPublicKey(bytes: previous.publicKey) {
            lines.append(
                "previous relay key fingerprint: \(old.fingerprint) (still accepted; members who use it are told the "
                    + "new key)")
        }
        return lines
    }

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
