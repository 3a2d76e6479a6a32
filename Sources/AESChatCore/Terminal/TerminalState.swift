import AESChatNames
import Foundation

/// What the interactive terminal keeps from one session to the next, in its state folder
/// (`$XDG_STATE_HOME/aeschat`, else `~/.local/state/aeschat`, made with mode 0700):
///
/// - `history`: the lines entered (Up and Down recall them), oldest first, one per line, at most
///   ``LineEditor/historyLimit``; lines of several lines (pastes) are not kept.
/// - `state`: `bell = off|mentions|all` and one `ignore = NAME` line per ignored member.
///
/// Both files are written whole, atomically, with mode 0600 (they hold what was typed, private messages
/// included), and read only when they are regular files of at most 1 MiB. A file that cannot be read is taken as
/// empty and one that cannot be written is left as it was: keeping them is a comfort, never a reason to stop. Not
/// thread-safe: the terminal calls it under its lock.
struct TerminalState {
    /// The largest file read, in bytes.
    static let byteLimit = 1 << 20

    /// The folder.
    let folder: String

    /// The folder for an environment: `$XDG_STATE_HOME/aeschat` when that is an absolute path, else
    /// `$HOME/.local/state/aeschat`; nil without either.
    static func folder(environment: [String: String]) -> String? {
        if let xdg = environment["XDG_STATE_HOME"], xdg.hasPrefix("/") { return xdg + "/aeschat" }
        if let home = environment["HOME"], home.hasPrefix("/") { return home + "/.local/state/aeschat" }
        return nil
    }

    /// The saved settings.
    struct Settings: Equatable {
        var bell: BellMode?
        var ignored: Set<String> = []
    }

    /// The entered lines saved by the last session, oldest first.
    func loadHistory() -> [String] {
        guard let text = read("history") else { return [] }
        let lines = text.split(separator: "\n").map(String.init).filter { !$0.isEmpty }
        return Array(lines.suffix(LineEditor.historyLimit))
    }

    /// Saves the entered lines (the last ``LineEditor/historyLimit`` of one line each).
    func saveHistory(_ entries: [String]) {
        let kept = entries.filter { !$0.contains("\n") && !$0.contains("\r") && !$0.isEmpty }
        write("history", kept.suffix(LineEditor.historyLimit).map { $0 + "\n" }.joined())
    }

    /// The saved bell setting and ignored names; unknown or malformed lines are skipped.
    func loadSettings() -> Settings {
        var settings = Settings()
        guard let text = read("state") else { return settings }
        for line in text.split(separator: "\n") {
            guard let equals = line.firstIndex(of: "=") else { continue }
            let key = line[..<equals].filter { $0 != " " }
            let value = line[line.index(after: equals)...].filter { $0 != " " }
            switch key {
            case "bell": settings.bell = BellMode(rawValue: value)
            case "ignore" where Names.isValidMemberName(value): settings.ignored.insert(value)
            default: continue
            }
        }
        return settings
    }

    /// Saves the bell setting and the ignored names.
    func saveSettings(_ settings: Settings) {
        var text = "# aeschat's interactive terminal: the last /bell and /ignore settings\n"
        if let bell = settings.bell { text += "bell = \(bell.rawValue)\n" }
        for name in settings.ignored.sorted() { text += "ignore = \(name)\n" }
        write("state", text)
    }

    private func read(_ name: String) -> String? {
        try? SecretFile.read(path: folder + "/" + name, limit: Self.byteLimit, followingLinks: false).text
    }

    private func write(_ name: String, _ text: String) {
        do {
            try FileManager.default.createDirectory(
                atPath: folder, withIntermediateDirectories: true, attributes: [.posixPermissions: 0o700])
            try SecretFile.replace(path: folder + "/" + name, contents: Array(text.utf8))
        } catch {
            return
        }
    }
}
