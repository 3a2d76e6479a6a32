/// A member as shown by `/who` and the `member` event.
public struct MemberStatus: Equatable, Sendable {
    public var name: String
    public var fingerprint: String?
    public var trust: MemberTrust
    /// The names of the features its profile lists (docs/PROTOCOL.md section 6.5), nil when its client says
    /// nothing of them (room-key mode, a refused member).
    public var features: [String]?

    /// Creates a status.
    public init(name: String, fingerprint: String?, trust: MemberTrust, features: [String]? = nil) {
        self.name = name
        self.fingerprint = fingerprint
        self.trust = trust
        self.features = features
    }

    var jsonFields: [(String, JSONValue)] {
        var fields: [(String, JSONValue)] = [("name", .string(name))]
        if let fingerprint { fields.append(("fingerprint", .string(fingerprint))) }
        fields.append(("status", .string(trust.rawValue)))
        fields.append(("verified", .bool(trust == .verified)))
        if let features { fields.append(("features", .strings(features))) }
        return fields
    }

    var humanText: String {
        let clean = TerminalText.escapeControls(name)
        let mark: String =
            switch trust {
            case .sharedKey: ""
            case .verified: " \(Self.verifiedMark) verified"
            case .known: " (not verified)"
            case .new: " (new, not verified)"
            case .changed: " (KEY CHANGED, not verified)"
            case .invalid: " (refused: nothing is sent to them)"
            }
        let files = features.map { $0.contains("files") ? "" : " (takes no files)" } ?? ""
        return clean + mark + (fingerprint.map { " " + TerminalText.escapeControls($0) } ?? "") + files
    }

    /// The user as `/who` shows them: their name and, with automatic keys, their own fingerprint.
    var ownHumanText: String {
        TerminalText.escapeControls(name)
            + (fingerprint.map { ", fingerprint " + TerminalText.escapeControls($0) } ?? "")
    }

    /// The mark a verified member carries next to their name.
    public static let verifiedMark = "\u{2713}"
}
