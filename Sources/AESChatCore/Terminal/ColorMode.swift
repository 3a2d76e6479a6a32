/// What the user asked for colour (`join --color`).
public enum ColorChoice: String, Equatable, Sendable {
    /// Colour unless `NO_COLOR` is set.
    case auto
    /// Colour whatever `NO_COLOR` says.
    case always
    /// No SGR at all.
    case never
}

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
    /// - Parameter choice: what the user asked for: `never` is ``none``, `always` ignores `NO_COLOR`.
    static func detect(environment: [String: String], choice: ColorChoice = .auto) -> ColorMode {
        if choice == .never || (choice == .auto && environment["NO_COLOR"] != nil) { return .none }
        let term = environment["TERM"] ?? ""
        if term.contains("256color") || !(environment["COLORTERM"] ?? "").isEmpty { return .extended }
        return .basic
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
