import Foundation
import Testing

@testable import AESChatCLI

/// The documents and shell completions that list aeschat's options say exactly what the parser's tables
/// (`OptionTables.swift`) know: docs/CLI.md (whose text the man page docs/aeschat.1 is made from, see
/// scripts/manpage and Tests/install/test_docs.py), the man page itself, and the bash, zsh and fish completions in
/// scripts/completions. An option added to a table without them, or left in them after it is gone, fails here.
@Suite struct DocumentationTests {
    static let root = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
        .deletingLastPathComponent()

    static func read(_ path: String) throws -> String {
        try String(contentsOf: root.appendingPathComponent(path), encoding: .utf8)
    }

    static func names(of mode: Mode) -> Set<String> { Set(OptionTables.options(of: mode).map(\.name)) }

    /// The lines of CLI.md's section for a mode: from its `### \`aeschat MODE\`` heading to the next heading of
    /// that level or above.
    static func cliSection(_ mode: Mode) throws -> [Substring] {
        let lines = try read("docs/CLI.md").split(separator: "\n", omittingEmptySubsequences: false)
        guard let start = lines.firstIndex(of: "### `aeschat \(mode.rawValue)`") else { return [] }
        let end =
            lines[(start + 1)...].firstIndex { $0.hasPrefix("### ") || $0.hasPrefix("## ") } ?? lines.endIndex
        return Array(lines[start..<end])
    }

    @Test(arguments: Mode.allCases)
    func cliMarkdown_optionTable_isExactlyTheParsersTable(mode: Mode) throws {
        let rows = try Self.cliSection(mode).filter { $0.hasPrefix("| `-") }
        // A table cell escapes `|` as `\|` (Markdown).
        let documented = rows.map { row in
            String(row.dropFirst(3).prefix { $0 != "`" }).replacingOccurrences(of: "\\|", with: "|")
        }
        let expected = OptionTables.options(of: mode).map(\.synopsis)
        #expect(documented == expected, "docs/CLI.md, section `aeschat \(mode.rawValue)`")
    }

    @Test func cliMarkdown_configurationKeys_areExactlyTheParsersKeys_eachAnOptionThatTakesAValue() throws {
        let lines = try Self.read("docs/CLI.md").split(separator: "\n", omittingEmptySubsequences: false)
        let start = try #require(lines.firstIndex(of: "### Configuration file"))
        let section = lines[(start + 1)...].prefix { !$0.hasPrefix("### ") && !$0.hasPrefix("## ") }
        let rows = section.filter { $0.hasPrefix("| `") }
        let keys = rows.map { String($0.dropFirst(3).prefix { $0 != "`" }) }
        #expect(keys == OptionTables.joinConfigurationKeys)
        for row in rows {
            let key = String(row.dropFirst(3).prefix { $0 != "`" })
            #expect(row.contains("| `--\(key)`"), "the row of \(key) names another option")
            let option = OptionTables.join.options.first { $0.name == "--" + key }
            #expect(option?.takesValue == true, "\(key) is not an option that takes a value")
        }
    }

    @Test(arguments: Mode.allCases)
    func cliMarkdown_andManPage_synopsisNamesEveryOption(mode: Mode) throws {
        let markdown = try Self.read("docs/CLI.md")
        let manPage = try Self.read("docs/aeschat.1")
        // The synopsis is the first code block: the mode's lines run from `aeschat MODE` to the next `aeschat `.
        let block = markdown.components(separatedBy: "```")[1]
        let modeLines = block.components(separatedBy: "\naeschat ").first { $0.hasPrefix(mode.rawValue + " ") } ?? ""
        for option in OptionTables.options(of: mode) {
            #expect(modeLines.contains(option.synopsis), "CLI.md synopsis of \(mode.rawValue) lacks \(option.synopsis)")
            let roff = "\\fB" + option.synopsis.replacingOccurrences(of: "-", with: "\\-") + "\\fR"
            #expect(manPage.contains(roff), "docs/aeschat.1 lacks \(option.synopsis) (run scripts/manpage)")
        }
    }

    @Test(arguments: Mode.allCases)
    func bashCompletion_listsExactlyTheOptions(mode: Mode) throws {
        let script = try Self.read("scripts/completions/aeschat.bash")
        let marker = "_aeschat_\(mode.rawValue)_options=\""
        guard let start = script.range(of: marker) else {
            Issue.record("no \(marker) in aeschat.bash")
            return
        }
        let list = script[start.upperBound...].prefix { $0 != "\"" }
        #expect(Set(list.split(whereSeparator: \.isWhitespace).map(String.init)) == Self.names(of: mode))
    }

    @Test(arguments: Mode.allCases)
    func zshCompletion_listsExactlyTheOptions(mode: Mode) throws {
        let lines = try Self.read("scripts/completions/_aeschat").split(separator: "\n")
        guard let start = lines.firstIndex(of: "_aeschat_\(mode.rawValue)_options=(") else {
            Issue.record("no _aeschat_\(mode.rawValue)_options array in _aeschat")
            return
        }
        let entries = lines[(start + 1)...].prefix { $0 != ")" }
        let names = entries.map { entry in
            entry.drop { $0 == " " || $0 == "'" || $0 == "\"" }.prefix { $0 != "[" }
        }
        #expect(Set(names.map(String.init)) == Self.names(of: mode))
    }

    @Test(arguments: Mode.allCases)
    func fishCompletion_listsExactlyTheOptions(mode: Mode) throws {
        let lines = try Self.read("scripts/completions/aeschat.fish").split(separator: "\n")
        let prefix = "complete -c aeschat -n '__fish_seen_subcommand_from \(mode.rawValue)' -l "
        let names = lines.filter { $0.hasPrefix(prefix) }.map { "--" + $0.dropFirst(prefix.count).prefix { $0 != " " } }
        #expect(Set(names) == Self.names(of: mode))
        #expect(names.count == Self.names(of: mode).count, "an option is listed twice")
    }
}
