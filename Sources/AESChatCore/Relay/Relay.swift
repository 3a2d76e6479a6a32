import AESChatCLI

/// Limits and timings of a relay.
public struct RelayConfiguration: Sendable {
    /// The largest frame accepted from a client (type byte plus body).
    public var maximumFrameLength = Frame.defaultMaximumLength
    /// Output queued for one member beyond which that member is disconnected as too slow (error
    /// `too-slow`). Must exceed the largest frame so that one big message never trips it by itself.
    /// Checked before more output is queued, against what the kernel did not take when the member's
    /// connection last flushed. Bounds the relay's memory: what the members of a room are owed is
    /// shared between them, so a room costs at most about this much plus one loop iteration's
    /// frames, plus each member's private frames, however many members lag.
    public var maximumPendingOutput = RelayConfiguration.defaultMaximumPendingOutput
    /// How long a closing connection may take to flush before it is cut.
    public var closeTimeout: Duration = .seconds(5)
    /// Size of the shared buffers that fanned-out frames are written into (larger frames get a
    /// buffer of their own).
    public var fanOutBufferSize = 64 * 1024
    /// Limits against hostile or broken clients.
    public var limits = RelayLimits()

    /// The default of ``maximumPendingOutput``: 64 MiB.
    public static let defaultMaximumPendingOutput = 64 * 1024 * 1024

    /// The defaults documented in docs/CLI.md.
    public init() {}
}

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
    private var clients: [RelayClient] = []
    private var membersByName: [String: RelayClient] = [:]
    private var rooms: [String: Room] = [:]
    private var dirtyRooms: [Room] = []
    private var roomsBeingFlushed: [Room] = []
    private var tooSlow: [RelayClient] = []
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
        let client = RelayClient(
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
    private func checkFrameInProgress(of client: RelayClient, interval: Duration) -> Bool {
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
    fileprivate func allowFrame(from client: RelayClient, bytes: Int = 0) -> Bool {
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

    // MARK: Called by RelayClient

    fileprivate func register(
        _ client: RelayClient, version: UInt16, name: String, room roomName: String, profile: [UInt8]
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

    fileprivate func publish(_ payload: UnsafeRawBufferPointer, from client: RelayClient) {
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

    fileprivate func direct(_ payload: ReceivedPayload, to recipientName: String, from client: RelayClient) {
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
    fileprivate func multicast(_ payload: ReceivedPayload, to recipients: [String], from client: RelayClient) {
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
    private func deliverPrivately(_ frame: OutgoingFrame, from sender: RelayClient, to recipient: RelayClient)
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

    fileprivate func refuse(_ client: RelayClient, _ code: RelayErrorCode, _ message: String) {
        log("refused \(client.name ?? "unregistered client") from \(client.connection.peerDescription): \(message)")
        sendPrivately(RelayFrame.error(code: code.rawValue, message: message).encoded(), to: client)
        leave(client, reason: message)
        client.connection.closeAfterFlushing(timeout: configuration.closeTimeout)
    }

    /// Takes a member out of its room and tells the others; does nothing if it is not in one.
    /// Called on bye (before the connection has finished closing) and when a connection closes.
    /// A member that leaves in order first gets what the room sent before it left.
    fileprivate func leave(_ client: RelayClient, reason: String) {
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

    fileprivate func connectionClosed(_ client: RelayClient, reason: String) {
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

    fileprivate func sendPong(_ token: UInt64, to client: RelayClient) {
        sendPrivately(RelayFrame.pong(token: token).encoded(), to: client)
    }

    // MARK: Fan-out

    /// Queues a frame for one member, after everything its room owes it.
    private func sendPrivately(_ frame: [UInt8], to member: RelayClient) {
        sendPrivately(.array(frame), to: member)
    }

    private func sendPrivately(_ frame: OutgoingFrame, to member: RelayClient) {
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
    fileprivate func frameBudgetExceeded(capacity: Int, isLarge: Bool, for client: RelayClient) -> String? {
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
    fileprivate func refuseOverFrameBudget(_ client: RelayClient, frameLength: Int, budget: String) {
        client.closeReason = "over the budget for frames in progress"
        refuse(
            client, .frameBudget,
            "a frame of \(frameLength) bytes cannot start now: it would pass \(budget); send it again later")
    }

    /// Counts a change in the bytes a client at `address` holds for its frame in progress.
    fileprivate func frameBytesChanged(by delta: Int, isLarge: Bool, address: String) {
        if isLarge { largeFrameBytesHeld += delta }
        let fromAddress = frameBytesByAddress[address, default: 0] + delta
        frameBytesByAddress[address] = fromAddress > 0 ? fromAddress : nil
    }

    /// An empty buffer for a large frame of `frameLength` bytes (prefix included): a spare one
    /// that no connection holds any more, or a new one. Its count starts past the headroom.
    fileprivate func takeLargeFrameBuffer(frameLength: Int) -> SharedBuffer {
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
    fileprivate func recycleLargeFrameBuffer(_ buffer: SharedBuffer) {
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
    private func handOver(to member: RelayClient) {
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
    private func isOverCap(_ member: RelayClient) -> Bool {
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
    private func drop(_ member: RelayClient) {
        let reason =
            "too slow: more than \(configuration.maximumPendingOutput) bytes of output waiting for it; disconnected"
        member.closeReason = reason
        log(
            "dropping \(member.name ?? "unregistered client") from \(member.connection.peerDescription): \(reason)")
        // Finish only the frame the member has begun to receive, so that it still sees whole frames.
        member.connection.discardUnsentOutput(keepingPartlySent: Frame.endOfFrame(in:containing:))
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

/// The members of one room, sorted by name, with the welcome entries that list them and the
/// frames sent to the room in the current loop iteration.
final class Room {
    let name: String
    /// Sorted by name (bytewise), the order a welcome lists them in.
    private(set) var members: [RelayClient] = []
    /// The welcome entries (`name str8 | profile bytes16`) of `members`, in the same order: the
    /// profiles live only here, and a welcome copies them in one go.
    private var roster: [UInt8] = []

    /// Counts the batches; a member's cursor is valid only for the epoch it was set in.
    private(set) var epoch: UInt64 = 0
    /// This iteration's frames, in order, across one or more buffers.
    private(set) var buffers: [SharedBuffer] = []
    /// Where each buffer starts in the batch.
    private(set) var bufferStarts: [Int] = []
    /// Bytes in this iteration's batch.
    var batchLength = 0
    /// Whether the room is on the relay's list for the end of the iteration.
    var isDirty = false

    init(name: String) { self.name = name }

    func startBuffer(_ buffer: SharedBuffer) {
        bufferStarts.append(batchLength)
        buffers.append(buffer)
    }

    func endBatch() {
        buffers.removeAll(keepingCapacity: true)
        bufferStarts.removeAll(keepingCapacity: true)
        batchLength = 0
        epoch &+= 1
    }

    func add(_ client: RelayClient, profile: [UInt8]) {
        guard let name = client.name else { return }
        let index = insertionIndex(of: name)
        let offset = rosterOffset(before: index)
        var entry: [UInt8] = []
        entry.reserveCapacity(3 + name.utf8.count + profile.count)
        entry.append(UInt8(name.utf8.count))
        entry.append(contentsOf: name.utf8)
        entry.append(UInt8(profile.count >> 8))
        entry.append(UInt8(profile.count & 0xFF))
        entry.append(contentsOf: profile)
        roster.insert(contentsOf: entry, at: offset)
        members.insert(client, at: index)
    }

    func remove(_ client: RelayClient) {
        guard let name = client.name else { return }
        let index = insertionIndex(of: name)
        guard index < members.count, members[index] === client else { return }
        let offset = rosterOffset(before: index)
        roster.removeSubrange(offset..<(offset + Self.entryLength(of: client)))
        members.remove(at: index)
        if members.isEmpty { roster = [] }
    }

    /// How many members the first welcome entries list (at most `maximumMembers`) and their bytes.
    func rosterPrefix(maximumMembers: Int) -> (count: Int, bytes: Int) {
        guard members.count > maximumMembers else { return (members.count, roster.count) }
        return (maximumMembers, rosterOffset(before: maximumMembers))
    }

    /// The first `prefixBytes` bytes of the welcome entries.
    func roster(prefixBytes: Int) -> ArraySlice<UInt8> {
        roster[0..<prefixBytes]
    }

    private static func entryLength(of client: RelayClient) -> Int {
        3 + (client.name?.utf8.count ?? 0) + Int(client.profileLength)
    }

    private func rosterOffset(before index: Int) -> Int {
        var offset = 0
        for member in members[0..<index] { offset += Self.entryLength(of: member) }
        return offset
    }

    /// The first index whose name is not bytewise below `name`.
    private func insertionIndex(of name: String) -> Int {
        var low = 0
        var high = members.count
        while low < high {
            let middle = (low + high) / 2
            if members[middle].name!.utf8.lexicographicallyPrecedes(name.utf8) {
                low = middle + 1
            } else {
                high = middle
            }
        }
        return low
    }
}

/// One connection's state at the relay: its frame decoder and, once registered, its name, room
/// and place in the room's current batch.
final class RelayClient: ReadDestinationProvider {
    unowned let relay: Relay
    let connection: any Connection
    var decoder: FrameDecoder
    /// A large frame being read straight into a buffer of its own, at ``Relay/largeFrameHeadroom``;
    /// counted against the relay's budget for frames in progress while held.
    var largeFrame: SharedBuffer? {
        didSet {
            let delta = (largeFrame?.capacity ?? 0) - (oldValue?.capacity ?? 0)
            if delta != 0 { relay.frameBytesChanged(by: delta, isLarge: true, address: address) }
        }
    }
    /// The bytes the decoder reserves for a small frame in progress (its whole length), counted
    /// against the per-address budget for frames in progress.
    var smallFrameBytes = 0 {
        didSet {
            let delta = smallFrameBytes - oldValue
            if delta != 0 { relay.frameBytesChanged(by: delta, isLarge: false, address: address) }
        }
    }
    /// The length of the large frame that ended the last read, as a guess for the next one's
    /// buffer (0: the last frame was small, or more bytes followed it).
    var expectedLargeFrameLength = 0
    var name: String?
    var profileLength: UInt16 = 0
    var room: Room?
    /// Index in the relay's list of clients.
    var clientIndex = 0
    /// The batch epoch `batchCursor` belongs to.
    var batchEpoch: UInt64 = 0
    /// Bytes of the room's current batch already handed to this member's connection.
    var batchCursor = 0
    var isTooSlow = false
    var closeReason: String?
    /// The peer's address, as counted by the per-address limit.
    var address = ""
    var bucket = TokenBucket(capacity: 0)
    /// Payload bytes, for ``RelayLimits/byteRate``.
    var byteBucket = TokenBucket(capacity: 0)
    /// This connection's number at the relay, unique while the relay runs.
    var serial: UInt64 = 0
    /// The direct and multicast frames queued for this member and not yet sent, by sender.
    var privateBacklog = PrivateBacklog()
    /// Relay ticks since the frame in progress (if any) started, or since the last whole frame.
    var frameInProgressFor: Duration = .zero
    /// Time since this member last sent anything, in relay ticks.
    var silentFor: Duration = .zero
    var pingOutstanding = false
    /// The token of the last ping handled in the current read, answered once the read is handled:
    /// pings that arrive together get one pong, which confirms every frame before the last of them.
    var pongDue: UInt64?

    init(relay: Relay, connection: any Connection, maximumFrameLength: Int) {
        self.relay = relay
        self.connection = connection
        self.decoder = FrameDecoder(maximumLength: maximumFrameLength)
    }

    /// The whole length (prefix included) of the frame whose first bytes arrived and whose last
    /// have not: 0 while its length prefix is incomplete; nil when no frame is in progress.
    var frameInProgressLength: Int? {
        if let frame = largeFrame {
            let start = Relay.largeFrameHeadroom
            let received = frame.count - start
            guard received > 0 else { return nil }
            guard received >= Frame.headerSize else { return 0 }
            return Frame.headerSize
                + frame.withUnsafeBytes(in: start..<start + Frame.headerSize) { $0.reduce(0) { $0 << 8 | Int($1) } }
        }
        guard decoder.bufferedByteCount > 0 else { return nil }
        return decoder.incompleteFrameLength ?? 0
    }

    func connection(_ connection: any Connection, didRead bytes: UnsafeRawBufferPointer) {
        silentFor = .zero
        pingOutstanding = false
        var rest = bytes
        while rest.count > 0 && connection.isOpen {
            guard let frame = largeFrame else {
                feed(rest)
                break
            }
            // Only an in-memory connection gets here with a large frame under way: copy.
            let taken = min(rest.count, frame.remainingCapacity)
            guard taken > 0 else { break }
            frame.append(UnsafeRawBufferPointer(rebasing: rest[0..<taken]))
            rest = UnsafeRawBufferPointer(rebasing: rest[taken...])
            assembleLargeFrame()
        }
        answerPings()
    }

    /// Sends the pong for the pings of the read just handled, if any.
    private func answerPings() {
        guard let token = pongDue else { return }
        pongDue = nil
        if connection.isOpen { relay.sendPong(token, to: self) }
    }

    func readDestination(for connection: any Connection) -> UnsafeMutableRawBufferPointer? {
        // A closing connection's input is dropped (by the transport, which counts it).
        guard connection.isOpen else { return nil }
        if largeFrame == nil, expectedLargeFrameLength > 0,
            relay.frameBudgetExceeded(
                capacity: Relay.largeFrameCapacity(frameLength: expectedLargeFrameLength), isLarge: true, for: self)
                == nil
        {
            // The previous frame was large and ended a read: the next one probably is too.
            largeFrame = relay.takeLargeFrameBuffer(frameLength: expectedLargeFrameLength)
        }
        return largeFrame?.unusedSpace
    }

    func connection(_ connection: any Connection, didReadIntoDestination count: Int) {
        silentFor = .zero
        pingOutstanding = false
        largeFrame?.commit(count)
        guard connection.isOpen else { return }
        assembleLargeFrame()
        answerPings()
    }

    /// Splits bytes read into the loop's buffer into frames; an incomplete large frame left at the
    /// end moves to a buffer of its own, where the rest of it is read.
    private func feed(_ bytes: UnsafeRawBufferPointer) {
        expectedLargeFrameLength = 0
        do {
            try decoder.feed(bytes) { (type: UInt8, body: UnsafeRawBufferPointer) throws(WireError) -> Bool in
                guard connection.isOpen else { return false }
                try self.handle(type: type, body: body, storage: nil)
                return connection.isOpen
            }
        } catch {
            refuse(error)
            return
        }
        guard connection.isOpen else { return }
        let length = decoder.bufferedByteCount > 0 ? decoder.incompleteFrameLength ?? Frame.headerSize : 0
        guard length >= Relay.largeFrameThreshold else {
            // A small frame in progress stays in the decoder, which reserves its whole length.
            if length > smallFrameBytes,
                let budget = relay.frameBudgetExceeded(capacity: length, isLarge: false, for: self)
            {
                relay.refuseOverFrameBudget(self, frameLength: length, budget: budget)
                return
            }
            smallFrameBytes = length
            return
        }
        if let budget = relay.frameBudgetExceeded(
            capacity: Relay.largeFrameCapacity(frameLength: length), isLarge: true, for: self)
        {
            relay.refuseOverFrameBudget(self, frameLength: length, budget: budget)
            return
        }
        let frame = relay.takeLargeFrameBuffer(frameLength: length)
        decoder.takeIncompleteFrame { frame.append($0) }
        smallFrameBytes = 0
        largeFrame = frame
    }

    /// Handles the frame in ``largeFrame`` once it is complete, then what was read after it.
    private func assembleLargeFrame() {
        while let frame = largeFrame {
            let start = Relay.largeFrameHeadroom
            guard frame.count - start >= Frame.headerSize else { return }
            let length = frame.withUnsafeBytes(in: start..<start + Frame.headerSize) { prefix in
                prefix.reduce(0) { $0 << 8 | Int($1) }
            }
            guard length != 0, length <= decoder.maximumLength else {
                largeFrame = nil
                refuse(
                    length == 0 ? .emptyFrame : .frameTooLarge(length: UInt64(length), maximum: decoder.maximumLength))
                return
            }
            let end = start + Frame.headerSize + length
            if end > frame.capacity {
                // A guess that was too small: move what is in to a buffer of the right size.
                let capacity = Relay.largeFrameCapacity(frameLength: Frame.headerSize + length)
                if let budget = relay.frameBudgetExceeded(capacity: capacity, isLarge: true, for: self) {
                    largeFrame = nil
                    relay.refuseOverFrameBudget(self, frameLength: Frame.headerSize + length, budget: budget)
                    return
                }
                let bigger = relay.takeLargeFrameBuffer(frameLength: Frame.headerSize + length)
                frame.withUnsafeBytes(in: start..<frame.count) { bigger.append($0) }
                largeFrame = bigger
                continue
            }
            guard frame.count >= end else { return }
            largeFrame = nil
            let bodyStart = start + Frame.headerSize + 1
            let type = frame.storage.load(fromByteOffset: bodyStart - 1, as: UInt8.self)
            do {
                // `frame` holds the buffer for the whole call.
                let body = UnsafeRawBufferPointer(start: frame.storage + bodyStart, count: end - bodyStart)
                try handle(type: type, body: body, storage: (frame, bodyStart))
            } catch {
                refuse(error)
                return
            }
            relay.recycleLargeFrameBuffer(frame)
            guard connection.isOpen else { return }
            let isLarge = Frame.headerSize + length >= Relay.largeFrameThreshold
            if frame.count == end {
                expectedLargeFrameLength = isLarge ? Frame.headerSize + length : 0
                return
            }
            let nextCapacity = Relay.largeFrameCapacity(frameLength: Frame.headerSize + length)
            if isLarge && frame.count - end <= Relay.largeFrameSlack
                && relay.frameBudgetExceeded(capacity: nextCapacity, isLarge: true, for: self) == nil
            {
                // What follows a large frame (the start of the next one, most likely) goes to a new
                // buffer straight away; the rest of it is read there. More than that (a guess that
                // was too large) is split as usual, so that nothing is copied more than twice.
                let next = relay.takeLargeFrameBuffer(frameLength: Frame.headerSize + length)
                frame.withUnsafeBytes(in: end..<frame.count) { next.append($0) }
                largeFrame = next
            } else {
                frame.withUnsafeBytes(in: end..<frame.count) { feed($0) }
            }
        }
    }

    private func refuse(_ error: WireError) {
        let code: RelayErrorCode =
            switch error {
            case .frameTooLarge: .frameTooLarge
            default: .malformedFrame
            }
        closeReason = error.description
        relay.refuse(self, code, error.description)
    }

    /// Handles one frame; `storage` is the shared buffer the body lies in and the body's offset in
    /// it, when the frame was assembled in a buffer of its own (a direct or multicast payload is
    /// then forwarded from there).
    private func handle(
        type: UInt8, body: UnsafeRawBufferPointer, storage: (buffer: SharedBuffer, offset: Int)?
    ) throws(WireError) {
        frameInProgressFor = .zero
        if type == FrameType.publish {
            // The hot path: straight from the read buffer into the room's shared buffer.
            if name == nil {
                relay.refuse(self, .notRegistered, "send hello before anything else")
            } else if relay.allowFrame(from: self, bytes: body.count) {
                relay.publish(body, from: self)
            }
            return
        }
        if type == FrameType.direct || type == FrameType.multicast {
            // Parsed in place, so the payload (a file chunk, say) is copied once, into the deliver frame.
            var offset = 0
            var recipients: [String] = []
            if type == FrameType.direct {
                recipients.append(try Self.shortString(body, at: &offset, "direct recipient"))
            } else {
                guard body.count >= 1 else { throw .malformed("multicast count needs 1 bytes but only 0 remain") }
                offset = 1
                let count = Int(body[0])
                recipients.reserveCapacity(count)
                for _ in 0..<count {
                    recipients.append(try Self.shortString(body, at: &offset, "multicast recipient"))
                }
                if let repeated = Self.firstRepeatedName(in: recipients) {
                    throw .malformed("multicast names '\(Relay.printable(repeated))' more than once")
                }
            }
            let payload = ReceivedPayload(
                bytes: UnsafeRawBufferPointer(rebasing: body[offset...]),
                storage: storage.map { ($0.buffer, $0.offset + offset) })
            // At most 255 recipients of at most a frame each: no overflow, but checked all the same.
            let cost = payload.bytes.count.multipliedReportingOverflow(by: recipients.count)
            if name == nil {
                relay.refuse(self, .notRegistered, "send hello before anything else")
            } else if !relay.allowFrame(from: self, bytes: cost.overflow ? Int.max : cost.partialValue) {
                return
            } else if type == FrameType.direct {
                relay.direct(payload, to: recipients[0], from: self)
            } else {
                relay.multicast(payload, to: recipients, from: self)
            }
            return
        }
        if (type == FrameType.ping || type == FrameType.pong) && body.count == 8 {
            // Parsed in place: a flood of pings costs no allocation before it is cut off.
            let token = body.reduce(UInt64(0)) { $0 << 8 | UInt64($1) }
            guard relay.allowFrame(from: self) else { return }
            if type == FrameType.ping { pongDue = token }
            return
        }
        try handle(ClientFrame(Frame(type: type, body: ArraySlice(body))))
    }

    /// A name listed more than once, if any (a multicast names each recipient once).
    private static func firstRepeatedName(in names: [String]) -> String? {
        guard names.count > 1 else { return nil }
        if names.count == 2 { return names[0] == names[1] ? names[0] : nil }
        var seen = Set<String>(minimumCapacity: names.count)
        for name in names where !seen.insert(name).inserted { return name }
        return nil
    }

    /// Reads a `str8` at `offset` in place, moving `offset` past it; the same checks as ``ByteReader``.
    private static func shortString(
        _ body: UnsafeRawBufferPointer, at offset: inout Int, _ field: String
    ) throws(WireError) -> String {
        guard offset < body.count else { throw .malformed("\(field) needs 1 bytes but only 0 remain") }
        let count = Int(body[offset])
        let remaining = body.count - offset - 1
        guard remaining >= count else {
            throw .malformed("\(field) needs \(count) bytes but only \(remaining) remain")
        }
        let bytes = UnsafeRawBufferPointer(rebasing: body[(offset + 1)..<(offset + 1 + count)])
        guard let text = String(validating: bytes, as: UTF8.self) else {
            throw .malformed("\(field) is not valid UTF-8")
        }
        offset += 1 + count
        return text
    }

    private func handle(_ frame: ClientFrame) throws(WireError) {
        switch (frame, name) {
        case (.hello(let version, let name, let room, let profile), nil):
            relay.register(self, version: version, name: name, room: room, profile: profile)
        case (.hello, _?):
            relay.refuse(self, .alreadyRegistered, "already registered; hello may be sent only once")
        case (.publish(let payload), _?):
            payload.withUnsafeBytes { relay.publish($0, from: self) }
        case (.direct(let to, let payload), _?):
            payload.withUnsafeBytes { relay.direct(ReceivedPayload(bytes: $0, storage: nil), to: to, from: self) }
        case (.multicast(let recipients, let payload), _?):
            payload.withUnsafeBytes {
                relay.multicast(ReceivedPayload(bytes: $0, storage: nil), to: recipients, from: self)
            }
        case (.bye, _):
            relay.leave(self, reason: "said goodbye")
            connection.closeAfterFlushing(timeout: relay.configuration.closeTimeout)
        case (.ping(let token), _):
            if relay.allowFrame(from: self) { pongDue = token }
        case (.pong, _):
            _ = relay.allowFrame(from: self)
        case (.publish, nil), (.direct, nil), (.multicast, nil):
            relay.refuse(self, .notRegistered, "send hello before anything else")
        }
    }

    func connection(_ connection: any Connection, didCloseWith error: TransportError?) {
        relay.connectionClosed(self, reason: closeReason ?? error?.description ?? "disconnected")
    }
}

/// A direct or multicast payload as the relay received it: its bytes, valid during the call, and,
/// when the frame was read into a buffer of its own, that buffer and the payload's offset in it.
struct ReceivedPayload {
    var bytes: UnsafeRawBufferPointer
    var storage: (buffer: SharedBuffer, offset: Int)?
}

/// A frame for one or a few members: its own array, or a range of a shared buffer.
enum OutgoingFrame {
    case array([UInt8])
    case shared(SharedBuffer, Range<Int>)

    /// Its length on the wire, prefix included.
    var byteCount: Int {
        switch self {
        case .array(let bytes): bytes.count
        case .shared(_, let range): range.count
        }
    }
}

/// The direct and multicast frames queued for one member and not yet taken by the kernel, by
/// sender: what ``Relay`` checks a sender's share of the member's output cap against. Runs of
/// frames from one sender are kept as one entry (its bytes, and where in the member's output
/// stream its last frame ends), so a run costs one entry however many frames it has; entries
/// are forgotten once the stream has been sent past them. The publish fan-out never touches it.
struct PrivateBacklog {
    private var runs: [(sender: UInt64, end: Int, bytes: Int)] = []
    private var firstRun = 0
    private var bytesBySender: [UInt64: Int] = [:]

    /// Bytes of `sender`'s frames still queued (an upper bound while a run is partly sent).
    func bytes(from sender: UInt64) -> Int { bytesBySender[sender] ?? 0 }

    /// Counts a frame of `bytes` bytes from `sender` that ends at `end` in the output stream.
    mutating func add(_ bytes: Int, from sender: UInt64, endingAt end: Int) {
        if firstRun < runs.count && runs[runs.count - 1].sender == sender {
            runs[runs.count - 1].end = end
            runs[runs.count - 1].bytes += bytes
        } else {
            runs.append((sender, end, bytes))
        }
        bytesBySender[sender, default: 0] += bytes
    }

    /// Forgets what the connection has sent: everything before `sent` in its output stream.
    mutating func forget(upTo sent: Int) {
        while firstRun < runs.count && runs[firstRun].end <= sent {
            reduce(runs[firstRun].sender, by: runs[firstRun].bytes)
            firstRun += 1
        }
        if firstRun == runs.count {
            if !runs.isEmpty {
                runs = []
                bytesBySender = [:]
                firstRun = 0
            }
            return
        }
        // A run partly sent has at most the bytes before its end still queued.
        let unsent = runs[firstRun].end - sent
        if unsent < runs[firstRun].bytes {
            reduce(runs[firstRun].sender, by: runs[firstRun].bytes - unsent)
            runs[firstRun].bytes = unsent
        }
        if firstRun > 32 && firstRun * 2 > runs.count {
            runs.removeSubrange(0..<firstRun)
            firstRun = 0
        }
    }

    private mutating func reduce(_ sender: UInt64, by bytes: Int) {
        let left = bytesBySender[sender, default: 0] - bytes
        bytesBySender[sender] = left > 0 ? left : nil
    }
}
