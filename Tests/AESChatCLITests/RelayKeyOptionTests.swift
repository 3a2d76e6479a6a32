import AESChatCLI
import Testing

/// The relay key options: `serve --relay-key/--previous-relay-key/--show-key` and `join --relay-key
/// /--accept-new-relay-key`.
@Suite struct RelayKeyOptionTests {
    /// The base32 text of the bytes 0, 1, …, 31.
    static let keyText = "aaaqeayeaudaocajbifqydiob4ibceqtcqkrmfyydenbwha5dypq"
    static let fingerprint = "543bcbbf75962b435b78d432d912d096"
    static let join = ["join", "--name", "alice", "--inbox", "in"]
    static let expectation =
        "expected the relay's key (52 characters from its join line) or its fingerprint (32 hexadecimal digits, "
        + "as in 'relay 4f1c 93a0 ...')"

    @Test func serve_takesTheKeyFiles_andShowKey() throws {
        var expected = ServeOptions()
        expected.relayKeyFile = "/etc/aeschat/new-key"
        expected.previousRelayKeyFile = "old key"
        expected.showKey = true
        let arguments = [
            "serve", "--relay-key", "/etc/aeschat/new-key", "--previous-relay-key=old key", "--show-key",
        ]
        #expect(try CommandLineParser.parse(arguments) == .serve(expected))
        #expect(ServeOptions().relayKeyFile == nil && ServeOptions().previousRelayKeyFile == nil)
        #expect(!ServeOptions().showKey)
    }

    @Test func serve_refusesAnEmptyKeyPath_andAValueForShowKey() {
        #expect(
            parseError(["serve", "--relay-key="])
                == UsageError("invalid path '' for '--relay-key': expected a non-empty path", mode: .serve))
        #expect(
            parseError(["serve", "--show-key=yes"])
                == UsageError("'--show-key' does not take a value: got '--show-key=yes'", mode: .serve))
    }

    @Test(arguments: [
        keyText, keyText.uppercased(), "aaaq-eaye-auda-ocaj-bifq-ydio-b4ib-ceqt-cqkr-mfyy-denb-wha5-dypq",
        " " + keyText + " ",
    ])
    func join_takesTheWholeKey_inEitherCase_withSpacesOrDashes(text: String) throws {
        guard case .join(let options) = try CommandLineParser.parse(Self.join + ["--relay-key", text]) else {
            Issue.record("not a join")
            return
        }
        #expect(options.relayKey == .key(Self.keyText))
        #expect(!options.acceptNewRelayKey)
    }

    @Test(arguments: [
        fingerprint, "relay 543b cbbf 7596 2b43 5b78 d432 d912 d096", "RELAY 543B CBBF 7596 2B43 5B78 D432 D912 D096",
        "54:3b:cb:bf:75:96:2b:43:5b:78:d4:32:d9:12:d0:96", "relay543bcbbf75962b435b78d432d912d096",
        "  relay 543b-cbbf-7596-2b43-5b78-d432-d912-d096",
    ])
    func join_takesAFingerprint_withOrWithoutRelayAndSeparators(text: String) throws {
        guard case .join(let options) = try CommandLineParser.parse(Self.join + ["--relay-key=\(text)"]) else {
            Issue.record("not a join")
            return
        }
        #expect(options.relayKey == .fingerprint(Self.fingerprint))
    }

    @Test func join_takesAcceptNewRelayKey_asAFlag() throws {
        guard case .join(let options) = try CommandLineParser.parse(Self.join + ["--accept-new-relay-key"]) else {
            Issue.record("not a join")
            return
        }
        #expect(options.acceptNewRelayKey)
        #expect(options.relayKey == nil)
        #expect(
            parseError(Self.join + ["--accept-new-relay-key=1"])
                == UsageError(
                    "'--accept-new-relay-key' does not take a value: got '--accept-new-relay-key=1'", mode: .join))
    }

    static let invalidKeys: [String] = [
        "", "relay", String(keyText.dropLast()), keyText + "a",
        // The last character carries one bit of the key and four zero bits: only 'a' and 'q' are possible.
        String(keyText.dropLast()) + "b",
        // 0, 1, 8 and 9 are not base32.
        String(keyText.dropLast(2)) + "1q", String(fingerprint.dropLast()), fingerprint + "0",
        "relay " + String(fingerprint.dropLast()) + "g", "fingerprint " + fingerprint, "relay:" + fingerprint + "é",
    ]

    @Test(arguments: invalidKeys)
    func join_refusesAnythingElse_quotingIt(text: String) {
        #expect(
            parseError(Self.join + ["--relay-key=\(text)"])
                == UsageError("invalid relay key '\(text)': \(Self.expectation)", mode: .join))
    }

    @Test func exitCode_77_isNotPermitted_andListedInHelp() {
        #expect(ExitCode.notPermitted.rawValue == 77)
        #expect(
            HelpText.general().contains(
                "  77                      The relay's key did not match the pinned one, or was\n"))
    }
}
