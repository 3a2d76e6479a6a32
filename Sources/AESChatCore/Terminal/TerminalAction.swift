/// What the screen asks its owner to do besides drawing.
enum TerminalAction: Equatable, Sendable {
    /// Hand this line to the chat client (``InputEvent/line(_:)``).
    case send(String)
    /// Input is over: leave the room (``InputEvent/end``).
    case end
    /// Ctrl-C on an empty line: quit at once, as SIGINT does.
    case interrupt
}
