public import AESChatCLI
import Foundation

/// `aeschat join`: connects to a relay, sends each line of standard input, prints what arrives.
public enum JoinMode {
    /// Runs a client session until input ends, the user interrupts or the relay goes away.
    /// - Returns: the process exit code: 0 after a clean leave, 64 without a key, 65 for a bad
    ///   key file, 69 when the relay is unreachable or refuses, 74 when the inbox cannot be made or is
    ///   not the user's alone, or when `known_peers` exists but cannot be read, 77 when the relay's
    ///   pinned key does not complete the encrypted link, 130 when interrupted.
    public static func run(_ options: JoinOptions) -> ExitCode {
        if options.inbox == nil, !InboxPrompt.canAsk {
            let problem =
                "missing option '--inbox <dir>': name the folder for received files (asked for only on a terminal)"
            StandardError.write(UsageError(problem, mode: .join).description)
            return .usage
        }
        // Read the key, identity and known-peers files once, now, so that a bad one is reported
        // before connecting; every connection of the session shares them.
        let keys: Keys
        switch loadKeys(options) {
        case .success(let loaded): keys = loaded
        case .failure(let failure):
            StandardError.write("Error: \(failure.message)")
            return failure.code
        }
        guard let inboxPath = options.inbox ?? InboxPrompt.ask(writingTo: options.json ? 2 : 1) else {
            StandardError.write("Error: no inbox folder given")
            return .usage
        }
        let inbox: Inbox
        do {
            inbox = try Inbox(path: inboxPath)
            inbox.removeStaleParts()
        } catch {
            StandardError.write("Error: \(error.description)")
            return .ioError
        }
        let relayKey: RelayPublicKey
        switch pinnedRelayKey(options) {
        case .success(let key): relayKey = key
        case .failure(let failure):
            StandardError.write("Error: \(failure.message)")
            return failure.code
        }
        let style: LineOutput.Style = options.json ? .json : .human
        // On a terminal (and without --json), the interactive terminal replaces line mode.
        let terminal =
            !options.json && InteractiveTerminal.isAvailable()
            ? InteractiveTerminal(name: options.name, room: options.room, relay: "\(options.host):\(options.port)")
            : nil
        defer { terminal?.close() }
        let output: any ClientOutput = terminal ?? LineOutput(style: style)
        let loop: PosixEventLoop
        do {
            loop = try PosixEventLoop()
        } catch {
            StandardError.write("Error: \(error.description)")
            return .failure
        }
        var code = ExitCode.success
        var ended = false
        let stall = stallTimeout()
        let fatal = { (message: String) in
            if options.json { output.emit(.error(message: message)) }
            StandardError.write("Error: \(message)")
        }
        let session = ReconnectingSession(
            output: output, loop: loop, link: RelayLinkConfiguration(relayKey: relayKey, relay: relayName(options)),
            connect: { completion in
                TCPConnection.connect(host: options.host, port: options.port, loop: loop, timeout: .seconds(5)) {
                    completion($0.map { $0 })
                }
            },
            makeSecurity: { connection in
                switch makeSecurity(keys, options: options, connection: connection) {
                case .success(let security): return security
                case .failure(let failure): throw failure
                }
            },
            makeClient: { security, connection, recentMessageIDs, ended in
                ChatRoom(
                    name: options.name, room: options.room, security: security, connection: connection, output: output,
                    loop: loop, inbox: inbox, maximumFileSize: options.maximumFileSize, transferStallTimeout: stall,
                    recentMessageIDs: recentMessageIDs, onFinish: ended)
            },
            fatal: fatal,
            onFinish: { outcome in
                if case .linkFailed(let failure) = outcome { fatal(failure.description) }
                code = JoinMode.exitCode(for: outcome)
                ended = true
                loop.stop()
            })
        let input = LoopInbox<InputEvent>(loop: loop, capacity: 64)
        input.setHandler { event in
            switch event {
            case .line(let text): session.submit(line: text)
            case .end: session.endOfInput()
            }
        }
        session.onBackpressure = { paused in paused ? input.pause() : input.resume() }
        do {
            let watcher = try SignalWatcher(loop: loop, signals: SignalWatcher.terminating) { _ in session.interrupt() }
            // Input is read (and the terminal taken) once the first connection attempt has settled,
            // and only if the session goes on; the loop runs meanwhile, so a signal still ends it.
            session.start {
                guard !ended else { return }
                if terminal?.start(input: input, interrupt: { kill(getpid(), SIGINT) }) != true {
                    StandardInputReader.start(posting: input)
                }
            }
            if !ended { try loop.run() }
            withExtendedLifetime(watcher) {}
        } catch {
            StandardError.write("Error: \(error.description)")
            return .failure
        }
        if code == .unavailable || code == .dataError || code == .notPermitted {
            terminal?.close()
        }
        return code
    }

    struct SetupFailure: Error, CustomStringConvertible {
        var message: String
        var code: ExitCode
        var description: String { message }
    }

    /// The long-term keys of a session, read once: a room key, or an identity and its known peers.
    enum Keys {
        case roomKey(RoomKey)
        case automatic(Identity, KnownPeers)
    }

    /// Reads the room key with `--key`; otherwise the identity (made on first use) and the
    /// known-peers file. A known-peers file that exists but cannot be read is an I/O error (74).
    static func loadKeys(_ options: JoinOptions) -> Result<Keys, SetupFailure> {
        if let keyPath = options.keyFile {
            if options.identityFile != nil {
                return .failure(
                    SetupFailure(
                        message: "--identity is not used with --key: a room key replaces identities", code: .usage))
            }
            do {
                return .success(.roomKey(try RoomKey.load(path: keyPath) { StandardError.write("warning: \($0)") }))
            } catch {
                return .failure(SetupFailure(message: error.description, code: .dataError))
            }
        }
        let folder = ConfigurationFolder.path()
        let identityPath = options.identityFile ?? Identity.defaultPath()
        do {
            let identity = try Identity.loadOrCreate(
                path: identityPath,
                created: { path in
                    StandardError.write(
                        "made a new identity key in '\(path)' (mode 0600); keep it to stay recognisable")
                }, warn: { StandardError.write("warning: \($0)") })
            let knownPeers = try KnownPeers(path: KnownPeers.defaultPath(configurationFolder: folder)) {
                StandardError.write("warning: \($0)")
            }
            // Pins of the first format name the relay as typed.
            knownPeers.legacyRelayNames = [
                (options.host.contains(":") ? "[\(options.host)]" : options.host) + ":\(options.port)"
            ]
            return .success(.automatic(identity, knownPeers))
        } catch let error as KeyFileError {
            switch error {
            case .unwritable: return .failure(SetupFailure(message: error.description, code: .ioError))
            default: return .failure(SetupFailure(message: error.description, code: .dataError))
            }
        } catch let error as KnownPeersError {
            return .failure(SetupFailure(message: error.description, code: .ioError))
        } catch {
            return .failure(SetupFailure(message: "cannot read the keys: \(error)", code: .failure))
        }
    }

    /// The end-to-end layer for one connection: fresh session keys, pins under the relay identity
    /// of the address actually connected to.
    static func makeSecurity(_ keys: Keys, options: JoinOptions, connection: any Connection) -> Result<
        any MessageSecurity, SetupFailure
    > {
        switch keys {
        case .roomKey(let roomKey):
            return .success(RoomKeySecurity(roomKey: roomKey, room: options.room, name: options.name))
        case .automatic(let identity, let knownPeers):
            do {
                return .success(
                    try AutomaticKeySecurity(
                        identity: identity.key, name: options.name, room: options.room,
                        relay: KnownPeers.relayIdentity(connectedTo: connection.peerDescription),
                        knownPeers: knownPeers))
            } catch {
                return .failure(SetupFailure(message: "cannot start the session keys: \(error)", code: .failure))
            }
        }
    }

    /// `AESCHAT_TRANSFER_STALL_SECONDS` (1 to 3600), for tests; the default otherwise.
    static func stallTimeout() -> Duration {
        guard let text = ProcessInfo.processInfo.environment["AESCHAT_TRANSFER_STALL_SECONDS"], let seconds = Int(text),
            (1...3600).contains(seconds)
        else { return FileTransfers.defaultStallTimeout }
        return .seconds(seconds)
    }

    /// The process exit code for how a session ended: 0, 130, 69, 65, 77 or 1.
    static func exitCode(for outcome: ReconnectingSession.Outcome) -> ExitCode {
        switch outcome {
        case .finished: .success
        case .interrupted: .interrupted
        case .unavailable: .unavailable
        case .protocolViolation: .dataError
        case .failed: .failure
        case .linkFailed(let failure): failure.isPinFailure ? .notPermitted : .unavailable
        }
    }

    /// The relay as the user named it, `host:port` (an IPv6 literal in brackets), as messages show it.
    static func relayName(_ options: JoinOptions) -> String {
        (options.host.contains(":") ? "[\(options.host)]" : options.host) + ":\(options.port)"
    }

    /// The relay key to pin for this session: the whole key given with `--relay-key` (known_relays,
    /// prompts and fingerprints come with the trust code).
    static func pinnedRelayKey(_ options: JoinOptions) -> Result<RelayPublicKey, SetupFailure> {
        guard case .key(let text) = options.relayKey, let key = RelayPublicKey(text: text) else {
            return .failure(
                SetupFailure(
                    message: "no relay key: pass the relay's whole key (its join line's --relay-key) with --relay-key",
                    code: .usage))
        }
        return .success(key)
    }
}
