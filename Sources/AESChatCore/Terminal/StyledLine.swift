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
    /// The columns a wrapped continuation row is indented by: under the message text, after the time and name.
    var indent: Int

    init(_ spans: [Span], indent: Int = 0) {
        self.spans = spans
        self.indent = indent
    }

    /// The line cut into rows of at most `width` columns: at the last space that fits (the space is dropped), or
    /// inside a word longer than a row; every row after the first starts with ``indent`` spaces (none when the
    /// indent would leave less than half the width). A line that fits is one row.
    func wrapped(width: Int) -> [StyledLine] {
        let width = max(1, width)
        var cells: [(character: Character, role: TextRole, width: Int)] = []
        for span in spans {
            for character in span.text { cells.append((character, span.role, DisplayWidth.of(character))) }
        }
        if cells.reduce(0, { $0 + $1.width }) <= width { return [StyledLine(spans, indent: indent)] }
        let indent = self.indent <= width / 2 ? self.indent : 0
        var rows: [[(character: Character, role: TextRole, width: Int)]] = []
        var row: [(character: Character, role: TextRole, width: Int)] = []
        var used = 0
        var rowStart = 0  // cells of `row` that are the indent
        for cell in cells {
            if used + cell.width > width, row.count > rowStart {
                var carried: [(character: Character, role: TextRole, width: Int)] = []
                if cell.character != " ",
                    let space = row.lastIndex(where: { $0.character == " " }), space > rowStart,
                    indent + row[(space + 1)...].reduce(0, { $0 + $1.width }) + cell.width <= width
                {
                    carried = Array(row[(space + 1)...])
                    row.removeSubrange(space...)
                }
                rows.append(row)
                row = Array(repeating: (" ", .plain, 1), count: indent)
                rowStart = indent
                used = indent
                for moved in carried {
                    row.append(moved)
                    used += moved.width
                }
                if cell.character == " " { continue }
            }
            row.append(cell)
            used += cell.width
        }
        if row.count > rowStart || rows.isEmpty { rows.append(row) }
        return rows.map { cells in
            var spans: [Span] = []
            for cell in cells {
                if let last = spans.last, last.role == cell.role {
                    spans[spans.count - 1].text.append(cell.character)
                } else {
                    spans.append(Span(String(cell.character), cell.role))
                }
            }
            return StyledLine(spans)
        }
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
