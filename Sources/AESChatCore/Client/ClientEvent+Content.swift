// Here rather than beside ``ClientEvent`` so that Events does not depend on Session's ``MessageContent``.
extension ClientEvent {
    /// The event for decrypted chat content from `sender`; nil for file control.
    public init?(content: MessageContent, from sender: String, isPrivate: Bool) {
        switch content {
        case .text(let text): self = .message(from: sender, text: text, isPrivate: isPrivate)
        case .action(let text): self = .action(from: sender, text: text, isPrivate: isPrivate)
        case .identified(_, let content): self.init(content: content, from: sender, isPrivate: isPrivate)
        default: return nil
        }
    }
}
