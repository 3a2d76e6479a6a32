/// Makes text from the network safe to put on a terminal.
public enum TerminalText {
    /// Replaces every character that a terminal could interpret with a visible escape: C0 and C1
    /// controls (ESC, CR, BEL, …, and the 8-bit CSI U+009B), DEL, line and paragraph separators,
    /// and Unicode format characters such as bidi overrides (U+202E) — except the zero-width
    /// joiner that emoji sequences need. Tab, CR and LF become `\t`, `\r`, `\n`; others `\x1B`
    /// (below U+0100) or `\u{202E}`. Everything else, accents, CJK and emoji included, is kept.
    /// - Parameter text: text received from the network.
    /// - Returns: text with no character that moves the cursor, changes modes or reorders text.
    public static func escapeControls(_ text: String) -> String {
        guard text.unicodeScalars.contains(where: needsEscape) else { return text }
        var result = ""
        result.reserveCapacity(text.utf8.count + 16)
        for scalar in text.unicodeScalars {
            guard needsEscape(scalar) else {
                result.unicodeScalars.append(scalar)
                continue
            }
            switch scalar {
            case "\t": result += "\\t"
            case "\n": result += "\\n"
            case "\r": result += "\\r"
            default:
                result +=
                    scalar.value < 0x100
                    ? hexEscape(scalar.value, prefix: "\\x", minimumDigits: 2)
                    : hexEscape(scalar.value, prefix: "\\u{", suffix: "}")
            }
        }
        return result
    }

    /// Whether a scalar must not reach a terminal as itself.
    static func needsEscape(_ scalar: Unicode.Scalar) -> Bool {
        let value = scalar.value
        if value < 0x20 || (0x7F...0x9F).contains(value) { return true }
        if value < 0x7F { return false }
        if value == 0x200D { return false }
        switch scalar.properties.generalCategory {
        case .format, .lineSeparator, .paragraphSeparator, .privateUse, .surrogate, .unassigned: return true
        default: return false
        }
    }
}
