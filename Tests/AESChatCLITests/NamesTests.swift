import AESChatCLI
import AESChatNames
import Testing

@Suite struct NamesTests {
    static let validMemberNames = [
        "a", "Z", "0", "-", "_", ".", "alice", "Bob_2", "x.y-z", "..", String(repeating: "m", count: 32),
        "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdef", "0123456789-_.",
    ]
    static let invalidNames = [
        "", " ", "a b", " a", "a ", "a\tb", "a\nb", "a/b", "a\\b", "a:b", "a@b", "a'b", "a\"b", "a,b", "a+b", "zoë",
        "\u{FF41}", "e\u{301}", "日本", "🙂", "a\u{0}b", "a\u{200B}b",
    ]

    @Test(arguments: validMemberNames)
    func memberName_isValid_forAlphabetWithinLength(name: String) {
        #expect(Names.isValidMemberName(name))
        #expect(Names.isValidRoomName(name))
    }

    @Test(arguments: invalidNames)
    func names_areInvalid_outsideAlphabetOrEmpty(name: String) {
        #expect(!Names.isValidMemberName(name))
        #expect(!Names.isValidRoomName(name))
    }

    @Test func memberName_isInvalid_overThirtyTwoCharacters() {
        #expect(Names.isValidMemberName(String(repeating: "a", count: 32)))
        #expect(!Names.isValidMemberName(String(repeating: "a", count: 33)))
        #expect(!Names.isValidMemberName(String(repeating: "a", count: 1000)))
    }

    @Test func roomName_allowsSixtyFourCharacters_butNotSixtyFive() {
        #expect(Names.isValidRoomName(String(repeating: "r", count: 33)))
        #expect(Names.isValidRoomName(String(repeating: "r", count: 64)))
        #expect(!Names.isValidRoomName(String(repeating: "r", count: 65)))
    }

    @Test func parser_acceptsBoundaryNames() throws {
        let name = String(repeating: "n", count: 32)
        let room = String(repeating: "r", count: 64)
        let command = try CommandLineParser.parse(["join", "--name", name, "--inbox", "d", "--room", room])
        #expect(command == .join(JoinOptions(name: name, inbox: "d", room: room)))
    }
}
