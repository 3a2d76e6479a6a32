/// How far a member's identity is trusted (automatic keys), or that the room shares one key.
public enum MemberTrust: String, Equatable, Sendable {
    /// Pre-shared-key mode: no identities; everyone with the room key is a member.
    case sharedKey = "shared-key"
    /// First seen now: pinned on first use, not verified.
    case new
    /// Seen before with the same identity key, not verified.
    case known
    /// Verified by the user (`/trust` after comparing safety numbers).
    case verified
    /// The identity key differs from the pinned one: unverified until `/trust`.
    case changed
    /// Refused: its profile is missing or its signature does not verify, or it presented a session key already
    /// seen. No key is ever sent to it.
    case invalid
}
