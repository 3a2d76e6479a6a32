import AESChatCrypto

/// The ``RoomBus`` of a relay on its own: every room lives on this relay, names are claimed in
/// its ``RoomDirectory``, and every event goes straight into the ``FanOut``, synchronously, in
/// the order the relay handles frames.
///
/// Owned by ``Relay``; confined to the event loop's thread.
final class LocalBus: RoomBus {
    private let directory: RoomDirectory
    private let fanOut: FanOut
    private let log: (String) -> Void

    /// Creates the bus of a relay.
    /// - Parameters:
    ///   - directory: the relay's members and rooms.
    ///   - fanOut: the relay's fan-out.
    ///   - log: receives one line per join and leave.
    init(directory: RoomDirectory, fanOut: FanOut, log: @escaping (String) -> Void) {
        self.directory = directory
        self.fanOut = fanOut
        self.log = log
    }

    func join(_ member: RelayConnection, name: String, room roomName: String, profile: [UInt8], claim: NameClaim?) {
        if let holder = directory.member(named: name),
            !directory.takeOver(name, from: holder, by: member, claim: claim, room: roomName, log: log)
        {
            return
        }
        guard directory.claim(name, for: member, claimKey: claim?.key) else {
            member.refuse(.nameTaken, "the name '\(name)' is already in use on this relay; choose another with --name")
            return
        }
        let room = directory.room(named: roomName)
        // The newcomer is owed nothing the room was sent before its welcome.
        member.enter(room, as: name, profileLength: UInt16(profile.count))
        fanOut.sendPrivately(directory.welcome(for: name, to: room), to: member)
        if member.announcesRelayKeys { fanOut.sendPrivately(member.relay.link.relayKeysFrame, to: member) }
        fanOut.appendToBatch(
            of: room, length: RelayFrame.joinedLength(name: name, profileCount: profile.count), presence: true
        ) {
            RelayFrame.writeJoined(name: name, profile: profile, into: &$0)
        }
        directory.add(member, to: room, profile: profile)
        member.caughtUp(with: room)
        log("\(name) joined \(roomName) from \(member.connection.peerDescription) (\(room.members.count) in room)")
    }

    /// Decides whether `member` takes `name` over from `holder` (docs/PROTOCOL.md section 3.1): only when its claim
    /// carries the key the holder registered with (compared in constant time) and its signature verifies over
    /// `member`'s own handshake hash. Then the holder is refused (`name-reclaimed`), which frees the name, and the
    /// result is true. Otherwise `member` is refused: `invalid-claim` for the holder's key with a signature that
    /// does not verify, `name-taken` (saying when the name frees up) for anything else; the holder stays.
    func leave(_ member: RelayConnection, reason: String) {
        guard let name = member.name, let room = member.room else { return }
        if !member.isTooSlow { fanOut.handOver(to: member) }
        directory.remove(member, named: name, from: room)
        fanOut.appendToBatch(of: room, length: RelayFrame.leftLength(name: name), presence: true) {
            RelayFrame.writeLeft(name: name, into: &$0)
        }
        log("\(name) left \(room.name) (\(reason)) (\(room.members.count) in room)")
    }

    func publish(_ payload: UnsafeRawBufferPointer, from member: RelayConnection) {
        guard let room = member.room, let name = member.name else { return }
        guard room.members.count > 1 else { return }
        // The sender is handed what it is owed so far; then its cursor skips its own frame.
        fanOut.handOver(to: member)
        fanOut.appendToBatch(of: room, length: RelayFrame.deliverHeaderLength(from: name) + payload.count) {
            RelayFrame.writeDeliverHeader(from: name, flags: 0, payloadCount: payload.count, into: &$0)
            $0.write(bytes: payload)
        }
        member.caughtUp(with: room)
    }

    func direct(_ payload: ReceivedPayload, to recipientName: String, from member: RelayConnection) {
        guard let room = member.room, let name = member.name else { return }
        guard let recipient = directory.member(named: recipientName), recipient.room === room, recipient !== member
        else {
            fanOut.sendPrivately(
                RelayFrame.error(
                    code: RelayErrorCode.unknownRecipient.rawValue,
                    message: "no member named '\(Relay.printable(recipientName))' in \(room.name)"
                ).encoded(), to: member)
            return
        }
        fanOut.deliverPrivately(
            fanOut.deliverFrame(from: name, flags: 1, payload: payload), from: member, to: recipient)
    }

    func multicast(_ payload: ReceivedPayload, to recipients: [String], from member: RelayConnection) {
        guard let room = member.room, let name = member.name else { return }
        var frame: OutgoingFrame?
        for recipientName in recipients {
            guard let recipient = directory.member(named: recipientName), recipient.room === room,
                recipient !== member
            else {
                continue
            }
            if frame == nil { frame = fanOut.deliverFrame(from: name, flags: 2, payload: payload) }
            guard fanOut.deliverPrivately(frame!, from: member, to: recipient) else { return }
        }
    }

    func pong(_ token: UInt64, to member: RelayConnection) {
        fanOut.sendPrivately(RelayFrame.pong(token: token).encoded(), to: member)
    }
}
