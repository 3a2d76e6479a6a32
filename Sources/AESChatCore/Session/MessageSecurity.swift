/// What a security mode asks its client to do, in the order given: the security layer returns
/// these instead of calling back into the client (the shape of swift-nio-ssh's state machines),
/// so the client sees every envelope it is asked to send.
public enum SecurityAction: Equatable, Sendable {
    /// Publish an envelope to every other member of the room.
    case publish([UInt8])
    /// Send an envelope to one member.
    case direct([UInt8], to: String)
    /// Authenticated, decrypted content: chat for display, file control for the transfers.
    case deliver(MessageContent, from: String, isPrivate: Bool)
    /// Show an event.
    case show(ClientEvent)
    /// Send again a held line that can now reach the members it missed, as a line of its own (tracked until the relay
    /// confirms it, like every line the user typed).
    case release(ReleasedLine)
}

/// The end-to-end layer of a client: what it presents at registration, how it seals what the
/// user sends, and how it opens what arrives. Two modes exist: a pre-shared room key
/// (``RoomKeySecurity``) and automatic keys (``AutomaticKeySecurity``). Each call returns what the
/// client is to do, in order. Loop thread only.
public protocol MessageSecurity: AnyObject {
    /// The opaque profile sent in hello (empty for the room-key mode).
    var profile: [UInt8] { get }
    /// The user's own fingerprint, shown in `ready`, when the mode has identities.
    var ownFingerprint: String? { get }
    /// Registration completed; `members` are the others already present.
    func didRegister(members: [MemberEntry]) -> [SecurityAction]
    /// Whether a member the relay announces as joining is refused outright, before it is shown:
    /// its session key was already seen in this session (a replayed profile). Returns the warning
    /// that says why if so, nil if not.
    func refusalOfJoining(_ member: MemberEntry) -> ClientEvent?
    /// The identity key `member`'s profile proves (its signature checked), to tell a member coming back from a new
    /// one: empty for a mode without identities (the room key), nil when the profile proves none. Does not admit
    /// the member; for a present member, the key it was admitted with.
    func identityKey(of member: MemberEntry) -> [UInt8]?
    /// How many room lines are held for each member whose identity key changed (``ClientEvent/holding(members:)``),
    /// by name, those dropped beyond the limit included: what the end of the connection leaves unsent to them.
    var heldLines: [(name: String, count: Int)] { get }
    /// Whether every room line is held while a changed key waits for `/trust` (`/hold all`), rather than only for
    /// the members whose key changed.
    var holdsEverything: Bool { get }
    /// `/hold all` (true) or `/hold changed` (false); lines held only because of `/hold all` go out when it ends.
    func holdEverything(_ on: Bool) -> [SecurityAction]
    /// The lines held when the connection ends, handed over to the next connection's layer; none are left here.
    func takeHeldLines() -> HeldLines
    /// Takes over the lines an earlier connection held: they stay held for members whose key still waits for
    /// `/trust`, go out to those back with a key they can read, and wait for those not back yet
    /// (``forgetAbsentHeldLines(reason:)``).
    func adoptHeldLines(_ lines: HeldLines) -> [SecurityAction]
    /// Gives up the held lines of members not present, with an `undelivered` warning each giving `reason`.
    func forgetAbsentHeldLines(reason: String) -> [SecurityAction]
    /// Someone joined.
    func memberJoined(_ member: MemberEntry) -> [SecurityAction]
    /// Someone left.
    func memberLeft(_ name: String) -> [SecurityAction]
    /// Seals a message for the room (or holds it, saying why).
    func sendToRoom(_ content: MessageContent) -> [SecurityAction]
    /// Seals a private message to one member.
    func sendPrivately(_ content: MessageContent, to name: String) -> [SecurityAction]
    /// Authenticates and opens a payload the relay delivered.
    func receive(_ payload: ArraySlice<UInt8>, from sender: String, isDirect: Bool) -> [SecurityAction]
    /// Handles `/who`, `/verify`, `/verify NAME`, `/verify room` and `/trust NAME`.
    func handle(_ command: SecurityCommand) -> [SecurityAction]
    /// The features a present member's profile lists (docs/PROTOCOL.md section 6.5); nil when its client says
    /// nothing of them (the room-key mode, whose profiles are empty) or it was refused.
    func features(of name: String) -> MemberFeatures?
}

extension MessageSecurity {
    public func features(of name: String) -> MemberFeatures? { nil }
}

/// The commands a security mode answers.
public enum SecurityCommand: Equatable, Sendable {
    case who
    /// `/verify` alone: the user's own fingerprint.
    case verifySelf
    case verifyMember(String)
    case verifyRoom
    case trust(String)
}
