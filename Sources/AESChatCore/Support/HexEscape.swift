/// A code point written as a visible escape: `prefix`, its value in hexadecimal with at least `minimumDigits`
/// digits (zero-padded), then `suffix`. Shared by ``TerminalText`` (`\x1B`, `\u{202E}`) and ``JSONLine``
/// (`\u001b`); the command-line parser has its own copy (`AESChatCLI` cannot see this module).
/// - Parameters:
///   - value: the code point.
///   - prefix: what comes before the digits, such as `\x` or `\u{`.
///   - minimumDigits: the fewest digits to write.
///   - uppercase: whether the digits A to F are upper case.
///   - suffix: what comes after the digits, such as `}`.
/// - Returns: the escape.
func hexEscape(
    _ value: UInt32, prefix: String, minimumDigits: Int = 1, uppercase: Bool = true, suffix: String = ""
) -> String {
    let digits = String(value, radix: 16, uppercase: uppercase)
    return prefix + String(repeating: "0", count: max(0, minimumDigits - digits.count)) + digits + suffix
}
