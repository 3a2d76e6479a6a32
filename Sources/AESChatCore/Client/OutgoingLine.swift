/// A line of input on its way to the relay, with the id its message carries (docs/PROTOCOL.md,
/// content kind `0x03`). The id stays the same when the line is sent again after a reconnect, so
/// that members who already received it drop the second copy.
public struct OutgoingLine: Equatable, Sendable {
    public var text: String
    public var messageID: UInt64
    /// A held room line going out again to one member alone, as a private message (``ReleasedLine/onlyTo``): its
    /// text is then the room line as typed, never a command.
    public var onlyTo: String?

    /// A new line with a fresh random id.
    public init(_ text: String) {
        self.init(text, messageID: UInt64.random(in: 0...UInt64.max))
    }

    public init(_ text: String, messageID: UInt64, onlyTo: String? = nil) {
        self.text = text
        self.messageID = messageID
        self.onlyTo = onlyTo
    }

    /// The line that sends `content` (a room line, text or action) again with its message id: its text is what the
    /// user would type for it (`/me …` for an action, a second `/` before a text starting with one). Nil for any
    /// other content.
    public init?(resending content: MessageContent, onlyTo: String? = nil) {
        guard case .identified(let id, let line) = content else { return nil }
        switch line {
        case .text(let text): self.init(text.hasPrefix("/") ? "/" + text : text, messageID: id, onlyTo: onlyTo)
        case .action(let text): self.init("/me " + text, messageID: id, onlyTo: onlyTo)
        default: return nil
        }
    }
}
