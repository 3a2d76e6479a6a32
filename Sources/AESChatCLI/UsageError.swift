/// A command line that `aeschat` cannot accept. `main.swift` prints ``description`` to standard error and exits
/// with ``ExitCode/usage`` (64).
///
/// The value is immutable data and `Sendable`; it holds nothing secret, only what the user typed.
public struct UsageError: Error, Equatable, CustomStringConvertible, Sendable {
    /// One line naming the problem and quoting the input, for example
    /// `invalid port '70000': expected a number from 1 to 65535`.
    public var message: String
    /// The mode whose usage line and help the error points to, or `nil` for the general ones.
    public var mode: Mode?
    /// Whether ``description`` adds the usage and help lines: false for a problem in a configuration file, which
    /// is one line naming the file and line (the command line was fine).
    public var showsUsage: Bool

    /// Creates a usage error.
    ///
    /// - Parameters:
    ///   - message: One line naming the problem and quoting the input.
    ///   - mode: The mode whose usage the error points to, or `nil` for the general usage.
    ///   - showsUsage: Whether the description adds the usage and help lines.
    public init(_ message: String, mode: Mode?, showsUsage: Bool = true) {
        self.message = message
        self.mode = mode
        self.showsUsage = showsUsage
    }

    /// Three lines: `Error: <message>`, `Usage: <usage line>` and `See 'aeschat <mode> --help'.`
    /// (or `See 'aeschat --help'.` when ``mode`` is `nil`); only the first when ``showsUsage`` is false.
    /// No trailing newline.
    public var description: String {
        guard showsUsage else { return "Error: \(message)" }
        let helpCommand = mode.map { "aeschat \($0.rawValue) --help" } ?? "aeschat --help"
        return "Error: \(message)\nUsage: \(HelpText.usage(for: mode))\nSee '\(helpCommand)'."
    }
}
