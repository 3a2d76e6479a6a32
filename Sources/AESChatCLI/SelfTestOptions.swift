/// The options of `aeschat selftest`. Values are already validated when they come from the parser.
public struct SelfTestOptions: Equatable, Sendable {
    /// Whether to write the report as JSON, one object per line.
    public var json = false
    /// An inbox folder to check as well (never empty).
    public var inbox: String? = nil

    /// Creates self-test options.
    /// - Parameters:
    ///   - json: Whether to write JSON output.
    ///   - inbox: An inbox folder to check as well.
    public init(json: Bool = false, inbox: String? = nil) {
        self.json = json
        self.inbox = inbox
    }
}
