import AESChatCLI

/// The relay: registers members by name into rooms, and forwards each member's opaque payloads
/// to the other members of its room, in order. It never holds a key and never looks inside a
/// payload.
///
/// Fan-out is batched per loop iteration: every frame for a room (deliver, joined, left) is
/// encoded once into the room's shared buffer, and at the end of the iteration each member gets
/// one range of that buffer queued on its connection, covering everything it is owed. A frame
/// meant for one member (welcome, direct, pong, error) first hands that member what the room owes
/// it, so each member's stream stays in order. Publishing allocates nothing in steady state: the
/// payload is copied once from the read buffer into a shared buffer, and buffers are reused once
/// no connection holds them.
///
/// Works on any ``Connection``; confined to the event loop's thread.
public final class Relay {
    public let configuration: RelayConfiguration
    private let loop: any EventLoop
    private let log: (String) -> Void
    private var clients: [RelayConnection] = []
    private var membersByName: [String: RelayConnection] = [:]
    private var rooms: [String: Room] = [:]
    private var dirtyRooms: [Room] = []
    private var roomsBeingFlushed: [Room] = []
    private var tooSlow: [RelayConnection] = []
    private var spareBuffers: [SharedBuffer] = []
    private var spareLargeFrameBuffers: [SharedBuffer] = []
    private var connectionsByAddress: [String: Int] = [:]
    /// Bytes of large-frame buffers held by connections for frames in progress
    /// (``RelayLimits/incompleteFrameBudget``).
    private var largeFrameBytesHeld = 0
    /// Bytes held for frames in progress by address, large or small
    /// (``RelayLimits/incompleteFrameBudgetPerAddress``).
    private var frameBytesByAddress: [String: Int] = [:]
    /// Numbers the connections, so that a member's backlog can name its senders.
    private var nextClientSerial: UInt64 = 0
    private var isShuttingDown = false
    private var shutdownCompletion: (() -> Void)?

    /// Buffers kept for reuse between iterations.
    private static let maximumSpareBuffers = 32

    /// Creates a relay.
    /// - Parameters:
    ///   - configuration: limits.
    ///   - loop: the loop that drives its connections (for timers and the end-of-iteration fan-out).
    ///   - log: receives one line per join, leave and refusal.
    public init(
        configuration: RelayConfiguration = RelayConfiguration(), loop: any EventLoop, log: @escaping (String) -> Void
    ) {
        precondition(
            configuration.maximumPendingOutput > configuration.maximumFrameLength,
            "the pending-output cap must exceed the largest frame")
        self.configuration = configuration
        self.loop = loop
        self.log = log
        loop.addIterationEndHandler { [weak self] in self?.endIteration() }
        scheduleTick()
    }

    /// Connections open, registered or not.
    public var connectionCount: Int { clients.count }
    /// Registered members across all rooms.
    public var memberCount: Int { membersByName.count }
    /// Joins and leaves so far; a serve loop uses it to decide when to give memory back.
    public private(set) var membershipChanges = 0

    /// Gives back what bursts left behind: spare fan-out buffers beyond a couple, and (through
    /// the allocator) freed memory. Cheap enough to call every few seconds.
    public func releaseIdleMemory() {
        if spareBuffers.count > 2 { spareBuffers.removeSubrange(2...) }
        spareLargeFrameBuffers.removeAll()
        System.releaseFreeMemory()
    }

    /// Accepts every connection `listener` hands out.
    public func attach(to listener: any Listener) {
        listener.acceptHandler = { [unowned self] connection in self.accept(connection) }
    }

    /// Takes charge of a new connection.
    public func accept(_ connection: any Connection) {
        guard !isShuttingDown else {
            connection.write(
                RelayFrame.error(code: RelayErrorCode.shuttingDown.rawValue, message: "relay is shutting down")
                    .encoded())
            connection.closeAfterFlushing(timeout: .seconds(1))
            return
        }
        let limits = configuration.limits
        let address = String(RelayLimits.address(ofPeer: connection.peerDescription))
        let fromAddress = connectionsByAddress[address, default: 0]
        if limits.maximumConnections > 0 && clients.count >= limits.maximumConnections {
            refuseAtAccept(connection, "too many connections: the relay holds \(limits.maximumConnections)")
            return
        }
        if limits.maximumConnectionsPerAddress > 0 && fromAddress >= limits.maximumConnectionsPerAddress {
            refuseAtAccept(
                connection, "too many connections from \(address): at most \(limits.maximumConnectionsPerAddress)")
            return
        }
        let client = RelayConnection(
            relay: self, connection: connection, maximumFrameLength: configuration.maximumFrameLength)
        client.address = address
        client.bucket = TokenBucket(capacity: max(1, limits.messageBurst))
        client.byteBucket = TokenBucket(capacity: max(1, limits.byteBurst))
        nextClientSerial &+= 1
        client.serial = nextClientSerial
        connectionsByAddress[address] = fromAddress + 1
        client.clientIndex = clients.count
        clients.append(client)
        connection.handler = client
        loop.schedule(after: limits.handshakeTimeout) { [weak self, weak client] in
            guard let self, let client, client.name == nil, client.connection.isOpen, !self.isShuttingDown else {
                return
            }
            client.closeReason = "no hello within the handshake timeout"
            self.refuse(
                client, .handshakeTimeout, "no hello within \(Self.seconds(limits.handshakeTimeout)) seconds")
        }
    }

    private func refuseAtAccept(_ connection: any Connection, _ message: String) {
        log("refused connection from \(connection.peerDescription): \(message)")
        connection.write(RelayFrame.error(code: RelayErrorCode.tooManyConnections.rawValue, message: message).encoded())
        connection.closeAfterFlushing(timeout: .seconds(1))
    }

    private static func seconds(_ duration: Duration) -> Int64 { duration.components.seconds }

    // MARK: Limits

    private func scheduleTick() {
        loop.schedule(after: configuration.limits.tickInterval) { [weak self] in
            guard let self, !self.isShuttingDown else { return }
            self.tick()
            self.scheduleTick()
        }
    }

    /// Refills every token bucket, closes connections whose frame in progress is past its
    /// deadline, pings members idle for the idle timeout and closes those silent for twice as long.
    private func tick() {
        let limits = configuration.limits
        let interval = limits.tickInterval
        let intervalSeconds =
            Double(interval.components.seconds) + Double(interval.components.attoseconds) / 1e18
        let refill = Double(limits.messageRate) * intervalSeconds
        let byteRefill = Double(limits.byteRate) * intervalSeconds
        let idleTimeout = limits.idleTimeout
        for client in clients where client.connection.isOpen {
            client.bucket.refill(refill)
            client.byteBucket.refill(byteRefill)
            if checkFrameInProgress(of: client, interval: interval) { continue }
            guard idleTimeout > .zero, client.name != nil else { continue }
            client.silentFor += interval
            if client.silentFor >= idleTimeout * 2 {
                client.closeReason = "no answer to the relay's ping"
                refuse(client, .idleTimeout, "silent for \(Self.seconds(client.silentFor)) seconds; no answer to ping")
            } else if client.silentFor >= idleTimeout && !client.pingOutstanding {
                client.pingOutstanding = true
                sendPrivately(RelayFrame.ping(token: UInt64(client.silentFor.components.seconds)).encoded(), to: client)
            }
        }
    }

    /// Closes `client` (`slow-frame`) when the frame it is sending has taken longer than its
    /// deadline, and returns true; otherwise counts one more tick for a frame in progress.
    private func checkFrameInProgress(of client: RelayConnection, interval: Duration) -> Bool {
        guard let length = client.frameInProgressLength else {
            client.frameInProgressFor = .zero
            return false
        }
        client.frameInProgressFor += interval
        let declared = length > 0 ? length : nil
        guard let deadline = configuration.limits.incompleteFrameDeadline(length: declared),
            client.frameInProgressFor > deadline
        else { return false }
        let described = declared.map { "a frame of \($0) bytes" } ?? "a frame"
        let message =
            "\(described) still incomplete after \(Self.seconds(client.frameInProgressFor)) seconds: frames must "
            + "arrive within \(Self.seconds(configuration.limits.incompleteFrameGrace)) seconds plus "
            + "1 second per \(configuration.limits.minimumFrameRate) bytes"
        client.closeReason = "slow frame"
        refuse(client, .slowFrame, message)
        return true
    }

    /// Takes one frame token and `bytes` byte tokens for a frame; refuses the connection as
    /// flooding when either bucket cannot pay.
    func allowFrame(from client: RelayConnection, bytes: Int = 0) -> Bool {
        let limits = configuration.limits
        if limits.messageRate > 0 && !client.bucket.take() {
            client.closeReason = "flooding"
            refuse(
                client, .flooding,
                "flooding: more than \(limits.messageRate) frames a second (burst \(limits.messageBurst))")
            return false
        }
        if limits.byteRate > 0 && bytes > 0 && !client.byteBucket.take(bytes) {
            client.closeReason = "flooding"
            refuse(
                client, .flooding,
                "flooding: more than \(limits.byteRate) payload bytes a second (burst \(limits.byteBurst)); "
                    + "direct and multicast payloads count once per recipient")
            return false
        }
        return true
    }

    /// Tells every client that the relay is stopping, gives them a moment to receive it, then
    /// calls `completion` once every connection is closed (or the close timeout passed).
    public func shutdown(completion: @escaping () -> Void) {
        guard !isShuttingDown else { return }
        isShuttingDown = true
        shutdownCompletion = completion
        let farewell = RelayFrame.error(code: RelayErrorCode.shuttingDown.rawValue, message: "relay is shutting down")
            .encoded()
        for client in clients {
            sendPrivately(farewell, to: client)
            client.connection.closeAfterFlushing(timeout: .seconds(1))
        }
        loop.schedule(after: .seconds(2)) { [weak self] in self?.finishShutdown() }
        if clients.isEmpty { finishShutdown() }
    }

    private func finishShutdown() {
        guard let completion = shutdownCompletion else { return }
        shutdownCompletion = nil
        completion()
    }

    // MARK: Called by RelayConnection

    func register(
        _ client: RelayConnection, version: UInt16, name: String, room roomName: String, profile: [UInt8]
    ) {
        guard version == relayProtocolVersion else {
            refuse(
                client, .unsupportedVersion,
                "protocol version \(version) is not supported; this relay speaks version \(relayProtocolVersion)")
            return
        }
        guard Names.isValidMemberName(name) else {
            refuse(
                client, .invalidName,
                "invalid name '\(Self.printable(name))': use 1 to 32 letters, digits, '-', '_' or '.'")
            return
        }
        guard Names.isValidRoomName(roomName) else {
            refuse(
                client, .invalidRoom,
                "invalid room '\(Self.printable(roomName))': use 1 to 64 letters, digits, '-', '_' or '.'")
            return
        }
        guard membersByName[name] == nil else {
            refuse(client, .nameTaken, "the name '\(name)' is already in use on this relay; choose another with --name")
            return
        }
        let room = rooms[roomName] ?? Room(name: roomName)
        rooms[roomName] = room
        client.name = name
        client.profileLength = UInt16(profile.count)
        client.room = room
        // The newcomer is owed nothing the room was sent before its welcome.
        client.batchEpoch = room.epoch
        client.batchCursor = room.batchLength
        membersByName[name] = client
        let (listed, rosterBytes) = room.rosterPrefix(maximumMembers: RelayFrame.maximumWelcomeMembers)
        let welcome = Frame.encode(
            type: FrameType.welcome, capacity: 6 + name.utf8.count + roomName.utf8.count + rosterBytes
        ) {
            $0.write(relayProtocolVersion)
            $0.writeShortString(name)
            $0.writeShortString(roomName)
            $0.write(UInt16(listed))
            $0.write(contentsOf: room.roster(prefixBytes: rosterBytes))
        }
        sendPrivately(welcome, to: client)
        let joinedLength = 1 + 1 + name.utf8.count + 2 + profile.count
        appendToBatch(of: room, frameLength: joinedLength) { buffer in
            buffer.append(FrameType.joined)
            buffer.appendShortString(name)
            buffer.append(UInt8(profile.count >> 8))
            buffer.append(UInt8(profile.count & 0xFF))
            profile.withUnsafeBytes { buffer.append($0) }
        }
        room.add(client, profile: profile)
        client.batchCursor = room.batchLength
        membershipChanges += 1
        log("\(name) joined \(roomName) from \(client.connection.peerDescription) (\(room.members.count) in room)")
    }

    func publish(_ payload: UnsafeRawBufferPointer, from client: RelayConnection) {
        guard let room = client.room, let name = client.name else { return }
        guard room.members.count > 1 else { return }
        // The sender is handed what it is owed so far; then its cursor skips its own frame.
        handOver(to: client)
        let frameLength = 1 + 1 + name.utf8.count + 1 + payload.count
        appendToBatch(of: room, frameLength: frameLength) { buffer in
            buffer.append(FrameType.deliver)
            buffer.appendShortString(name)
            buffer.append(0)
            buffer.append(payload)
        }
        client.batchEpoch = room.epoch
        client.batchCursor = room.batchLength
    }

    func direct(_ payload: ReceivedPayload, to recipientName: String, from client: RelayConnection) {
        guard let room = client.room, let name = client.name else { return }
        guard let recipient = membersByName[recipientName], recipient.room === room, recipient !== client else {
            sendPrivately(
                RelayFrame.error(
                    code: RelayErrorCode.unknownRecipient.rawValue,
                    message: "no member named '\(Self.printable(recipientName))' in \(room.name)"
                ).encoded(), to: client)
            return
        }
        deliverPrivately(deliverFrame(from: name, flags: 1, payload: payload), from: client, to: recipient)
    }

    /// Delivers one payload to several members of the sender's room, encoded once. Names not in
    /// the room are skipped (they may have just left); the names are distinct (checked by the
    /// caller).
    func multicast(_ payload: ReceivedPayload, to recipients: [String], from client: RelayConnection) {
        guard let room = client.room, let name = client.name else { return }
        var frame: OutgoingFrame?
        for recipientName in recipients {
            guard let recipient = membersByName[recipientName], recipient.room === room, recipient !== client else {
                continue
            }
            if frame == nil { frame = deliverFrame(from: name, flags: 2, payload: payload) }
            guard deliverPrivately(frame!, from: client, to: recipient) else { return }
        }
    }

    /// The most of one member's output cap that one sender's direct and multicast frames may
    /// fill: half of it, so that no single sender can push a member over the cap.
    private var recipientBacklogShare: Int { configuration.maximumPendingOutput / 2 }

    /// Queues a direct or multicast deliver frame for `recipient`, unless the sender's frames
    /// already waiting for it would, with this one, pass its share of the recipient's output
    /// cap: then the sender is refused (`recipient-backlog`), the recipient is left alone, and
    /// the result is false. A sender with nothing waiting may always send one frame.
    @discardableResult
    private func deliverPrivately(_ frame: OutgoingFrame, from sender: RelayConnection, to recipient: RelayConnection)
        -> Bool
    {
        let connection = recipient.connection
        guard connection.isOpen else { return true }
        recipient.privateBacklog.forget(upTo: connection.sentByteCount)
        let waiting = recipient.privateBacklog.bytes(from: sender.serial)
        let length = frame.byteCount
        if waiting > 0 && waiting + length > recipientBacklogShare {
            sender.closeReason = "too much waiting for \(recipient.name ?? "a member")"
            refuse(
                sender, .recipientBacklog,
                "too much of your output waiting for \(recipient.name ?? "a member"), who is not reading fast "
                    + "enough: \(waiting) bytes of your direct and multicast frames are queued for it, and one "
                    + "sender may fill at most \(recipientBacklogShare) bytes of a member's queue")
            return false
        }
        guard !isOverCap(recipient) else { return true }
        handOver(to: recipient)
        switch frame {
        case .array(let bytes): connection.write(bytes)
        case .shared(let buffer, let range): connection.write(buffer, range: range)
        }
        recipient.privateBacklog.add(
            length, from: sender.serial, endingAt: connection.sentByteCount + connection.pendingOutputByteCount)
        return true
    }

    /// The deliver frame for a direct or multicast payload: written in front of the payload where
    /// it was read, when it was read into a buffer of its own (no copy), else encoded afresh.
    private func deliverFrame(from: String, flags: UInt8, payload: ReceivedPayload) -> OutgoingFrame {
        let headerLength = Frame.headerSize + 1 + 1 + from.utf8.count + 1
        guard let (buffer, offset) = payload.storage, offset >= headerLength else {
            return .array(Self.encodeDeliver(from: from, flags: flags, payload: payload.bytes))
        }
        // The bytes in front of the payload (the frame's own header, already parsed, and the
        // headroom) are not queued anywhere: the deliver header replaces them.
        var header = ByteWriter(capacity: headerLength)
        header.write(UInt32(headerLength - Frame.headerSize + payload.bytes.count))
        header.write(FrameType.deliver)
        header.writeShortString(from)
        header.write(flags)
        header.bytes.withUnsafeBytes {
            (buffer.storage + offset - headerLength).copyMemory(from: $0.baseAddress!, byteCount: headerLength)
        }
        return .shared(buffer, (offset - headerLength)..<(offset + payload.bytes.count))
    }

    /// A deliver frame for one or a few members, encoded straight from the received bytes (one copy).
    static func encodeDeliver(from: String, flags: UInt8, payload: UnsafeRawBufferPointer) -> [UInt8] {
        Frame.encode(type: FrameType.deliver, capacity: payload.count + from.utf8.count + 2) {
            $0.writeShortString(from)
            $0.write(flags)
            $0.write(contentsOf: payload)
        }
    }

    func refuse(_ client: RelayConnection, _ code: RelayErrorCode, _ message: String) {
        log("refused \(client.name ?? "unregistered client") from \(client.connection.peerDescription): \(message)")
        sendPrivately(RelayFrame.error(code: code.rawValue, message: message).encoded(), to: client)
        leave(client, reason: message)
        client.connection.closeAfterFlushing(timeout: configuration.closeTimeout)
    }

    /// Takes a member out of its room and tells the others; does nothing if it is not in one.
    /// Called on bye (before the connection has finished closing) and when a connection closes.
    /// A member that leaves in order first gets what the room sent before it left.
    func leave(_ client: RelayConnection, reason: String) {
        guard let name = client.name, let room = client.room else { return }
        if !client.isTooSlow { handOver(to: client) }
        membersByName[name] = nil
        membershipChanges += 1
        room.remove(client)
        client.room = nil
        if room.members.isEmpty { rooms[room.name] = nil }
        appendToBatch(of: room, frameLength: 1 + 1 + name.utf8.count) { buffer in
            buffer.append(FrameType.left)
            buffer.appendShortString(name)
        }
        log("\(name) left \(room.name) (\(reason)) (\(room.members.count) in room)")
    }

    func connectionClosed(_ client: RelayConnection, reason: String) {
        leave(client, reason: reason)
        client.largeFrame = nil
        client.smallFrameBytes = 0
        if let count = connectionsByAddress[client.address] {
            connectionsByAddress[client.address] = count > 1 ? count - 1 : nil
        }
        let index = client.clientIndex
        if index < clients.count, clients[index] === client {
            let last = clients.removeLast()
            if last !== client {
                clients[index] = last
                last.clientIndex = index
            }
        }
        if isShuttingDown && clients.isEmpty { finishShutdown() }
    }

    func sendPong(_ token: UInt64, to client: RelayConnection) {
        sendPrivately(RelayFrame.pong(token: token).encoded(), to: client)
    }

    // MARK: Fan-out

    /// Queues a frame for one member, after everything its room owes it.
    private func sendPrivately(_ frame: [UInt8], to member: RelayConnection) {
        sendPrivately(.array(frame), to: member)
    }

    private func sendPrivately(_ frame: OutgoingFrame, to member: RelayConnection) {
        guard member.connection.isOpen, !isOverCap(member) else { return }
        handOver(to: member)
        switch frame {
        case .array(let bytes): member.connection.write(bytes)
        case .shared(let buffer, let range): member.connection.write(buffer, range: range)
        }
    }

    // MARK: Large frames

    /// Frames at least this long (prefix included) are read into a buffer of their own, so that a
    /// direct or multicast payload (a file chunk) goes out from where it was read.
    static let largeFrameThreshold = 64 * 1024
    /// Room left in front of a large frame for the deliver header that replaces its own.
    static let largeFrameHeadroom = 64
    /// Room after a large frame for the start of the next one, read together with its end.
    static let largeFrameSlack = 4 * 1024
    /// The largest large-frame buffer kept for reuse.
    static let largestSpareLargeFrameBuffer = 1024 * 1024 + largeFrameHeadroom + largeFrameSlack

    /// The capacity of the buffer that a large frame of `frameLength` bytes is read into.
    static func largeFrameCapacity(frameLength: Int) -> Int {
        largeFrameHeadroom + frameLength + largeFrameSlack
    }

    /// Which budget for frames in progress `client` would pass by holding `capacity` bytes for
    /// its frame in progress (in place of what it holds now), described for an error message; nil
    /// when it fits. A large frame (read into a buffer of its own) counts in all and for the
    /// client's address, a small one (kept by the decoder) only for its address. The first frame
    /// held in all, and from an address, always fits.
    func frameBudgetExceeded(capacity: Int, isLarge: Bool, for client: RelayConnection) -> String? {
        let limits = configuration.limits
        let current = (client.largeFrame?.capacity ?? 0) + client.smallFrameBytes
        let others = largeFrameBytesHeld - (client.largeFrame?.capacity ?? 0)
        if isLarge && limits.incompleteFrameBudget > 0 && others > 0 && others + capacity > limits.incompleteFrameBudget
        {
            return "the relay's budget of \(limits.incompleteFrameBudget) bytes for partly received large frames"
        }
        let fromAddress = frameBytesByAddress[client.address, default: 0] - current
        if limits.incompleteFrameBudgetPerAddress > 0 && fromAddress > 0
            && fromAddress + capacity > limits.incompleteFrameBudgetPerAddress
        {
            return "the budget of \(limits.incompleteFrameBudgetPerAddress) bytes for partly received "
                + "frames from \(client.address)"
        }
        return nil
    }

    /// Refuses `client` (`frame-budget`): its large frame would pass `budget`.
    func refuseOverFrameBudget(_ client: RelayConnection, frameLength: Int, budget: String) {
        client.closeReason = "over the budget for frames in progress"
        refuse(
            client, .frameBudget,
            "a frame of \(frameLength) bytes cannot start now: it would pass \(budget); send it again later")
    }

    /// Counts a change in the bytes a client at `address` holds for its frame in progress.
    func frameBytesChanged(by delta: Int, isLarge: Bool, address: String) {
        if isLarge { largeFrameBytesHeld += delta }
        let fromAddress = frameBytesByAddress[address, default: 0] + delta
        frameBytesByAddress[address] = fromAddress > 0 ? fromAddress : nil
    }

    /// An empty buffer for a large frame of `frameLength` bytes (prefix included): a spare one
    /// that no connection holds any more, or a new one. Its count starts past the headroom.
    func takeLargeFrameBuffer(frameLength: Int) -> SharedBuffer {
        let capacity = Self.largeFrameCapacity(frameLength: frameLength)
        var found: SharedBuffer?
        for index in spareLargeFrameBuffers.indices.reversed()
        where spareLargeFrameBuffers[index].capacity >= capacity
            && spareLargeFrameBuffers[index].capacity <= 2 * capacity
            && isKnownUniquelyReferenced(&spareLargeFrameBuffers[index])
        {
            found = spareLargeFrameBuffers.remove(at: index)
            break
        }
        let buffer = found ?? SharedBuffer(capacity: capacity)
        buffer.reset()
        buffer.commit(Self.largeFrameHeadroom)
        return buffer
    }

    /// Keeps a large-frame buffer for reuse once the connections it was queued on have sent it
    /// (one of at most 1 MiB: a file chunk; a larger one is freed once sent).
    func recycleLargeFrameBuffer(_ buffer: SharedBuffer) {
        guard buffer.capacity <= Self.largestSpareLargeFrameBuffer else { return }
        if spareLargeFrameBuffers.count >= Self.maximumSpareBuffers {
            // Forget one that is still queued somewhere; it is freed once sent.
            guard
                let index = spareLargeFrameBuffers.indices.first(where: {
                    !isKnownUniquelyReferenced(&spareLargeFrameBuffers[$0])
                })
            else { return }
            spareLargeFrameBuffers.remove(at: index)
        }
        spareLargeFrameBuffers.append(buffer)
    }

    /// Appends one frame (`frameLength` counts the type byte and body) to the room's batch of this
    /// iteration; `body` writes the type and body.
    private func appendToBatch(of room: Room, frameLength: Int, _ body: (SharedBuffer) -> Void) {
        guard !room.members.isEmpty else { return }
        let total = Frame.headerSize + frameLength
        if room.buffers.last.map({ $0.remainingCapacity < total }) ?? true {
            room.startBuffer(takeBuffer(minimumCapacity: total))
        }
        let buffer = room.buffers[room.buffers.count - 1]
        buffer.append(bigEndian: UInt32(frameLength))
        body(buffer)
        room.batchLength += total
        if !room.isDirty {
            room.isDirty = true
            dirtyRooms.append(room)
        }
    }

    /// Queues on the member's connection every byte of its room's batch it has not been given yet.
    private func handOver(to member: RelayConnection) {
        guard let room = member.room, room.batchLength > 0 else { return }
        var cursor = member.batchEpoch == room.epoch ? member.batchCursor : 0
        guard cursor < room.batchLength else { return }
        member.batchEpoch = room.epoch
        member.batchCursor = room.batchLength
        guard member.connection.isOpen else { return }
        for index in room.buffers.indices {
            let start = room.bufferStarts[index]
            let buffer = room.buffers[index]
            let end = start + buffer.count
            if end <= cursor { continue }
            member.connection.write(buffer, range: (cursor - start)..<buffer.count)
            cursor = end
        }
    }

    /// Whether the member still owes more than the cap from earlier iterations (what the kernel did
    /// not take when its connection last flushed); if so it is marked for dropping at the end of
    /// the iteration. Checked before more is queued, so a big batch in one iteration never trips
    /// a member that keeps up.
    private func isOverCap(_ member: RelayConnection) -> Bool {
        if member.isTooSlow { return true }
        guard member.connection.pendingOutputByteCount > configuration.maximumPendingOutput else { return false }
        member.isTooSlow = true
        tooSlow.append(member)
        return true
    }

    /// End of a loop iteration: every member of every room that got frames is handed its range,
    /// members over the cap are dropped, and the batches start afresh.
    private func endIteration() {
        while !dirtyRooms.isEmpty || !tooSlow.isEmpty {
            swap(&dirtyRooms, &roomsBeingFlushed)
            for room in roomsBeingFlushed {
                for member in room.members where !isOverCap(member) {
                    handOver(to: member)
                }
                room.isDirty = false
                for buffer in room.buffers where buffer.capacity == configuration.fanOutBufferSize {
                    if spareBuffers.count < Self.maximumSpareBuffers { spareBuffers.append(buffer) }
                }
                room.endBatch()
            }
            roomsBeingFlushed.removeAll(keepingCapacity: true)
            let slow = tooSlow
            tooSlow.removeAll()
            for member in slow { drop(member) }
        }
    }

    /// Disconnects a member whose queued output passed the cap: drops what it has not started to
    /// receive, tells it why, and tells the room it left.
    private func drop(_ member: RelayConnection) {
        let reason =
            "too slow: more than \(configuration.maximumPendingOutput) bytes of output waiting for it; disconnected"
        member.closeReason = reason
        log(
            "dropping \(member.name ?? "unregistered client") from \(member.connection.peerDescription): \(reason)")
        member.connection.discardUnsentFrames()
        member.connection.write(RelayFrame.error(code: RelayErrorCode.tooSlow.rawValue, message: reason).encoded())
        leave(member, reason: "too slow")
        member.connection.closeAfterFlushing(timeout: configuration.closeTimeout)
    }

    /// A shared buffer of at least `minimumCapacity` bytes: a spare one that no connection holds
    /// any more, or a new one.
    private func takeBuffer(minimumCapacity: Int) -> SharedBuffer {
        if minimumCapacity <= configuration.fanOutBufferSize {
            while var spare = spareBuffers.popLast() {
                if isKnownUniquelyReferenced(&spare) {
                    spare.reset()
                    return spare
                }
            }
        }
        return SharedBuffer(capacity: max(minimumCapacity, configuration.fanOutBufferSize))
    }

    /// Makes network text safe for a log line: control characters become `\u{…}` escapes.
    static func printable(_ text: String) -> String {
        TerminalText.escapeControls(String(text.prefix(64)))
    }
}
