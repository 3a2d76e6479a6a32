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
        let clusterCredentials: RedisHandshake?
        if let cluster = options.cluster {
            let password = getenv(RedisHandshake.passwordVariable).map { String(cString: $0) }
            if let user = cluster.user, password == nil {
                log(
                    "Error: the cluster URL names the Redis user '\(user)' but \(RedisHandshake.passwordVariable) is "
                        + "not set")
                return .usage
            }
            clusterCredentials = RedisHandshake(user: cluster.user, password: password, database: cluster.database)
        } else {
            clusterCredentials = nil
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
            var engine: RedisClusterEngine?
            if let cluster = options.cluster, let clusterCredentials {
                configuration.cluster.deadAfter = .seconds(options.clusterDeadAfter)
                let endpoint = redisEndpoint(cluster)
                if let failure = try checkCluster(endpoint, clusterCredentials, loop: loop, log: log) {
                    log("Error: cannot reach the cluster at \(cluster): \(failure)")
                    return .unavailable
                }
                engine = RedisClusterEngine(
                    endpoint: endpoint, credentials: clusterCredentials, prefix: options.clusterPrefix, loop: loop)
            }
            let handshakes = WorkerHandshakes(loop: loop)
            defer { handshakes.stop() }
            let relay = Relay(
                configuration: configuration, loop: loop, handshakes: handshakes, cluster: engine, log: log)
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
    /// Where `--cluster` points, for the Redis connection.
    static func redisEndpoint(_ address: ClusterAddress) -> RedisEndpoint {
        switch address.endpoint {
        case .tcp(let host, let port): .tcp(host: host, port: port)
        case .unix(let path): .unix(path: path)
        }
    }

    /// Before serving in a cluster: connects to its Redis once (the relay must reach it to start) and logs a warning
    /// line for each Redis setting that is off (``RedisSettingsCheck``). Runs `loop` until done.
    /// - Returns: the failure to reach Redis, or nil.
    static func checkCluster(
        _ endpoint: RedisEndpoint, _ credentials: RedisHandshake, loop: PosixEventLoop, log: (String) -> Void
    ) throws(TransportError) -> RedisError? {
        var outcome: Result<RedisConnection, RedisError>?
        RedisConnection.connect(to: endpoint, loop: loop, handshake: credentials, timeout: .seconds(5)) {
            outcome = $0
            loop.stop()
        }
        try loop.run()
        switch outcome {
        case .failure(let error): return error
        case nil: return .timedOut("connecting to Redis")
        case .success(let connection):
            var warnings: [String] = []
            RedisSettingsCheck.run(on: connection) {
                warnings = $0
                loop.stop()
            }
            try loop.run()
            connection.close()
            for line in warnings { log(line) }
            return nil
        }
    }

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
