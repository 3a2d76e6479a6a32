import AESChatNames

/// Where the Redis of a cluster of relays is (`aeschat serve --cluster URL`): `redis://[user@]host[:port][/db]` or
/// `unix:///path`. The password is never part of it: it comes from the environment (`AESCHAT_CLUSTER_PASSWORD`),
/// because other users can read a command line.
public struct ClusterAddress: Equatable, Sendable, CustomStringConvertible {
    /// How to reach the server.
    public enum Endpoint: Equatable, Sendable {
        /// A host name or address (IPv6 without brackets) and a TCP port.
        case tcp(host: String, port: UInt16)
        /// A unix-domain socket's absolute path.
        case unix(path: String)
    }

    public var endpoint: Endpoint
    /// The ACL user, or nil for the default user.
    public var user: String?
    /// The database number, 0 unless the URL names one.
    public var database: Int

    /// Redis's default port.
    public static let defaultPort: UInt16 = 6379
    /// The largest database number accepted (Redis's own limit is its `databases` setting, 16 by default).
    public static let maximumDatabase = 1_000_000
    /// The longest unix socket path (the smallest `sun_path` among the systems aeschat runs on, less its NUL).
    public static let maximumSocketPathLength = 103
    /// What a cluster URL must look like, for messages.
    public static let expectation = "expected redis://[user@]host[:port][/db] or unix:///path"

    public init(endpoint: Endpoint, user: String? = nil, database: Int = 0) {
        self.endpoint = endpoint
        self.user = user
        self.database = database
    }

    /// The URL, normalized: the port always shown, the database when not 0.
    public var description: String {
        switch endpoint {
        case .tcp(let host, let port):
            let shownHost = host.contains(":") ? "[\(host)]" : host
            return "redis://\(user.map { "\($0)@" } ?? "")\(shownHost):\(port)\(database == 0 ? "" : "/\(database)")"
        case .unix(let path):
            return "unix://\(path)"
        }
    }

    /// Parses a cluster URL.
    /// - Returns: the address, or the reason it is not one (one line, without the URL, which the caller quotes).
    public static func parse(_ text: String) -> Result<ClusterAddress, ClusterAddressError> {
        guard let colon = text.firstIndex(of: ":"), text[colon...].hasPrefix("://") else {
            return .failure(.init(expectation))
        }
        let scheme = text[..<colon].lowercased()
        let rest = String(text[text.index(colon, offsetBy: 3)...])
        switch scheme {
        case "redis": return parseRedis(rest)
        case "unix": return parseUnix(rest)
        case "rediss":
            return .failure(
                .init(
                    "TLS to Redis (rediss://) is not supported; reach Redis on loopback, a "
                        + "private network or through a TLS tunnel"))
        case "nats": return .failure(.init("NATS is not supported in this version; \(expectation)"))
        default: return .failure(.init("unknown scheme '\(scheme)': \(expectation)"))
        }
    }

    private static func parseRedis(_ rest: String) -> Result<ClusterAddress, ClusterAddressError> {
        if rest.contains("?") || rest.contains("#") {
            return .failure(.init("a query or fragment is not accepted: \(expectation)"))
        }
        var authority = Substring(rest)
        var database = 0
        if let slash = rest.firstIndex(of: "/") {
            authority = rest[..<slash]
            let path = rest[rest.index(after: slash)...]
            guard let number = decimal(path), number <= maximumDatabase else {
                return .failure(.init("the database after '/' must be a number from 0 to \(maximumDatabase)"))
            }
            database = number
        }
        var user: String?
        if let at = authority.lastIndex(of: "@") {
            let userInfo = authority[..<at]
            authority = authority[authority.index(after: at)...]
            if userInfo.contains(":") {
                return .failure(
                    .init(
                        "a password in the URL is not accepted (other users can read a command line): "
                            + "put it in AESCHAT_CLUSTER_PASSWORD"))
            }
            guard !userInfo.isEmpty,
                userInfo.utf8.allSatisfy({
                    $0 > 0x20 && $0 < 0x7F && $0 != UInt8(ascii: "@")
                        && $0 != UInt8(ascii: "%") && $0 != UInt8(ascii: "/")
                })
            else {
                return .failure(.init("the user before '@' must be printable ASCII without spaces, '@', '/' or '%'"))
            }
            user = String(userInfo)
        }
        var hostText = authority
        var port = defaultPort
        if authority.hasPrefix("[") {
            guard let close = authority.firstIndex(of: "]") else {
                return .failure(.init("an IPv6 address needs its closing ']': \(expectation)"))
            }
            hostText = authority[...close]
            let after = authority[authority.index(after: close)...]
            if !after.isEmpty {
                guard after.hasPrefix(":"), let number = decimal(after.dropFirst()), number >= 1, number <= 65535
                else { return .failure(.init("the port must be a number from 1 to 65535")) }
                port = UInt16(number)
            }
        } else if let colon = authority.lastIndex(of: ":") {
            guard authority[..<colon].firstIndex(of: ":") == nil else {
                return .failure(.init("write an IPv6 address in brackets, such as redis://[::1]:6379"))
            }
            hostText = authority[..<colon]
            guard let number = decimal(authority[authority.index(after: colon)...]), number >= 1, number <= 65535
            else { return .failure(.init("the port must be a number from 1 to 65535")) }
            port = UInt16(number)
        }
        guard !hostText.isEmpty else { return .failure(.init("the host is missing: \(expectation)")) }
        guard let host = Host.normalized(String(hostText)) else {
            return .failure(.init("invalid host '\(hostText)': \(Values.hostExpectation)"))
        }
        return .success(ClusterAddress(endpoint: .tcp(host: host, port: port), user: user, database: database))
    }

    private static func parseUnix(_ rest: String) -> Result<ClusterAddress, ClusterAddressError> {
        guard rest.hasPrefix("/"), rest.count > 1 else {
            return .failure(
                .init(
                    "a unix socket URL is unix:// followed by an absolute path, such as "
                        + "unix:///run/redis/redis.sock"))
        }
        guard rest.utf8.count <= maximumSocketPathLength else {
            return .failure(.init("the socket path is longer than \(maximumSocketPathLength) bytes"))
        }
        guard !rest.utf8.contains(where: { $0 < 0x20 || $0 == 0x7F }), !rest.contains("?"), !rest.contains("#")
        else { return .failure(.init("the socket path must not hold control characters, '?' or '#'")) }
        return .success(ClusterAddress(endpoint: .unix(path: rest)))
    }

    private static func decimal(_ text: Substring) -> Int? {
        guard !text.isEmpty, text.utf8.count <= 9, text.utf8.allSatisfy(ASCII.isDigit) else { return nil }
        return Int(text)
    }
}

/// Why a cluster URL was refused: one line.
public struct ClusterAddressError: Error, Equatable, Sendable {
    public var reason: String
    init(_ reason: String) { self.reason = reason }
}

extension Values {
    /// Parses `--cluster`'s URL (``ClusterAddress/parse(_:)``).
    static func clusterAddress(_ text: String, _ context: OptionContext) throws(UsageError) -> ClusterAddress {
        switch ClusterAddress.parse(text) {
        case .success(let address): return address
        case .failure(let error):
            throw UsageError("invalid cluster URL \(Quote.quoted(text)): \(error.reason)", mode: context.mode)
        }
    }

    /// What a cluster prefix must look like, for messages.
    static let clusterPrefixExpectation = "expected 1 to \(Names.maxRoomNameLength) characters: \(nameAlphabet)"

    /// Checks `--cluster-prefix`: the room name alphabet (it becomes part of Redis key names and channel names).
    static func clusterPrefix(_ text: String, _ context: OptionContext) throws(UsageError) -> String {
        guard Names.isValidRoomName(text) else {
            throw UsageError(
                "invalid cluster prefix \(Quote.quoted(text)): \(clusterPrefixExpectation)", mode: context.mode)
        }
        return text
    }

    /// Parses `--cluster-dead-after`: whole seconds from 2 to 3600, optionally followed by `s`.
    static func clusterDeadAfter(_ text: String, _ context: OptionContext) throws(UsageError) -> Int {
        let digits = text.hasSuffix("s") ? String(text.dropLast()) : text
        guard !digits.isEmpty, digits.utf8.count <= 4, digits.utf8.allSatisfy(ASCII.isDigit), let value = Int(digits),
            value >= 2, value <= 3600
        else {
            throw UsageError(
                "invalid duration \(Quote.quoted(text)): expected a number of seconds from 2 to 3600, such as 5 or 5s",
                mode: context.mode)
        }
        return value
    }
}
