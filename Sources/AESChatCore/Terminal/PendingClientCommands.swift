/// Stand-ins for the slash commands that the chat client will implement but does not yet.
///
/// The terminal passes `/who`, `/msg`, `/send`, `/verify` and `/trust` on to the client as lines;
/// until the client parses them, a line such as `/msg bob secret` would go out to the whole room
/// as a message. So for now the terminal answers them itself. **When `ChatClient` handles one of
/// these commands, delete its entry here** (and its note): the terminal then passes it on.
enum PendingClientCommands {
    /// What the terminal does instead of passing a command on.
    enum Reply: Equatable, Sendable {
        /// List the members the terminal has seen (no verification marks: those come with
        /// automatic keys, from the client's own `/who`).
        case listMembers
        /// Say that the command is not available yet.
        case notYet(String)
    }

    /// The stand-in for a command, or `nil` if the client handles it.
    /// - Parameter command: the command name with its slash, such as `/msg`.
    /// - Returns: what to do instead of passing the line on.
    static func reply(for command: String) -> Reply? {
        switch command {
        case "/who": .listMembers
        case "/msg", "/verify", "/trust": .notYet("\(command) is not yet available: it needs automatic keys")
        case "/send": .notYet("/send is not yet available: file transfer comes in a later release")
        default: nil
        }
    }

    /// The note `/help` adds to a command that is not available yet.
    /// - Parameter command: the command name with its slash.
    /// - Returns: the note, or `nil`.
    static func helpNote(for command: String) -> String? {
        switch command {
        case "/msg", "/verify", "/trust": "needs automatic keys"
        case "/send": "not yet available: file transfer comes in a later release"
        default: nil
        }
    }
}
