/// The options of `aeschat keygen`. Values are already validated when they come from the parser.
public struct KeygenOptions: Equatable, Sendable {
    /// The file to write the key to, or `nil` for standard output (never empty).
    public var out: String? = nil
    /// A new identity file to make instead of a room key (never empty).
    public var identity: String? = nil

    /// Creates keygen options.
    ///
    /// - Parameters:
    ///   - out: The file to write the key to, or `nil` for standard output.
    ///   - identity: A new identity file to make instead of a room key.
    public init(out: String? = nil, identity: String? = nil) {
        self.out = out
        self.identity = identity
    }
}
