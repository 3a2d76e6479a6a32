import AESChatCLI
import Testing

@testable import AESChatCore

@Suite struct TransferScreenTests {
    static func totals(count: Int, bytes: UInt64, total: UInt64, rate: UInt64, name: String? = nil, asking: [Int] = [])
        -> TransferTotals
    {
        TransferTotals(
            count: count, bytes: bytes, total: total, bytesPerSecond: rate, single: name.map { ($0, true) },
            asking: asking)
    }

    @Test func statusText_oneTransfer_showsNamePercentRateAndTimeLeft() {
        let text = Self.totals(count: 1, bytes: 34, total: 100, rate: 11, name: "report.pdf").statusText
        #expect(text == "↑ report.pdf 34% 11 B/s ETA 0:06")
    }

    @Test func statusText_severalTransfers_addUp() {
        let text = Self.totals(count: 2, bytes: 340_000_000, total: 1_000_000_000, rate: 11_200_000).statusText
        #expect(text == "2 transfers, 34% 11.2 MB/s")
    }

    @Test func statusText_stalledAndAsking() {
        #expect(Self.totals(count: 2, bytes: 1, total: 10, rate: 0).statusText == "2 transfers, 10% stalled")
        #expect(Self.totals(count: 0, bytes: 0, total: 0, rate: 0, asking: [4]).statusText == "file offered: y/n")
        #expect(TransferTotals.none.statusText == nil)
    }

    /// The whole readout (rate and time left) fits an 80-column status row beside the name, room and members,
    /// even for a long file name at 999 MB/s.
    @Test func progressReadout_fitsEightyColumns() {
        let harness = ScreenHarness(rows: 12, columns: 80)
        harness.show(.ready(name: "alice", room: "lobby", members: ["bob", "carol"], fingerprint: nil))
        let name = "a-rather-long-file-name-for-a-quarterly-report-2026.pdf"
        harness.screen.transfersChanged(
            Self.totals(count: 1, bytes: 3_400_000_000, total: 10_000_000_000, rate: 999_000_000, name: name))
        harness.pump()
        #expect(harness.statusLine.hasSuffix("| 2 others here | ↑ a-rather-long-f… 34% 999.0 MB/s ETA 0:06"))
        harness.screen.transfersChanged(Self.totals(count: 2, bytes: 34, total: 100, rate: 11_200_000))
        harness.pump()
        #expect(harness.statusLine.hasPrefix("-- alice in lobby | 2 others here | 2 transfers, 34% 11.2 MB/s |"))
        harness.screen.transfersChanged(.none)
        harness.pump()
        #expect(!harness.statusLine.contains("transfers"))
    }

    @Test func offer_isAskedOnTheInputRow_yAccepts_nAndEnterDecline() {
        let harness = ScreenHarness(rows: 12, columns: 140)
        harness.show(.ready(name: "alice", room: "lobby", members: ["bob"], fingerprint: nil))
        harness.show(.fileOffered(number: 3, name: "report.pdf", from: "bob", bytes: 2_100_000, seconds: 60))
        harness.screen.transfersChanged(Self.totals(count: 0, bytes: 0, total: 0, rate: 0, asking: [3]))
        harness.pump()
        #expect(harness.terminal.bells == 1)
        #expect(harness.inputLine == "accept report.pdf (2.1 MB) from bob? [y/N]")
        #expect(
            harness.terminal.line(10).hasPrefix("09:05 ? bob offers report.pdf, 2.1 MB — accept? [y/N] (/accept 3"))
        harness.type("y")
        #expect(harness.actions == [.send("/accept 3")])
        #expect(harness.inputLine == ">")
        harness.show(.fileOffered(number: 4, name: "a", from: "bob", bytes: 1, seconds: 60))
        harness.show(.fileOffered(number: 5, name: "b", from: "bob", bytes: 1, seconds: 60))
        harness.type("\r")
        #expect(harness.actions.last == .send("/decline 4"))
        harness.type("n")
        #expect(harness.actions.last == .send("/decline 5"))
        // Typing first: the question waits until the line is empty again; y is then just a letter.
        harness.show(.fileOffered(number: 6, name: "c", from: "bob", bytes: 1, seconds: 60))
        harness.type("hi y")
        #expect(harness.inputLine == "> hi y")
        // An offer answered elsewhere (or timed out) is no longer asked about.
        harness.screen.transfersChanged(.none)
        harness.type("\u{15}")
        #expect(harness.inputLine == ">")
    }

    @Test func commands_parse() {
        #expect(ChatCommand(parsing: "/accept") == .answerOffer(number: nil, accept: true))
        #expect(ChatCommand(parsing: "/accept 3") == .answerOffer(number: 3, accept: true))
        #expect(ChatCommand(parsing: "/decline #12") == .answerOffer(number: 12, accept: false))
        #expect(
            ChatCommand(parsing: "/accept x")
                == .invalid("'x' is not an offer number; /transfers lists them, for example: /accept 3"))
        #expect(ChatCommand(parsing: "/transfers") == .transfers)
        #expect(ChatCommand(parsing: "/transfers x") == .invalid("/transfers takes no arguments"))
        #expect(ChatCommand(parsing: "/cancel") == .cancel(nil))
        #expect(ChatCommand(parsing: "/cancel my report.pdf") == .cancel("my report.pdf"))
        #expect(ChatCommand(parsing: "/cancel #2") == .cancel("#2"))
    }

    @Test func joinDefaults_askOnATerminal_takeAllWithinOneGibibyteOtherwise() {
        var options = JoinOptions(name: "a")
        #expect(JoinMode.filePolicy(options, interactive: true) == (.ask, nil))
        #expect(JoinMode.filePolicy(options, interactive: false) == (.all, 1 << 30))
        options.acceptFiles = AcceptFiles.none
        #expect(JoinMode.filePolicy(options, interactive: true) == (.none, nil))
        options.acceptFiles = .all
        options.maximumFileSize = UInt64.max
        #expect(JoinMode.filePolicy(options, interactive: true) == (.all, nil))
        options.maximumFileSize = 100
        #expect(JoinMode.filePolicy(options, interactive: false) == (.all, 100))
    }

    static func fakeFolders(_ path: String) -> [PathCompletion.Entry] {
        switch path {
        case ".":
            [
                .init(name: "report.pdf", isFolder: false), .init(name: "reports", isFolder: true),
                .init(name: ".env", isFolder: false),
            ]
        case "reports/": [.init(name: "q1.pdf", isFolder: false)]
        case "/home/al/": [.init(name: "Downloads", isFolder: true)]
        default: []
        }
    }

    @Test func pathCandidates_relativeHomeAndHidden() {
        #expect(
            PathCompletion.candidates(for: "rep", home: "/home/al", list: Self.fakeFolders) == [
                "report.pdf", "reports/",
            ])
        #expect(PathCompletion.candidates(for: "reports/", home: nil, list: Self.fakeFolders) == ["reports/q1.pdf"])
        #expect(PathCompletion.candidates(for: "~", home: "/home/al", list: Self.fakeFolders) == ["~/"])
        #expect(PathCompletion.candidates(for: "~/D", home: "/home/al", list: Self.fakeFolders) == ["~/Downloads/"])
        #expect(PathCompletion.candidates(for: ".e", home: nil, list: Self.fakeFolders).contains(".env"))
        #expect(!PathCompletion.candidates(for: "", home: nil, list: Self.fakeFolders).contains(".env"))
    }

    @Test func tab_completesSendPaths_foldersEndingWithASlash() {
        let harness = ScreenHarness(rows: 12, columns: 80)
        harness.screen.listFolder = Self.fakeFolders
        harness.screen.home = "/home/al"
        harness.show(.ready(name: "alice", room: "lobby", members: ["bob"], fingerprint: nil))
        harness.type("/send reports\t")
        #expect(harness.inputLine == "> /send reports/")
        harness.type("\t")
        #expect(harness.inputLine == "> /send reports/q1.pdf")
        harness.type(" \t")
        #expect(harness.inputLine == "> /send reports/q1.pdf bob")  // the row drops the trailing space
        harness.type("\u{15}/send ~/Do\t")
        #expect(harness.inputLine == "> /send ~/Downloads/")
    }
}
