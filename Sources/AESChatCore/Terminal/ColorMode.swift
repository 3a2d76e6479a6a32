/// Which colour escape codes (SGR) the terminal gets.
enum ColorMode: Equatable, Sendable {
    /// No SGR at all: `NO_COLOR` is set.
    case none
    /// The 16 basic colours.
    case basic
    /// The 256-colour palette (`TERM` mentions `256color`, or `COLORTERM` is set).
    case extended

    /// The mode the environment asks for. `NO_COLOR` with any value turns colour off
    /// (https://no-color.org); `TERM=dumb` never reaches the interactive terminal at all.
    /// - Parameter environment: the process environment.
    /// - Returns: the colour mode.
    static func detect(environment: [String: String]) -> ColorMode {
        if environment["NO_COLOR"] != nil { return .none }
        let term = environment["TERM"] ?? ""
        if term.contains("256color") || !(environment["COLORTERM"] ?? "").isEmpty { return .extended }
        return .basic
    }
}

/// What a piece of displayed text is, which decides its style.
enum TextRole: Equatable, Sendable {
    case plain
    case timestamp
    /// Another member's name, in that member's colour.
    case name(String)
    /// The user's own name: their colour, bold.
    case ownName(String)
    case ownText
    case joined
    case left
    case warning
    case error
    /// Local information: command output, help, completion lists.
    case notice
    case privateText
    /// Text that mentions the user.
    case mention
    case action
    case statusBar
    case prompt
}

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

extension ColorMode {
    /// The SGR parameters for a role (`""` for the default style).
    func parameters(for role: TextRole) -> String {
        if self == .none { return "" }
        switch role {
        case .plain: return ""
        case .timestamp: return self == .extended ? "38;5;245" : "90"
        case .name(let name): return nameColor(name)
        case .ownName(let name): return "1;" + nameColor(name)
        case .ownText: return self == .extended ? "38;5;250" : "37"
        case .joined: return "32"
        case .left: return self == .extended ? "38;5;245" : "90"
        case .warning: return "1;33"
        case .error: return "1;31"
        case .notice: return "36"
        case .privateText: return "35"
        case .mention: return "1;33"
        case .action: return ""
        case .statusBar: return "7"
        case .prompt: return "1"
        }
    }

    /// The foreground colour for a member name.
    func nameColor(_ name: String) -> String {
        switch self {
        case .none: return ""
        case .basic:
            return String(NameColor.basicPalette[NameColor.index(of: name, count: NameColor.basicPalette.count)])
        case .extended:
            let palette = NameColor.extendedPalette
            return "38;5;" + String(palette[NameColor.index(of: name, count: palette.count)])
        }
    }
}

/// A stable colour for each member name: the same name gets the same colour in every client and
/// every run (an FNV-1a hash of its UTF-8 bytes, not Swift's per-process seeded `hashValue`).
enum NameColor {
    /// Readable foreground colours of the 16-colour set (no black, white, or dark blue).
    static let basicPalette = [31, 32, 33, 35, 36, 91, 92, 93, 94, 95, 96]
    /// Readable, distinct colours of the 256-colour palette, on dark and light backgrounds.
    static let extendedPalette = [
        33, 39, 41, 43, 69, 75, 99, 105, 113, 135, 141, 163, 166, 169, 172, 178, 197, 203, 208, 214, 37, 71, 131, 176,
    ]

    /// The 32-bit FNV-1a hash of the name's UTF-8 bytes.
    static func hash(_ name: String) -> UInt32 {
        var value: UInt32 = 0x811C_9DC5
        for byte in name.utf8 {
            value ^= UInt32(byte)
            value = value &* 0x0100_0193
        }
        return value
    }

    /// The palette index for a name.
    static func index(of name: String, count: Int) -> Int {
        Int(hash(name) % UInt32(count))
    }
}
