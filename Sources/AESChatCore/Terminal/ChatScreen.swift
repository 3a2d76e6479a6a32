#if canImport(Glibc)
    import Glibc
#elseif canImport(Darwin)
    import Darwin
#endif

/// The interactive chat screen: a message area that scrolls, a status row, and the input line at
/// the bottom, which incoming messages never touch.
///
/// The message area is a scroll region (DECSTBM) over every row but the last two; a message is
/// written at the region's bottom after a line feed, so the region scrolls and the status and
/// input rows stay put. The input line scrolls horizontally and keeps the last column free, so it
/// never wraps. Every piece of network text goes through ``TerminalText/escapeControls(_:)``.
///
/// Pure: it is fed bytes from the keyboard, client events and window sizes, and appends the bytes
/// to write to ``output``; ``InteractiveTerminal`` does the I/O. Not thread-safe: its owner
/// serializes every call.
final class ChatScreen {
    /// A terminal size in character cells.
    struct Size: Equatable, Sendable {
        var rows: Int
        var columns: Int
    }

    private enum Mode: Equatable {
        case editing
        /// Enter was pressed on several lines (a paste): asking whether to send them as one.
        case confirming(String)
        /// Input is over (Ctrl-D, /quit, Ctrl-C): nothing more is read but Ctrl-C.
        case closed
        /// Ctrl-R: searching the input history (Enter takes the line found, Esc or Ctrl-G cancels).
        case searching(ReverseSearch)
    }

    /// The prompt before the input line.
    static let prompt = "> "
    /// Lines kept for scrolling back (PgUp, /search) and repainting after a resize.
    static let backlogLimit = 10_000
    /// Text kept for scrolling back, in bytes, so that huge messages do not pile up.
    static let backlogByteLimit = 8 * 1024 * 1024

    let ownName: String
    let room: String
    let colors: ColorMode
    private let relay: String
    private let clock: () -> (hour: Int, minute: Int)
    /// The home folder (for `~` in `/send` paths) and how a folder is listed: seams for tests.
    var home: String? = getenv("HOME").map { String(cString: $0) }
    var listFolder: (String) -> [PathCompletion.Entry] = PathCompletion.listFolder
    private let monotonic: () -> ContinuousClock.Instant

    /// The bytes to write to the terminal, in order; the owner drains it with ``takeOutput()``.
    private(set) var output = ""
    private(set) var size: Size
    private var editor = LineEditor()
    private var decoder = KeyDecoder()
    private var mode = Mode.editing
    private var scroll = 0
    private var cursorColumn = 1
    private var isReady = false
    private var isStarted = false
    /// A hint in the status row until the next key (after Ctrl-C cleared the line).
    private var hint: String?
    /// What the file transfers under way add up to, for the status row.
    private var transferTotals = TransferTotals.none
    /// File offers waiting for the user's answer (y/n on an empty input line), oldest first.
    private var offerQuestions: [(number: Int, text: String)] = []
    private var backlog: [StyledLine] = []
    private var backlogBytes = 0
    /// How many backlog lines lie below the bottom of the message area (0: the latest is shown, new lines scroll in).
    private var scrollOffset = 0
    /// Lines that arrived while scrolled back, not seen yet.
    private var unseen = 0
    /// The last `/search` text, and the backlog line (counted from the end) it found.
    private var lastSearch: (text: String, offset: Int)?

    /// The other members present, sorted.
    private(set) var members: [String] = []
    /// The members the user verified (with the same key): their lines carry ``MemberStatus/verifiedMark``.
    private(set) var verified: Set<String> = []
    /// The members for whom the user's messages are held (their key changed), sorted.
    private(set) var held: [String] = []
    /// Whether every line is held while those keys wait (`/hold all`).
    private(set) var holdsEverything = false
    /// The room code (automatic keys), shown in the status row, and whether it changed since the user last
    /// looked at it with `/verify room`.
    private(set) var roomCode: String?
    private var roomCodeChanged = false
    /// Names whose messages are hidden.
    private(set) var ignored: Set<String> = []
    /// When the bell rings.
    private(set) var bell = BellMode.mentions
    /// Called after `/bell`, `/ignore` or `/unignore` changed a setting, to save it.
    var onSettingsChanged: ((BellMode, Set<String>) -> Void)?
    /// The lines entered, oldest first, for saving.
    var historyEntries: [String] { editor.historyEntries }
    /// While the relay is lost: when the next attempt starts (nil while one is under way), and whether the one line
    /// that says so was shown. The status row says it instead of the member count.
    private var offline: (retryAt: ContinuousClock.Instant?, announced: Bool, reason: String?)?
    /// After a registration that followed a loss: who arrived and who is not back, for the one `reconnected` line.
    private var reconnectChanges: (new: [String], missing: [String])?
    /// The status row as last drawn, so that a tick redraws it only when it changed.
    private var lastStatus = ""

    /// Creates a screen; nothing is drawn until ``start()``.
    /// - Parameters:
    ///   - ownName: the user's member name.
    ///   - room: the room joined.
    ///   - relay: the relay's address, shown while connecting.
    ///   - colors: which colour codes to use.
    ///   - size: the terminal's size.
    ///   - clock: the local hour and minute, for timestamps.
    ///   - bell: when the bell rings, until `/bell` changes it.
    ///   - monotonic: the time for the countdown to the next attempt while offline.
    init(
        ownName: String, room: String, relay: String, colors: ColorMode, size: Size,
        clock: @escaping () -> (hour: Int, minute: Int), bell: BellMode = .mentions,
        monotonic: @escaping () -> ContinuousClock.Instant = { .now }
    ) {
        self.bell = bell
        self.monotonic = monotonic
        self.ownName = ownName
        self.room = room
        self.relay = relay
        self.colors = colors
        self.size = Self.usable(size)
        self.clock = clock
    }

    /// Takes what an earlier session saved: the entered lines and the ignored names.
    func restore(history: [String], ignored: Set<String>) {
        editor.loadHistory(history)
        self.ignored = ignored
        if isStarted { drawStatus() }
    }

    /// Returns and clears ``output``.
    func takeOutput() -> String {
        defer { output = "" }
        return output
    }

    /// The text being typed.
    var inputText: String { editor.text }

    /// How long to wait for more keyboard bytes before ``inputPaused()``, or `nil` to wait for
    /// as long as it takes.
    var inputWaitMilliseconds: Int32? { decoder.waitMilliseconds }

    // MARK: Layout

    private static func usable(_ size: Size) -> Size {
        Size(rows: max(1, size.rows), columns: max(8, size.columns))
    }

    private var hasStatusRow: Bool { size.rows >= 4 }
    private var usesScrollRegion: Bool { size.rows >= 3 }
    private var inputRow: Int { size.rows }
    private var statusRow: Int { size.rows - 1 }
    private var regionBottom: Int { hasStatusRow ? size.rows - 2 : size.rows - 1 }

    private static func moveTo(row: Int, column: Int) -> String { "\u{1B}[\(row);\(column)H" }
    private static let clearLine = "\u{1B}[2K"
    private static let hideCursor = "\u{1B}[?25l"
    private static let showCursor = "\u{1B}[?25h"

    // MARK: Lifecycle

    /// Draws the screen for the first time: makes room for the status and input rows below
    /// what the terminal shows, turns bracketed paste on and sets the scroll region.
    func start() {
        isStarted = true
        output += "\r" + String(repeating: "\n", count: hasStatusRow ? 2 : 1)
        output += "\u{1B}[?2004h"
        repaintChrome()
    }

    /// Undoes everything ``start()`` changed: bracketed paste off, no scroll region, status and
    /// input rows cleared, the cursor at the start of the first of them, visible.
    func finish() {
        output += "\u{1B}[?2004l\u{1B}[0m"
        if usesScrollRegion { output += "\u{1B}[r" }
        let firstRow = hasStatusRow ? statusRow : inputRow
        for row in firstRow...inputRow { output += Self.moveTo(row: row, column: 1) + Self.clearLine }
        output += Self.moveTo(row: firstRow, column: 1) + Self.showCursor
        mode = .closed
    }

    /// The window changed size: repaints everything (once started).
    func resize(to newSize: Size) {
        size = Self.usable(newSize)
        if isStarted { repaintAll() }
    }

    /// Stops reading input (Ctrl-D, /quit, end of input): the input row is cleared.
    func closeInput() {
        mode = .closed
        drawInput()
    }

    /// The file transfers under way changed: the status row shows their totals, and offers answered
    /// elsewhere (or timed out) stop being asked about.
    func transfersChanged(_ totals: TransferTotals) {
        transferTotals = totals
        offerQuestions.removeAll { !totals.asking.contains($0.number) }
        drawStatus()
        drawInput()
    }

    /// The offer the input row asks about: the oldest waiting, while the input line is empty.
    private var offerQuestion: (number: Int, text: String)? {
        editor.isEmpty ? offerQuestions.first : nil
    }

    // MARK: Keyboard

    /// Handles bytes read from the keyboard.
    /// - Parameter bytes: the bytes, in any chunking.
    /// - Returns: what the owner must do, in order.
    func receive(_ bytes: some Sequence<UInt8>) -> [TerminalAction] {
        handle(decoder.decode(bytes))
    }

    /// No more bytes came after an incomplete sequence (a lone Escape, say).
    /// - Returns: what the owner must do, in order.
    func inputPaused() -> [TerminalAction] {
        handle(decoder.flush())
    }

    /// Handles decoded keys.
    func handle(_ keys: [Key]) -> [TerminalAction] {
        guard !keys.isEmpty else { return [] }
        var actions: [TerminalAction] = []
        if hint != nil {
            hint = nil
            drawStatus()
        }
        for key in keys {
            switch mode {
            case .closed:
                if key == .control("c"), !actions.contains(.interrupt) { actions.append(.interrupt) }
            case .confirming(let text):
                confirm(text, key: key, actions: &actions)
            case .searching(let search):
                reverseSearch(search, key: key, actions: &actions)
            case .editing:
                edit(key, actions: &actions)
            }
        }
        drawInput()
        return actions
    }

    private func edit(_ key: Key, actions: inout [TerminalAction]) {
        // y or n on an empty line answers the file offer the input row asks about; Enter declines it.
        if let question = offerQuestion {
            var answer: String?
            switch key {
            case .text("y"), .text("Y"): answer = "/accept"
            case .text("n"), .text("N"), .enter: answer = "/decline"
            default: break
            }
            if let answer {
                offerQuestions.removeFirst()
                actions.append(.send("\(answer) \(question.number)"))
                return
            }
        }
        switch key {
        case .text(let text), .paste(let text): editor.insert(text)
        case .enter: submit(actions: &actions)
        case .tab: complete()
        case .backspace: editor.deleteBackward()
        case .delete: editor.deleteForward()
        case .left, .control("b"): editor.moveLeft()
        case .right, .control("f"): editor.moveRight()
        case .home, .control("a"): editor.moveHome()
        case .end, .control("e"): editor.moveEnd()
        case .pageUp: scroll(by: pageLines)
        case .pageDown: scroll(by: -pageLines)
        case .up, .control("p"): editor.historyPrevious()
        case .down, .control("n"): editor.historyNext()
        case .wordLeft: editor.moveWordLeft()
        case .wordRight: editor.moveWordRight()
        case .deleteWordBackward: editor.killWordBackward()
        case .deleteWordForward: editor.killWordForward()
        case .control("u"): editor.killToStart()
        case .control("k"): editor.killToEnd()
        case .control("w"): editor.killWhitespaceWordBackward()
        case .control("y"): editor.yank()
        case .control("t"): editor.transpose()
        case .control("l"): repaintAll()
        case .control("r"): mode = .searching(ReverseSearch(entries: editor.historyEntries))
        case .control("c"):
            interruptOrClear(actions: &actions)
        case .control("d"):
            if editor.isEmpty {
                mode = .closed
                actions.append(.end)
            } else {
                editor.deleteForward()
            }
        default:
            break
        }
    }

    /// Ctrl-C: a line being typed is cleared (into the kill buffer, so Ctrl-Y puts it back) and a hint says that
    /// Ctrl-C again quits; on an empty line Ctrl-C quits.
    private func interruptOrClear(actions: inout [TerminalAction]) {
        guard editor.isEmpty else {
            editor.killAll()
            hint = "line cleared: Ctrl-C again quits, Ctrl-Y puts it back"
            drawStatus()
            return
        }
        mode = .closed
        actions.append(.interrupt)
    }

    /// A key while Ctrl-R searches the history: text and Backspace change the query, Ctrl-R finds an older line,
    /// Enter puts the line found in the input line (to edit or send with another Enter), Esc, Ctrl-G and Ctrl-C
    /// cancel (the line typed before comes back); any other key takes the line found and then acts on it, as in a
    /// shell.
    private func reverseSearch(_ search: ReverseSearch, key: Key, actions: inout [TerminalAction]) {
        var search = search
        switch key {
        case .text(let text), .paste(let text):
            search.type(text)
        case .backspace:
            search.deleteBackward()
        case .control("r"):
            search.older()
        case .escape, .control("g"), .control("c"):
            mode = .editing
            return
        case .enter:
            mode = .editing
            if let match = search.match { editor.replaceAll(with: match) }
            return
        default:
            mode = .editing
            if let match = search.match { editor.replaceAll(with: match) }
            edit(key, actions: &actions)
            return
        }
        mode = .searching(search)
    }

    private func confirm(_ text: String, key: Key, actions: inout [TerminalAction]) {
        mode = .editing
        switch key {
        case .text(let typed) where typed.lowercased().hasPrefix("y"):
            _ = editor.submit()
            enter(text, actions: &actions)
        case .text(let typed) where typed.lowercased().hasPrefix("s"):
            _ = editor.submit()
            for line in text.split(separator: "\n") where !line.isEmpty { enter(String(line), actions: &actions) }
        case .control("c"):
            interruptOrClear(actions: &actions)
        default:
            break
        }
    }

    private func submit(actions: inout [TerminalAction]) {
        let text = editor.text
        guard !text.isEmpty else { return }
        if scrollOffset > 0, !text.hasPrefix("/search ") {
            scrollOffset = 0
            unseen = 0
            lastSearch = nil
            repaintAll()
        }
        if text.contains("\n") {
            mode = .confirming(text)
            return
        }
        enter(editor.submit(), actions: &actions)
    }

    /// Acts on an entered line: a message or client command is handed on, a local command is
    /// carried out here.
    private func enter(_ line: String, actions: inout [TerminalAction]) {
        switch TerminalCommands.interpret(line) {
        case .message(let text):
            actions.append(.send(text))
            if text.utf8.count <= ChatRoom.maximumMessageBytes {
                show(markHeld(messageLines(from: ownName, text: text, isPrivate: false, isOwn: true, isMention: false)))
            }
        case .action(let line, let text):
            actions.append(.send(line))
            show(markHeld(actionLines(from: ownName, text: text, isOwn: true)))
        case .clientCommand(let line):
            actions.append(.send(line))
        case .help:
            show(TerminalCommands.helpLines(bell: bell).map { StyledLine([Span($0, .notice)]) })
        case .clear:
            backlog.removeAll()
            backlogBytes = 0
            scrollOffset = 0
            unseen = 0
            lastSearch = nil
            repaintAll()
        case .quit:
            mode = .closed
            actions.append(.end)
        case .bell(nil):
            notice("bell: \(bell.rawValue); change it with /bell off, /bell mentions or /bell all")
        case .bell(let setting?):
            bell = setting
            notice("bell: \(setting.rawValue)")
            drawStatus()
            onSettingsChanged?(bell, ignored)
        case .ignore(let name):
            ignored.insert(name)
            notice("ignoring \(name): their messages are hidden until /unignore \(name)")
            drawStatus()
            onSettingsChanged?(bell, ignored)
        case .unignore(let name):
            if ignored.remove(name) != nil {
                notice("no longer ignoring \(name)")
                drawStatus()
                onSettingsChanged?(bell, ignored)
            } else {
                problem("you are not ignoring \(name)")
            }
        case .search(let text):
            search(text)
        case .problem(let message):
            problem(message)
        }
    }

    // MARK: Scrolling back

    /// Backlog lines a page moves by: the message area's height, less one line kept for context.
    private var pageLines: Int { max(1, regionBottom - 1) }

    /// PgUp (positive) and PgDn (negative): moves the view through the backlog; back at the bottom, new lines
    /// scroll in again.
    private func scroll(by lines: Int) {
        let offset = max(0, min(backlog.count - 1, scrollOffset + lines))
        guard offset != scrollOffset else { return }
        scrollOffset = offset
        if offset == 0 {
            unseen = 0
            lastSearch = nil
        }
        repaintAll()
    }

    /// `/search TEXT`: shows the latest line (before the one found last time, when searching for the same text
    /// again) that contains the text, ignoring case, at the bottom of the message area.
    private func search(_ text: String) {
        let needle = text.lowercased()
        var start = backlog.count - 1
        if let last = lastSearch, last.text == needle { start = backlog.count - 1 - last.offset - 1 }
        var index = start
        while index >= 0, !backlog[index].plainText.lowercased().contains(needle) { index -= 1 }
        guard index >= 0 else {
            hint =
                lastSearch?.text == needle
                ? "no earlier line contains \(Self.quoted(text))" : "no line contains \(Self.quoted(text))"
            drawStatus()
            return
        }
        lastSearch = (needle, backlog.count - 1 - index)
        scrollOffset = backlog.count - 1 - index
        if scrollOffset == 0 { unseen = 0 }
        hint = "found \(Self.quoted(text)): /search again for earlier, PgDn for newer"
        repaintAll()
    }

    private static func quoted(_ text: String) -> String {
        TerminalCommands.quoted(text)
    }

    /// The user's own room line, marked when it is held for some members (their key changed): "held" alone when
    /// it reaches nobody, so that a held line never looks sent.
    private func markHeld(_ lines: [StyledLine]) -> [StyledLine] {
        guard !held.isEmpty, var first = lines.first else { return lines }
        var marked = lines
        if holdsEverything || members.allSatisfy(held.contains) {
            first.spans.insert(Span("(held, not sent) ", .warning), at: 1)
        } else {
            first.spans.append(
                Span("  (held for " + held.map(TerminalText.escapeControls).joined(separator: ", ") + ")", .warning))
        }
        marked[0] = first
        return marked
    }

    private func complete() {
        let commands = TerminalCommands.names
        let members = self.members
        let home = self.home
        let listFolder = self.listFolder
        let ignored = self.ignored
        let shown = editor.complete { request in
            if request.previousWords.isEmpty, request.prefix.hasPrefix("/") {
                return .init(candidates: commands, suffix: " ")
            }
            switch request.previousWords.first {
            case "/bell" where request.previousWords.count == 1:
                return .init(candidates: BellMode.allCases.map(\.rawValue), suffix: "")
            case "/unignore" where request.previousWords.count == 1:
                return .init(candidates: ignored.sorted(), suffix: "")
            case "/verify" where request.previousWords.count == 1:
                return .init(candidates: members + ["relay", "room"], suffix: "")
            case "/send" where request.previousWords.count == 1:
                // The path: names in its folder (relative to the working folder, ~ for home); folders end with /.
                return .init(
                    candidates: PathCompletion.candidates(for: request.prefix, home: home, list: listFolder),
                    suffix: "")
            case "/msg", "/trust", "/ignore", "/send":
                return .init(candidates: members, suffix: " ")
            default:
                return .init(candidates: members, suffix: request.previousWords.isEmpty ? ": " : " ")
            }
        }
        if !shown.isEmpty { notice(shown.map(TerminalText.escapeControls).joined(separator: "  ")) }
    }

    // MARK: Client events

    /// Shows an event from the chat client: chat lines, members coming and going and file events each in their
    /// style; transfer progress replaces the transient part of the status row; any other event is a notice line
    /// with its ``ClientEvent/humanText``.
    func show(_ event: ClientEvent) {
        let clean = TerminalText.escapeControls
        switch event {
        case .ready(let name, let room, let present, let fingerprint):
            let before = members
            let again = isReady
            isReady = true
            offline = nil
            members = Array(Set(present.filter { $0 != ownName })).sorted()
            // A registration starts the keys afresh (after a reconnect too): what was held or verified is
            // announced again by the events that follow.
            held = []
            holdsEverything = false
            verified = []
            if again {
                // Registered again after a loss: no second banner; the `reconnected` line says what changed.
                reconnectChanges = (
                    members.filter { !before.contains($0) }, before.filter { !members.contains($0) }
                )
                drawStatus()
                placeCursor()
                return
            }
            var spans = [stamp(), Span("-- you are ", .notice), Span(clean(name), .ownName(name))]
            spans.append(Span(" in \(clean(room)); ", .notice))
            if members.isEmpty {
                spans.append(Span("nobody else is here yet", .notice))
            } else {
                spans.append(Span("here: ", .notice))
                for (index, member) in members.enumerated() {
                    if index > 0 { spans.append(Span(", ", .notice)) }
                    spans.append(Span(clean(member), .name(member)))
                }
            }
            show([StyledLine(spans)])
            if let fingerprint {
                show([
                    StyledLine([
                        stamp(),
                        Span("-- your fingerprint: \(clean(fingerprint)) (/verify shows it again)", .notice),
                    ])
                ])
            }
            drawStatus()
        case .joined(let name), .back(let name):
            if name != ownName, !members.contains(name) {
                members.append(name)
                members.sort()
            }
            var what = " joined"
            if case .back = event { what = " is back" }
            show([StyledLine([stamp(), Span("--> ", .joined), Span(clean(name), .name(name)), Span(what, .joined)])])
            drawStatus()
        case .left(let name):
            members.removeAll { $0 == name }
            verified.remove(name)
            show([StyledLine([stamp(), Span("<-- ", .left), Span(clean(name), .name(name)), Span(" left", .left)])])
            drawStatus()
        case .message(let from, let text, let isPrivate):
            guard !ignored.contains(from) else { return }
            let isMention = isPrivate || Self.mentions(ownName, in: text)
            if !isPrivate, text.hasPrefix("/me ") {
                show(actionLines(from: from, text: String(text.dropFirst(4)), isOwn: false))
            } else {
                show(messageLines(from: from, text: text, isPrivate: isPrivate, isOwn: false, isMention: isMention))
            }
            if from != ownName, bell == .all || (bell == .mentions && isMention) { ring() }
        case .action(let from, let text, _):
            guard !ignored.contains(from) else { return }
            show(actionLines(from: from, text: text, isOwn: false))
            if from != ownName, bell == .all || (bell == .mentions && Self.mentions(ownName, in: text)) { ring() }
        case .fileProgress:
            // The status row shows the transfers' totals (``transfersChanged(_:)``).
            break
        case .fileOffered(let number, let name, let from, let bytes, _):
            show([StyledLine([stamp(), Span(event.humanText, .warning)])])
            let question = "accept \(clean(name)) (\(ClientEvent.formatBytes(bytes))) from \(clean(from))? [y/N] "
            offerQuestions.append((number, question))
            ring()
            drawInput()
        case .fileReceived, .fileSent:
            show([StyledLine([stamp(), Span(event.humanText, .notice)])])
            drawStatus()
        case .fileFailed:
            show([StyledLine([stamp(), Span(event.humanText, .warning)])])
            drawStatus()
        case .warning:
            show([StyledLine([stamp(), Span(event.humanText, .warning)])])
        case .error:
            show([StyledLine([stamp(), Span(event.humanText, .error)])])
        case .connectionLost(let reason):
            // The status row says it; the `reconnecting` that follows writes the one line, with this reason.
            if offline == nil { offline = (nil, false, reason) }
            drawStatus()
            placeCursor()
        case .reconnecting(_, let delay, let reason):
            let announced = offline?.announced ?? false
            let cause = offline?.reason ?? reason
            offline = (monotonic() + .milliseconds(delay), true, cause)
            if !announced {
                show([
                    StyledLine([
                        stamp(),
                        Span(
                            "-- lost the relay (\(clean(cause))); reconnecting on its own, /reconnect tries now",
                            .notice),
                    ])
                ])
            }
            drawStatus()
            placeCursor()
        case .reconnected:
            offline = nil
            if let changes = reconnectChanges {
                reconnectChanges = nil
                var line = "-- reconnected"
                if !changes.new.isEmpty { line += "; here now: " + changes.new.map(clean).joined(separator: ", ") }
                if !changes.missing.isEmpty {
                    line += "; not back yet: " + changes.missing.map(clean).joined(separator: ", ")
                }
                show([StyledLine([stamp(), Span(line, .notice)])])
            }
            drawStatus()
            placeCursor()
        case .differentRoomKey:
            show([StyledLine([stamp(), Span(event.humanText, .warning)])])
        case .member(let status):
            if status.trust == .verified { verified.insert(status.name) } else { verified.remove(status.name) }
            // Known and verified members arrive quietly (their joined line said it); a changed key has its warning.
            switch status.trust {
            case .new, .invalid: show([StyledLine([stamp(), Span(event.humanText, .notice)])])
            default: break
            }
        case .trusted(let name, _):
            verified.insert(name)
            show([StyledLine([stamp(), Span(event.humanText, .notice)])])
        case .roomCode(let code, _, let asked):
            // The code lives in the status row; the scrollback gets it only when asked for.
            if asked {
                roomCodeChanged = false
                show([StyledLine([stamp(), Span(event.humanText, .notice)])])
            } else if roomCode != nil, roomCode != code {
                roomCodeChanged = true
            }
            roomCode = code
            drawStatus()
            placeCursor()
        case .holding(let names, let all):
            held = names.sorted()
            holdsEverything = all
            show([StyledLine([stamp(), Span(event.humanText, names.isEmpty ? .notice : .warning)])])
            drawStatus()
        case .verify(let name, let fingerprint, let safetyNumber, let yours):
            let who = clean(name)
            let lines = [
                "-- to check that \(who) is really \(who), compare with them in person or on a call, not in this chat:",
                "--   read the safety number aloud: \(clean(safetyNumber)) (you both see the same one)",
                "--   or compare fingerprints: \(who)'s is \(clean(fingerprint))"
                    + (yours.map { ", yours is \(clean($0))" } ?? ""),
                "-- if it matches, type /trust \(who); if not, do not trust: someone may be in between",
            ]
            show(lines.map { StyledLine([stamp(), Span($0, .notice)]) })
        case .who, .identity, .relayKey, .info, .fileIncoming, .unsupported, .transfers:
            show([StyledLine([stamp(), Span(event.humanText, .notice)])])
        }
    }

    private func ring() {
        output += "\u{07}"
    }

    private func stamp() -> Span {
        let (hour, minute) = clock()
        return Span(WallClock.hoursAndMinutes(hour: hour, minute: minute) + " ", .timestamp)
    }

    private func notice(_ text: String) {
        show([StyledLine([Span("-- " + text, .notice)])])
    }

    private func problem(_ text: String) {
        show([StyledLine([Span("-- " + text, .warning)])])
    }

    /// The lines of a message: the first with the time and the sender, the others (for a
    /// message of several lines) indented under it.
    private func messageLines(from sender: String, text: String, isPrivate: Bool, isOwn: Bool, isMention: Bool)
        -> [StyledLine]
    {
        let name = TerminalText.escapeControls(sender)
        let nameRole: TextRole = isOwn ? .ownName(sender) : .name(sender)
        let textRole: TextRole = isPrivate ? .privateText : isMention ? .mention : isOwn ? .ownText : .plain
        // Names cannot hold a space or a mark, so nobody can fake this one.
        let mark = !isOwn && verified.contains(sender) ? " " + MemberStatus.verifiedMark : ""
        let head =
            isPrivate
            ? [Span("*"), Span(name + mark, nameRole), Span("* ")]
            : [Span("<"), Span(name + mark, nameRole), Span("> ")]
        return lines(head: [stamp()] + head, text: text, role: textRole)
    }

    private func actionLines(from sender: String, text: String, isOwn: Bool) -> [StyledLine] {
        let nameRole: TextRole = isOwn ? .ownName(sender) : .name(sender)
        let mark = !isOwn && verified.contains(sender) ? " " + MemberStatus.verifiedMark : ""
        let head = [
            stamp(), Span("* ", .action), Span(TerminalText.escapeControls(sender) + mark, nameRole), Span(" "),
        ]
        return lines(head: head, text: text, role: .action)
    }

    private func lines(head: [Span], text: String, role: TextRole) -> [StyledLine] {
        let parts = text.split(omittingEmptySubsequences: false) { $0 == "\n" || $0 == "\r\n" }
        let indent = String(repeating: " ", count: DisplayWidth.of(head.map(\.text).joined()))
        return parts.enumerated().map { index, part in
            let body = Span(TerminalText.escapeControls(String(part)), role)
            return StyledLine(index == 0 ? head + [body] : [Span(indent), body], indent: indent.count)
        }
    }

    /// Whether `text` names `name` as a word of its own, ignoring case.
    static func mentions(_ name: String, in text: String) -> Bool {
        let needle = Array(name.lowercased())
        guard !needle.isEmpty else { return false }
        let haystack = Array(text.lowercased())
        guard haystack.count >= needle.count else { return false }
        func isNameCharacter(_ character: Character) -> Bool {
            character.isLetter || character.isNumber || character == "_" || character == "-"
        }
        for start in 0...(haystack.count - needle.count) where haystack[start] == needle[0] {
            let end = start + needle.count
            guard haystack[start..<end].elementsEqual(needle) else { continue }
            if (start == 0 || !isNameCharacter(haystack[start - 1]))
                && (end == haystack.count || !isNameCharacter(haystack[end]))
            {
                return true
            }
        }
        return false
    }

    // MARK: Drawing

    /// Writes lines into the message area above the status row, then puts the cursor back.
    private func show(_ lines: [StyledLine]) {
        guard !lines.isEmpty else { return }
        remember(lines)
        if scrollOffset > 0 {
            // Scrolled back: the view stays where it is, and the status row counts what is new below.
            scrollOffset = min(backlog.count - 1, scrollOffset + lines.count)
            unseen += lines.count
            if let last = lastSearch { lastSearch = (last.text, last.offset + lines.count) }
            drawStatus()
            placeCursor()
            return
        }
        output += Self.hideCursor
        if usesScrollRegion {
            output += Self.moveTo(row: regionBottom, column: 1)
            for line in lines {
                for row in line.wrapped(width: size.columns) { output += "\r\n" + row.rendered(colors) }
            }
        } else {
            output += Self.moveTo(row: inputRow, column: 1) + Self.clearLine
            for line in lines { output += line.rendered(colors) + "\r\n" }
            drawInput()
        }
        placeCursor()
        output += Self.showCursor
    }

    private func remember(_ lines: [StyledLine]) {
        for line in lines {
            backlog.append(line)
            backlogBytes += line.plainText.utf8.count
        }
        var drop = 0
        while backlog.count - drop > Self.backlogLimit || (backlogBytes > Self.backlogByteLimit && drop < backlog.count)
        {
            backlogBytes -= backlog[drop].plainText.utf8.count
            drop += 1
        }
        backlog.removeFirst(drop)
    }

    private func placeCursor() {
        output += Self.moveTo(row: inputRow, column: cursorColumn)
    }

    /// Clears the screen without pushing it into the scrollback, sets the scroll region, and
    /// paints the most recent lines, the status row and the input line.
    private func repaintAll() {
        output += Self.hideCursor + "\u{1B}[0m"
        if usesScrollRegion { output += "\u{1B}[r" }
        for row in 1...size.rows { output += Self.moveTo(row: row, column: 1) + Self.clearLine }
        if usesScrollRegion {
            output += "\u{1B}[1;\(regionBottom)r"
            // The rows of the lines that end at the view's bottom, as many as fit (the top one perhaps in part).
            var rows: [StyledLine] = []
            var index = backlog.count - scrollOffset
            while index > 0, rows.count < regionBottom {
                index -= 1
                rows.insert(contentsOf: backlog[index].wrapped(width: size.columns), at: 0)
            }
            rows.removeFirst(max(0, rows.count - regionBottom))
            output += Self.moveTo(row: regionBottom - rows.count + 1, column: 1)
            for (offset, row) in rows.enumerated() {
                output += (offset == 0 ? "" : "\r\n") + row.rendered(colors)
            }
        }
        drawStatus()
        drawInput()
        output += Self.showCursor
    }

    private func repaintChrome() {
        output += Self.hideCursor
        if usesScrollRegion { output += "\u{1B}[1;\(regionBottom)r" }
        drawStatus()
        drawInput()
        output += Self.showCursor
    }

    /// Whether the relay is lost: the status row counts down to the next attempt, and ``tick()`` keeps it current.
    var isOffline: Bool { offline != nil }

    /// Redraws the status row if its text changed since it was drawn (the countdown while offline).
    func tick() {
        guard hasStatusRow, isStarted, statusText() != lastStatus else { return }
        output += Self.hideCursor
        drawStatus()
        placeCursor()
        output += Self.showCursor
    }

    /// What the status row says while the relay is lost, in place of the member count.
    private func offlineText() -> String {
        guard let retryAt = offline?.retryAt else { return "offline — reconnecting…" }
        let left = retryAt - monotonic()
        guard left > .zero else { return "offline — reconnecting…" }
        let seconds = (left + .milliseconds(999)).wholeSeconds
        return "offline — retrying in \(seconds) s, /reconnect"
    }

    /// The status row's text: who and where, how many others (or offline), the bell, ignored names, progress.
    private func statusText() -> String {
        var parts = ["\(ownName) in \(room)"]
        // A hint comes first, where it cannot be cut off.
        if let hint { parts.insert(hint, at: 0) }
        if offline != nil {
            parts.append(offlineText())
        } else if isReady {
            parts.append(
                members.isEmpty ? "nobody else here" : "\(members.count) other\(members.count == 1 ? "" : "s") here")
        } else {
            parts.append("connecting to \(relay)")
        }
        if let transfers = transferTotals.statusText { parts.append(transfers) }
        if !held.isEmpty {
            parts.append(
                holdsEverything
                    ? "all messages held (/hold all): \(held.joined(separator: ", ")) key changed"
                    : "messages held for \(held.joined(separator: ", ")): key changed")
        }
        if let roomCode { parts.append("code \(Self.statusRoomCode(roomCode))" + (roomCodeChanged ? " changed" : "")) }
        parts.append("bell: \(bell.rawValue)")
        if !ignored.isEmpty { parts.append("ignoring: " + ignored.sorted().joined(separator: ", ")) }
        if scrollOffset > 0 {
            parts.insert(
                "scrolled back" + (unseen > 0 ? ", \(unseen) new" : "") + ": PgDn for newer", at: hint == nil ? 0 : 1)
        }
        return TerminalText.escapeControls(parts.joined(separator: " | "))
    }

    /// The room code as the status row shows it: its first two groups and `…` (the row marks a change; `/verify room`
    /// shows the whole code to compare), or the whole code when it has fewer groups.
    static func statusRoomCode(_ code: String) -> String {
        let groups = code.split(separator: " ")
        return groups.count > 2 ? groups.prefix(2).joined(separator: " ") + "…" : code
    }

    /// The status row: ``statusText()``, cut to the width.
    private func drawStatus() {
        guard hasStatusRow else { return }
        var text = statusText()
        lastStatus = text
        output += Self.moveTo(row: statusRow, column: 1) + Self.clearLine
        if colors == .none {
            text = Self.truncate("-- " + text + " ", to: size.columns - 1)
            text += String(repeating: "-", count: max(0, size.columns - 1 - DisplayWidth.of(text)))
            output += text
        } else {
            text = Self.truncate(" " + text, to: size.columns)
            text += String(repeating: " ", count: max(0, size.columns - DisplayWidth.of(text)))
            output += StyledLine([Span(text, .statusBar)]).rendered(colors)
        }
    }

    /// Text cut to at most `width` columns.
    static func truncate(_ text: String, to width: Int) -> String {
        var result = ""
        var used = 0
        for character in text {
            let cell = DisplayWidth.of(character)
            if used + cell > width { break }
            result.append(character)
            used += cell
        }
        return result
    }

    /// The input row: the prompt and the visible part of the line, or the paste question.
    private func drawInput() {
        output += Self.moveTo(row: inputRow, column: 1) + Self.clearLine
        switch mode {
        case .closed:
            cursorColumn = 1
        case .confirming(let text):
            let count = text.split(separator: "\n", omittingEmptySubsequences: false).count
            let question = Self.truncate(
                "Send these \(count) lines as one message? y: yes, s: as \(count) messages, n: keep editing ",
                to: size.columns - 1)
            output += StyledLine([Span(question, .prompt)]).rendered(colors)
            cursorColumn = DisplayWidth.of(question) + 1
        case .searching(let search):
            let visible = (search.prompt + (search.match ?? "")).map { Self.cell($0).text }.joined()
            let shown = Self.truncate(visible, to: size.columns - 1)
            output += StyledLine([Span(shown, .prompt)]).rendered(colors)
            let prompt = search.prompt.map { Self.cell($0).text }.joined()
            cursorColumn = min(DisplayWidth.of(prompt) + 1, DisplayWidth.of(shown) + 1)
        case .editing where offerQuestion != nil:
            let question = Self.truncate(offerQuestion?.text ?? "", to: size.columns - 1)
            output += StyledLine([Span(question, .prompt)]).rendered(colors)
            cursorColumn = DisplayWidth.of(question) + 1
        case .editing:
            let layout = inputLayout()
            if layout.showsPrompt { output += StyledLine([Span(Self.prompt, .prompt)]).rendered(colors) }
            output += layout.text
            cursorColumn = layout.cursorColumn
        }
        placeCursor()
    }

    /// How one character of the input line is shown: control characters and lone combining
    /// marks as visible escapes, a line break of a pasted text as ⏎.
    static func cell(_ character: Character) -> (text: String, width: Int) {
        if character == "\n" || character == "\r\n" { return ("\u{23CE}", 1) }
        if character.unicodeScalars.contains(where: TerminalText.needsEscape) {
            let escaped = TerminalText.escapeControls(String(character))
            return (escaped, DisplayWidth.of(escaped))
        }
        let width = DisplayWidth.of(character)
        if width == 0 {
            let escaped = character.unicodeScalars.map { "\\u{" + String($0.value, radix: 16, uppercase: true) + "}" }
                .joined()
            return (escaped, escaped.count)
        }
        return (String(character), width)
    }

    /// The visible window of the input line.
    struct InputLayout: Equatable {
        var showsPrompt: Bool
        var text: String
        var cursorColumn: Int
    }

    /// Works out which part of the line to show so that the cursor is visible, moving the
    /// horizontal scroll offset as little as possible. `<` and `>` mark hidden text.
    func inputLayout() -> InputLayout {
        let promptWidth = DisplayWidth.of(Self.prompt)
        let showsPrompt = size.columns - promptWidth - 1 >= 8
        let available = size.columns - (showsPrompt ? promptWidth : 0) - 1
        let characters = editor.characters
        let cursor = editor.cursor
        var widths: [Int: (text: String, width: Int)] = [:]
        func cellAt(_ index: Int) -> (text: String, width: Int) {
            if let known = widths[index] { return known }
            let computed = Self.cell(characters[index])
            widths[index] = computed
            return computed
        }
        // Room for the text before the cursor: the cursor's own cell and a '>' marker are kept free.
        func fits(from start: Int) -> Bool {
            var used = start > 0 ? 1 : 0
            for index in start..<cursor {
                used += cellAt(index).width
                if used > available - 2 { return false }
            }
            return true
        }
        if scroll > characters.count { scroll = 0 }
        if cursor < scroll { scroll = cursor }
        if fits(from: 0) {
            scroll = 0
        } else if !fits(from: scroll) {
            var start = cursor
            var used = 1
            while start > 0, used + cellAt(start - 1).width <= available - 2 {
                used += cellAt(start - 1).width
                start -= 1
            }
            scroll = start
        }
        var text = scroll > 0 ? "<" : ""
        var used = scroll > 0 ? 1 : 0
        var cursorOffset = used
        var index = scroll
        while index < characters.count {
            let cell = cellAt(index)
            let room = available - (index == characters.count - 1 ? 0 : 1)
            if used + cell.width > room { break }
            text += cell.text
            used += cell.width
            index += 1
            if index == cursor { cursorOffset = used }
        }
        if index < characters.count { text += ">" }
        return InputLayout(
            showsPrompt: showsPrompt, text: text, cursorColumn: 1 + (showsPrompt ? promptWidth : 0) + cursorOffset)
    }
}
