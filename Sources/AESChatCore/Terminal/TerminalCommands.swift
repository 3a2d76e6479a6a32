import AESChatNames

/// When the terminal rings the bell for an incoming message.
public enum BellMode: String, CaseIterable, Equatable, Sendable {
    /// Never.
    case off
    /// Messages that mention the user's name, and private messages (the default).
    case mentions
    /// Every message from someone else.
    case all
}

/// What the terminal does with a line the user entered.
enum EnteredLine: Equatable, Sendable {
    /// Plain text: pass it on and show it as the user's own line.
    case message(String)
    /// `/me waves`: pass the whole line on, and show `* alice waves`.
    case action(line: String, text: String)
    /// A command the chat client handles: pass the line on, show nothing.
    case clientCommand(String)
    case help
    case clear
    case quit
    /// `/bell` with a setting, or `nil` to show the current one.
    case bell(BellMode?)
    case ignore(String)
    case unignore(String)
    /// `/search TEXT`: scroll back to the latest line containing the text.
    case search(String)
    /// A wrong command or argument: show this line and send nothing.
    case problem(String)
}

/// The slash commands of the interactive terminal: their help, Tab completion, and how a line
/// is interpreted, all from the one table ``SlashCommand/all``. The terminal handles `/help`, `/clear`, `/quit`,
/// `/bell`, `/ignore`, `/unignore` and `/search` itself; every other command line goes to the chat client unchanged. Pure.
enum TerminalCommands {
    /// Every command, in the order `/help` lists them.
    static var all: [SlashCommand] { SlashCommand.all }

    /// The command names with their slash, for Tab completion.
    static var names: [String] { all.map(\.name) }

    /// The lines `/help` shows.
    /// - Parameter bell: the current bell setting, shown with `/bell`.
    static func helpLines(bell: BellMode) -> [String] {
        let width = all.map { ($0.name + " " + $0.arguments).count }.max() ?? 0
        var lines = ["Commands:"]
        for info in all {
            let synopsis = info.arguments.isEmpty ? info.name : info.name + " " + info.arguments
            var summary = info.summary
            if info.name == "/bell" { summary += " (now: \(bell.rawValue))" }
            lines.append("  " + synopsis + String(repeating: " ", count: width - synopsis.count + 2) + summary)
        }
        lines += [
            "Keys: Enter sends; Tab completes names, commands and /send paths; Up/Down recall earlier lines (kept across",
            "  sessions; Ctrl-R searches them); PgUp/PgDn scroll through the messages (/search TEXT finds one);",
            "  Left/Right, Home/End, Ctrl-A/E move; Alt-B/F or Ctrl-Left/Right move by word;",
            "  Backspace, Delete, Ctrl-W (word), Ctrl-U (to start), Ctrl-K (to end) delete; Ctrl-Y puts back;",
            "  Ctrl-L redraws; Ctrl-D on an empty line leaves; Ctrl-C clears the line, or quits on an empty one.",
            "A line starting with // is sent as a message, not read as a command.",
        ]
        return lines
    }

    /// Interprets an entered line.
    /// - Parameter line: the line as typed (not empty).
    /// - Returns: what to do with it.
    static func interpret(_ line: String) -> EnteredLine {
        guard line.hasPrefix("/"), !line.hasPrefix("//") else { return .message(line) }
        let name = String(line.prefix { !$0.isWhitespace })
        let rest = String(line.dropFirst(name.count).drop { $0.isWhitespace })
        let words = rest.split(whereSeparator: \.isWhitespace).map(String.init)
        switch name {
        case "/":
            return .problem("expected a command after '/': type /help for the list, or // to start a message with /")
        case "/help":
            return .help
        case "/clear", "/quit":
            guard words.isEmpty else { return .problem("\(name) takes nothing after it: expected just \(name)") }
            return name == "/clear" ? .clear : .quit
        case "/bell":
            if words.isEmpty { return .bell(nil) }
            guard words.count == 1, let mode = BellMode(rawValue: words[0]) else {
                return .problem(
                    "unknown bell setting \(quoted(rest)): expected /bell off, /bell mentions or /bell all")
            }
            return .bell(mode)
        case "/ignore", "/unignore":
            guard words.count == 1 else {
                let what = words.isEmpty ? "a member name" : "one member name, got \(quoted(rest))"
                return .problem("expected \(name) NAME: \(what)")
            }
            guard Names.isValidMemberName(words[0]) else {
                return .problem(
                    "invalid name \(quoted(words[0])) for \(name): expected 1 to 32 letters, digits, '-', '_' or '.'")
            }
            return name == "/ignore" ? .ignore(words[0]) : .unignore(words[0])
        case "/search":
            guard !rest.isEmpty else { return .problem("expected /search TEXT: the text to find in the messages") }
            return .search(rest)
        case "/me":
            guard !rest.isEmpty else { return .problem("expected /me ACTION, for example /me waves") }
            return .action(line: line, text: rest)
        case _ where SlashCommand.named(name)?.handler == .client:
            return .clientCommand(line)
        default:
            var problem = "unknown command \(quoted(name)): type /help for the list"
            if let suggestion = suggestion(for: name) { problem += ". Did you mean \(suggestion)?" }
            return .problem(problem)
        }
    }

    /// Input quoted for a message, with control characters made visible.
    static func quoted(_ text: String) -> String {
        "'" + TerminalText.escapeControls(text) + "'"
    }

    /// The command the user probably meant: one edit away, or the only one starting with what
    /// was typed.
    static func suggestion(for typed: String) -> String? {
        let lowered = typed.lowercased()
        if let exact = names.first(where: { $0 == lowered }) { return exact }
        if let close = names.first(where: { editDistanceIsAtMostOne(Array(lowered), Array($0)) }) { return close }
        let starting = names.filter { $0.hasPrefix(lowered) }
        return starting.count == 1 ? starting[0] : nil
    }

    private static func editDistanceIsAtMostOne(_ a: [Character], _ b: [Character]) -> Bool {
        if abs(a.count - b.count) > 1 { return false }
        var i = 0
        while i < a.count, i < b.count, a[i] == b[i] { i += 1 }
        if i == a.count || i == b.count { return true }
        if a.count == b.count {
            if a[(i + 1)...] == b[(i + 1)...] { return true }
            return i + 1 < a.count && a[i] == b[i + 1] && a[i + 1] == b[i] && a[(i + 2)...] == b[(i + 2)...]
        }
        return a.count > b.count ? a[(i + 1)...] == b[i...] : a[i...] == b[(i + 1)...]
    }
}
