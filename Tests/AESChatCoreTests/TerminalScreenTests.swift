import Foundation
import Testing

@testable import AESChatCore

/// Enough of a VT100/xterm to check what ``ChatScreen`` draws: printable characters with their
/// widths and auto-wrap, CR, LF, BEL, CUP, EL, ED, DECSTBM, SGR, and the private modes.
struct VirtualTerminal {
    let rows: Int
    let columns: Int
    private(set) var cells: [[String]]
    private(set) var row = 0
    private(set) var column = 0
    private var pendingWrap = false
    private var top = 0
    private var bottom: Int
    private(set) var bells = 0
    private(set) var sgrCount = 0
    private(set) var modes: [String: Bool] = [:]
    /// Every line that scrolled off the top of the screen.
    private(set) var scrolledOff: [String] = []

    init(rows: Int, columns: Int) {
        self.rows = rows
        self.columns = columns
        cells = Array(repeating: Array(repeating: " ", count: columns), count: rows)
        bottom = rows - 1
    }

    /// The text of a row (1-based, as the terminal counts), trailing spaces removed.
    func line(_ number: Int) -> String {
        let text = cells[number - 1].joined()
        return String(text.reversed().drop { $0 == " " }.reversed())
    }

    var lines: [String] { (1...rows).map(line) }

    /// The cursor, 1-based.
    var cursor: (row: Int, column: Int) { (row + 1, column + 1) }

    mutating func feed(_ text: String) {
        var characters = Array(text)
        var index = 0
        while index < characters.count {
            let character = characters[index]
            index += 1
            switch character {
            case "\u{1B}":
                guard index < characters.count else { return }
                let kind = characters[index]
                index += 1
                if kind == "[" {
                    var parameters = ""
                    while index < characters.count, !("@"..."~").contains(characters[index]) {
                        parameters.append(characters[index])
                        index += 1
                    }
                    let final = characters[index]
                    index += 1
                    control(parameters, final)
                }
            case "\r":
                column = 0
                pendingWrap = false
            case "\n":
                lineFeed()
            case "\r\n":
                column = 0
                lineFeed()
            case "\u{07}":
                bells += 1
            default:
                put(character)
            }
        }
        characters.removeAll()
    }

    private mutating func control(_ parameters: String, _ final: Character) {
        let numbers = parameters.split(separator: ";", omittingEmptySubsequences: false).map { Int($0) }
        func number(_ index: Int, _ fallback: Int) -> Int {
            index < numbers.count ? numbers[index] ?? fallback : fallback
        }
        pendingWrap = false
        switch final {
        case "H":
            row = min(rows, max(1, number(0, 1))) - 1
            column = min(columns, max(1, number(1, 1))) - 1
        case "K":
            let start = number(0, 0) == 2 ? 0 : column
            for index in start..<columns { cells[row][index] = " " }
        case "J":
            cells = Array(repeating: Array(repeating: " ", count: columns), count: rows)
        case "r":
            top = number(0, 1) - 1
            bottom = number(1, rows) - 1
            row = 0
            column = 0
        case "m":
            sgrCount += 1
        case "h", "l":
            modes[parameters] = final == "h"
        default:
            Issue.record("unexpected control sequence \(parameters)\(final)")
        }
    }

    private mutating func lineFeed() {
        pendingWrap = false
        if row == bottom {
            scrolledOff.append(cells[top].joined())
            cells.remove(at: top)
            cells.insert(Array(repeating: " ", count: columns), at: bottom)
        } else if row < rows - 1 {
            row += 1
        }
    }

    private mutating func put(_ character: Character) {
        let width = DisplayWidth.of(character)
        if width == 0 {
            let previous = max(0, column - (pendingWrap ? 0 : 1))
            cells[row][previous] += String(character)
            return
        }
        if pendingWrap || column + width > columns {
            column = 0
            lineFeed()
        }
        cells[row][column] = String(character)
        if width == 2 { cells[row][column + 1] = "" }
        if column + width >= columns {
            column = columns - 1
            pendingWrap = true
        } else {
            column += width
        }
    }
}

/// A screen wired to a virtual terminal.
final class ScreenHarness {
    let screen: ChatScreen
    var terminal: VirtualTerminal
    var written = ""
    var actions: [TerminalAction] = []

    init(
        rows: Int = 12, columns: Int = 100, colors: ColorMode = .none, name: String = "alice",
        monotonic: @escaping () -> ContinuousClock.Instant = { .now }
    ) {
        screen = ChatScreen(
            ownName: name, room: "lobby", relay: "127.0.0.1:7777", colors: colors,
            size: ChatScreen.Size(rows: rows, columns: columns), clock: { (9, 5) }, monotonic: monotonic)
        terminal = VirtualTerminal(rows: rows, columns: columns)
        screen.start()
        pump()
    }

    func pump() {
        let output = screen.takeOutput()
        written += output
        terminal.feed(output)
    }

    func type(_ text: String) {
        actions += screen.receive(Array(text.utf8))
        pump()
    }

    func show(_ event: ClientEvent) {
        screen.show(event)
        pump()
    }

    var inputLine: String { terminal.line(terminal.rows) }
    var statusLine: String { terminal.line(terminal.rows - 1) }
}

@Suite struct ChatScreenTests {
    @Test func start_drawsStatusAndPromptAtTheBottom_andTurnsBracketedPasteOn() {
        let harness = ScreenHarness()
        #expect(harness.inputLine == ">")
        #expect(harness.statusLine.hasPrefix("-- alice in lobby | connecting to 127.0.0.1:7777 | bell: mentions"))
        #expect(harness.terminal.modes["?2004"] == true)
        #expect(harness.terminal.cursor == (12, 3))
    }

    @Test func incomingMessages_scrollAbove_andNeverTouchTheInputLine() {
        let harness = ScreenHarness()
        harness.show(.ready(name: "alice", room: "lobby", members: ["bob"], fingerprint: nil))
        harness.type("hel")
        for number in 0..<50 {
            harness.show(.message(from: "bob", text: "message \(number)", isPrivate: false))
            if number == 20 { harness.type("lo") }
        }
        #expect(harness.inputLine == "> hello")
        #expect(harness.terminal.cursor == (12, 8))
        #expect(harness.terminal.line(10) == "09:05 <bob> message 49")
        #expect(harness.terminal.line(9) == "09:05 <bob> message 48")
        #expect(harness.statusLine.hasPrefix("-- alice in lobby | 1 other here | bell: mentions"))
        harness.type("\r")
        #expect(harness.actions == [.send("hello")])
        #expect(harness.terminal.line(10) == "09:05 <alice> hello")
        #expect(harness.inputLine == ">")
    }

    @Test func longMessages_wrapInsideTheMessageArea() {
        let harness = ScreenHarness(rows: 8, columns: 20)
        harness.type("abc")
        harness.show(.message(from: "bob", text: String(repeating: "x", count: 30), isPrivate: false))
        // Wrapped at the space: the word starts the next row, and is cut where it is longer than a row.
        #expect(harness.terminal.line(4) == "09:05 <bob>")
        #expect(harness.terminal.line(5) == String(repeating: "x", count: 20))
        #expect(harness.terminal.line(6) == String(repeating: "x", count: 10))
        #expect(harness.terminal.line(7).hasPrefix("-- alice in lobby"))
        #expect(harness.inputLine == "> abc")
    }

    @Test func hostileText_isShownVisibly_andChangesNothingElse() {
        let harness = ScreenHarness(columns: 250, colors: .basic)
        harness.show(.ready(name: "alice", room: "lobby", members: ["bob"], fingerprint: nil))
        harness.type("draft")
        let before = harness.terminal.lines
        let sgrBefore = harness.terminal.sgrCount
        let hostile =
            "a\u{1B}]0;pwned\u{07}b\u{1B}[2J\u{1B}[H\u{1B}[10;1Hc\u{9B}31md\rX<bob> fake\u{202E}e\u{1B}]8;;http://x\u{1B}\\"
            + "\u{1B}]52;c;aGk=\u{07}\u{1B}[6n\u{1B}P$qm\u{1B}\\\u{1B}[21t"
        harness.show(.message(from: "bob", text: hostile, isPrivate: false))
        #expect(
            harness.terminal.line(10).hasPrefix(
                "09:05 <bob> a\\x1B]0;pwned\\x07b\\x1B[2J\\x1B[H\\x1B[10;1Hc\\x9B31md\\rX<bob>"))
        #expect(Array(harness.terminal.lines[0..<9]) == Array(before[1..<10]))
        #expect(harness.inputLine == "> draft")
        #expect(harness.statusLine == before[10])
        #expect(harness.terminal.bells == 0)
        #expect(harness.terminal.modes.keys.sorted() == ["?2004", "?25"])
        #expect(harness.terminal.sgrCount > sgrBefore)
        #expect(harness.actions.isEmpty)
    }

    @Test func noColor_writesNoSGR_butColorsNamesOtherwise() {
        let plain = ScreenHarness(colors: .none)
        plain.show(.ready(name: "alice", room: "lobby", members: ["bob"], fingerprint: nil))
        plain.show(.message(from: "bob", text: "hi alice", isPrivate: false))
        plain.show(.warning(kind: "tampered", name: "bob", message: "x"))
        plain.type("/help\r")
        #expect(plain.terminal.sgrCount == 0)
        let colored = ScreenHarness(colors: .basic)
        colored.show(.message(from: "bob", text: "hi", isPrivate: false))
        #expect(colored.written.contains("\u{1B}[\(ColorMode.basic.nameColor("bob"))mbob\u{1B}[0m"))
    }

    @Test func wideAndCombiningCharacters_keepTheCursorInPlace() {
        let harness = ScreenHarness()
        harness.type("你好")
        #expect(harness.inputLine == "> 你好")
        #expect(harness.terminal.cursor == (12, 7))
        harness.type("e\u{301}")
        #expect(harness.terminal.cursor == (12, 8))
        harness.type("\u{1B}[D\u{1B}[D")
        #expect(harness.terminal.cursor == (12, 5))
        harness.type("\u{7F}")
        #expect(harness.inputLine == "> 好e\u{301}")
        #expect(harness.terminal.cursor == (12, 3))
    }

    @Test func longInput_scrollsHorizontally_withinTheLine() {
        let harness = ScreenHarness(rows: 6, columns: 20)
        let text = (0..<40).map { String($0 % 10) }.joined()
        harness.type(text)
        #expect(harness.inputLine.hasPrefix("> <"))
        #expect(harness.inputLine.hasSuffix("789"))
        #expect(harness.terminal.cursor.column <= 20)
        #expect(harness.terminal.cursor.row == 6)
        harness.type("\u{1B}[H")
        #expect(harness.inputLine.hasPrefix("> 0123456789"))
        #expect(harness.inputLine.hasSuffix(">"))
        #expect(harness.terminal.cursor == (6, 3))
        // Wide characters at the edge never push the line past the last column.
        harness.type("\u{1B}[F" + String(repeating: "你", count: 30))
        #expect(DisplayWidth.of(harness.inputLine) <= 19)
        #expect(harness.terminal.cursor.column <= 20)
        #expect(!harness.terminal.lines.dropLast().contains { $0.contains("你") })
    }

    @Test func resize_repaintsRecentLines_statusAndInput() {
        let harness = ScreenHarness(rows: 10, columns: 40)
        for number in 0..<20 { harness.show(.message(from: "bob", text: "line \(number)", isPrivate: false)) }
        harness.type("typing")
        harness.screen.resize(to: ChatScreen.Size(rows: 6, columns: 30))
        harness.terminal = VirtualTerminal(rows: 6, columns: 30)
        harness.pump()
        #expect(
            harness.terminal.lines[0..<4] == [
                "09:05 <bob> line 16", "09:05 <bob> line 17", "09:05 <bob> line 18", "09:05 <bob> line 19",
            ])
        #expect(harness.statusLine.hasPrefix("-- alice in lobby"))
        #expect(harness.inputLine == "> typing")
        #expect(harness.terminal.cursor == (6, 9))
    }

    @Test func editingKeys_produceTheExpectedLine() {
        let harness = ScreenHarness()
        harness.type("hello world" + String(repeating: "\u{1B}[D", count: 6) + "\u{7F}\r")
        harness.type("one two three\u{17}\u{17}four\r")
        harness.type("scrap\u{15}again\r")
        harness.type("\u{1B}[A\u{1B}[A!\r")
        harness.type("x\u{1}y\u{5}z\u{2}\u{2}\u{B}\r")
        #expect(
            harness.actions == [
                .send("hell world"), .send("one four"), .send("again"), .send("one four!"), .send("y"),
            ])
    }

    @Test func tab_completesMemberNamesAndCommands() {
        let harness = ScreenHarness()
        harness.show(.ready(name: "alice", room: "lobby", members: ["bob", "carol", "caroline"], fingerprint: nil))
        harness.type("b\t")
        #expect(harness.screen.inputText == "bob: ")
        harness.type("ask ca\t")
        #expect(harness.screen.inputText == "bob: ask carol")
        #expect(harness.terminal.line(10) == "-- carol  caroline")
        harness.type("\t\t")
        #expect(harness.screen.inputText == "bob: ask caroline ")
        harness.type("\u{15}/ig\t")
        #expect(harness.screen.inputText == "/ignore ")
        harness.type("c\t")
        #expect(harness.screen.inputText == "/ignore carol")
        harness.type("\u{15}/bell m\t")
        #expect(harness.screen.inputText == "/bell mentions")
        harness.show(.left(name: "bob"))
        harness.type("\u{15}b\t")
        #expect(harness.screen.inputText == "b")
    }

    @Test func localCommands_areHandledHere_andNotSent() {
        // Tall enough that /help's list does not scroll the first answers away.
        let harness = ScreenHarness(rows: 50, columns: 100)
        harness.show(.ready(name: "alice", room: "lobby", members: ["bob"], fingerprint: nil))
        harness.type("/frobnicate\r/bell loud\r/ignore\r/help\r")
        #expect(harness.actions.isEmpty)
        let screen = harness.terminal.lines.joined(separator: "\n")
        #expect(screen.contains("-- unknown command '/frobnicate': type /help for the list"))
        #expect(screen.contains("-- unknown bell setting 'loud': expected /bell off, /bell mentions or /bell all"))
        #expect(screen.contains("-- expected /ignore NAME: a member name"))
        #expect(screen.contains("  /quit"))
        harness.type("/who\r/msg bob hi\r/send f.txt\r")
        #expect(harness.actions == [.send("/who"), .send("/msg bob hi"), .send("/send f.txt")])
        harness.actions.removeAll()
        harness.type("/clear\r")
        #expect(harness.terminal.lines.dropLast(2).allSatisfy { $0.isEmpty })
        harness.type("/quit\r")
        #expect(harness.actions == [.end])
        #expect(harness.inputLine.isEmpty)
    }

    @Test func me_isPassedOn_andShownAsAnAction() {
        let harness = ScreenHarness()
        harness.type("/me waves\r")
        #expect(harness.actions == [.send("/me waves")])
        #expect(harness.terminal.line(10) == "09:05 * alice waves")
        harness.show(.message(from: "bob", text: "/me bows", isPrivate: false))
        #expect(harness.terminal.line(10) == "09:05 * bob bows")
    }

    @Test func ctrlC_clearsALine_thenInterruptsOnTheEmptyOne_ctrlD_endsOnlyOnAnEmptyLine() {
        let interrupted = ScreenHarness()
        interrupted.type("abc\u{2}\u{3}")
        #expect(interrupted.actions.isEmpty)
        #expect(interrupted.inputLine == ">")
        #expect(interrupted.statusLine.hasPrefix("-- line cleared: Ctrl-C again quits, Ctrl-Y puts it back | alice in"))
        interrupted.type("\u{19}")
        #expect(interrupted.screen.inputText == "abc")
        #expect(!interrupted.statusLine.contains("Ctrl-C again"))
        interrupted.type("\u{3}\u{3}more\u{3}")
        #expect(interrupted.actions == [.interrupt])
        #expect(interrupted.inputLine.isEmpty)
        let emptyLine = ScreenHarness()
        emptyLine.type("\u{3}")
        #expect(emptyLine.actions == [.interrupt])
        let ended = ScreenHarness()
        ended.type("ab\u{1}\u{4}")
        #expect(ended.screen.inputText == "b")
        ended.type("\u{4}\u{4}")
        #expect(ended.actions == [.end])
        ended.type("x\u{3}")
        #expect(ended.actions == [.end, .interrupt])
    }

    @Test func multiLinePaste_asksBeforeSendingAsOneMessage() {
        let harness = ScreenHarness()
        harness.type("\u{1B}[200~first\r\nsecond\u{1B}[201~")
        #expect(harness.inputLine == "> first\u{23CE}second")
        harness.type("\r")
        #expect(
            harness.inputLine.hasPrefix("Send these 2 lines as one message? y: yes, s: as 2 messages, n: keep editing"))
        #expect(harness.actions.isEmpty)
        harness.type("n")
        #expect(harness.inputLine == "> first\u{23CE}second")
        harness.type("\ry")
        #expect(harness.actions == [.send("first\nsecond")])
        #expect(harness.terminal.line(9) == "09:05 <alice> first")
        #expect(harness.terminal.line(10) == "              second")
        harness.type("\u{1B}[200~a\nb\n\u{1B}[201~\rs")
        #expect(harness.actions == [.send("first\nsecond"), .send("a"), .send("b")])
    }

    @Test func bell_ringsForMentionsAndPrivateMessages_bySetting() {
        let harness = ScreenHarness()
        harness.show(.message(from: "bob", text: "lunch?", isPrivate: false))
        harness.show(.message(from: "bob", text: "Alice: lunch?", isPrivate: false))
        harness.show(.message(from: "bob", text: "psst", isPrivate: true))
        harness.show(.message(from: "bob", text: "malice", isPrivate: false))
        #expect(harness.terminal.bells == 2)
        harness.type("/bell all\r")
        harness.show(.message(from: "bob", text: "lunch?", isPrivate: false))
        #expect(harness.terminal.bells == 3)
        harness.type("/bell off\r")
        harness.show(.message(from: "bob", text: "alice!", isPrivate: true))
        #expect(harness.terminal.bells == 3)
        #expect(harness.statusLine.contains("bell: off"))
    }

    @Test func ignore_hidesAMembersMessages_untilUnignored() {
        let harness = ScreenHarness()
        harness.type("/ignore bob\r")
        harness.show(.message(from: "bob", text: "spam", isPrivate: false))
        #expect(!harness.terminal.lines.contains { $0.contains("spam") })
        #expect(harness.statusLine.contains("ignoring: bob"))
        harness.show(.warning(kind: "tampered", name: "bob", message: "refused"))
        #expect(harness.terminal.line(10).contains("! tampered from bob: refused"))
        harness.type("/unignore bob\r")
        harness.show(.message(from: "bob", text: "back", isPrivate: false))
        #expect(harness.terminal.line(10) == "09:05 <bob> back")
        harness.type("/unignore bob\r")
        #expect(harness.terminal.line(10) == "-- you are not ignoring bob")
        #expect(harness.actions.isEmpty)
    }

    @Test func ready_showsTheUsersOwnFingerprint_underTheBanner() {
        let harness = ScreenHarness(rows: 14, columns: 120)
        harness.show(
            .ready(
                name: "alice", room: "lobby", members: ["bob"], fingerprint: "1a2b 3c4d 5e6f 7a8b 9c0d 1e2f 3a4b 5c6d"))
        #expect(harness.terminal.line(11) == "09:05 -- you are alice in lobby; here: bob")
        #expect(
            harness.terminal.line(12)
                == "09:05 -- your fingerprint: 1a2b 3c4d 5e6f 7a8b 9c0d 1e2f 3a4b 5c6d (/verify shows it again)"
        )
    }

    @Test func verifiedMembers_carryACheckMark_untilTheyLeave_orTheirKeyChanges() {
        let harness = ScreenHarness()
        harness.show(.ready(name: "alice", room: "lobby", members: ["bob", "carol"], fingerprint: "f"))
        harness.show(.member(MemberStatus(name: "bob", fingerprint: "b", trust: .verified)))
        harness.show(.member(MemberStatus(name: "carol", fingerprint: "c", trust: .known)))
        harness.show(.message(from: "bob", text: "hi", isPrivate: false))
        #expect(harness.terminal.line(10) == "09:05 <bob \u{2713}> hi")
        harness.show(.message(from: "carol", text: "hello", isPrivate: false))
        #expect(harness.terminal.line(10) == "09:05 <carol> hello")
        harness.show(.trusted(name: "carol", fingerprint: "c"))
        harness.show(.action(from: "carol", text: "bows", isPrivate: false))
        #expect(harness.terminal.line(10) == "09:05 * carol \u{2713} bows")
        harness.show(.message(from: "carol", text: "psst", isPrivate: true))
        #expect(harness.terminal.line(10) == "09:05 *carol \u{2713}* psst")
        harness.show(.left(name: "bob"))
        harness.show(.joined(name: "bob"))
        harness.show(.member(MemberStatus(name: "bob", fingerprint: "x", trust: .changed)))
        harness.show(.message(from: "bob", text: "it is me", isPrivate: false))
        #expect(harness.terminal.line(10) == "09:05 <bob> it is me")
        // A known member arriving adds no line of its own; a new one says what to do.
        let before = harness.terminal.lines
        harness.show(.member(MemberStatus(name: "carol", fingerprint: "c", trust: .known)))
        #expect(harness.terminal.lines == before)
        harness.show(.member(MemberStatus(name: "dave", fingerprint: "d", trust: .new)))
        #expect(
            harness.terminal.line(10)
                == "09:05 * dave is new to you (d); /verify dave to check them")
    }

    @Test func roomCode_livesInTheStatusRow_markedWhenItChanges_andShownInFullWhenAsked() {
        let harness = ScreenHarness(columns: 200)
        harness.show(.ready(name: "alice", room: "lobby", members: [], fingerprint: "f"))
        let before = harness.terminal.lines.prefix(10)
        harness.show(.roomCode(code: "93554 17655 72980 49624 36812 68056 10859 05192", members: 1))
        #expect(harness.statusLine.contains("| code 93554 17655… |"))
        harness.show(.joined(name: "bob"))
        harness.show(.roomCode(code: "00000 11111 22222 33333 44444 55555 66666 77777", members: 2))
        #expect(harness.statusLine.contains("| code 00000 11111… changed |"))
        // No scrollback line for either code: only the joined line scrolled in.
        #expect(
            Array(harness.terminal.lines.prefix(10).dropFirst()) == Array(before.dropFirst(2)) + [
                "09:05 --> bob joined"
            ])
        harness.show(.roomCode(code: "00000 11111 22222 33333 44444 55555 66666 77777", members: 2, asked: true))
        // The whole code, in the conversation (a long line: it wraps onto the last row).
        #expect(
            harness.terminal.line(9).hasPrefix(
                "09:05 * room code 00000 11111 22222 33333 44444 55555 66666 77777 (2 members, you included)"))
        #expect(harness.statusLine.contains("| code 00000 11111… |"))
        #expect(!harness.terminal.lines.contains { $0.contains("ghost") })
    }

    @Test func heldMessages_showInTheStatusRow_andAHeldLineNeverLooksSent() {
        let harness = ScreenHarness()
        harness.show(.ready(name: "alice", room: "lobby", members: ["bob", "carol"], fingerprint: "f"))
        harness.show(.holding(members: ["bob"]))
        #expect(harness.statusLine.contains("messages held for bob: key changed"))
        harness.type("hello carol\r")
        #expect(harness.terminal.line(10) == "09:05 <alice> hello carol  (held for bob)")
        harness.show(.left(name: "carol"))
        harness.type("anyone?\r")
        #expect(harness.terminal.line(10) == "09:05 (held, not sent) <alice> anyone?")
        harness.show(.holding(members: []))
        #expect(!harness.statusLine.contains("held"))
        harness.type("now sent\r")
        #expect(harness.terminal.line(10) == "09:05 <alice> now sent")
        #expect(harness.actions == [.send("hello carol"), .send("anyone?"), .send("now sent")])
        // A new registration (a reconnect) starts afresh: nothing stays marked held from before.
        harness.show(.holding(members: ["bob"]))
        harness.show(.ready(name: "alice", room: "lobby", members: ["bob"], fingerprint: "f"))
        #expect(!harness.statusLine.contains("held"))
        harness.type("/verify r\t")
        #expect(harness.terminal.line(10) == "-- relay  room")
    }

    @Test func holdAll_marksEveryOwnLineHeldNotSent_andSaysSoInTheStatusRow() {
        let harness = ScreenHarness(columns: 120)
        harness.show(.ready(name: "alice", room: "lobby", members: ["bob", "carol"], fingerprint: "f"))
        harness.show(.holding(members: ["bob"], all: true))
        #expect(harness.statusLine.contains("all messages held (/hold all): bob key changed"))
        harness.type("hello carol\r")
        #expect(harness.terminal.line(10) == "09:05 (held, not sent) <alice> hello carol")
        harness.type("/me waves\r")
        #expect(harness.terminal.line(10) == "09:05 (held, not sent) * alice waves")
        harness.show(.holding(members: ["bob"], all: false))
        #expect(harness.statusLine.contains("messages held for bob: key changed"))
        harness.type("now for carol\r")
        #expect(harness.terminal.line(10) == "09:05 <alice> now for carol  (held for bob)")
    }

    @Test func verify_explainsWhatToCompareAndHow_onSeveralLines() {
        let harness = ScreenHarness(rows: 14, columns: 120)
        harness.show(.verify(name: "bob", fingerprint: "b0b0", safetyNumber: "12345 67890", yours: "a1a1"))
        #expect(
            Array(harness.terminal.lines[8..<12]) == [
                "09:05 -- to check that bob is really bob, compare with them in person or on a call, not in this chat:",
                "09:05 --   read the safety number aloud: 12345 67890 (you both see the same one)",
                "09:05 --   or compare fingerprints: bob's is b0b0, yours is a1a1",
                "09:05 -- if it matches, type /trust bob; if not, do not trust: someone may be in between",
            ])
    }

    @Test func events_haveDistinctForms() {
        let harness = ScreenHarness(rows: 14)
        harness.show(.ready(name: "alice", room: "lobby", members: [], fingerprint: nil))
        harness.show(.joined(name: "bob"))
        harness.show(.message(from: "bob", text: "secret", isPrivate: true))
        harness.show(.left(name: "bob"))
        harness.show(.error(message: "the relay closed the connection"))
        #expect(
            Array(harness.terminal.lines[7..<12]) == [
                "09:05 -- you are alice in lobby; nobody else is here yet", "09:05 --> bob joined",
                "09:05 *bob* secret", "09:05 <-- bob left", "09:05 ! error: the relay closed the connection",
            ])
    }

    @Test func aLostRelay_isOneQuietLine_andAStatusRowCountdown_thenOneReconnectedLine() {
        var now = ContinuousClock.now
        let harness = ScreenHarness(rows: 14, columns: 120, monotonic: { now })
        harness.show(.ready(name: "alice", room: "lobby", members: ["bob", "carol"], fingerprint: "f"))
        harness.show(.connectionLost(reason: "the relay closed the connection"))
        #expect(harness.statusLine.hasPrefix("-- alice in lobby | offline — reconnecting… | bell: mentions"))
        for attempt in 1...5 {
            harness.show(.reconnecting(attempt: attempt, delayMilliseconds: 2000, reason: "connection refused"))
        }
        #expect(harness.statusLine.hasPrefix("-- alice in lobby | offline — retrying in 2 s, /reconnect | bell:"))
        now += .milliseconds(1200)
        harness.screen.tick()
        harness.pump()
        #expect(harness.statusLine.hasPrefix("-- alice in lobby | offline — retrying in 1 s, /reconnect | bell:"))
        let before = harness.written.count
        harness.screen.tick()
        harness.pump()
        #expect(harness.written.count == before, "nothing changed: nothing drawn")
        now += .seconds(1)
        harness.screen.tick()
        harness.pump()
        #expect(harness.statusLine.hasPrefix("-- alice in lobby | offline — reconnecting… | bell:"))
        #expect(harness.screen.isOffline)
        // Registered again: no second banner, one line saying what changed.
        harness.show(.ready(name: "alice", room: "lobby", members: ["bob", "dave"], fingerprint: "f"))
        harness.show(.reconnected)
        #expect(!harness.screen.isOffline)
        #expect(
            Array(harness.terminal.lines[8..<12]) == [
                "09:05 -- you are alice in lobby; here: bob, carol",
                "09:05 -- your fingerprint: f (/verify shows it again)",
                "09:05 -- lost the relay (the relay closed the connection); reconnecting on its own, /reconnect tries now",
                "09:05 -- reconnected; here now: dave; not back yet: carol",
            ])
        #expect(!harness.terminal.lines.contains { $0.contains("! error") || $0.contains("attempt") })
        #expect(harness.statusLine.hasPrefix("-- alice in lobby | 2 others here | bell: mentions"))
        harness.show(.back(name: "carol"))
        #expect(harness.terminal.line(12) == "09:05 --> carol is back")
        #expect(harness.statusLine.hasPrefix("-- alice in lobby | 3 others here"))
    }

    @Test func finish_undoesTheScreenModes() {
        let harness = ScreenHarness()
        harness.type("half typed")
        harness.screen.finish()
        harness.pump()
        #expect(harness.terminal.modes["?2004"] == false)
        #expect(harness.terminal.modes["?25"] == true)
        #expect(harness.inputLine.isEmpty)
        #expect(harness.statusLine.isEmpty)
        #expect(harness.terminal.cursor == (11, 1))
        harness.terminal.feed("\n\n\n")
        #expect(harness.terminal.scrolledOff.count == 2)
    }

    @Test func tinyWindows_stillKeepTheInputOnTheLastRow() {
        let harness = ScreenHarness(rows: 2, columns: 10)
        harness.type("ab")
        harness.show(.message(from: "bob", text: "hi", isPrivate: false))
        #expect(harness.inputLine == "ab")
        #expect(harness.terminal.line(1) == "> hi")
    }

    @Test func mentions_matchTheNameAsAWord() {
        #expect(ChatScreen.mentions("alice", in: "hi alice"))
        #expect(ChatScreen.mentions("alice", in: "ALICE, lunch?"))
        #expect(ChatScreen.mentions("alice", in: "(alice)"))
        #expect(!ChatScreen.mentions("alice", in: "malice"))
        #expect(!ChatScreen.mentions("alice", in: "alice_2 is here"))
        #expect(!ChatScreen.mentions("bob", in: ""))
    }
}

/// Scrolling back (PgUp, PgDn, /search), wrapping at spaces under the message text, and what the terminal keeps
/// between sessions (issue 14, item 18).
@Suite struct ScrollbackTests {
    static func text(_ rows: [StyledLine]) -> [String] { rows.map(\.plainText) }

    @Test func wrapping_breaksAtSpaces_andIndentsUnderTheMessageText() {
        let line = StyledLine(
            [Span("09:05 "), Span("<bob> "), Span("the quick brown fox jumps over the lazy dog")], indent: 12)
        #expect(
            Self.text(line.wrapped(width: 30)) == [
                "09:05 <bob> the quick brown", "            fox jumps over the", "            lazy dog",
            ])
        // Roles survive the cut.
        #expect(line.wrapped(width: 30)[0].spans.map(\.text) == ["09:05 <bob> the quick brown"])
    }

    @Test func wrapping_cutsAWordLongerThanARow_andFitsWideCharactersByColumns() {
        let long = StyledLine([Span("12345 "), Span(String(repeating: "x", count: 20))], indent: 6)
        #expect(Self.text(long.wrapped(width: 12)) == ["12345 xxxxxx", "      xxxxxx", "      xxxxxx", "      xx"])
        let wide = StyledLine([Span("ab 你好你好你好")], indent: 0)
        // A run without spaces (CJK) moves to the next row whole when it fits there.
        #expect(Self.text(wide.wrapped(width: 8)) == ["ab", "你好你好", "你好"])
        #expect(Self.text(StyledLine([Span("short")], indent: 3).wrapped(width: 8)) == ["short"])
        // An indent of more than half the row is dropped rather than leaving a sliver.
        let deep = StyledLine([Span("aaaaaaa bbbbbbb ccccccc")], indent: 7)
        #expect(Self.text(deep.wrapped(width: 10)) == ["aaaaaaa", "bbbbbbb", "ccccccc"])
    }

    @Test func screen_wrapsLongMessages_atSpaces_underTheText() {
        let harness = ScreenHarness(rows: 8, columns: 30)
        harness.show(.message(from: "bob", text: "the quick brown fox jumps over the lazy dog", isPrivate: false))
        #expect(harness.terminal.line(4) == "09:05 <bob> the quick brown")
        #expect(harness.terminal.line(5) == "            fox jumps over the")
        #expect(harness.terminal.line(6) == "            lazy dog")
    }

    static func filled(_ count: Int) -> ScreenHarness {
        let harness = ScreenHarness(rows: 8, columns: 100)
        for number in 0..<count {
            harness.show(.message(from: "bob", text: "line \(number)", isPrivate: false))
        }
        return harness
    }

    @Test func pageUp_showsEarlierLines_newOnesWaitBelow_pageDown_returns() {
        let harness = Self.filled(30)
        #expect(harness.terminal.line(6) == "09:05 <bob> line 29")
        harness.type("\u{1B}[5~")  // PgUp: the message area has 6 rows, a page is 5 lines
        #expect(harness.terminal.line(6) == "09:05 <bob> line 24")
        #expect(harness.statusLine.hasPrefix("-- scrolled back: PgDn for newer"))
        harness.show(.message(from: "bob", text: "arrived meanwhile", isPrivate: false))
        #expect(harness.terminal.line(6) == "09:05 <bob> line 24")
        #expect(harness.statusLine.hasPrefix("-- scrolled back, 1 new: PgDn for newer"))
        harness.type("\u{1B}[5~\u{1B}[5~\u{1B}[5~\u{1B}[5~\u{1B}[5~\u{1B}[5~\u{1B}[5~")
        #expect(harness.terminal.line(6) == "09:05 <bob> line 0")
        harness.type(String(repeating: "\u{1B}[6~", count: 10))
        #expect(harness.terminal.line(6) == "09:05 <bob> arrived meanwhile")
        #expect(harness.statusLine.hasPrefix("-- alice in lobby"))
    }

    @Test func search_findsTheLatestMatch_thenEarlierOnes_andSaysWhenThereIsNone() {
        let harness = Self.filled(30)
        harness.show(.message(from: "carol", text: "The Needle here", isPrivate: false))
        harness.show(.message(from: "bob", text: "after", isPrivate: false))
        harness.type("/search line 1\r")
        #expect(harness.actions.isEmpty)
        #expect(harness.terminal.line(6) == "09:05 <bob> line 19")
        #expect(harness.statusLine.contains("found 'line 1': /search again for earlier"))
        harness.type("/search line 1\r")
        #expect(harness.terminal.line(6) == "09:05 <bob> line 18")
        harness.type("/search needle\r")
        #expect(harness.terminal.line(6) == "09:05 <carol> The Needle here")
        harness.type("/search nowhere to be found\r")
        #expect(harness.statusLine.contains("no line contains 'nowhere to be found'"))
        harness.type("/search\r")
        #expect(harness.terminal.lines.contains("-- expected /search TEXT: the text to find in the messages"))
        // Sending a line goes back to the latest messages.
        harness.type("hello\r")
        #expect(harness.terminal.line(6) == "09:05 <alice> hello")
    }

    @Test func state_keepsHistoryBellAndIgnores_inPrivateFiles() throws {
        let folder = FileManager.default.temporaryDirectory.appendingPathComponent("aeschat-state-\(UUID())").path
        defer { try? FileManager.default.removeItem(atPath: folder) }
        let state = TerminalState(folder: folder + "/aeschat")
        #expect(state.loadHistory().isEmpty)
        #expect(state.loadSettings() == TerminalState.Settings())
        state.saveHistory((0..<600).map { "line \($0)" } + ["two\nlines", "last"])
        state.saveSettings(TerminalState.Settings(bell: .all, ignored: ["mallory", "eve"]))
        let history = state.loadHistory()
        #expect(history.count == LineEditor.historyLimit)
        #expect(history.last == "last" && !history.contains("two\nlines"))
        #expect(state.loadSettings() == TerminalState.Settings(bell: .all, ignored: ["eve", "mallory"]))
        for name in ["history", "state"] {
            let attributes = try FileManager.default.attributesOfItem(atPath: folder + "/aeschat/" + name)
            #expect((attributes[.posixPermissions] as? NSNumber)?.intValue == 0o600)
        }
        let folderMode = try FileManager.default.attributesOfItem(atPath: folder + "/aeschat")[.posixPermissions]
        #expect((folderMode as? NSNumber)?.intValue == 0o700)
        #expect(TerminalState.folder(environment: ["XDG_STATE_HOME": "/s", "HOME": "/h"]) == "/s/aeschat")
        #expect(TerminalState.folder(environment: ["HOME": "/h"]) == "/h/.local/state/aeschat")
    }

    @Test func screen_savesBellAndIgnores_whenChanged_andRestoresHistory() {
        let harness = ScreenHarness()
        var saved: [(BellMode, Set<String>)] = []
        harness.screen.onSettingsChanged = { saved.append(($0, $1)) }
        harness.screen.restore(history: ["from last time"], ignored: ["eve"])
        harness.pump()
        #expect(harness.statusLine.contains("ignoring: eve"))
        harness.type("\u{1B}[A")
        #expect(harness.screen.inputText == "from last time")
        harness.type("\u{15}/bell off\r/unignore eve\r")
        #expect(saved.map(\.0) == [.off, .off])
        #expect(saved.map(\.1) == [["eve"], []])
        #expect(harness.screen.historyEntries == ["from last time", "/bell off", "/unignore eve"])
    }
}
