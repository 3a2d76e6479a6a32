import AESChatCLI
import Testing

@Suite struct ParserErrorTests {
    static let portExpectation = "expected a number from 1 to 65535"
    static let hostExpectation = "expected an IPv4 address, an IPv6 address or a hostname"
    static let nameExpectation = "expected 1 to 32 characters: letters, digits, '-', '_' and '.'"
    static let roomExpectation = "expected 1 to 64 characters: letters, digits, '-', '_' and '.'"
    static let join = ["join", "--name", "alice", "--inbox", "in"]

    static let commandCases: [ErrorCase] = [
        ErrorCase([], "no command given: expected serve, join, keygen or selftest", mode: nil),
        ErrorCase(
            ["jion"], "unknown command 'jion': expected serve, join, keygen or selftest. Did you mean 'join'?",
            mode: nil),
        ErrorCase(
            ["srve"], "unknown command 'srve': expected serve, join, keygen or selftest. Did you mean 'serve'?",
            mode: nil),
        ErrorCase(
            ["Serve"], "unknown command 'Serve': expected serve, join, keygen or selftest. Did you mean 'serve'?",
            mode: nil),
        ErrorCase(
            ["keygn"], "unknown command 'keygn': expected serve, join, keygen or selftest. Did you mean 'keygen'?",
            mode: nil),
        ErrorCase(
            ["ser"], "unknown command 'ser': expected serve, join, keygen or selftest. Did you mean 'serve'?", mode: nil
        ),
        ErrorCase(
            ["hlep"], "unknown command 'hlep': expected serve, join, keygen or selftest. Did you mean 'help'?",
            mode: nil),
        ErrorCase(["frobnicate"], "unknown command 'frobnicate': expected serve, join, keygen or selftest", mode: nil),
        ErrorCase([""], "unknown command '': expected serve, join, keygen or selftest", mode: nil),
        ErrorCase(["-"], "unknown command '-': expected serve, join, keygen or selftest", mode: nil),
        ErrorCase(
            ["help", "jion"], "unknown command 'jion': expected serve, join, keygen or selftest. Did you mean 'join'?",
            mode: nil),
        ErrorCase(["help", "join", "extra"], "unexpected argument 'extra' after 'help join'", mode: nil),
        ErrorCase(["--help", "serve", "--port"], "unexpected argument '--port' after '--help serve'", mode: nil),
        ErrorCase(["-h", "join", "-h"], "unexpected argument '-h' after '-h join'", mode: nil),
        ErrorCase(["--version", "serve"], "unexpected argument 'serve' after '--version'", mode: nil),
        ErrorCase(["--version=1"], "'--version' does not take a value: got '--version=1'", mode: nil),
        ErrorCase(["--help=join"], "'--help' does not take a value: got '--help=join'", mode: nil),
        ErrorCase(["-h=x"], "'-h' does not take a value: got '-h=x'", mode: nil),
        ErrorCase(["--verison"], "unknown option '--verison'. Did you mean '--version'?", mode: nil),
        ErrorCase(["--hlp"], "unknown option '--hlp'. Did you mean '--help'?", mode: nil),
        ErrorCase(["-x"], "unknown option '-x'", mode: nil),
        ErrorCase(["--port", "7777"], "expected a command before '--port' (an option of serve and join)", mode: nil),
        ErrorCase(["--name=a"], "expected a command before '--name' (an option of join)", mode: nil),
        ErrorCase(["--", "serve"], "expected a command before '--'", mode: nil),
    ]

    static let optionCases: [ErrorCase] = [
        ErrorCase(["serve", "--prot", "1"], "unknown option '--prot'. Did you mean '--port'?", mode: .serve),
        ErrorCase(["serve", "--hots=::"], "unknown option '--hots'. Did you mean '--host'?", mode: .serve),
        ErrorCase(["join", "--nmae", "a"], "unknown option '--nmae'. Did you mean '--name'?", mode: .join),
        ErrorCase(["join", "--inbx", "d"], "unknown option '--inbx'. Did you mean '--inbox'?", mode: .join),
        ErrorCase(["join", "--jsn"], "unknown option '--jsn'. Did you mean '--json'?", mode: .join),
        ErrorCase(["join", "--JSON"], "unknown option '--JSON'. Did you mean '--json'?", mode: .join),
        ErrorCase(["serve", "-p", "1"], "unknown option '-p'. Did you mean '--port'?", mode: .serve),
        ErrorCase(["join", "-r", "x"], "unknown option '-r'. Did you mean '--room'?", mode: .join),
        ErrorCase(["keygen", "--otu", "f"], "unknown option '--otu'. Did you mean '--out'?", mode: .keygen),
        ErrorCase(["keygen", "--hepl"], "unknown option '--hepl'. Did you mean '--help'?", mode: .keygen),
        ErrorCase(["serve", "--frobnicate"], "unknown option '--frobnicate'", mode: .serve),
        ErrorCase(
            ["serve", "--name", "x"], "'--name' is not an option of serve (it is an option of join)", mode: .serve),
        ErrorCase(
            ["keygen", "--port=1"], "'--port' is not an option of keygen (it is an option of serve and join)",
            mode: .keygen),
        ErrorCase(["join", "--out", "f"], "'--out' is not an option of join (it is an option of keygen)", mode: .join),
        ErrorCase(
            ["serve", "--json"], "'--json' is not an option of serve (it is an option of join and selftest)",
            mode: .serve),
        ErrorCase(
            ["serve", "--version"], "'--version' is not an option of serve: use 'aeschat --version'", mode: .serve),
        ErrorCase(["serve", "--help=x"], "'--help' does not take a value: got '--help=x'", mode: .serve),
        ErrorCase(["serve", "--port"], "missing value for '--port <n>'", mode: .serve),
        ErrorCase(["serve", "--host"], "missing value for '--host <addr>'", mode: .serve),
        ErrorCase(["serve", "--port", "--host", "::"], "missing value for '--port <n>' before '--host'", mode: .serve),
        ErrorCase(
            ["join", "--name", "--inbox", "d"], "missing value for '--name <name>' before '--inbox'", mode: .join),
        ErrorCase(["join", "--name", "--", "x"], "missing value for '--name <name>' before '--'", mode: .join),
        ErrorCase(["keygen", "--out"], "missing value for '--out <file>'", mode: .keygen),
        ErrorCase(join + ["--json=x"], "'--json' does not take a value: got '--json=x'", mode: .join),
        ErrorCase(join + ["--json="], "'--json' does not take a value: got '--json='", mode: .join),
        ErrorCase(["serve", "--port", "1", "--port", "2"], "option '--port' given more than once", mode: .serve),
        ErrorCase(["serve", "--port=1", "--port=1"], "option '--port' given more than once", mode: .serve),
        ErrorCase(join + ["--json", "--json"], "option '--json' given more than once", mode: .join),
        ErrorCase(join + ["--name", "bob"], "option '--name' given more than once", mode: .join),
        ErrorCase(["keygen", "--out", "a", "--out", "b"], "option '--out' given more than once", mode: .keygen),
        ErrorCase(
            ["serve", "extra"], "unexpected argument 'extra': serve takes no positional arguments", mode: .serve),
        ErrorCase(["serve", "-"], "unexpected argument '-': serve takes no positional arguments", mode: .serve),
        ErrorCase(
            ["keygen", "key.out"], "unexpected argument 'key.out': keygen takes no positional arguments",
            mode: .keygen),
        ErrorCase(
            ["serve", "--", "--port"], "unexpected argument '--port' after '--': serve takes no positional arguments",
            mode: .serve),
        ErrorCase(
            join + ["--", "-h"], "unexpected argument '-h' after '--': join takes no positional arguments",
            mode: .join),
        ErrorCase(
            ["serve", "--", "--"], "unexpected argument '--' after '--': serve takes no positional arguments",
            mode: .serve),
        // Without an environment (no $USER, no configuration file), the name is missing.
        ErrorCase(["join"], "no member name: give --name <name> ($USER is not set)", mode: .join),
        ErrorCase(["join", "--inbox", "d"], "no member name: give --name <name> ($USER is not set)", mode: .join),
        ErrorCase(["join", "--json"], "no member name: give --name <name> ($USER is not set)", mode: .join),
        ErrorCase(["join", "--port", "0"], "invalid port '0': \(portExpectation)", mode: .join),
    ]

    static let valueCases: [ErrorCase] =
        ["0", "70000", "65536", "99999999999999999999", "abc", "-1", "+5", " 7", "7 ", "", "1e3", "0x10", "\u{0663}"]
        .map { ErrorCase(["serve", "--port", $0], "invalid port '\($0)': \(portExpectation)", mode: .serve) }
        + [
            ErrorCase(["serve", "--port="], "invalid port '': \(portExpectation)", mode: .serve),
            ErrorCase(join + ["--port", "70000"], "invalid port '70000': \(portExpectation)", mode: .join),
            ErrorCase(["join", "--name", "", "--inbox", "d"], "invalid name '': \(nameExpectation)", mode: .join),
            ErrorCase(["join", "--name=", "--inbox", "d"], "invalid name '': \(nameExpectation)", mode: .join),
            ErrorCase(
                ["join", "--name", "a b", "--inbox", "d"], "invalid name 'a b': \(nameExpectation)", mode: .join),
            ErrorCase(
                ["join", "--name", String(repeating: "n", count: 33)],
                "invalid name '\(String(repeating: "n", count: 33))': \(nameExpectation)", mode: .join),
            ErrorCase(["join", "--name", "zoë"], "invalid name 'zoë': \(nameExpectation)", mode: .join),
            ErrorCase(["join", "--name", "a\nb"], "invalid name 'a\\nb': \(nameExpectation)", mode: .join),
            ErrorCase(["join", "--name", "it's"], "invalid name 'it\\'s': \(nameExpectation)", mode: .join),
            ErrorCase(
                ["join", "--name", "a\u{1B}[31m"], "invalid name 'a\\u{1B}[31m': \(nameExpectation)", mode: .join),
            ErrorCase(["join", "--name", "a\\b"], "invalid name 'a\\\\b': \(nameExpectation)", mode: .join),
            ErrorCase(["join", "--name", "a\u{202E}b"], "invalid name 'a\\u{202E}b': \(nameExpectation)", mode: .join),
            ErrorCase(join + ["--room", ""], "invalid room '': \(roomExpectation)", mode: .join),
            ErrorCase(join + ["--room=a/b"], "invalid room 'a/b': \(roomExpectation)", mode: .join),
            ErrorCase(
                join + ["--room", String(repeating: "r", count: 65)],
                "invalid room '\(String(repeating: "r", count: 65))': \(roomExpectation)", mode: .join),
            ErrorCase(
                ["join", "--name", "a", "--inbox", ""], "invalid path '' for '--inbox': expected a non-empty path",
                mode: .join),
            ErrorCase(join + ["--key="], "invalid path '' for '--key': expected a non-empty path", mode: .join),
            ErrorCase(
                ["keygen", "--out", ""], "invalid path '' for '--out': expected a non-empty path", mode: .keygen),
            ErrorCase(join + ["--host", ""], "invalid host '': \(hostExpectation)", mode: .join),
        ]
        + ["", "16M", "16777216", "1K", "0", "M", "64MB", "-64M", "64 M", "2000G", "99999999999999999999"].map {
            ErrorCase(
                ["serve", "--max-pending-output", $0],
                "invalid byte count '\($0)': expected a number of bytes above 16M (the frame limit), optionally "
                    + "with a K, M or G suffix, such as 64M", mode: .serve)
        }

    /// Every bad form of `--cluster`, `--cluster-prefix` and `--cluster-dead-after`: one line each.
    static let clusterCases: [ErrorCase] =
        [
            ("", "expected redis://[user@]host[:port][/db] or unix:///path"),
            ("localhost:6379", "expected redis://[user@]host[:port][/db] or unix:///path"),
            ("redis:/localhost", "expected redis://[user@]host[:port][/db] or unix:///path"),
            ("http://localhost", "unknown scheme 'http': expected redis://[user@]host[:port][/db] or unix:///path"),
            (
                "nats://localhost:4222",
                "NATS is not supported in this version; expected redis://[user@]host[:port][/db] or "
                    + "unix:///path"
            ),
            (
                "rediss://localhost",
                "TLS to Redis (rediss://) is not supported; reach Redis on loopback, a private "
                    + "network or through a TLS tunnel"
            ),
            ("redis://", "the host is missing: expected redis://[user@]host[:port][/db] or unix:///path"),
            ("redis://:6379", "the host is missing: expected redis://[user@]host[:port][/db] or unix:///path"),
            ("redis://h:0", "the port must be a number from 1 to 65535"),
            ("redis://h:65536", "the port must be a number from 1 to 65535"),
            ("redis://h:", "the port must be a number from 1 to 65535"),
            ("redis://h:abc", "the port must be a number from 1 to 65535"),
            ("redis://[::1]x", "the port must be a number from 1 to 65535"),
            (
                "redis://[::1",
                "an IPv6 address needs its closing ']': expected redis://[user@]host[:port][/db] or "
                    + "unix:///path"
            ),
            ("redis://::1", "write an IPv6 address in brackets, such as redis://[::1]:6379"),
            ("redis://h/", "the database after '/' must be a number from 0 to 1000000"),
            ("redis://h/x", "the database after '/' must be a number from 0 to 1000000"),
            ("redis://h/-1", "the database after '/' must be a number from 0 to 1000000"),
            ("redis://h/1000001", "the database after '/' must be a number from 0 to 1000000"),
            ("redis://h/0/1", "the database after '/' must be a number from 0 to 1000000"),
            (
                "redis://user:pw@h",
                "a password in the URL is not accepted (other users can read a command line): put it "
                    + "in AESCHAT_CLUSTER_PASSWORD"
            ),
            (
                "redis://:pw@h",
                "a password in the URL is not accepted (other users can read a command line): put it in "
                    + "AESCHAT_CLUSTER_PASSWORD"
            ),
            ("redis://@h", "the user before '@' must be printable ASCII without spaces, '@', '/' or '%'"),
            ("redis://a%40b@h", "the user before '@' must be printable ASCII without spaces, '@', '/' or '%'"),
            ("redis://a b@h", "the user before '@' must be printable ASCII without spaces, '@', '/' or '%'"),
            (
                "redis://h?db=1",
                "a query or fragment is not accepted: expected redis://[user@]host[:port][/db] or "
                    + "unix:///path"
            ),
            ("redis://bad_host", "invalid host 'bad_host': expected an IPv4 address, an IPv6 address or a hostname"),
            (
                "redis://256.0.0.1:6379",
                "invalid host '256.0.0.1': expected an IPv4 address, an IPv6 address or a "
                    + "hostname"
            ),
            (
                "unix://",
                "a unix socket URL is unix:// followed by an absolute path, such as unix:///run/redis/redis.sock"
            ),
            (
                "unix://relative.sock",
                "a unix socket URL is unix:// followed by an absolute path, such as "
                    + "unix:///run/redis/redis.sock"
            ),
            ("unix:///" + String(repeating: "s", count: 103), "the socket path is longer than 103 bytes"),
            ("unix:///tmp/a\u{1}b", "the socket path must not hold control characters, '?' or '#'"),
        ].map { url, reason in
            ErrorCase(
                ["serve", "--cluster", url], "invalid cluster URL \(quotedForTests(url)): \(reason)", mode: .serve)
        }
        + ["", "a:b", "a b", String(repeating: "p", count: 65), "prefix*"].map {
            ErrorCase(
                ["serve", "--cluster-prefix", $0],
                "invalid cluster prefix \(quotedForTests($0)): expected 1 to 64 characters: letters, digits, "
                    + "'-', '_' and '.'", mode: .serve)
        }
        + ["", "0", "1", "3601", "5m", "s", "-5", "5.5", "99999", "5ss"].map {
            ErrorCase(
                ["serve", "--cluster-dead-after", $0],
                "invalid duration '\($0)': expected a number of seconds from 2 to 3600, such as 5 or 5s",
                mode: .serve)
        }

    /// The parser's quoting for the inputs above: in single quotes, a control character as `\u{…}`.
    static func quotedForTests(_ text: String) -> String {
        "'" + text.unicodeScalars.map { $0 == "\u{1}" ? "\\u{1}" : String($0) }.joined() + "'"
    }

    @Test(arguments: clusterCases)
    func parse_throwsExactMessage_forClusterOptions(_ errorCase: ErrorCase) throws {
        #expect(parseError(errorCase.arguments) == UsageError(errorCase.message, mode: errorCase.mode))
        let error = try #require(parseError(errorCase.arguments))
        #expect(!error.message.contains("\n"))
    }

    static let invalidHosts = [
        "", " ", "a b", "256.1.1.1", "1.2.3", "127.1", "1.2.3.4.5", "01.2.3.4", "1.2.3.", "[::1", "::1]", "[]",
        "[1.2.3.4]", "[localhost]", ":::", "1::2::3", "1:2:3:4:5:6:7:8:9", "1:2:3:4:5:6:7", "1:2:3:4:5:6:7:8::",
        "12345::", "g::1",
        "fe80::1%eth0", "::1.2.3.4:1", "1.2.3.4::", "::1.2.3", ":1", "1:", "-a.com", "a-.com", "a..b", ".a", "a.",
        "under_score.com", String(repeating: "l", count: 64) + ".com", "bücher.example", "host:80",
        ([String](repeating: String(repeating: "a", count: 63), count: 3) + [String(repeating: "b", count: 62)])
            .joined(separator: "."),
    ]

    @Test(arguments: commandCases)
    func parse_throwsExactMessage_forCommandErrors(_ errorCase: ErrorCase) {
        #expect(parseError(errorCase.arguments) == UsageError(errorCase.message, mode: errorCase.mode))
    }

    @Test(arguments: optionCases)
    func parse_throwsExactMessage_forOptionErrors(_ errorCase: ErrorCase) {
        #expect(parseError(errorCase.arguments) == UsageError(errorCase.message, mode: errorCase.mode))
    }

    @Test(arguments: valueCases)
    func parse_throwsExactMessage_forInvalidValues(_ errorCase: ErrorCase) {
        #expect(parseError(errorCase.arguments) == UsageError(errorCase.message, mode: errorCase.mode))
    }

    @Test(arguments: invalidHosts)
    func parse_rejectsHost_whenInvalid(_ host: String) {
        let expected = UsageError("invalid host '\(host)': \(Self.hostExpectation)", mode: .serve)
        #expect(parseError(["serve", "--host", host]) == expected)
        #expect(parseError(["serve", "--host=\(host)"]) == expected)
    }

    @Test(arguments: commandCases + optionCases + valueCases)
    func message_isOneLine_always(_ errorCase: ErrorCase) throws {
        let error = try #require(parseError(errorCase.arguments))
        #expect(!error.message.contains("\n"))
        #expect(error.description.split(separator: "\n", omittingEmptySubsequences: false).count == 3)
    }

    @Test func description_hasErrorUsageAndSeeLines_forMode() throws {
        let error = try #require(parseError(["serve", "--port", "0"]))
        #expect(
            error.description == """
                Error: invalid port '0': expected a number from 1 to 65535
                Usage: \(HelpText.usage(for: .serve))
                See 'aeschat serve --help'.
                """
        )
    }

    @Test func description_hasErrorUsageAndSeeLines_forJoin() throws {
        let error = try #require(parseError(["join", "--inbox", "a"]))
        #expect(
            error.description == """
                Error: no member name: give --name <name> ($USER is not set)
                Usage: aeschat join [--name <name>] [--inbox <dir>] [--room <room>] [--host <addr>] [--port <n>] \
                [--relay-key <key>] [--accept-new-relay-key] [--key <file>] [--json] [--identity <file>] \
                [--accept-files <all|ask|none>] [--max-file-size <bytes>] [--bell <when>] [--hold <all|changed>] \
                [--color <when>] [--log <file>] [--config <file>] [--no-config]
                See 'aeschat join --help'.
                """
        )
    }

    @Test func description_hasErrorUsageAndSeeLines_forKeygen() throws {
        let error = try #require(parseError(["keygen", "x"]))
        #expect(
            error.description == """
                Error: unexpected argument 'x': keygen takes no positional arguments
                Usage: aeschat keygen [--out <file>] [--identity <file>]
                See 'aeschat keygen --help'.
                """
        )
    }

    @Test func description_pointsToGeneralHelp_withoutMode() throws {
        let error = try #require(parseError(["jion"]))
        #expect(
            error.description == """
                Error: unknown command 'jion': expected serve, join, keygen or selftest. Did you mean 'join'?
                Usage: aeschat <command> [<options>]
                See 'aeschat --help'.
                """
        )
    }

    @Test func usageError_isEqual_byMessageAndMode() {
        #expect(UsageError("x", mode: .join) == UsageError("x", mode: .join))
        #expect(UsageError("x", mode: .join) != UsageError("x", mode: nil))
        #expect(UsageError("x", mode: nil).mode == nil)
        #expect(UsageError("x", mode: .serve).message == "x")
    }
}
