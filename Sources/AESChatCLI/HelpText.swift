/// The help and usage text of `aeschat`, laid out like swift-argument-parser's (OVERVIEW, USAGE, OPTIONS) and built
/// from the option tables, so a new option shows up without touching this file.
///
/// Every function returns text without a trailing newline, ready for `print`. Pure, safe from any thread.
public enum HelpText {
    /// The width help text wraps to.
    static let width = 80
    /// The column where option and command descriptions start.
    static let descriptionColumn = 26
    /// The indent of a wrapped usage line, under the text after `USAGE: `.
    static let usageIndent = "       "

    /// The help for `aeschat --help`: overview, usage, the modes, the top-level options and the exit codes.
    ///
    /// - Returns: The help text.
    public static func general() -> String {
        let overview = "End-to-end encrypted group chat through a relay. The relay forwards messages it cannot read."
        let options = [row("--version", "Show the version."), row("-h, --help", "Show help information.")]
        let commands = Mode.allCases.map { row($0.rawValue, OptionTables.abstract(of: $0)) }
        let exitCodes = exitCodeRows.map { row(String($0.code.rawValue), $0.meaning) }
        return [
            wrap("OVERVIEW: " + overview),
            "USAGE: \(usage(for: nil))",
            "OPTIONS:\n" + options.joined(separator: "\n"),
            "COMMANDS:\n" + commands.joined(separator: "\n") + "\n\n  See 'aeschat help <command>' for detailed help.",
            "EXIT CODES:\n" + exitCodes.joined(separator: "\n"),
        ].joined(separator: "\n\n")
    }

    /// The help for `aeschat <mode> --help`: overview, usage and every option with its default.
    ///
    /// - Parameter mode: The mode to describe.
    /// - Returns: The help text.
    public static func help(for mode: Mode) -> String {
        let options = OptionTables.options(of: mode).map { option in
            let suffix = option.defaultText.map { " (default: \($0))" } ?? ""
            return row(option.synopsis, option.help + suffix)
        }
        return [
            wrap("OVERVIEW: " + OptionTables.overview(of: mode)),
            "USAGE: "
                + wrapLines(usageTokens(for: mode), width: width - usageIndent.count)
                .joined(separator: "\n" + usageIndent),
            "OPTIONS:\n" + (options + [row("-h, --help", "Show help information.")]).joined(separator: "\n"),
            "See 'aeschat --help' for all commands and exit codes.",
        ].joined(separator: "\n\n")
    }

    /// The one-line usage of a mode, or the general one, without a `Usage:` prefix: for example
    /// `aeschat serve [--host <addr>] [--port <n>]`. Required options appear without brackets.
    ///
    /// - Parameter mode: The mode, or `nil` for `aeschat <command> [<options>]`.
    /// - Returns: The usage line.
    public static func usage(for mode: Mode?) -> String {
        usageTokens(for: mode).joined(separator: " ")
    }

    /// The usage line's words, each option whole (`[--port <n>]`), so wrapping never splits one.
    static func usageTokens(for mode: Mode?) -> [String] {
        guard let mode else { return ["aeschat", "<command>", "[<options>]"] }
        let options = OptionTables.options(of: mode).map { $0.isRequired ? $0.synopsis : "[\($0.synopsis)]" }
        return ["aeschat", mode.rawValue] + options
    }

    /// The exit codes, in the order help and `docs/CLI.md` list them.
    static let exitCodeRows: [(code: ExitCode, meaning: String)] = [
        (.success, "Success."),
        (.failure, "Unexpected failure."),
        (.usage, "Usage error: the command line was wrong."),
        (.dataError, "Bad data or key file."),
        (.unavailable, "Relay unreachable or registration refused."),
        (.ioError, "I/O error."),
        (.notPermitted, "The relay's key did not match the pinned one, or was not confirmed."),
        (.interrupted, "Interrupted."),
    ]

    /// A two-column row: the label indented by two, the text from ``descriptionColumn``, wrapped. A label too long
    /// for its column gets a line of its own.
    static func row(_ label: String, _ text: String) -> String {
        let indent = String(repeating: " ", count: descriptionColumn)
        let lines = wrapLines(text, width: width - descriptionColumn)
        let head = "  " + label
        var result: [String]
        if head.count <= descriptionColumn - 2 {
            result = [head + String(repeating: " ", count: descriptionColumn - head.count) + (lines.first ?? "")]
            result += lines.dropFirst().map { indent + $0 }
        } else {
            result = [head] + lines.map { indent + $0 }
        }
        return result.joined(separator: "\n")
    }

    /// Wraps a paragraph to ``width`` with no indent on continuation lines.
    static func wrap(_ text: String) -> String {
        wrapLines(text, width: width).joined(separator: "\n")
    }

    /// Greedy word wrap; a word longer than the width stays whole on its own line.
    static func wrapLines(_ text: String, width: Int) -> [String] {
        wrapLines(text.split(separator: " ").map(String.init), width: width)
    }

    /// Greedy wrap of words joined by single spaces; a word longer than the width stays whole on its own line.
    static func wrapLines(_ words: [String], width: Int) -> [String] {
        var lines: [String] = []
        var line = ""
        for word in words {
            if line.isEmpty {
                line = word
            } else if line.count + 1 + word.count <= width {
                line += " " + word
            } else {
                lines.append(line)
                line = word
            }
        }
        if !line.isEmpty { lines.append(line) }
        return lines
    }
}
