import AESChatCLI
import Testing

/// `join`'s configuration file: its syntax, which settings it may hold, one-line errors naming file and line, and
/// the order of precedence (command line, then file, then `$USER` and the defaults).
@Suite struct JoinConfigurationTests {
    static let path = "/home/ann/.config/aeschat/config"
    static let environment = ["HOME": "/home/ann", "USER": "ann"]

    /// Parses with a configuration file holding `text` at `path` (nothing elsewhere).
    static func parse(
        _ arguments: [String], file text: String?, at path: String = path,
        environment: [String: String] = environment
    ) throws(UsageError) -> JoinOptions {
        let command = try CommandLineParser.parse(["join"] + arguments, environment: environment) { asked in
            guard asked == path, let text else { return .missing }
            return .text(text)
        }
        guard case .join(let options) = command else {
            Issue.record("not a join: \(command)")
            return JoinOptions(name: "")
        }
        return options
    }

    static func error(_ arguments: [String], file text: String?, environment: [String: String] = environment)
        -> UsageError?
    {
        do {
            _ = try parse(arguments, file: text, environment: environment)
            return nil
        } catch {
            return error
        }
    }

    @Test func file_setsEveryKey_withCommentsBlankLinesAndSpacesIgnored() throws {
        let text = """
            # my usual relay
            name = ann

              host=relay.example.org\t
            port = 7000
            room = team
            inbox = ~/Inbox #1
            relay-key = relay 4f1c 93a0 5b7e 0c21 d3f8 aa10 6e92 17bc
            key = /keys/team.key
            identity = ~/id
            max-file-size = 100M
            bell = all
            colour = never
            log = ~/chat.log\r
            """
        let options = try Self.parse([], file: text)
        var expected = JoinOptions(
            name: "ann", inbox: "/home/ann/Inbox #1", room: "team", host: "relay.example.org", port: 7000,
            keyFile: "/keys/team.key", identityFile: "/home/ann/id")
        expected.relayKey = .fingerprint("4f1c93a05b7e0c21d3f8aa106e9217bc")
        expected.maximumFileSize = 100 << 20
        expected.bell = .all
        expected.color = .never
        expected.logFile = "/home/ann/chat.log"
        #expect(options == expected)
    }

    @Test func commandLine_winsOverTheFile_andTheFileOverTheDefaults() throws {
        let text = "name = filename\nport = 7000\nroom = team\nbell = off\n"
        let options = try Self.parse(["--name", "cli", "--port", "8000", "--bell", "all"], file: text)
        #expect(options.name == "cli")
        #expect(options.port == 8000)
        #expect(options.bell == .all)
        #expect(options.room == "team")
        #expect(options.host == "127.0.0.1")
        #expect(options.color == .auto)
    }

    @Test func hold_isAFlagAndASetting_changedByDefault_andAnythingElseIsRefused() throws {
        #expect(try Self.parse([], file: nil).holdsEverything == false)
        #expect(try Self.parse([], file: "hold = all").holdsEverything == true)
        #expect(try Self.parse(["--hold", "changed"], file: "hold = all").holdsEverything == false)
        #expect(try Self.parse(["--hold", "all"], file: nil).holdsEverything == true)
        #expect(throws: UsageError.self) { try Self.parse(["--hold", "none"], file: nil) }
        #expect(throws: UsageError.self) { try Self.parse([], file: "hold = some") }
    }

    @Test func name_defaultsToTheFile_thenToUSER() throws {
        #expect(try Self.parse([], file: "name = filename").name == "filename")
        #expect(try Self.parse([], file: nil).name == "ann")
        #expect(try Self.parse([], file: "port = 1").name == "ann")
    }

    @Test func name_withoutFileOrUSER_orWithAnInvalidUSER_isAUsageError() {
        let unset = Self.error([], file: nil, environment: ["HOME": "/home/ann"])
        #expect(unset?.message == "no member name: give --name <name> ($USER is not set)")
        #expect(unset?.showsUsage == true)
        let invalid = Self.error([], file: "port = 1", environment: ["HOME": "/home/ann", "USER": "Jo Doe"])
        #expect(
            invalid?.message
                == "no --name given, and $USER 'Jo Doe' is not a valid member name: expected 1 to 32 characters: "
                + "letters, digits, '-', '_' and '.'; give --name <name> or set 'name' in '\(Self.path)'")
        #expect(invalid?.mode == .join)
        // A valid --name makes $USER irrelevant.
        #expect(Self.error(["--name", "ok"], file: nil, environment: ["USER": "Jo Doe"]) == nil)
    }

    @Test(
        arguments: [
            ("port = 70000", 1, "invalid port '70000': expected a number from 1 to 65535"),
            (
                "# c\n\nname = a b", 3,
                "invalid name 'a b': expected 1 to 32 characters: letters, digits, '-', '_' and '.'"
            ),
            ("bell = loud", 1, "invalid bell setting 'loud': expected off, mentions or all"),
            ("color = sometimes", 1, "invalid color setting 'sometimes': expected auto, always or never"),
            ("prot = 1", 1, "unknown setting 'prot'. Did you mean 'port'?"),
            ("json = true", 1, "'json' cannot be set in a configuration file: give --json on the command line"),
            ("config = /x", 1, "'config' cannot be set in a configuration file: give --config on the command line"),
            ("port 7000", 1, "expected 'key = value' or a '#' comment, got 'port 7000'"),
            ("= 7000", 1, "no setting name before '='"),
            ("room =", 1, "no value for 'room': expected 'room = VALUE'"),
            ("port = 1\nport = 2", 2, "'port' is set twice (first on line 1)"),
        ] as [(String, Int, String)])
    func badLine_isOneLineNamingFileAndLine(text: String, line: Int, message: String) {
        let error = Self.error(["--name", "ann"], file: text)
        #expect(error?.message == "\(Self.path):\(line): \(message)")
        #expect(error?.description == "Error: \(Self.path):\(line): \(message)")
        #expect(error?.showsUsage == false)
    }

    @Test func badLine_isReported_evenWhenTheCommandLineSetsTheSameKey() {
        #expect(
            Self.error(["--port", "1"], file: "port = x")?.message.hasPrefix("\(Self.path):1: invalid port") == true)
    }

    @Test func commandLineErrors_comeBeforeFileErrors() {
        let error = Self.error(["--port", "0"], file: "port = x")
        #expect(error?.message == "invalid port '0': expected a number from 1 to 65535")
        #expect(error?.showsUsage == true)
    }

    @Test func configOption_readsThatFile_andNoConfig_readsNone() throws {
        let other = "/tmp/other.conf"
        let options = try CommandLineParser.parse(
            ["join", "--config", other], environment: Self.environment,
            readFile: { $0 == other ? .text("room = elsewhere") : .text("room = standard") })
        var expected = JoinOptions(name: "ann", room: "elsewhere")
        expected.configFile = other
        #expect(options == .join(expected))
        #expect(try Self.parse(["--no-config"], file: "room = standard").room == "lobby")
        #expect(try Self.parse(["--no-config"], file: "this is not a setting").room == "lobby")
    }

    @Test func missingFile_isFine_unlessNamedWithConfig() throws {
        #expect(try Self.parse([], file: nil).room == "lobby")
        let error = Self.error(["--config", "/nope"], file: nil)
        #expect(error?.description == "Error: /nope: no such configuration file")
    }

    @Test func unreadableFile_isOneLine() {
        do {
            _ = try CommandLineParser.parse(
                ["join", "--name", "a"], environment: Self.environment, readFile: { _ in .unreadable("not UTF-8 text") }
            )
            Issue.record("parsed")
        } catch {
            #expect(error.description == "Error: \(Self.path): cannot read the configuration file: not UTF-8 text")
        }
    }

    @Test func standardPath_prefersAnAbsoluteXDGConfigHome_thenHome() {
        #expect(
            ConfigurationFile.standardPath(environment: ["XDG_CONFIG_HOME": "/x", "HOME": "/h"]) == "/x/aeschat/config")
        #expect(
            ConfigurationFile.standardPath(environment: ["XDG_CONFIG_HOME": "rel", "HOME": "/h"])
                == "/h/.config/aeschat/config")
        #expect(ConfigurationFile.standardPath(environment: [:]) == nil)
    }

    @Test func serveAndKeygen_readNoFile() throws {
        let command = try CommandLineParser.parse(["serve"], environment: Self.environment) { _ in
            .text("port = 1")
        }
        #expect(command == .serve(ServeOptions()))
    }
}
