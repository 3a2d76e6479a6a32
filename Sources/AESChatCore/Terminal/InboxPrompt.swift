import Foundation

#if canImport(Glibc)
    import Glibc
#elseif canImport(Darwin)
    import Darwin
#endif

/// Asks for the inbox folder when `join` has no `--inbox` and a person is at the terminal.
public enum InboxPrompt {
    /// The folder offered when the user just presses Enter.
    public static let defaultFolder = "~/aeschat-inbox"

    /// Whether there is someone to ask: standard input and output are terminals.
    public static var canAsk: Bool {
        TerminalDevice.isTerminal(0) && TerminalDevice.isTerminal(1)
    }

    /// Asks for the folder on the terminal (in its ordinary line mode).
    /// - Parameter descriptor: where to write the question: standard output, or standard error
    ///   with `--json`.
    /// - Returns: the folder, with `~` expanded; ``defaultFolder`` for an empty answer; `nil`
    ///   at the end of input.
    public static func ask(writingTo descriptor: Int32 = 1) -> String? {
        let question = "Inbox folder for received files [\(defaultFolder)]: "
        _ = System.writeAll(descriptor, Array(question.utf8))
        // Byte by byte, so that nothing typed after the answer is taken from the keyboard reader.
        var bytes: [UInt8] = []
        var byte: UInt8 = 0
        while true {
            let count = withUnsafeMutableBytes(of: &byte) { System.read(0, into: $0) }
            if count <= 0 {
                if bytes.isEmpty { return nil }
                break
            }
            if byte == 0x0A { break }
            bytes.append(byte)
        }
        return folder(from: String(decoding: bytes, as: UTF8.self), home: ProcessInfo.processInfo.environment["HOME"])
    }

    /// The folder an answer names: the default for an empty answer, `~` expanded.
    /// - Parameters:
    ///   - answer: what was typed, without the line end.
    ///   - home: the home folder, if known.
    /// - Returns: the folder path.
    static func folder(from answer: String, home: String?) -> String {
        let trimmed = answer.trimmingCharacters(in: .whitespacesAndNewlines)
        let path = trimmed.isEmpty ? defaultFolder : trimmed
        guard let home, !home.isEmpty else { return path }
        if path == "~" { return home }
        if path.hasPrefix("~/") { return home + path.dropFirst(1) }
        return path
    }
}
