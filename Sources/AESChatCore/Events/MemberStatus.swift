/// A member as shown by `/who` and the `member` event.
public struct MemberStatus: Equatable, Sendable {
    public var name: String
    public var fingerprint: String?
    public var trust: MemberTrust

    /// Creates a status.
    public init(name: String, fingerprint: String?, trust: MemberTrust) {
        self.name = name
        self.fingerprint = fingerprint
        self.trust = trust
    }

    var jsonFields: [(String, JSONValue)] {
        var fields: [(String, JSONValue)] = [("name", .string(name))]
        if let fingerprint { fields.append(("fingerprint", .string(fingerprint))) }
        fields.append(("status", .string(trust.rawValue)))
        fields.append(("verified", .bool(trust == .verified)))
        return fields
    }

    var humanText: String {
        let clean = TerminalText.escapeControls(name)
        let mark: String =
            switch trust {
            case .sharedKey: ""
            case .verified: " [verified]"
            case .known: " [unverified]"
            case .new: " [new, unverified]"
            case .changed: " [KEY CHANGED, unverified]"
            case .invalid: " [refused: no keys are sent]"
            }
        return clean + mark + (fingerprint.map { " " + TerminalText.escapeControls($0) } ?? "")
    }
}
