import Foundation

/// `join`'s configuration file: `key = value` lines, each key the name of a `join` option without its dashes
/// (`port = 7777` sets what `--port 7777` sets), read before the command line, which wins. See `docs/CLI.md`,
/// *Configuration file*.
///
/// Syntax: one setting per line; white space around the key and the value is ignored; blank lines and lines whose
/// first non-blank character is `#` are skipped (a `#` later in a line is part of the value); a key may be set once.
/// A value starting with `~/` is taken under `$HOME`.
///
/// Parsing is pure; ``read(path:)`` is the one function that touches the disk.
public enum ConfigurationFile {
    /// The largest file read, in bytes.
    public static let byteLimit = 64 * 1024

    /// One `key = value` line.
    struct Entry: Equatable, Sendable {
        var key: String
        var value: String
        /// The line's number, from 1.
        var line: Int
    }

    /// What reading a configuration file found.
    public enum Contents: Equatable, Sendable {
        /// There is nothing at the path.
        case missing
        /// The file's text.
        case text(String)
        /// The file exists but cannot be used; the text says why (`not a regular file`, the system's reason, …).
        case unreadable(String)
    }

    /// The file `join` reads when neither `--config` nor `--no-config` is given:
    /// `$XDG_CONFIG_HOME/aeschat/config` when that variable holds an absolute path, else `$HOME/.config/aeschat/config`,
    /// else none.
    ///
    /// - Parameter environment: The process environment.
    /// - Returns: The path, or `nil` when neither variable is usable.
    public static func standardPath(environment: [String: String]) -> String? {
        if let xdg = environment["XDG_CONFIG_HOME"], xdg.hasPrefix("/") { return xdg + "/aeschat/config" }
        if let home = environment["HOME"], !home.isEmpty { return home + "/.config/aeschat/config" }
        return nil
    }

    /// Reads a configuration file from the disk: a regular file of at most ``byteLimit`` bytes of UTF-8 text.
    ///
    /// - Parameter path: The file's path.
    /// - Returns: Its text, ``Contents/missing`` when nothing is there, or why it cannot be used.
    public static func read(path: String) -> Contents {
        let manager = FileManager.default
        guard let attributes = try? manager.attributesOfItem(atPath: path) else {
            return manager.fileExists(atPath: path) ? .unreadable("cannot read its attributes") : .missing
        }
        guard attributes[.type] as? FileAttributeType == .typeRegular else { return .unreadable("not a regular file") }
        if let size = attributes[.size] as? NSNumber, size.intValue > byteLimit {
            return .unreadable("larger than \(byteLimit) bytes")
        }
        guard let handle = FileHandle(forReadingAtPath: path) else { return .unreadable("permission denied") }
        defer { try? handle.close() }
        guard let data = try? handle.read(upToCount: byteLimit + 1) ?? Data() else {
            return .unreadable("cannot be read")
        }
        guard data.count <= byteLimit else { return .unreadable("larger than \(byteLimit) bytes") }
        guard let text = String(data: data, encoding: .utf8) else { return .unreadable("not UTF-8 text") }
        return .text(text)
    }

    /// Splits a configuration file into its settings, in order.
    ///
    /// - Parameters:
    ///   - text: The file's text.
    ///   - path: The file's path, for messages.
    /// - Returns: The settings.
    /// - Throws: ``UsageError`` (one line, `PATH:LINE: …`) for a line that is neither blank, a comment nor
    ///   `key = value`, an empty key or value, or a key set twice.
    static func entries(_ text: String, path: String) throws(UsageError) -> [Entry] {
        var entries: [Entry] = []
        var firstLine: [String: Int] = [:]
        let lines = text.split(omittingEmptySubsequences: false) { $0 == "\n" || $0 == "\r\n" }
        for (index, raw) in lines.enumerated() {
            let number = index + 1
            let line = trimmed(raw)
            if line.isEmpty || line.hasPrefix("#") { continue }
            guard let equals = line.firstIndex(of: "=") else {
                throw problem(path, number, "expected 'key = value' or a '#' comment, got \(Quote.quoted(line))")
            }
            let key = trimmed(line[..<equals])
            let value = trimmed(line[line.index(after: equals)...])
            guard !key.isEmpty else { throw problem(path, number, "no setting name before '='") }
            guard !value.isEmpty else {
                throw problem(path, number, "no value for \(Quote.quoted(key)): expected '\(key) = VALUE'")
            }
            if let first = firstLine[key] {
                throw problem(path, number, "\(Quote.quoted(key)) is set twice (first on line \(first))")
            }
            firstLine[key] = number
            entries.append(Entry(key: key, value: value, line: number))
        }
        return entries
    }

    /// A one-line error naming the file and line.
    static func problem(_ path: String, _ line: Int?, _ message: String) -> UsageError {
        let place = line.map { "\(path):\($0)" } ?? path
        return UsageError("\(place): \(message)", mode: .join, showsUsage: false)
    }

    private static func trimmed(_ text: some StringProtocol) -> String {
        let isBlank = { (character: Character) in character == " " || character == "\t" || character == "\r" }
        return String(text.drop(while: isBlank).reversed().drop(while: isBlank).reversed())
    }
}

/// Which configuration file the command line asks for.
enum ConfigurationChoice: Equatable, Sendable {
    /// ``ConfigurationFile/standardPath(environment:)``, if it exists.
    case standard
    /// `--config FILE`: this file, which must exist.
    case file(String)
    /// `--no-config`.
    case none
}

/// How a mode reads a configuration file: which of its options a file may set, and what fills the gaps after.
struct ConfigurationSupport<Options: Sendable>: Sendable {
    /// The keys a file may set, each the name of a value-taking option of the mode without its dashes, in the order
    /// the documentation lists them.
    let keys: [String]
    /// Other spellings of keys (`colour` for `color`).
    let aliases: [String: String]
    /// Which file the parsed command line asks for.
    let choice: @Sendable (Options) -> ConfigurationChoice
    /// Fills what neither the file nor the command line gave, from the environment (the name from `$USER`).
    /// The file's path, if one was read, is there for messages.
    let complete: @Sendable (inout Options, [String: String], String?) throws(UsageError) -> Void
}
