/// One slash command: its name, its arguments and summary as the interactive terminal's `/help` lists them, and
/// who carries it out. ``all`` is the one table of commands: the terminal's help, Tab completion and routing read
/// it, and ``ChatCommand/helpText`` (line mode's `/help`) names every command it marks for the client. Pure.
public struct SlashCommand: Equatable, Sendable {
    /// Who carries a command out.
    public enum Handler: Equatable, Sendable {
        /// The interactive terminal only; line mode has no such command.
        case terminal
        /// The chat client; the terminal passes the line on unchanged.
        case client
        /// The interactive terminal when there is one, otherwise the chat client (line mode).
        case terminalOrClient
    }

    /// The name with its slash, such as `/msg`.
    public var name: String
    /// The arguments as the terminal's help shows them, such as `NAME TEXT`; empty for none.
    public var arguments: String
    /// What the command does, for the terminal's help.
    public var summary: String
    /// Who carries it out.
    public var handler: Handler

    /// Every command, in the order the terminal's `/help` lists them.
    public static let all: [SlashCommand] = [
        SlashCommand("/help", "", "show the commands and keys", .terminalOrClient),
        SlashCommand("/who", "", "list the members of the room", .client),
        SlashCommand("/msg", "NAME TEXT", "send a private message to NAME", .client),
        SlashCommand("/me", "ACTION", "say what you do, shown as '* you ACTION'", .client),
        SlashCommand("/send", "PATH [NAME]", "send a file or a folder to the room, or to NAME", .client),
        SlashCommand("/accept", "[N]", "take file offer N (alone: the oldest waiting; also y)", .client),
        SlashCommand("/decline", "[N]", "refuse file offer N (alone: the oldest waiting; also n)", .client),
        SlashCommand("/transfers", "", "list file transfers in both directions, numbered", .client),
        SlashCommand("/cancel", "[N|NAME]", "cancel transfer N or file NAME; alone: every transfer", .client),
        SlashCommand(
            "/verify", "[NAME|room|relay]", "how to check NAME is really them; alone: your own fingerprint", .client),
        SlashCommand("/trust", "NAME", "mark NAME verified once checked (also accepts a changed key)", .client),
        SlashCommand(
            "/hold", "all|changed", "while a changed key waits for /trust: hold every line, or only theirs", .client),
        SlashCommand("/reconnect", "", "connect to the relay again now, without waiting", .client),
        SlashCommand("/bell", "off|mentions|all", "when to ring the terminal bell", .terminal),
        SlashCommand("/ignore", "NAME", "hide NAME's messages", .terminal),
        SlashCommand("/unignore", "NAME", "show NAME's messages again", .terminal),
        SlashCommand("/search", "TEXT", "scroll back to the latest line containing TEXT", .terminal),
        SlashCommand("/clear", "", "clear the screen", .terminal),
        SlashCommand("/quit", "", "leave the room (also Ctrl-D on an empty line)", .terminalOrClient),
    ]

    /// The command called `name` (with its slash), if there is one.
    public static func named(_ name: String) -> SlashCommand? {
        all.first { $0.name == name }
    }

    private init(_ name: String, _ arguments: String, _ summary: String, _ handler: Handler) {
        self.name = name
        self.arguments = arguments
        self.summary = summary
        self.handler = handler
    }
}
