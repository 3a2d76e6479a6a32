import AESChatCLI
import Testing

/// Parses and returns the thrown error, or `nil` when the command line parsed.
func parseError(_ arguments: [String]) -> UsageError? {
    do {
        _ = try CommandLineParser.parse(arguments)
        return nil
    } catch {
        return error
    }
}

/// One command line that must fail, with the exact message and the mode whose usage it points to.
struct ErrorCase: Sendable, CustomTestStringConvertible {
    let arguments: [String]
    let message: String
    let mode: Mode?

    init(_ arguments: [String], _ message: String, mode: Mode?) {
        self.arguments = arguments
        self.message = message
        self.mode = mode
    }

    var testDescription: String { arguments.map { "[\($0)]" }.joined(separator: " ") }
}
