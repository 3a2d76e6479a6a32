#if canImport(Glibc)
    import Glibc
#elseif canImport(Darwin)
    import Darwin
#endif

/// A known-relays file that exists but cannot be used. `join` then refuses to start (exit 74) rather than run
/// without the pins, and never writes to the file.
public enum KnownRelaysError: Error, Equatable, Sendable, CustomStringConvertible {
    case unreadable(path: String, reason: String)
    case malformed(path: String, line: Int, reason: String)

    public var description: String {
        switch self {
        case .unreadable(let path, let reason):
            "cannot read the known relays file '\(path)' (\(reason)); aeschat will not connect without its pins: "
                + "repair it, or move it aside to start again with no relay pinned"
        case .malformed(let path, let line, let reason):
            "known relays file '\(path)' line \(line) is not a relay pin (\(reason)); "
                + "correct or delete that line, or move the file aside to start again with no relay pinned"
        }
    }
}

/// How a relay key came to be pinned: the last field of a `known_relays` line.
public enum RelayPinSource: Equatable, Sendable, CustomStringConvertible {
    /// The whole key was given: a join line, or `--relay-key <key>`.
    case joinLine
    /// A fingerprint was given (`--relay-key <fingerprint>`, or pasted at the prompt) and matched the key presented.
    case typedFingerprint
    /// The key the relay presented was accepted without a check (`yes` at the prompt, `--accept-new-relay-key`).
    case firstUse
    /// The relay announced it inside a link authenticated by the key pinned before, whose fingerprint starts with
    /// these 8 hex digits.
    case announcedBy(String)

    /// The field as the file spells it: `join-line`, `typed-fingerprint`, `first-use`, `announced-by-4f1c93a0`.
    public var description: String {
        switch self {
        case .joinLine: "join-line"
        case .typedFingerprint: "typed-fingerprint"
        case .firstUse: "first-use"
        case .announcedBy(let prefix): "announced-by-\(prefix)"
        }
    }

    /// The source a file's field names; nil for anything else.
    public init?(field: String) {
        switch field {
        case "join-line": self = .joinLine
        case "typed-fingerprint": self = .typedFingerprint
        case "first-use": self = .firstUse
        default:
            let prefix = "announced-by-"
            guard field.hasPrefix(prefix) else { return nil }
            let hex = field.dropFirst(prefix.count)
            guard hex.count == 8, hex.utf8.allSatisfy(Self.isLowerHexDigit) else { return nil }
            self = .announcedBy(String(hex))
        }
    }

    /// Whether a byte is `0`–`9` or `a`–`f`.
    private static func isLowerHexDigit(_ byte: UInt8) -> Bool {
        (UInt8(ascii: "0")...UInt8(ascii: "9")).contains(byte) || (UInt8(ascii: "a")...UInt8(ascii: "f")).contains(byte)
    }

    /// How a person reads it, on the mismatch screen: `from a join line`, ….
    public var explanation: String {
        switch self {
        case .joinLine: "from a join line or --relay-key"
        case .typedFingerprint: "after its fingerprint was checked"
        case .firstUse: "on first use, without a check"
        case .announcedBy(let prefix):
            "as announced by its previous key (relay \(prefix.prefix(4)) \(prefix.dropFirst(4)) …)"
        }
    }
}

/// One relay pin: a key, when it was first seen and how it was pinned.
public struct KnownRelay: Equatable, Sendable {
    /// The pinned key.
    public var key: RelayPublicKey
    /// When it was pinned, as the file says it: an ISO 8601 UTC date and time such as `2026-12-03T09:47:12Z` (or a
    /// date alone).
    public var firstSeen: String
    /// How it was pinned.
    public var source: RelayPinSource

    /// Makes a pin.
    /// - Parameters:
    ///   - key: the pinned key.
    ///   - firstSeen: the ISO 8601 date and time it was pinned.
    ///   - source: how it was pinned.
    public init(key: RelayPublicKey, firstSeen: String, source: RelayPinSource) {
        self.key = key
        self.firstSeen = firstSeen
        self.source = source
    }
}

/// The relay keys this computer has pinned, like SSH's known_hosts: one key per relay address as typed.
///
/// File format (`known_relays` beside `known_peers` in the configuration folder, mode 0600), one pin per line:
/// `<host:port> <key, 52 base32 characters> <first seen, ISO 8601 UTC> <join-line | typed-fingerprint | first-use |
/// announced-by-<first 8 hex digits of the old key's fingerprint>>`. The address is the relay as typed with its host
/// in lower case, an IPv6 host in brackets (`[::1]:7777`). A later line for an address replaces an earlier one, and
/// every line is kept: lines are only ever appended, each in one write and one `fsync`. `#` comments and blank
/// lines are skipped; any other line, or a file that cannot be read or is larger than 1 MiB, is an error
/// (``KnownRelaysError``): the store never treats a damaged file as empty. Loop thread only.
public final class KnownRelays {
    /// The largest file read (beyond it `join` refuses to start).
    public static let maximumFileSize = 1 << 20

    private let file: PinFile?
    private let warn: (String) -> Void
    /// Every pin of each address, oldest first.
    private var pins: [String: [KnownRelay]] = [:]

    /// A store in memory only (tests).
    public init() {
        file = nil
        warn = { _ in }
    }

    /// Loads the store at `path`; a missing file is an empty store, made at the first pin.
    /// - Parameters:
    ///   - path: the file.
    ///   - warn: told when an append fails; the session goes on with the pin in memory.
    /// - Throws: ``KnownRelaysError`` when the file exists but cannot be read or parsed.
    public init(path: String, warn: @escaping (String) -> Void = { _ in }) throws(KnownRelaysError) {
        let file = PinFile(path: path)
        self.warn = warn
        let text: String?
        do {
            text = try file.read(limit: Self.maximumFileSize)
        } catch {
            throw .unreadable(path: path, reason: error.reason)
        }
        self.file = file
        guard let text else { return }
        do {
            pins = try Self.parse(text)
        } catch {
            throw .malformed(path: path, line: error.line, reason: error.reason)
        }
    }

    /// The default path, beside `known_peers`.
    /// - Parameter configurationFolder: the configuration folder.
    /// - Returns: the path.
    public static func defaultPath(configurationFolder: String) -> String {
        configurationFolder + "/known_relays"
    }

    /// The key a relay is pinned under: `host:port` as typed, the host in lower case, an IPv6 host in brackets.
    /// - Parameters:
    ///   - host: the host as given to `join --host` (IPv6 without brackets).
    ///   - port: the port.
    /// - Returns: the address.
    public static func address(host: String, port: UInt16) -> String {
        let lowered = host.lowercased()
        return (lowered.contains(":") ? "[\(lowered)]" : lowered) + ":\(port)"
    }

    /// The current pin of an address: its last line.
    public func pin(for address: String) -> KnownRelay? {
        pins[address]?.last
    }

    /// Every pin of an address over time, oldest first (the current one last).
    public func pins(for address: String) -> [KnownRelay] {
        pins[address, default: []]
    }

    /// Every key pinned for an address over time, oldest first (the current one last).
    public func keys(for address: String) -> [RelayPublicKey] {
        pins[address, default: []].map(\.key)
    }

    /// Pins `key` for `address` (appending a line), unless it is the current pin already.
    /// - Parameters:
    ///   - key: the key.
    ///   - address: the relay, as ``address(host:port:)`` spells it.
    ///   - source: how it came to be trusted.
    ///   - now: seconds since 1970 (UTC), for the first-seen field; nil for now.
    /// - Returns: the pin.
    @discardableResult
    public func record(
        _ key: RelayPublicKey, for address: String, source: RelayPinSource, now: Int? = nil
    ) -> KnownRelay {
        if let current = pin(for: address), current.key == key { return current }
        let pin = KnownRelay(
            key: key, firstSeen: Self.timestamp(secondsSince1970: now ?? Int(time(nil))), source: source)
        pins[address, default: []].append(pin)
        guard let file else { return pin }
        do {
            try file.append(Array(Self.line(address: address, pin: pin).utf8))
        } catch {
            warn("cannot save the relay's key to '\(file.path)': \(error.reason); it is pinned for this session only")
        }
        return pin
    }

    /// One line of the file.
    static func line(address: String, pin: KnownRelay) -> String {
        "\(address) \(pin.key.text) \(pin.firstSeen) \(pin.source)\n"
    }

    /// `2026-12-03T09:47:12Z` for a time in seconds since 1970.
    static func timestamp(secondsSince1970 seconds: Int) -> String {
        var value = time_t(seconds)
        var parts = tm()
        gmtime_r(&value, &parts)
        func two(_ number: Int32) -> String { (number < 10 ? "0" : "") + String(number) }
        return "\(parts.tm_year + 1900)-\(two(parts.tm_mon + 1))-\(two(parts.tm_mday))"
            + "T\(two(parts.tm_hour)):\(two(parts.tm_min)):\(two(parts.tm_sec))Z"
    }

    /// A line that is not a pin.
    struct ParseError: Error {
        var line: Int
        var reason: String
    }

    /// Reads the file's text: every pin of each address, in file order.
    static func parse(_ text: String) throws(ParseError) -> [String: [KnownRelay]] {
        var pins: [String: [KnownRelay]] = [:]
        var number = 0
        for line in text.split(omittingEmptySubsequences: false, whereSeparator: { $0 == "\n" || $0 == "\r\n" }) {
            number += 1
            let trimmed = String(line).trimmingASCIIWhitespace()
            if trimmed.isEmpty || trimmed.hasPrefix("#") { continue }
            let fields = trimmed.split(separator: " ")
            guard fields.count == 4 else {
                throw ParseError(line: number, reason: "expected 4 fields separated by spaces, found \(fields.count)")
            }
            guard isAddress(fields[0]) else {
                throw ParseError(line: number, reason: "'\(shown(fields[0]))' is not host:port")
            }
            guard let key = RelayPublicKey(text: String(fields[1])), fields[1].count == RelayPublicKey.textLength
            else {
                throw ParseError(line: number, reason: "the key is not 52 base32 characters")
            }
            guard isTimestamp(fields[2]) else {
                throw ParseError(line: number, reason: "'\(shown(fields[2]))' is not an ISO 8601 date")
            }
            guard let source = RelayPinSource(field: String(fields[3])) else {
                throw ParseError(line: number, reason: "unknown way of pinning '\(shown(fields[3]))'")
            }
            pins[String(fields[0]), default: []].append(
                KnownRelay(key: key, firstSeen: String(fields[2]), source: source))
        }
        return pins
    }

    private static func shown(_ field: Substring) -> String {
        TerminalText.escapeControls(String(field.prefix(64)))
    }

    /// `host:port` with a port of 1 to 65535 and a host without spaces (an IPv6 host in brackets).
    static func isAddress(_ field: Substring) -> Bool {
        guard let colon = field.lastIndex(of: ":") else { return false }
        let host = field[..<colon]
        let port = field[field.index(after: colon)...]
        guard !host.isEmpty, let number = Int(port), (1...65_535).contains(number), port.first != "+" else {
            return false
        }
        if host.contains(":") { return host.hasPrefix("[") && host.hasSuffix("]") }
        return true
    }

    /// `YYYY-MM-DD`, optionally followed by `Thh:mm:ssZ`.
    static func isTimestamp(_ field: Substring) -> Bool {
        let pattern = Array("dddd-dd-dd")
        let time = Array("Tdd:dd:ddZ")
        let characters = Array(field)
        guard characters.count == pattern.count || characters.count == pattern.count + time.count else {
            return false
        }
        for (character, expected) in zip(characters, pattern + time) {
            if expected == "d" {
                guard character.isASCII, character.isNumber else { return false }
            } else if character != expected {
                return false
            }
        }
        return true
    }
}
