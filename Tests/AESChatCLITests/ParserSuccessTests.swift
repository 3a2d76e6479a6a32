import AESChatCLI
import Testing

@Suite struct ParserSuccessTests {
    @Test func serve_usesDefaults_whenNoOptions() throws {
        #expect(try CommandLineParser.parse(["serve"]) == .serve(ServeOptions(host: "127.0.0.1", port: 7777)))
    }

    @Test func serve_acceptsHostAndPort_inBothForms() throws {
        let expected = Command.serve(ServeOptions(host: "0.0.0.0", port: 9000))
        #expect(try CommandLineParser.parse(["serve", "--host", "0.0.0.0", "--port", "9000"]) == expected)
        #expect(try CommandLineParser.parse(["serve", "--host=0.0.0.0", "--port=9000"]) == expected)
        #expect(try CommandLineParser.parse(["serve", "--port", "9000", "--host=0.0.0.0"]) == expected)
    }

    @Test(arguments: [
        ("::", "::"), ("[::]", "::"), ("[::1]", "::1"), ("::1", "::1"), ("fe80::1:2", "fe80::1:2"),
        ("2001:db8:0:0:0:0:2:1", "2001:db8:0:0:0:0:2:1"), ("::ffff:192.0.2.1", "::ffff:192.0.2.1"),
        ("1::", "1::"), ("1:2:3:4:5:6:7::", "1:2:3:4:5:6:7::"), ("[1:2:3:4:5:6:1.2.3.4]", "1:2:3:4:5:6:1.2.3.4"),
        ("192.168.1.20", "192.168.1.20"), ("0.0.0.0", "0.0.0.0"), ("255.255.255.255", "255.255.255.255"),
        ("localhost", "localhost"), ("relay.example.org", "relay.example.org"), ("a-b.c1", "a-b.c1"),
        ("host.123", "host.123"), ("XN--BCHER-KVA.example", "XN--BCHER-KVA.example"),
    ])
    func serve_acceptsHost_whenValid(input: String, stored: String) throws {
        #expect(try CommandLineParser.parse(["serve", "--host", input]) == .serve(ServeOptions(host: stored)))
    }

    @Test func serve_acceptsLongestHostname() throws {
        let label = String(repeating: "a", count: 63)
        let host = [label, label, label, String(repeating: "b", count: 61)].joined(separator: ".")
        #expect(host.count == 253)
        #expect(try CommandLineParser.parse(["serve", "--host", host]) == .serve(ServeOptions(host: host)))
    }

    @Test(arguments: [("1", 1), ("65535", 65_535), ("7777", 7777), ("0080", 80)] as [(String, UInt16)])
    func serve_acceptsPort_inRange(text: String, port: UInt16) throws {
        #expect(try CommandLineParser.parse(["serve", "--port", text]) == .serve(ServeOptions(port: port)))
    }

    @Test func serve_acceptsTheByteAndFrameLimits_withSuffixes_andZeroForNoLimit() throws {
        var expected = ServeOptions()
        expected.byteRate = 64 << 20
        expected.byteBurst = 512 << 10
        expected.frameGrace = 5
        expected.minFrameRate = 0
        expected.frameBudget = 1 << 30
        expected.frameBudgetPerAddress = 0
        let arguments = [
            "serve", "--byte-rate", "64M", "--byte-burst=512K", "--frame-grace", "5", "--min-frame-rate", "0",
            "--frame-budget", "1G", "--frame-budget-per-address", "0",
        ]
        #expect(try CommandLineParser.parse(arguments) == .serve(expected))
        #expect(throws: UsageError.self) { try CommandLineParser.parse(["serve", "--byte-burst", "0"]) }
        #expect(throws: UsageError.self) { try CommandLineParser.parse(["serve", "--byte-rate", "2T"]) }
        #expect(throws: UsageError.self) { try CommandLineParser.parse(["serve", "--frame-budget", "-1"]) }
    }

    @Test func join_leavesInboxUnset_whenNotGiven() throws {
        let command = try CommandLineParser.parse(["join", "--name", "alice"])
        #expect(command == .join(JoinOptions(name: "alice", inbox: nil)))
    }

    @Test func join_usesDefaults_whenOnlyRequiredOptions() throws {
        let command = try CommandLineParser.parse(["join", "--name", "alice", "--inbox", "/tmp/in"])
        #expect(
            command
                == .join(
                    JoinOptions(
                        name: "alice", inbox: "/tmp/in", room: "lobby", host: "127.0.0.1", port: 7777, keyFile: nil,
                        json: false))
        )
    }

    @Test func join_acceptsEveryOption_inBothForms() throws {
        let expected = Command.join(
            JoinOptions(
                name: "bob_2", inbox: "in box", room: "team.dev", host: "::1", port: 8000, keyFile: "k.key", json: true)
        )
        let spaced = [
            "join", "--name", "bob_2", "--inbox", "in box", "--room", "team.dev", "--host", "[::1]", "--port", "8000",
            "--key", "k.key", "--json",
        ]
        let inline = [
            "join", "--json", "--key=k.key", "--port=8000", "--host=::1", "--room=team.dev", "--inbox=in box",
            "--name=bob_2",
        ]
        #expect(try CommandLineParser.parse(spaced) == expected)
        #expect(try CommandLineParser.parse(inline) == expected)
    }

    @Test func join_keepsEverythingAfterFirstEquals_inInlineValue() throws {
        let command = try CommandLineParser.parse(["join", "--name=a", "--inbox=dir=with=equals"])
        #expect(command == .join(JoinOptions(name: "a", inbox: "dir=with=equals")))
    }

    @Test func join_acceptsValuesStartingWithOneDash() throws {
        let command = try CommandLineParser.parse(["join", "--name", "-x", "--inbox", "-", "--key", "-k"])
        #expect(command == .join(JoinOptions(name: "-x", inbox: "-", keyFile: "-k")))
    }

    @Test func join_acceptsValueStartingWithTwoDashes_inInlineForm() throws {
        let command = try CommandLineParser.parse(["join", "--name=a", "--inbox=--odd"])
        #expect(command == .join(JoinOptions(name: "a", inbox: "--odd")))
    }

    @Test func selftest_takesJSONAndAnInbox() throws {
        #expect(try CommandLineParser.parse(["selftest"]) == .selftest(SelfTestOptions()))
        #expect(
            try CommandLineParser.parse(["selftest", "--json", "--inbox", "in"])
                == .selftest(SelfTestOptions(json: true, inbox: "in")))
        #expect(throws: UsageError.self) { try CommandLineParser.parse(["selftest", "--inbox"]) }
        #expect(throws: UsageError.self) { try CommandLineParser.parse(["selftest", "--name", "x"]) }
    }

    @Test func keygen_usesStandardOutput_whenNoOut() throws {
        #expect(try CommandLineParser.parse(["keygen"]) == .keygen(KeygenOptions(out: nil)))
    }

    @Test func keygen_acceptsOut_inBothForms() throws {
        #expect(
            try CommandLineParser.parse(["keygen", "--out", "room.key"]) == .keygen(KeygenOptions(out: "room.key")))
        #expect(try CommandLineParser.parse(["keygen", "--out=room.key"]) == .keygen(KeygenOptions(out: "room.key")))
    }

    @Test func doubleDash_endsOptions_whenNothingFollows() throws {
        #expect(try CommandLineParser.parse(["serve", "--port", "1", "--"]) == .serve(ServeOptions(port: 1)))
        #expect(try CommandLineParser.parse(["keygen", "--"]) == .keygen(KeygenOptions()))
    }

    @Test(arguments: [["--help"], ["-h"], ["help"], ["help", "help"], ["help", "--help"], ["-h", "-h"]])
    func help_isGeneral_forTopLevelForms(arguments: [String]) throws {
        #expect(try CommandLineParser.parse(arguments) == .help(nil))
    }

    @Test(arguments: Mode.allCases)
    func help_isForMode_forEveryForm(mode: Mode) throws {
        let forms: [[String]] = [
            ["help", mode.rawValue], ["--help", mode.rawValue], ["-h", mode.rawValue], [mode.rawValue, "--help"],
            [mode.rawValue, "-h"],
        ]
        for form in forms {
            #expect(try CommandLineParser.parse(form) == .help(mode), "\(form)")
        }
    }

    @Test(arguments: [
        ["join", "--name", "a", "--help"], ["join", "--bogus", "--help"], ["serve", "--port", "0", "-h"],
        ["join", "stray", "-h"], ["join", "--json=1", "--help"], ["join", "--name", "--help"],
        ["join", "--json", "--json", "-h"],
    ])
    func help_wins_overOtherArgumentsEvenInvalidOnes(arguments: [String]) throws {
        #expect(try CommandLineParser.parse(arguments) == .help(Mode(rawValue: arguments[0])))
    }

    @Test func version_isRecognised_whenAlone() throws {
        #expect(try CommandLineParser.parse(["--version"]) == .version)
        #expect(aeschatVersion == "0.1.0")
    }

    @Test func exitCodes_haveDocumentedValues() {
        let values: [(ExitCode, Int32)] = [
            (.success, 0), (.failure, 1), (.usage, 64), (.dataError, 65), (.unavailable, 69), (.ioError, 74),
            (.interrupted, 130),
        ]
        for (code, value) in values {
            #expect(code.rawValue == value)
        }
    }

    @Test(arguments: [
        ("64M", 64 << 20), ("16777217", 16_777_217), ("17m", 17 << 20), ("20000K", 20_000 << 10), ("1G", 1 << 30),
        ("1024G", 1 << 40),
    ])
    func serve_acceptsMaxPendingOutput_withSuffixes(text: String, bytes: Int) throws {
        #expect(
            try CommandLineParser.parse(["serve", "--max-pending-output", text])
                == .serve(ServeOptions(maxPendingOutput: bytes)))
    }

    @Test func defaults_matchBetweenInitialisersAndHelp() {
        #expect(ServeOptions().maxPendingOutput == 64 << 20)
        #expect(HelpText.help(for: .serve).contains("(default:\n                          64M)"))
        #expect(ServeOptions() == ServeOptions(host: "127.0.0.1", port: 7777))
        #expect(JoinOptions(name: "n", inbox: "i").room == "lobby")
        #expect(JoinOptions(name: "n", inbox: "i").host == ServeOptions().host)
        #expect(JoinOptions(name: "n", inbox: "i").port == ServeOptions().port)
        #expect(KeygenOptions().out == nil)
        #expect(HelpText.help(for: .serve).contains("(default: \(ServeOptions().host))"))
        #expect(HelpText.help(for: .serve).contains("(default: \(ServeOptions().port))"))
        #expect(HelpText.help(for: .join).contains("(default: \(JoinOptions(name: "n", inbox: "i").room))"))
    }
}

@Suite struct FileOptionTests {
    @Test(arguments: AcceptFiles.allCases)
    func join_acceptFiles_takesEachSetting(setting: AcceptFiles) throws {
        guard
            case .join(let options) = try CommandLineParser.parse([
                "join", "--name", "a", "--accept-files", setting.rawValue,
            ])
        else {
            Issue.record("not a join")
            return
        }
        #expect(options.acceptFiles == setting)
    }

    @Test func join_acceptFiles_isUnsetByDefault_andRejectsOtherWords() throws {
        guard case .join(let options) = try CommandLineParser.parse(["join", "--name", "a"]) else {
            Issue.record("not a join")
            return
        }
        #expect(options.acceptFiles == nil)
        #expect(options.maximumFileSize == nil)
        #expect(throws: UsageError("invalid file acceptance 'yes': expected all, ask or none", mode: .join)) {
            try CommandLineParser.parse(["join", "--name", "a", "--accept-files", "yes"])
        }
    }

    @Test func join_maxFileSize_takesSizesAndUnlimited() throws {
        for (text, value) in [("100M", UInt64(100) << 20), ("unlimited", UInt64.max), ("1", 1)] {
            guard
                case .join(let options) = try CommandLineParser.parse(["join", "--name", "a", "--max-file-size", text])
            else {
                Issue.record("not a join")
                return
            }
            #expect(options.maximumFileSize == value)
        }
        #expect(
            throws: UsageError(
                "invalid size '0': expected a number of bytes such as 1048576, 512K, 100M or 4G, or unlimited",
                mode: .join)
        ) {
            try CommandLineParser.parse(["join", "--name", "a", "--max-file-size", "0"])
        }
    }
}
