/// The options of `aeschat join`. Values are already validated when they come from the parser.
public struct JoinOptions: Equatable, Sendable {
    /// The member name, valid by ``Names/isValidMemberName(_:)``.
    public var name: String
    /// The inbox directory path, if one was given (never empty). Without it, `join` asks on a terminal;
    /// otherwise it runs without an inbox and declines every file offered.
    public var inbox: String?
    /// The room to join, valid by ``Names/isValidRoomName(_:)``.
    public var room = "lobby"
    /// The relay's address: an IPv4 or IPv6 literal (without brackets) or a hostname.
    public var host = "127.0.0.1"
    /// The relay's TCP port, 1 to 65535.
    public var port: UInt16 = 7777
    /// The relay's key or fingerprint from `--relay-key`, pinned without a prompt; nil: the pin in `known_relays`,
    /// else a prompt on a terminal.
    public var relayKey: RelayKeyArgument? = nil
    /// Whether to trust and pin the key a relay new to this computer presents, without a prompt.
    public var acceptNewRelayKey = false
    /// The key file path, if one was given (never empty).
    public var keyFile: String? = nil
    /// Whether to write JSON output instead of text.
    public var json = false
    /// The identity file, if one was given (never empty); the default lives in the configuration folder.
    public var identityFile: String? = nil
    /// Files larger than this are declined; nil: the default (``defaultUnattendedMaximumFileSize`` when files
    /// are taken without asking, else unlimited); `UInt64.max`: unlimited (`--max-file-size unlimited`).
    public var maximumFileSize: UInt64? = nil
    /// When the interactive terminal rings the bell; nil: the setting the last session saved, else mentions.
    public var bell: BellSetting? = nil
    /// `--hold all`: while a changed key waits for `/trust`, every room line is held, not only those for that member
    /// (`/hold` changes it during the session).
    public var holdsEverything = false
    /// Whether the interactive terminal uses colour.
    public var color: ColorSetting = .auto
    /// The file the session is appended to as plain text, if one was given (never empty).
    public var logFile: String? = nil
    /// The configuration file from `--config`, if one was given (never empty).
    public var configFile: String? = nil
    /// Whether `--no-config` was given: no configuration file is read.
    public var noConfig = false
    /// What happens to offered files (`--accept-files`); nil: `ask` on an interactive terminal, else `all`.
    public var acceptFiles: AcceptFiles? = nil

    /// The largest file taken without asking unless `--max-file-size` says otherwise: 1 GiB.
    public static let defaultUnattendedMaximumFileSize: UInt64 = 1 << 30

    /// Creates join options.
    ///
    /// - Parameters:
    ///   - name: The member name.
    ///   - inbox: The inbox directory path, if any.
    ///   - room: The room to join.
    ///   - host: The relay's address.
    ///   - port: The relay's TCP port.
    ///   - keyFile: The key file path, if any.
    ///   - json: Whether to write JSON output.
    public init(
        name: String,
        inbox: String? = nil,
        room: String = "lobby",
        host: String = "127.0.0.1",
        port: UInt16 = 7777,
        keyFile: String? = nil,
        json: Bool = false,
        identityFile: String? = nil
    ) {
        self.identityFile = identityFile
        self.name = name
        self.inbox = inbox
        self.room = room
        self.host = host
        self.port = port
        self.keyFile = keyFile
        self.json = json
    }
}

/// When the interactive terminal rings the bell for an incoming message (`--bell`, `bell =`).
public enum BellSetting: String, CaseIterable, Equatable, Sendable {
    /// Never.
    case off
    /// For messages that name the user, and private messages.
    case mentions
    /// For every message from someone else.
    case all
}

/// Whether the interactive terminal writes colour (`--color`, `color =`). Line mode and `--json` never do.
public enum ColorSetting: String, CaseIterable, Equatable, Sendable {
    /// Colour unless `NO_COLOR` is set.
    case auto
    /// Colour even when `NO_COLOR` is set.
    case always
    /// No colour or other SGR code at all, as with `NO_COLOR`.
    case never
}

/// What `join --accept-files` chooses for files other members offer.
public enum AcceptFiles: String, Equatable, Sendable, CaseIterable {
    /// Take every file into the inbox (within `--max-file-size`).
    case all
    /// Ask the user for each file (or folder).
    case ask
    /// Decline every file, with a reason the sender sees.
    case none
}

/// What `join --relay-key` names: the relay's whole public key, as its join line carries it, or its fingerprint.
/// The syntax is checked; whether it is the relay's key is the join's business.
public enum RelayKeyArgument: Equatable, Sendable {
    /// The key's 52 base32 characters, in lower case, without spaces or dashes.
    case key(String)
    /// The fingerprint's 32 hexadecimal digits, in lower case, without the `relay` prefix or separators.
    case fingerprint(String)
}
