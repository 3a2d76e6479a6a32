public import AESChatCLI
import AESChatCrypto
import Foundation

/// `aeschat join`: connects to a relay, sends each line of standard input, prints what arrives.
public enum JoinMode {
    /// Runs a client session until input ends, the user interrupts or the relay goes away.
    /// - Returns: the process exit code: 0 after a clean leave, 64 when the terminal's inbox question gets no
    ///   answer, 65 for a bad key file, 69 when the relay is unreachable or refuses, 74 when the inbox cannot be made or is
    ///   not the user's alone, when the `--log` file cannot be used, or when `known_peers` or `known_relays` exists
    ///   but cannot be read, 77 when
    ///   the relay's pinned key does not complete the encrypted link or a new relay's key is not
    ///   confirmed, 130 when interrupted.
    public static func run(_ options: JoinOptions) -> ExitCode {
        // The log is opened first, so that a file that cannot be used stops the session before anything
        // is made or sent.
        var sessionLog: SessionLog?
        if let logPath = options.logFile {
            do {
                sessionLog = try SessionLog(path: logPath)
            } catch {
                StandardError.write("Error: \(error.description)")
                return .ioError
            }
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
        let knownRelays: KnownRelays
        do {
            knownRelays = try KnownRelays(
                path: KnownRelays.defaultPath(configurationFolder: ConfigurationFolder.path()),
                warn: { StandardError.write("warning: \($0)") })
        } catch {
            StandardError.write("Error: \(error.description)")
            return .ioError
        }
        // Without --inbox, a terminal asks for the folder; a pipe (a send-only bot) goes without one, and every
        // file offered to it is declined with a reason the sender sees.
        var inboxPath = options.inbox
        if inboxPath == nil, InboxPrompt.canAsk {
            guard let answer = InboxPrompt.ask(writingTo: options.json ? 2 : 1) else {
                StandardError.write("Error: no inbox folder given")
                return .usage
            }
            inboxPath = answer
        }
        var inbox: Inbox?
        if let inboxPath {
            do {
                let opened = try Inbox(path: inboxPath)
                opened.removeStaleParts()
                inbox = opened
            } catch {
                StandardError.write("Error: \(error.description)")
                return .ioError
            }
        }
        // The relay key: the pin, or one pinned now from --relay-key, the question or --accept-new-relay-key.
        var relayKey: RelayPublicKey
        switch JoinRelayKey.choose(
            options: options, knownRelays: knownRelays, canAsk: !options.json && InboxPrompt.canAsk,
            fetch: { fetchRelayKeys(options, loop: nil) }, ask: JoinRelayKey.askOnTerminal,
            info: { StandardError.write($0) })
        {
        case .success(let key): relayKey = key
        case .failure(let failure):
            StandardError.write("Error: \(failure.message)")
            return failure.code
        }
        // The claim key for this relay and name (docs/PROTOCOL.md section 3.1), so that a new connection takes the
        // name over at once from a stale one of the same key.
        let nameClaimKey: NameClaimKey
        switch makeNameClaimKey(keys, relayKey: relayKey, name: options.name) {
        case .success(let key): nameClaimKey = key
        case .failure(let failure):
            StandardError.write("Error: \(failure.message)")
            return failure.code
        }
        let style: LineOutput.Style = options.json ? .json : .human
        // On a terminal (and without --json), the interactive terminal replaces line mode.
        let terminal =
            !options.json && InteractiveTerminal.isAvailable()
            ? InteractiveTerminal(
                name: options.name, room: options.room, relay: "\(options.host):\(options.port)",
                bell: options.bell.flatMap { BellMode(rawValue: $0.rawValue) },
                color: ColorChoice(rawValue: options.color.rawValue) ?? .auto)
            : nil
        defer { terminal?.close() }
        let shown: any ClientOutput = terminal ?? LineOutput(style: style)
        let logging = sessionLog.map { LoggingOutput(shown, log: $0) }
        let output: any ClientOutput = logging ?? shown
        logging?.record("--- session started: \(options.name) in \(options.room) at \(relayName(options))")
        defer { logging?.record("--- session ended") }
        let (filePolicy, maximumFileSize) = filePolicy(options, interactive: terminal != nil)
        let loop: PosixEventLoop
        do {
            loop = try PosixEventLoop()
        } catch {
            StandardError.write("Error: \(error.description)")
            return .failure
        }
        var code = ExitCode.success
        var ended = false
        var pinFailure: RelayLinkFailure?
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
                let relay = (relayKey, knownRelays)
                // The profile says whether this client takes files (section 6.5), so that nobody offers it any in vain.
                let features = MemberFeatures(inbox != nil && filePolicy != .none ? [MemberFeatures.files] : [])
                switch makeSecurity(keys, options: options, connection: connection, relay: relay, features: features) {
                case .success(let security): return security
                case .failure(let failure): throw failure
                }
            },
            makeClient: { security, connection, recentMessageIDs, ended in
                let room = ChatRoom(
                    name: options.name, room: options.room, security: security, connection: connection, output: output,
                    loop: loop, inbox: inbox, maximumFileSize: maximumFileSize, filePolicy: filePolicy,
                    askTimeout: askTimeout(), transferStallTimeout: stall,
                    recentMessageIDs: recentMessageIDs, onFinish: ended)
                room.describeRelay = { describeRelay(relayKey, options: options, knownRelays: knownRelays) }
                return room
            },
            fatal: fatal,
            onFinish: { outcome in
                if case .linkFailed(let failure) = outcome {
                    if failure.isPinFailure { pinFailure = failure } else { fatal(failure.description) }
                }
                code = JoinMode.exitCode(for: outcome)
                ended = true
                loop.stop()
            })
        session.holdsEverything = options.holdsEverything
        let input = LoopInbox<InputEvent>(loop: loop, capacity: 64)
        input.setHandler { event in
            switch event {
            case .line(let text):
                if let logging, let line = ownLine(text, name: options.name) { logging.record(line) }
                session.submit(line: text)
            case .end: session.endOfInput()
            }
        }
        session.nameClaimKey = nameClaimKey
        session.onBackpressure = { paused in paused ? input.pause() : input.resume() }
        session.onRelayKeysAnnounced = { announced, vouchedBy in
            guard
                let pinned = JoinRelayKey.pinAnnounced(
                    announced, vouchedBy: vouchedBy, options: options, knownRelays: knownRelays)
            else { return }
            relayKey = pinned.key
            output.emit(.info(pinned.line))
        }
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
        if let pinFailure {
            showMismatch(pinFailure, options: options, knownRelays: knownRelays, output: output)
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

    /// The key that claims `name` on the relay whose key is `relayKey`: derived from the identity's seed in
    /// automatic-key mode, and in pre-shared-key mode (which has no identity) from `relay-name-key` in the
    /// configuration folder, made on first use (mode 0600, the identity file's format) and never shown to the room.
    static func makeNameClaimKey(
        _ keys: Keys, relayKey: RelayPublicKey, name: String, folder: String = ConfigurationFolder.path()
    ) -> Result<NameClaimKey, SetupFailure> {
        let secret: Identity
        switch keys {
        case .automatic(let identity, _):
            secret = identity
        case .roomKey:
            do {
                secret = try Identity.loadOrCreate(
                    path: folder + "/" + nameKeyFileName,
                    warn: { StandardError.write("warning: \($0)") })
            } catch .unwritable(let file, let path, let reason) {
                return .failure(
                    SetupFailure(
                        message: KeyFileError.unwritable(file, path: path, reason: reason).description, code: .ioError))
            } catch {
                return .failure(SetupFailure(message: error.description, code: .dataError))
            }
        }
        do {
            return .success(try NameClaimKey(secret: secret.key.seed, relayKey: relayKey, name: name))
        } catch {
            return .failure(SetupFailure(message: "cannot make the name claim key: \(error)", code: .failure))
        }
    }

    /// The file, in the configuration folder, whose key claims names in pre-shared-key mode.
    static let nameKeyFileName = "relay-name-key"

    /// The end-to-end layer for one connection: fresh session keys, pins under the relay identity
    /// of the relay key the connection's link used (``KnownPeers/relayIdentity(of:)``), and older
    /// pins of the same relay found under its earlier keys and addresses.
    static func makeSecurity(
        _ keys: Keys, options: JoinOptions, connection: any Connection,
        relay: (key: RelayPublicKey, knownRelays: KnownRelays), features: MemberFeatures
    ) -> Result<any MessageSecurity, SetupFailure> {
        switch keys {
        case .roomKey(let roomKey):
            return .success(RoomKeySecurity(roomKey: roomKey, room: options.room, name: options.name))
        case .automatic(let identity, let knownPeers):
            knownPeers.legacyRelayNames = JoinRelayKey.legacyRelayNames(
                current: relay.key, options: options, knownRelays: relay.knownRelays,
                connectedTo: connection.peerDescription)
            do {
                return .success(
                    try AutomaticKeySecurity(
                        identity: identity.key, name: options.name, room: options.room,
                        relay: KnownPeers.relayIdentity(of: relay.key), knownPeers: knownPeers, features: features))
            } catch {
                return .failure(SetupFailure(message: "cannot start the session keys: \(error)", code: .failure))
            }
        }
    }

    /// `AESCHAT_TRANSFER_STALL_SECONDS` (1 to 3600), for tests; the default otherwise.
    /// How long a file offer waits for the user's answer: 60 s, or `AESCHAT_ASK_SECONDS` (1 to 3600; for tests).
    static func askTimeout() -> Duration {
        guard let text = ProcessInfo.processInfo.environment["AESCHAT_ASK_SECONDS"], let seconds = Int(text),
            (1...3600).contains(seconds)
        else { return FileTransfers.defaultAskTimeout }
        return .seconds(seconds)
    }

    static func stallTimeout() -> Duration {
        guard let text = ProcessInfo.processInfo.environment["AESCHAT_TRANSFER_STALL_SECONDS"], let seconds = Int(text),
            (1...3600).contains(seconds)
        else { return FileTransfers.defaultStallTimeout }
        return .seconds(seconds)
    }

    /// How the user's own line goes into the log, as others see it: `<alice> hi`, `* alice waves`,
    /// `-> *bob* hi` for a private message; nil for other commands. Escaped like network text.
    static func ownLine(_ text: String, name: String) -> String? {
        let clean = TerminalText.escapeControls
        switch ChatCommand(parsing: text) {
        case .message(let message): return "<\(name)> \(clean(message))"
        case .action(let action): return "* \(name) \(clean(action))"
        case .privateMessage(let recipient, let message): return "-> *\(recipient)* \(clean(message))"
        default: return nil
        }
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

    /// The answer to `/verify relay`: the relay's address, the key this session uses, and when and how that key was
    /// pinned in `known_relays` (nil when the pin could not be saved).
    static func describeRelay(_ key: RelayPublicKey, options: JoinOptions, knownRelays: KnownRelays) -> ClientEvent {
        let address = KnownRelays.address(host: options.host, port: options.port)
        let pin = knownRelays.pins(for: address).last { $0.key == key }
        return .relayKey(
            address: relayName(options), fingerprint: key.fingerprint, pinnedAt: pin?.firstSeen,
            how: pin?.source.description)
    }

    /// The relay as the user named it, `host:port` (an IPv6 literal in brackets), as messages show it.
    static func relayName(_ options: JoinOptions) -> String {
        (options.host.contains(":") ? "[\(options.host)]" : options.host) + ":\(options.port)"
    }

    /// Fetches the keys the relay presents (``RelayKeyProbe``), running `loop` (or a loop of its own)
    /// until it answers.
    static func fetchRelayKeys(_ options: JoinOptions, loop: PosixEventLoop?) -> Result<
        [RelayPublicKey], JoinRelayKey.FetchFailure
    > {
        let running: PosixEventLoop
        if let loop {
            running = loop
        } else {
            do {
                running = try PosixEventLoop()
            } catch {
                return .failure(JoinRelayKey.FetchFailure(reason: error.description))
            }
        }
        var result: Result<[RelayPublicKey], JoinRelayKey.FetchFailure>?
        RelayKeyProbe.fetch(host: options.host, port: options.port, loop: running, timeout: .seconds(5)) { answer in
            result = answer.mapError { JoinRelayKey.FetchFailure(reason: $0.description) }
            running.stop()
        }
        while result == nil {
            do {
                try running.run()
            } catch {
                return .failure(JoinRelayKey.FetchFailure(reason: error.description))
            }
        }
        return result ?? .failure(JoinRelayKey.FetchFailure(reason: "no answer"))
    }

    /// What happens to offered files, and the largest taken: `--accept-files` or, without it, `ask` on the
    /// interactive terminal and `all` otherwise (so that scripted use keeps receiving); `--max-file-size`
    /// or, without it, 1 GiB when files are taken without asking and no limit when the user is asked.
    static func filePolicy(_ options: JoinOptions, interactive: Bool) -> (IncomingFilePolicy, UInt64?) {
        let policy: IncomingFilePolicy
        switch options.acceptFiles {
        case .all?: policy = .all
        case .ask?: policy = .ask
        case AcceptFiles.none?: policy = .none
        case nil: policy = interactive ? .ask : .all
        }
        switch options.maximumFileSize {
        case UInt64.max?: return (policy, nil)
        case let limit?: return (policy, limit)
        case nil: return (policy, policy == .all ? JoinOptions.defaultUnattendedMaximumFileSize : nil)
        }
    }

    /// Shows why a pinned relay key failed: the mismatch screen on standard error, or with `--json`
    /// one `error` event (and its line on standard error). What the relay presents is fetched again
    /// (on a loop of its own) when the failed handshake did not say.
    static func showMismatch(
        _ failure: RelayLinkFailure, options: JoinOptions, knownRelays: KnownRelays, output: any ClientOutput
    ) {
        let pinned: RelayPublicKey
        var presented: [RelayPublicKey]?
        switch failure.kind {
        case .keyMismatch(let key, let keys):
            pinned = key
            presented = keys
        case .handshakeFailed(let key): pinned = key
        default: return
        }
        let shown = JoinRelayKey.mismatch(
            pinned: pinned, presented: presented, options: options, knownRelays: knownRelays,
            fetch: { fetchRelayKeys(options, loop: nil) })
        if options.json {
            output.emit(.error(message: shown.line))
            StandardError.write("Error: \(shown.line)")
        } else {
            StandardError.write(shown.screen)
        }
    }
}
