/// The features a member's client lists in its profile (docs/PROTOCOL.md section 6.5): a bit set, feature i being
/// bit i mod 8 (the least significant first) of byte i / 8. Bits this version does not know are kept and ignored, so
/// that a newer client can list more.
public struct MemberFeatures: Equatable, Sendable {
    /// The bit set as it travels, at most ``maximumBytes`` bytes.
    public let bits: [UInt8]

    /// Feature 0, `files`: the member takes files in this session (it has an inbox and `--accept-files` is not
    /// `none`). A sender offers files only to members that list it.
    public static let files = 0
    /// The names of the features this version knows, by number.
    static let knownNames: [(number: Int, name: String)] = [(files, "files")]
    /// The most bytes a features field may have (256 features).
    public static let maximumBytes = 32

    /// A set from its bytes, as they travel.
    public init(bits: [UInt8]) { self.bits = bits }

    /// A set holding `features` (numbers below 256).
    public init(_ features: [Int]) {
        var bits: [UInt8] = []
        for feature in features where (0..<(Self.maximumBytes * 8)).contains(feature) {
            while bits.count <= feature / 8 { bits.append(0) }
            bits[feature / 8] |= 1 << UInt8(feature % 8)
        }
        self.bits = bits
    }

    /// What a profile without a features field (version 1, from clients before features) is taken to mean: the
    /// features those clients had, files included.
    public static let basic = MemberFeatures([files])

    /// Whether `feature` is listed.
    public func contains(_ feature: Int) -> Bool {
        guard feature >= 0, feature / 8 < bits.count else { return false }
        return bits[feature / 8] & (1 << UInt8(feature % 8)) != 0
    }

    /// The names of the known features listed, in number order (unknown bits are not named).
    public var names: [String] { Self.knownNames.filter { contains($0.number) }.map(\.name) }
}
