/// A line of input on its way to the relay, with the id its message carries (docs/PROTOCOL.md,
/// content kind `0x03`). The id stays the same when the line is sent again after a reconnect, so
/// that members who already received it drop the second copy.
public struct OutgoingLine: Equatable, Sendable {
    public var text: String
    public var messageID: UInt64

    /// A new line with a fresh random id.
    public init(_ text: String) {
        self.init(text, messageID: UInt64.random(in: 0...UInt64.max))
    }

    public init(_ text: String, messageID: UInt64) {
        self.text = text
        self.messageID = messageID
    }
}
