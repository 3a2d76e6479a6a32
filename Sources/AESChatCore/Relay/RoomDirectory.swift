import AESChatCrypto
import AESChatNames

/// The relay's directory of members and rooms: which name is taken by which connection (names
/// are unique across rooms), the rooms that have members, each room's sorted roster, and the
/// welcome a newcomer gets. It queues nothing itself: a ``RoomBus`` decides when a member joins or
/// leaves, and ``FanOut`` carries the frames.
///
/// Owned by ``Relay``; confined to the event loop's thread.
final class RoomDirectory {
    private var membersByName: [String: RelayConnection] = [:]
    /// The claim key each name was registered with, for the names registered with one (docs/PROTOCOL.md section 3.1).
    private var claimKeysByName: [String: [UInt8]] = [:]
    private var rooms: [String: Room] = [:]
    /// Joins and leaves so far.
    private(set) var membershipChanges = 0

    /// Registered members across all rooms.
    var memberCount: Int { membersByName.count }

    /// Why a hello with `version`, `name` and `room` is refused, before its name is claimed; nil
    /// when it is well formed.
    func refusal(version: UInt16, name: String, room roomName: String) -> (code: RelayErrorCode, message: String)? {
        guard version == relayProtocolVersion else {
            return (
                .unsupportedVersion,
                "protocol version \(version) is not supported; this relay speaks version \(relayProtocolVersion)"
            )
        }
        guard Names.isValidMemberName(name) else {
            return (
                .invalidName, "invalid name '\(Relay.printable(name))': use 1 to 32 letters, digits, '-', '_' or '.'"
            )
        }
        guard Names.isValidRoomName(roomName) else {
            return (
                .invalidRoom,
                "invalid room '\(Relay.printable(roomName))': use 1 to 64 letters, digits, '-', '_' or '.'"
            )
        }
        return nil
    }

    /// Takes `name` for `member`, noting `claimKey` (the key of hello's name claim, if any); false when another member
    /// has it.
    func claim(_ name: String, for member: RelayConnection, claimKey: [UInt8]? = nil) -> Bool {
        guard membersByName[name] == nil else { return false }
        membersByName[name] = member
        if let claimKey { claimKeysByName[name] = claimKey }
        return true
    }

    /// The claim key `name` was registered with; nil when it is free or was registered without a claim.
    func claimKey(of name: String) -> [UInt8]? {
        claimKeysByName[name]
    }

    /// The member registered as `name`, in whatever room.
    func member(named name: String) -> RelayConnection? {
        membersByName[name]
    }

    /// The room named `name`, if it has members on this relay.
    func existingRoom(named name: String) -> Room? {
        rooms[name]
    }

    /// Frees `name`, claimed for a member that never entered a room (its cluster join was refused or abandoned).
    func unclaim(_ name: String) {
        membersByName[name] = nil
        claimKeysByName[name] = nil
    }

    /// The room named `name`, created empty if it has no members.
    func room(named name: String) -> Room {
        if let room = rooms[name] { return room }
        let room = Room(name: name)
        rooms[name] = room
        return room
    }

    /// The welcome for a newcomer named `name` to `room`: the room's roster before it joins
    /// (at most ``RelayFrame/maximumWelcomeMembers`` entries).
    func welcome(for name: String, to room: Room) -> [UInt8] {
        let roomName = room.name
        let (listed, rosterBytes) = room.rosterPrefix(maximumMembers: RelayFrame.maximumWelcomeMembers)
        var welcome = ByteWriter(
            capacity: RelayFrame.welcomeLength(name: name, room: roomName, entryBytes: rosterBytes))
        room.roster(prefixBytes: rosterBytes).withUnsafeBytes {
            RelayFrame.writeWelcome(name: name, room: roomName, memberCount: listed, entries: $0, into: &welcome)
        }
        return welcome.bytes
    }

    /// Lists `member` (registered in `room`, its name claimed) in its room's roster.
    func add(_ member: RelayConnection, to room: Room, profile: [UInt8]) {
        room.add(member, profile: profile)
        membershipChanges += 1
    }

    /// Takes `member`, registered as `name`, out of `room` and frees its name; the room goes once
    /// it is empty.
    func remove(_ member: RelayConnection, named name: String, from room: Room) {
        membersByName[name] = nil
        claimKeysByName[name] = nil
        membershipChanges += 1
        room.remove(member)
        member.leaveRoom()
        if room.members.isEmpty { rooms[room.name] = nil }
    }
}

extension RoomDirectory {
    /// Whether `member`, asking for `name` held by `holder`, takes it over: only with a claim under the key the name
    /// is held with that verifies for `member`'s link. Otherwise `member` is refused (`name-taken`, or
    /// `invalid-claim` for a claim that does not verify); on success `holder` is refused with `name-reclaimed`. Both
    /// buses (``LocalBus``, ``ClusterBus``) decide a take-over this way; `log` gets the take-over's line.
    func takeOver(
        _ name: String, from holder: RelayConnection, by member: RelayConnection, claim: NameClaim?, room: String,
        log: (String) -> Void
    ) -> Bool {
        guard let claim, let heldKey = claimKey(of: name), constantTimeEquals(heldKey, claim.key) else {
            member.refuse(
                .nameTaken, member.relay.admission.nameTakenMessage(name: name, holder: holder, requestedRoom: room),
                reason: "name taken")
            return false
        }
        // Verified only here, when it would act: a claim costs the relay a signature check only for a name held
        // under the same key, which only the relay and that key's owner know.
        guard let hash = member.handshakeHash, NameClaimKey.verify(claim, handshakeHash: hash, name: name) else {
            member.refuse(
                .invalidClaim,
                "the claim to the name '\(name)' does not verify for this connection; the name stays with its holder",
                reason: "invalid name claim")
            return false
        }
        log("\(name) reclaimed from \(holder.connection.peerDescription) by \(member.connection.peerDescription)")
        holder.refuse(
            .nameReclaimed,
            "your name '\(name)' was reclaimed by a new connection of the same key; this client stops here and does "
                + "not reconnect",
            reason: "name reclaimed by a new connection of the same key")
        return true
    }
}
