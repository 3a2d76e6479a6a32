import AESChatNames

/// Validators that turn an option's raw text into a value, or throw a ``UsageError`` quoting the text.
///
/// Each is one line in an option table (see `OptionTables.swift`). Pure functions, safe from any thread.
enum Values {
    /// What a port must look like, for messages.
    static let portExpectation = "expected a number from 1 to 65535"
    /// What a host must look like, for messages.
    static let hostExpectation = "expected an IPv4 address, an IPv6 address or a hostname"
    /// The alphabet of names, for messages.
    static let nameAlphabet = "letters, digits, '-', '_' and '.'"

    /// Parses a TCP port: ASCII decimal digits only (no sign, no spaces), value 1 to 65535.
    static func port(_ text: String, _ context: OptionContext) throws(UsageError) -> UInt16 {
        guard let value = decimal(text, maximum: Int(UInt16.max)), value >= 1 else {
            throw invalid("port", text, portExpectation, context.mode)
        }
        return UInt16(value)
    }

    /// What an output cap must look like, for messages.
    static let outputCapExpectation =
        "expected a number of bytes above 16M (the frame limit), optionally with a K, M or G suffix, such as 64M"

    /// Parses a byte count for a cap: ASCII decimal digits with an optional `K`, `M` or `G` suffix
    /// (powers of 1024), above 16 MiB (the largest frame, which one message must never trip) and
    /// at most 1 TiB.
    static func outputCap(_ text: String, _ context: OptionContext) throws(UsageError) -> Int {
        guard let bytes = sizeWithSuffix(text), bytes > 16 << 20, bytes <= 1 << 40 else {
            throw invalid("byte count", text, outputCapExpectation, context.mode)
        }
        return Int(bytes)
    }

    /// Parses a host: an IPv4 literal, an IPv6 literal (optionally in brackets, which are removed) or a hostname.
    static func host(_ text: String, _ context: OptionContext) throws(UsageError) -> String {
        guard let host = Host.normalized(text) else { throw invalid("host", text, hostExpectation, context.mode) }
        return host
    }

    /// Checks a member name with ``Names/isValidMemberName(_:)``.
    static func memberName(_ text: String, _ context: OptionContext) throws(UsageError) -> String {
        guard Names.isValidMemberName(text) else {
            throw invalid(
                "name", text, "expected 1 to \(Names.maxMemberNameLength) characters: \(nameAlphabet)", context.mode)
        }
        return text
    }

    /// Checks a room name with ``Names/isValidRoomName(_:)``.
    static func roomName(_ text: String, _ context: OptionContext) throws(UsageError) -> String {
        guard Names.isValidRoomName(text) else {
            throw invalid(
                "room", text, "expected 1 to \(Names.maxRoomNameLength) characters: \(nameAlphabet)", context.mode)
        }
        return text
    }

    /// Checks a file or directory path: any non-empty text. Whether it exists is the mode's business.
    static func path(_ text: String, _ context: OptionContext) throws(UsageError) -> String {
        guard !text.isEmpty else {
            throw UsageError(
                "invalid path \(Quote.quoted(text)) for '\(context.option)': expected a non-empty path",
                mode: context.mode)
        }
        return text
    }

    /// Parses a `--bell` setting: `off`, `mentions` or `all`.
    static func bell(_ text: String, _ context: OptionContext) throws(UsageError) -> BellSetting {
        guard let setting = BellSetting(rawValue: text) else {
            throw invalid("bell setting", text, "expected off, mentions or all", context.mode)
        }
        return setting
    }

    /// Parses a `--hold` setting: `all` (true) or `changed` (false).
    static func hold(_ text: String, _ context: OptionContext) throws(UsageError) -> Bool {
        switch text {
        case "all": return true
        case "changed": return false
        default: throw invalid("hold setting", text, "expected all or changed", context.mode)
        }
    }

    /// Parses a `--color` setting: `auto`, `always` or `never`.
    static func color(_ text: String, _ context: OptionContext) throws(UsageError) -> ColorSetting {
        guard let setting = ColorSetting(rawValue: text) else {
            throw invalid("color setting", text, "expected auto, always or never", context.mode)
        }
        return setting
    }

    /// What a relay key must look like, for messages.
    static let relayKeyExpectation =
        "expected the relay's key (52 characters from its join line) or its fingerprint (32 hexadecimal digits, "
        + "as in 'relay 4f1c 93a0 ...')"

    /// Parses a relay's key or fingerprint: 52 base32 characters (either case; spaces and dashes ignored) whose
    /// unused last bits are zero, or 32 hexadecimal digits after an optional `relay` (spaces, colons and dashes
    /// ignored).
    static func relayKey(_ text: String, _ context: OptionContext) throws(UsageError) -> RelayKeyArgument {
        let bytes = Array(text.lowercased().utf8)
        let base32 = bytes.filter { $0 != UInt8(ascii: " ") && $0 != ASCII.hyphen }
        let isBase32 = { (byte: UInt8) in
            (UInt8(ascii: "a")...UInt8(ascii: "z")).contains(byte)
                || (UInt8(ascii: "2")...UInt8(ascii: "7")).contains(byte)
        }
        // 52 characters carry 260 bits: the last one holds the key's last bit and four zero bits ('a' or 'q').
        if base32.count == 52, base32.allSatisfy(isBase32),
            base32.last == UInt8(ascii: "a") || base32.last == UInt8(ascii: "q")
        {
            return .key(String(decoding: base32, as: UTF8.self))
        }
        var rest = bytes.drop { $0 == UInt8(ascii: " ") }
        if rest.starts(with: Array("relay".utf8)) { rest = rest.dropFirst(5) }
        let hex = rest.filter { $0 != UInt8(ascii: " ") && $0 != ASCII.colon && $0 != ASCII.hyphen }
        if hex.count == 32, hex.allSatisfy(ASCII.isHexDigit) {
            return .fingerprint(String(decoding: hex, as: UTF8.self))
        }
        throw invalid("relay key", text, relayKeyExpectation, context.mode)
    }

    /// Parses a whole number from 0 to 1,000,000 (0 turns a limit off).
    static func limit(_ text: String, _ context: OptionContext) throws(UsageError) -> Int {
        let expectation = "expected a whole number from 0 (no limit) to 1000000"
        guard let value = decimal(text, maximum: 1_000_000) else {
            throw invalid("number", text, expectation, context.mode)
        }
        return value
    }

    /// Parses a duration in whole seconds, 1 to 86400.
    static func seconds(_ text: String, _ context: OptionContext) throws(UsageError) -> Int {
        let expectation = "expected a number of seconds from 1 to 86400"
        guard let value = decimal(text, maximum: 86_400), value >= 1 else {
            throw invalid("duration", text, expectation, context.mode)
        }
        return value
    }

    /// Parses a frame size limit: a byte count (K, M suffixes allowed) from 1K to 16M.
    static func frameSize(_ text: String, _ context: OptionContext) throws(UsageError) -> Int {
        let expectation = "expected a number of bytes from 1K to 16M, such as 1M"
        guard let bytes = try? byteCount(text, context), bytes >= 1 << 10, bytes <= 16 << 20 else {
            throw invalid("frame size", text, expectation, context.mode)
        }
        return Int(bytes)
    }

    /// Parses a byte count for a limit, as ``byteCount(_:_:)`` does, from 0 (no limit, or no
    /// deadline) to 1 TiB.
    static func byteLimit(_ text: String, _ context: OptionContext) throws(UsageError) -> Int {
        guard let bytes = sizeWithSuffix(text), bytes <= 1 << 40 else {
            throw invalid(
                "byte count", text, "expected a number of bytes from 0 (no limit) to 1024G, such as 64M",
                context.mode)
        }
        return Int(bytes)
    }

    /// Parses a byte count for a bucket's size, as ``byteCount(_:_:)`` does, from 1 to 1 TiB.
    static func byteBurst(_ text: String, _ context: OptionContext) throws(UsageError) -> Int {
        guard let bytes = sizeWithSuffix(text), bytes >= 1, bytes <= 1 << 40 else {
            throw invalid(
                "byte count", text, "expected a number of bytes from 1 to 1024G, such as 256M", context.mode)
        }
        return Int(bytes)
    }

    /// Parses `--max-file-size`: a byte count (``byteCount(_:_:)``) or `unlimited` (`UInt64.max`).
    static func fileSizeLimit(_ text: String, _ context: OptionContext) throws(UsageError) -> UInt64 {
        if text == "unlimited" { return UInt64.max }
        guard let bytes = sizeWithSuffix(text), bytes >= 1 else {
            throw invalid(
                "size", text, "expected a number of bytes such as 1048576, 512K, 100M or 4G, or unlimited",
                context.mode)
        }
        return bytes
    }

    /// Parses `--accept-files`: `all`, `ask` or `none`.
    static func acceptFiles(_ text: String, _ context: OptionContext) throws(UsageError) -> AcceptFiles {
        guard let value = AcceptFiles(rawValue: text) else {
            throw invalid("file acceptance", text, "expected all, ask or none", context.mode)
        }
        return value
    }

    /// Parses a byte count: decimal digits with an optional binary suffix `K`, `M` or `G`
    /// (KiB, MiB, GiB), at least 1.
    static func byteCount(_ text: String, _ context: OptionContext) throws(UsageError) -> UInt64 {
        guard let bytes = sizeWithSuffix(text), bytes >= 1 else {
            throw invalid("size", text, "expected a number of bytes such as 1048576, 512K, 100M or 4G", context.mode)
        }
        return bytes
    }

    /// `bytes` as help text shows a default: with the largest suffix `K`, `M` or `G` that divides it
    /// exactly (`64M`, `16K`), else in decimal digits. The inverse of ``byteCount(_:_:)``.
    static func sizeText(_ bytes: Int) -> String {
        for (shift, suffix) in [(30, "G"), (20, "M"), (10, "K")] where bytes != 0 && bytes % (1 << shift) == 0 {
            return "\(bytes >> shift)\(suffix)"
        }
        return String(bytes)
    }

    /// `text` as decimal digits with an optional `K`, `M` or `G` suffix (powers of 1024, either
    /// case), or nil when it is anything else or the bytes do not fit in 64 bits.
    private static func sizeWithSuffix(_ text: String) -> UInt64? {
        var digits = Substring(text)
        var multiplier: UInt64 = 1
        switch text.last {
        case "K", "k": multiplier = 1 << 10
        case "M", "m": multiplier = 1 << 20
        case "G", "g": multiplier = 1 << 30
        default: break
        }
        if multiplier > 1 { digits = digits.dropLast() }
        guard !digits.isEmpty else { return nil }
        var value: UInt64 = 0
        for byte in digits.utf8 {
            guard ASCII.isDigit(byte) else { return nil }
            let (times, overflow) = value.multipliedReportingOverflow(by: 10)
            guard !overflow, times <= UInt64.max / multiplier - 9 else { return nil }
            value = times + UInt64(byte - UInt8(ascii: "0"))
        }
        return value * multiplier
    }

    /// The value of `text` read as ASCII decimal digits (leading zeros allowed), or nil when it is
    /// empty, holds any other character, or exceeds `maximum`.
    private static func decimal(_ text: String, maximum: Int) -> Int? {
        guard !text.isEmpty else { return nil }
        var value = 0
        for byte in text.utf8 {
            guard ASCII.isDigit(byte) else { return nil }
            value = value * 10 + Int(byte - UInt8(ascii: "0"))
            guard value <= maximum else { return nil }
        }
        return value
    }

    private static func invalid(_ what: String, _ text: String, _ expectation: String, _ mode: Mode) -> UsageError {
        UsageError("invalid \(what) \(Quote.quoted(text)): \(expectation)", mode: mode)
    }
}

/// Host syntax: IPv4 and IPv6 literals and DNS hostnames, checked byte by byte.
enum Host {
    /// The longest hostname, in characters (RFC 1035 without the trailing dot).
    static let maxHostnameLength = 253
    /// The longest hostname label, in characters.
    static let maxLabelLength = 63

    /// Returns the host as the program should use it (brackets removed from IPv6), or `nil` when it is invalid.
    static func normalized(_ text: String) -> String? {
        let bytes = Array(text.utf8)
        if bytes.first == UInt8(ascii: "[") {
            guard bytes.count >= 2, bytes.last == UInt8(ascii: "]") else { return nil }
            let inner = Array(bytes[1..<(bytes.count - 1)])
            return isIPv6(inner) ? String(decoding: inner, as: UTF8.self) : nil
        }
        if bytes.contains(ASCII.colon) {
            return isIPv6(bytes) ? text : nil
        }
        if bytes.allSatisfy({ ASCII.isDigit($0) || $0 == ASCII.dot }) {
            return isIPv4(bytes[...]) ? text : nil
        }
        return isHostname(bytes) ? text : nil
    }

    /// Dotted-quad IPv4: exactly four decimal parts 0 to 255, no leading zeros.
    static func isIPv4(_ bytes: ArraySlice<UInt8>) -> Bool {
        let parts = bytes.split(separator: ASCII.dot, omittingEmptySubsequences: false)
        guard parts.count == 4 else { return false }
        return parts.allSatisfy { part in
            guard (1...3).contains(part.count), part.allSatisfy(ASCII.isDigit) else { return false }
            guard part.count == 1 || part.first != UInt8(ascii: "0") else { return false }
            return part.reduce(0) { $0 * 10 + Int($1 - UInt8(ascii: "0")) } <= 255
        }
    }

    /// RFC 4291 text form: eight groups of 1 to 4 hex digits, one `::` at most, an IPv4 tail allowed.
    /// Zone identifiers (`%eth0`) are not accepted.
    static func isIPv6(_ bytes: [UInt8]) -> Bool {
        guard let gap = firstDoubleColon(bytes) else {
            return groupCount(bytes[...], ipv4TailAllowed: true) == 8
        }
        let left = bytes[..<gap]
        let right = bytes[(gap + 2)...]
        guard firstDoubleColon(Array(right)) == nil,
            let leftCount = groupCount(left, ipv4TailAllowed: false),
            let rightCount = groupCount(right, ipv4TailAllowed: true)
        else { return false }
        return leftCount + rightCount <= 7
    }

    /// Hostname: labels of 1 to 63 letters, digits and hyphens, not starting or ending with a hyphen, joined by
    /// single dots, 253 characters at most.
    static func isHostname(_ bytes: [UInt8]) -> Bool {
        guard (1...maxHostnameLength).contains(bytes.count) else { return false }
        let labels = bytes.split(separator: ASCII.dot, omittingEmptySubsequences: false)
        return labels.allSatisfy { label in
            (1...maxLabelLength).contains(label.count)
                && label.allSatisfy { ASCII.isLetterOrDigit($0) || $0 == ASCII.hyphen }
                && label.first != ASCII.hyphen && label.last != ASCII.hyphen
        }
    }

    private static func firstDoubleColon(_ bytes: [UInt8]) -> Int? {
        guard bytes.count >= 2 else { return nil }
        return (0..<(bytes.count - 1)).first { bytes[$0] == ASCII.colon && bytes[$0 + 1] == ASCII.colon }
    }

    /// Counts the 16-bit groups in colon-separated text (empty text has none), or returns `nil` if it is malformed.
    private static func groupCount(_ bytes: ArraySlice<UInt8>, ipv4TailAllowed: Bool) -> Int? {
        guard !bytes.isEmpty else { return 0 }
        let groups = bytes.split(separator: ASCII.colon, omittingEmptySubsequences: false)
        var count = 0
        for (index, group) in groups.enumerated() {
            if ipv4TailAllowed, index == groups.count - 1, group.contains(ASCII.dot) {
                guard isIPv4(group) else { return nil }
                count += 2
            } else {
                guard (1...4).contains(group.count), group.allSatisfy(ASCII.isHexDigit) else { return nil }
                count += 1
            }
        }
        return count
    }
}

/// Quoting of user input inside one-line messages.
enum Quote {
    /// Wraps text in single quotes, escaping `\`, `'` and anything that could break the line or the terminal
    /// (control characters, line and paragraph separators, bidirectional overrides) as `\n`, `\t`, `\r` or `\u{…}`.
    static func quoted(_ text: String) -> String {
        var result = "'"
        for scalar in text.unicodeScalars {
            switch scalar {
            case "\\": result += "\\\\"
            case "'": result += "\\'"
            case "\n": result += "\\n"
            case "\t": result += "\\t"
            case "\r": result += "\\r"
            default:
                if needsEscape(scalar.value) {
                    result += hexEscape(scalar.value, prefix: "\\u{", suffix: "}")
                } else {
                    result.unicodeScalars.append(scalar)
                }
            }
        }
        return result + "'"
    }

    private static func needsEscape(_ value: UInt32) -> Bool {
        value < 0x20 || (0x7F...0x9F).contains(value) || value == 0x2028 || value == 0x2029
            || (0x202A...0x202E).contains(value) || (0x2066...0x2069).contains(value) || value == 0x200E
            || value == 0x200F || value == 0xFEFF
    }
}

/// A code point written as a visible escape: `prefix`, its value in hexadecimal with at least `minimumDigits`
/// digits (zero-padded), then `suffix`. A copy of `AESChatCore`'s function of the same name, which this module
/// cannot see (the core depends on the parser, not the reverse); keep the two alike.
func hexEscape(
    _ value: UInt32, prefix: String, minimumDigits: Int = 1, uppercase: Bool = true, suffix: String = ""
) -> String {
    let digits = String(value, radix: 16, uppercase: uppercase)
    return prefix + String(repeating: "0", count: max(0, minimumDigits - digits.count)) + digits + suffix
}
