/// Pre-shared-key mode: everyone holds the same room key (see ``RoomKeyEnvelope``).
public final class RoomKeySecurity: MessageSecurity {
    private let roomKey: RoomKey
    private let room: String
    private let name: String
    private let clock: () -> UInt64
    private let sealer: RoomKeySealer
    private let opener: RoomKeyOpener
    /// Direct messages travel in streams of their own, one per recipient, so that a member does
    /// not see gaps in the room stream for messages that were never meant for it.
    private var directSealers: [String: RoomKeySealer] = [:]
    private let directOpener: RoomKeyOpener
    private var members: Set<String> = []
    /// Members who were in the room when this member joined: their room stream may have started
    /// earlier. Anyone who joins later must start theirs at counter 0 in this member's sight.
    private var presentAtWelcome: Set<String> = []

    /// Creates the mode for one member of one room.
    /// - Parameter clock: the wall clock in milliseconds since 1970 (tests pass their own).
    public init(
        roomKey: RoomKey, room: String, name: String, clock: @escaping () -> UInt64 = WallClock.milliseconds
    ) {
        self.roomKey = roomKey
        self.room = room
        self.name = name
        self.clock = clock
        sealer = RoomKeySealer(roomKey: roomKey, room: room, sender: name, clock: clock)
        opener = RoomKeyOpener(roomKey: roomKey, room: room, clock: clock)
        directOpener = RoomKeyOpener(roomKey: roomKey, room: room, clock: clock)
    }

    public var profile: [UInt8] { [] }
    public var ownFingerprint: String? { nil }

    public func didRegister(members: [MemberEntry]) -> [SecurityAction] {
        self.members = Set(members.map(\.name))
        presentAtWelcome = self.members
        return []
    }

    /// Room-key members present no profile: there is nothing to replay.
    public func refusalOfJoining(_ member: MemberEntry) -> ClientEvent? { nil }

    /// No identities: the name alone counts.
    public func identityKey(of member: MemberEntry) -> [UInt8]? { [] }

    /// Nothing is ever held with a room key.
    public var heldLines: [(name: String, count: Int)] { [] }

    /// A room key has no identities whose change could hold anything: `/hold` is remembered, and changes nothing.
    public private(set) var holdsEverything = false

    public func holdEverything(_ on: Bool) -> [SecurityAction] {
        holdsEverything = on
        return []
    }

    public func takeHeldLines() -> HeldLines { HeldLines() }

    public func adoptHeldLines(_ lines: HeldLines) -> [SecurityAction] { [] }

    public func forgetAbsentHeldLines(reason: String) -> [SecurityAction] { [] }

    public func memberJoined(_ member: MemberEntry) -> [SecurityAction] {
        members.insert(member.name)
        return []
    }

    public func memberLeft(_ name: String) -> [SecurityAction] {
        members.remove(name)
        presentAtWelcome.remove(name)
        directSealers[name] = nil
        return []
    }

    public func sendToRoom(_ content: MessageContent) -> [SecurityAction] {
        do {
            return [.publish(try sealer.seal(content))]
        } catch {
            return [.show(.error(message: "message not sent: \(error)"))]
        }
    }

    /// Sends to one member through the relay. With a shared room key this is not secret from the
    /// other key holders, so chat text is refused (`/msg` needs automatic keys); file control and
    /// chunks use it, authenticated by the room key and bound to the recipient.
    public func sendPrivately(_ content: MessageContent, to name: String) -> [SecurityAction] {
        guard content.isFileControl else {
            return [.show(.error(message: Self.needsAutomaticKeys("/msg")))]
        }
        let directSealer =
            directSealers[name] ?? RoomKeySealer(roomKey: roomKey, room: room, sender: self.name, clock: clock)
        directSealers[name] = directSealer
        do {
            return [.direct(try directSealer.seal(content, to: name), to: name)]
        } catch {
            return [.show(.error(message: "message not sent: \(error)"))]
        }
    }

    public func receive(_ payload: ArraySlice<UInt8>, from sender: String, isDirect: Bool) -> [SecurityAction] {
        guard sender != name else {
            return [
                .show(
                    .warning(
                        kind: "tampered", name: sender,
                        message: "a message under your own name came back from the relay; refused"))
            ]
        }
        guard members.contains(sender) else {
            return [
                .show(
                    .warning(
                        kind: "tampered", name: sender,
                        message: "message from \(sender), who is not in the room, refused"))
            ]
        }
        let opened =
            isDirect
            ? directOpener.open(payload, from: sender, to: name, sessionMayBeUnderway: false)
            : opener.open(payload, from: sender, sessionMayBeUnderway: presentAtWelcome.contains(sender))
        switch opened {
        case .content(let content, let missing):
            let delivered = SecurityAction.deliver(content, from: sender, isPrivate: isDirect)
            guard missing > 0 else { return [delivered] }
            return [
                .show(.warning(kind: "missing", name: sender, message: "\(missing) messages from \(sender) missing")),
                delivered,
            ]
        case .tampered(let reason):
            return [.show(.warning(kind: "tampered", name: sender, message: "tampered message refused: \(reason)"))]
        case .differentKey(let reason):
            return [.show(.differentRoomKey(name: sender, message: reason))]
        case .replayed(let reason):
            return [.show(.warning(kind: "replay", name: sender, message: "replayed message refused: \(reason)"))]
        }
    }

    public func handle(_ command: SecurityCommand) -> [SecurityAction] {
        switch command {
        case .who:
            return [
                .show(
                    .who(
                        members: members.sorted().map { MemberStatus(name: $0, fingerprint: nil, trust: .sharedKey) },
                        you: MemberStatus(name: name, fingerprint: nil, trust: .sharedKey)))
            ]
        case .verifySelf:
            return [
                .show(
                    .error(
                        message: Self.needsAutomaticKeys("/verify")
                            + "; /verify relay shows the relay's key, which works in both modes"))
            ]
        case .verifyMember:
            return [.show(.error(message: Self.needsAutomaticKeys("/verify")))]
        case .verifyRoom:
            return [.show(.error(message: Self.needsAutomaticKeys("/verify room")))]
        case .trust:
            return [.show(.error(message: Self.needsAutomaticKeys("/trust")))]
        }
    }

    static func needsAutomaticKeys(_ command: String) -> String {
        "\(command) needs automatic keys: you joined with --key, where everyone shares one room key; join without --key to use it"
    }
}
