import AESChatNames

/// The option tables of every mode. To add an option, add one line to its mode's table; the parser, usage line and
/// help pick it up.
enum OptionTables {
    /// The options `serve` starts with: the one source of its defaults, which its help shows and
    /// the relay's own defaults (`RelayLimits`, `RelayConfiguration`) are taken from.
    private static let serveDefaults = ServeOptions()

    /// `aeschat serve`.
    static let serve = ModeSpec<ServeOptions>(
        mode: .serve,
        abstract: "Run the relay that members connect to.",
        overview: "Run the relay that members connect to. It forwards the members' end-to-end encrypted messages "
            + "within each room. It listens on 127.0.0.1 unless --host says otherwise; use --host 0.0.0.0 or "
            + "--host :: to serve a network.",
        initial: serveDefaults,
        options: [
            .value(
                "--host", "addr", default: serveDefaults.host,
                help: "Address to listen on: an IPv4 or IPv6 address or a hostname.",
                parse: Values.host, into: \.host),
            .value(
                "--port", "n", default: String(serveDefaults.port), help: "TCP port to listen on, 1 to 65535.",
                parse: Values.port,
                into: \.port),
            .value(
                "--relay-key", "file",
                help: "The relay's key file, made on first start (mode 0600) and never overwritten (default: "
                    + "$XDG_CONFIG_HOME/aeschat/relay-key, else ~/.config/aeschat/relay-key).",
                parse: Values.path, into: \.relayKeyFile),
            .value(
                "--previous-relay-key", "file",
                help: "The relay's previous key file during a key rotation: members pinned to it still connect and "
                    + "are told the new key.",
                parse: Values.path, into: \.previousRelayKeyFile),
            .flag(
                "--show-key", help: "Print the relay key's fingerprint and join line, then exit.", into: \.showKey),
            .value(
                "--max-pending-output", "bytes", default: Values.sizeText(serveDefaults.maxPendingOutput),
                help: "Output queued for one member beyond which it is disconnected as too slow; "
                    + "a byte count above 16M, with an optional K, M or G suffix (1024-based).",
                parse: Values.outputCap, into: \.maxPendingOutput),
            .value(
                "--max-frame-size", "bytes", default: Values.sizeText(serveDefaults.maxFrameSize),
                help: "Largest frame a client may send, 1K to 16M; a longer length prefix closes the connection.",
                parse: Values.frameSize, into: \.maxFrameSize),
            .value(
                "--handshake-timeout", "secs", default: String(serveDefaults.handshakeTimeout),
                help: "Close a connection that has not said hello within this many seconds.",
                parse: Values.seconds, into: \.handshakeTimeout),
            .value(
                "--handshake-rate", "n", default: String(serveDefaults.handshakeRate),
                help: "Encrypted-link handshakes per second one address may start on average; beyond rate and "
                    + "burst the relay answers busy. 0 for no limit.",
                parse: Values.limit, into: \.handshakeRate),
            .value(
                "--handshake-burst", "n", default: String(serveDefaults.handshakeBurst),
                help: "Handshakes one address may start at once.", parse: Values.limit, into: \.handshakeBurst),
            .value(
                "--max-connections", "n", default: String(serveDefaults.maxConnections),
                help: "Connections open at once; 0 for no limit.",
                parse: Values.limit, into: \.maxConnections),
            .value(
                "--max-connections-per-address", "n", default: String(serveDefaults.maxConnectionsPerAddress),
                help: "Connections open at once from one address; 0 for no limit.", parse: Values.limit,
                into: \.maxConnectionsPerAddress),
            .value(
                "--message-rate", "n", default: String(serveDefaults.messageRate),
                help: "Frames (file chunks, pings and pongs included) per second each member may send on "
                    + "average; 0 for no limit.",
                parse: Values.limit, into: \.messageRate),
            .value(
                "--message-burst", "n", default: String(serveDefaults.messageBurst),
                help: "Frames a member may send at once; beyond rate and burst it is disconnected.",
                parse: Values.limit, into: \.messageBurst),
            .value(
                "--idle-timeout", "secs", default: String(serveDefaults.idleTimeout),
                help: "Ping a member silent this long; close it when silent twice as long.", parse: Values.seconds,
                into: \.idleTimeout),
            .value(
                "--byte-rate", "bytes", default: Values.sizeText(serveDefaults.byteRate),
                help: "Payload bytes per second each member may send on average, a direct or multicast payload "
                    + "counted once per recipient; 0 for no limit.",
                parse: Values.byteLimit, into: \.byteRate),
            .value(
                "--byte-burst", "bytes", default: Values.sizeText(serveDefaults.byteBurst),
                help: "Payload bytes a member may send at once, and the most one frame may cost; beyond rate "
                    + "and burst it is disconnected.",
                parse: Values.byteBurst, into: \.byteBurst),
            .value(
                "--frame-grace", "secs", default: String(serveDefaults.frameGrace),
                help: "Seconds a frame in progress has to complete, on top of its length at --min-frame-rate.",
                parse: Values.seconds, into: \.frameGrace),
            .value(
                "--min-frame-rate", "bytes", default: Values.sizeText(serveDefaults.minFrameRate),
                help: "Slowest a frame may arrive, in bytes per second; a slower one closes the connection. "
                    + "0 for no deadline.",
                parse: Values.byteLimit, into: \.minFrameRate),
            .value(
                "--frame-budget", "bytes", default: Values.sizeText(serveDefaults.frameBudget),
                help: "Memory for partly received large frames of all connections; a frame beyond it is "
                    + "refused. 0 for no limit.",
                parse: Values.byteLimit, into: \.frameBudget),
            .value(
                "--frame-budget-per-address", "bytes", default: Values.sizeText(serveDefaults.frameBudgetPerAddress),
                help: "The same for the connections of one address; 0 for no limit.", parse: Values.byteLimit,
                into: \.frameBudgetPerAddress),
            .value(
                "--cluster", "url",
                help: "Share rooms with the other relays using this Redis: redis://[user@]host[:port][/db] or "
                    + "unix:///path. The password comes from the environment variable AESCHAT_CLUSTER_PASSWORD, "
                    + "never the command line.",
                parse: Values.clusterAddress, into: \.cluster),
            .value(
                "--cluster-prefix", "name", default: serveDefaults.clusterPrefix,
                help: "Prefix of the cluster's keys and channels in Redis, so that several clusters can share one "
                    + "Redis: letters, digits, '-', '_' and '.'.",
                parse: Values.clusterPrefix, into: \.clusterPrefix),
            .value(
                "--cluster-dead-after", "secs", default: String(serveDefaults.clusterDeadAfter),
                help: "Take a relay of the cluster for dead once it has been silent this long (2 to 3600 seconds); "
                    + "its members are then gone for the others.",
                parse: Values.clusterDeadAfter, into: \.clusterDeadAfter),
        ],
        command: { .serve($0) }
    )

    /// `aeschat join`.
    static let join = ModeSpec<JoinOptions>(
        mode: .join,
        abstract: "Join a room on a relay and chat.",
        overview: "Join a room on a relay as a member and chat. Messages are encrypted end to end; the relay "
            + "cannot read them.",
        initial: JoinOptions(name: ""),
        options: [
            .value(
                "--name", "name", default: "$USER",
                help: "Your member name (1-32 chars: A-Z a-z 0-9 - _ .); without it, the configuration file's "
                    + "name, else $USER.",
                parse: Values.memberName, into: \.name),
            .value(
                "--inbox", "dir",
                help: "Inbox folder for received files; created if missing. Asked for on a terminal when not given; "
                    + "without it, a pipe declines every file.",
                parse: Values.path, into: \.inbox),
            .value(
                "--room", "room", default: "lobby", help: "Room to join (1-64 chars: A-Z a-z 0-9 - _ .).",
                parse: Values.roomName, into: \.room),
            .value(
                "--host", "addr", default: "127.0.0.1", help: "Relay address: an IPv4 or IPv6 address or a hostname.",
                parse: Values.host, into: \.host),
            .value(
                "--port", "n", default: "7777", help: "Relay TCP port, 1 to 65535.", parse: Values.port, into: \.port),
            .value(
                "--relay-key", "key",
                help: "The relay's key (52 characters, from its join line) or fingerprint (32 hex digits), "
                    + "pinned for this host and port in known_relays.",
                parse: Values.relayKey, into: \.relayKey),
            .flag(
                "--accept-new-relay-key",
                help: "Trust and pin the key a relay new to this computer presents, without asking.",
                into: \.acceptNewRelayKey),
            .value(
                "--key", "file", help: "Room key file made by 'aeschat keygen --out <file>'.", parse: Values.path,
                into: \.keyFile),
            .flag("--json", help: "Write JSON output, one object per line, instead of text.", into: \.json),
            .value(
                "--identity", "file",
                help: "Your identity key file (made on first use; default: $XDG_CONFIG_HOME/aeschat/identity, "
                    + "else ~/.config/aeschat/identity). Not used with --key.",
                parse: Values.path, into: \.identityFile),
            .value(
                "--accept-files", "all|ask|none",
                help: "Take offered files without asking, ask for each (y/n, /accept, /decline; 60 s, then no), "
                    + "or decline them all. (default: ask on a terminal, else all)",
                parse: Values.acceptFiles, into: \.acceptFiles),
            .value(
                "--max-file-size", "bytes",
                help: "Decline files larger than this (e.g. 100M, 4G, or unlimited). "
                    + "(default: 1G when files are taken without asking, else unlimited)",
                parse: Values.fileSizeLimit, into: \.maximumFileSize),
            .value(
                "--bell", "when",
                help: "When the terminal rings the bell: off, mentions (messages naming you, private ones) or all. "
                    + "(default: the last /bell setting, else mentions)",
                parse: Values.bell, into: \.bell),
            .value(
                "--hold", "all|changed", default: "changed",
                help: "While a verified member's changed key waits for /trust: hold your lines only for them "
                    + "(changed), or every line (all); /hold changes it.",
                parse: Values.hold, into: \.holdsEverything),
            .value(
                "--color", "when", default: "auto",
                help: "Colour in the interactive terminal: auto (unless NO_COLOR is set), always or never.",
                parse: Values.color, into: \.color),
            .value(
                "--log", "file",
                help: "Append the session to this file as plain text with timestamps (made with mode 0600).",
                parse: Values.path, into: \.logFile),
            .value(
                "--config", "file",
                help: "Read settings from this file instead of $XDG_CONFIG_HOME/aeschat/config (else "
                    + "~/.config/aeschat/config); options given here win.",
                parse: Values.path, into: \.configFile),
            .flag("--no-config", help: "Read no configuration file.", into: \.noConfig),
        ],
        command: { .join($0) },
        configuration: joinConfiguration
    )

    /// The settings `join`'s configuration file may hold, in the order docs/CLI.md lists them: each the name of a
    /// value-taking option above without its dashes. Flags (`--json`, `--accept-new-relay-key`) and the choice of
    /// file itself are for the command line only.
    static let joinConfigurationKeys = [
        "name", "host", "port", "room", "inbox", "relay-key", "key", "identity", "accept-files", "max-file-size",
        "bell", "hold", "color", "log",
    ]

    /// How `join` reads its configuration file (see ``ConfigurationFile``).
    static let joinConfiguration = ConfigurationSupport<JoinOptions>(
        keys: joinConfigurationKeys, aliases: ["colour": "color"],
        choice: { options in
            if options.noConfig { return .none }
            return options.configFile.map { .file($0) } ?? .standard
        },
        complete: { (options: inout JoinOptions, environment: [String: String], file: String?) throws(UsageError) in
            guard options.name.isEmpty else { return }
            let inFile = file.map { " or set 'name' in \(Quote.quoted($0))" } ?? ""
            guard let user = environment["USER"], !user.isEmpty else {
                throw UsageError("no member name: give --name <name>\(inFile) ($USER is not set)", mode: .join)
            }
            guard Names.isValidMemberName(user) else {
                throw UsageError(
                    "no --name given, and $USER \(Quote.quoted(user)) is not a valid member name: expected 1 to "
                        + "\(Names.maxMemberNameLength) characters: \(Values.nameAlphabet); give --name <name>\(inFile)",
                    mode: .join)
            }
            options.name = user
        }
    )

    /// `aeschat keygen`.
    static let keygen = ModeSpec<KeygenOptions>(
        mode: .keygen,
        abstract: "Generate a random room key or an identity key.",
        overview: "Generate a random 256-bit room key and print it, or write it to a new file with --out. "
            + "Share it only with the members of the room, who pass it to join with --key. With --identity, make "
            + "a new Ed25519 identity key file instead (join makes one on first use anyway).",
        initial: KeygenOptions(),
        options: [
            .value(
                "--out", "file", help: "Write the key to this new file (mode 0600) instead of printing it.",
                parse: Values.path,
                into: \.out),
            .value(
                "--identity", "file", help: "Make a new identity key file (mode 0600) instead of a room key.",
                parse: Values.path, into: \.identity),
        ],
        command: { .keygen($0) }
    )

    /// `aeschat selftest`.
    static let selftest = ModeSpec<SelfTestOptions>(
        mode: .selftest,
        abstract: "Check this installation and print a short report.",
        overview: "Check the libgcrypt in use, every primitive against published test vectors, the worked examples of "
            + "the protocol document, a whole chat (a relay and two members: a line each way, a private line, a small "
            + "file) in process and over loopback TCP, your configuration folder, identity file and known_peers, and "
            + "the random generator. Exits 0 when every check passes, 1 otherwise.",
        initial: SelfTestOptions(),
        options: [
            .flag("--json", help: "Write the report as JSON, one object per line, instead of text.", into: \.json),
            .value(
                "--inbox", "dir", help: "Also check that this inbox folder exists, is yours and is writable.",
                parse: Values.path, into: \.inbox),
        ],
        command: { .selftest($0) }
    )

    /// The help-facing view of a mode's table.
    static func options(of mode: Mode) -> [OptionInfo] {
        switch mode {
        case .serve: serve.options.map(\.info)
        case .join: join.options.map(\.info)
        case .keygen: keygen.options.map(\.info)
        case .selftest: selftest.options.map(\.info)
        }
    }

    /// The one-sentence summary of a mode.
    static func abstract(of mode: Mode) -> String {
        switch mode {
        case .serve: serve.abstract
        case .join: join.abstract
        case .keygen: keygen.abstract
        case .selftest: selftest.abstract
        }
    }

    /// The OVERVIEW paragraph of a mode.
    static func overview(of mode: Mode) -> String {
        switch mode {
        case .serve: serve.overview
        case .join: join.overview
        case .keygen: keygen.overview
        case .selftest: selftest.overview
        }
    }
}
