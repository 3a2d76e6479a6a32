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
