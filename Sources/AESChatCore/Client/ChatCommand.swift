import AESChatNames

/// One line of input, understood: a message, or a slash command. A line starting with `//` sends
/// the rest, starting with `/`, as a message.
public enum ChatCommand: Equatable, Sendable {
    case message(String)
    case action(String)
    case privateMessage(to: String, text: String)
    case security(SecurityCommand)
    /// `/verify relay`: the relay's key and how it was pinned.
    case verifyRelay
    case help
    case quit
    /// `/reconnect`: connect to the relay again now (``ReconnectingSession/reconnect()``).
    case reconnect
    case sendFile(path: String, to: String?)
    /// `/accept [N]`, `/decline [N]`: answers the file offer numbered N, or the oldest one waiting.
    case answerOffer(number: Int?, accept: Bool)
    /// `/transfers`: every file transfer in both directions.
    case transfers
    /// `/cancel [NAME]`: the transfer numbered NAME, those of file or folder NAME, or (nil) every one.
    case cancel(String?)
    /// `/hold all|changed`: whether a changed key holds every room line or only those for its member; nil (`/hold`
    /// alone) shows the choice.
    case hold(all: Bool?)
    case invalid(String)

    /// What `/help` shows in line mode: every command ``SlashCommand/all`` marks for the client.
    public static let helpText = """
        commands: /who (members and their verification), /msg NAME TEXT (private message), /me ACTION, \
        /verify (your fingerprint), /verify NAME (what to compare with NAME), /verify room (room code), \
        /verify relay (the relay's key), /trust NAME (mark verified, accept a changed key), /hold all|changed (while a \
        changed key waits for /trust, hold every line or only theirs), /send PATH [NAME] (send a file \
        or a folder to the room or one member; quote a path with spaces: /send "my file.pdf" bob), /accept [N] and \
        /decline [N] (answer a file offer), /transfers (list file transfers), /cancel [N|NAME] (cancel one transfer, \
        or all), /reconnect (connect to the relay again now), /quit; start a line with // to send \
        a message that begins with /
        """

    /// `PATH [NAME]`, where a path with spaces is quoted: `"my file.pdf" bob`.
    static func parseSend(_ arguments: String) -> ChatCommand {
        let usage =
            "/send needs a file and optionally a member, for example: /send report.pdf or /send \"my file.pdf\" bob"
        var path: String
        var rest: Substring
        if arguments.hasPrefix("\"") {
            guard let close = arguments.dropFirst().firstIndex(of: "\"") else { return .invalid(usage) }
            path = String(arguments[arguments.index(after: arguments.startIndex)..<close])
            rest = arguments[arguments.index(after: close)...]
        } else {
            let parts = arguments.split(separator: " ", maxSplits: 1)
            guard let first = parts.first else { return .invalid(usage) }
            path = String(first)
            rest = parts.count > 1 ? parts[1] : ""
        }
        let recipient = rest.trimmingCharacters(in: " ")
        guard !path.isEmpty, !recipient.contains(" ") else { return .invalid(usage) }
        if recipient.isEmpty { return .sendFile(path: path, to: nil) }
        guard Names.isValidMemberName(recipient) else { return .invalid("'\(recipient)' is not a valid member name") }
        return .sendFile(path: path, to: recipient)
    }

    /// Parses a line of input.
    public init(parsing line: String) {
        guard line.hasPrefix("/") else {
            self = .message(line)
            return
        }
        if line.hasPrefix("//") {
            self = .message(String(line.dropFirst()))
            return
        }
        let parts = line.split(separator: " ", maxSplits: 2, omittingEmptySubsequences: true).map(String.init)
        let command = parts[0]
        let argument = parts.count > 1 ? parts[1] : nil
        let rest = parts.count > 2 ? parts[2] : nil
        switch command {
        case "/help":
            self = .help
        case "/quit":
            self = .quit
        case "/reconnect":
            self = argument == nil ? .reconnect : .invalid("/reconnect takes no arguments")
        case "/who":
            self = argument == nil ? .security(.who) : .invalid("/who takes no arguments")
        case "/me":
            let text = line.dropFirst(3).drop { $0 == " " }
            self = text.isEmpty ? .invalid("/me needs an action, for example: /me waves") : .action(String(text))
        case "/msg":
            guard let recipient = argument, let text = rest, !text.isEmpty else {
                self = .invalid("/msg needs a name and a message, for example: /msg bob hello")
                return
            }
            self =
                Names.isValidMemberName(recipient)
                ? .privateMessage(to: recipient, text: text) : .invalid("'\(recipient)' is not a valid member name")
        case "/verify":
            guard rest == nil else {
                self = .invalid("/verify takes one member name, 'room' or 'relay', or nothing for your own fingerprint")
                return
            }
            switch argument {
            case nil: self = .security(.verifySelf)
            case "room": self = .security(.verifyRoom)
            case "relay": self = .verifyRelay
            case let name?: self = .security(.verifyMember(name))
            }
        case "/trust":
            guard let target = argument, rest == nil else {
                self = .invalid("/trust needs one member name, for example: /trust bob")
                return
            }
            self = .security(.trust(target))
        case "/hold":
            switch (argument, rest) {
            case (nil, nil): self = .hold(all: nil)
            case ("all", nil): self = .hold(all: true)
            case ("changed", nil): self = .hold(all: false)
            default:
                self = .invalid(
                    "/hold takes 'all' (hold every line while a changed key waits for /trust) or 'changed' (hold "
                        + "lines only for that member)")
            }
        case "/send":
            self = Self.parseSend(String(line.dropFirst(5).drop { $0 == " " }))
        case "/accept", "/decline":
            let accept = command == "/accept"
            guard rest == nil else {
                self = .invalid("\(command) takes one offer number at most, for example: \(command) 3")
                return
            }
            guard let argument else {
                self = .answerOffer(number: nil, accept: accept)
                return
            }
            let digits = argument.hasPrefix("#") ? String(argument.dropFirst()) : argument
            guard let number = Int(digits), number > 0 else {
                self = .invalid(
                    "'\(argument)' is not an offer number; /transfers lists them, for example: \(command) 3")
                return
            }
            self = .answerOffer(number: number, accept: accept)
        case "/transfers":
            self = argument == nil ? .transfers : .invalid("/transfers takes no arguments")
        case "/cancel":
            let target = line.dropFirst(7).trimmingCharacters(in: " ")
            self = .cancel(target.isEmpty ? nil : target)
        default:
            self = .invalid("unknown command '\(command)'; /help lists the commands, and // starts a message with /")
        }
    }
}

extension Substring {
    /// The text without leading and trailing `character`s.
    func trimmingCharacters(in character: Character) -> String {
        String(drop { $0 == character }.reversed().drop { $0 == character }.reversed())
    }
}
