/// A run of text with one role.
struct Span: Equatable, Sendable {
    var text: String
    var role: TextRole

    init(_ text: String, _ role: TextRole = .plain) {
        self.text = text
        self.role = role
    }
}

/// One line of the message area, as spans.
struct StyledLine: Equatable, Sendable {
    var spans: [Span]

    init(_ spans: [Span]) {
        self.spans = spans
    }

    /// The text without styles.
    var plainText: String { spans.map(\.text).joined() }

    /// The line with SGR codes for `mode` (none at all for ``ColorMode/none``).
    func rendered(_ mode: ColorMode) -> String {
        var result = ""
        for span in spans {
            let parameters = mode.parameters(for: span.role)
            if parameters.isEmpty {
                result += span.text
            } else {
                result += "\u{1B}[\(parameters)m\(span.text)\u{1B}[0m"
            }
        }
        return result
    }
}
