/// The relay's fan-out: each room's frames of one loop iteration (deliver, joined, left) are
/// encoded once into the room's shared buffers, and at the end of the iteration each member gets
/// one range of them queued on its connection, covering everything it is owed (its cursor). A
/// frame meant for one member (welcome, direct, pong, error) first hands that member what the room
/// owes it, so each member's stream stays in order. Members whose queued output passed the cap are
/// dropped at the end of the iteration. A room whose batch holds only presence frames (joined, left)
/// may keep it open across iterations for the configured presence window, so that a burst of joins
/// or leaves reaches each member as one record rather than one per iteration; any other frame for
/// the room ends the wait. Keeps the pools of fan-out and large-frame buffers, reused
/// once no connection holds them, so that publishing allocates nothing in steady state.
///
/// Owned by ``Relay``; confined to the event loop's thread.
final class FanOut {
    private let configuration: RelayConfiguration
    private let log: (String) -> Void
    private var dirtyRooms: [Room] = []
    /// Rooms whose presence-only batch waits for its window to end.
    private var lingeringRooms: [Room] = []
    private let schedule: (Duration, @escaping () -> Void) -> Void
    private var roomsBeingFlushed: [Room] = []
    private var tooSlow: [RelayConnection] = []
    private var spareBuffers: [SharedBuffer] = []
    private var spareLargeFrameBuffers: [SharedBuffer] = []

    /// Buffers kept for reuse between iterations.
    private static let maximumSpareBuffers = 32

    /// Creates the fan-out of a relay.
    /// - Parameters:
    ///   - configuration: the output cap, the size of the shared buffers and the close timeout.
    ///   - log: receives one line per member dropped as too slow.
    ///   - schedule: runs a closure on the loop after a delay (ends a room's presence window).
    init(
        configuration: RelayConfiguration, log: @escaping (String) -> Void,
        schedule: @escaping (Duration, @escaping () -> Void) -> Void
    ) {
        self.configuration = configuration
        self.log = log
        self.schedule = schedule
    }

    /// Gives back spare fan-out buffers beyond a couple, and every spare large-frame buffer.
    func releaseIdleBuffers() {
        if spareBuffers.count > 2 { spareBuffers.removeSubrange(2...) }
        spareLargeFrameBuffers.removeAll()
    }

    // MARK: Frames for one member

    /// Queues a frame for one member, after everything its room owes it.
    func sendPrivately(_ frame: [UInt8], to member: RelayConnection) {
        sendPrivately(.array(frame), to: member)
    }

    func sendPrivately(_ frame: OutgoingFrame, to member: RelayConnection) {
        guard member.connection.isOpen, !isOverCap(member) else { return }
        handOver(to: member)
        switch frame {
        case .array(let bytes): member.connection.write(bytes)
        case .shared(let buffer, let range): member.connection.write(buffer, range: range)
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
    func deliverPrivately(_ frame: OutgoingFrame, from sender: RelayConnection, to recipient: RelayConnection)
        -> Bool
    {
        let connection = recipient.connection
        guard connection.isOpen else { return true }
        recipient.privateBacklog.forget(upTo: connection.sentByteCount)
        let waiting = recipient.privateBacklog.bytes(from: sender.serial)
        let length = frame.byteCount
        if waiting > 0 && waiting + length > recipientBacklogShare {
            sender.refuse(
                .recipientBacklog,
                "too much of your output waiting for \(recipient.name ?? "a member"), who is not reading fast "
                    + "enough: \(waiting) bytes of your direct and multicast frames are queued for it, and one "
                    + "sender may fill at most \(recipientBacklogShare) bytes of a member's queue",
                reason: "too much waiting for \(recipient.name ?? "a member")")
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
    func deliverFrame(from: String, flags: UInt8, payload: ReceivedPayload) -> OutgoingFrame {
        let headerLength = RelayFrame.deliverHeaderLength(from: from)
        guard let (buffer, offset) = payload.storage, offset >= headerLength else {
            return .array(Self.encodeDeliver(from: from, flags: flags, payload: payload.bytes))
        }
        // The bytes in front of the payload (the frame's own header, already parsed, and the
        // headroom) are not queued anywhere: the deliver header replaces them.
        var header = ByteWriter(capacity: headerLength)
        RelayFrame.writeDeliverHeader(from: from, flags: flags, payloadCount: payload.bytes.count, into: &header)
        header.bytes.withUnsafeBytes {
            (buffer.storage + offset - headerLength).copyMemory(from: $0.baseAddress!, byteCount: headerLength)
        }
        return .shared(buffer, (offset - headerLength)..<(offset + payload.bytes.count))
    }

    /// A deliver frame for one or a few members, encoded straight from the received bytes (one copy).
    static func encodeDeliver(from: String, flags: UInt8, payload: UnsafeRawBufferPointer) -> [UInt8] {
        var writer = ByteWriter(capacity: RelayFrame.deliverHeaderLength(from: from) + payload.count)
        RelayFrame.writeDeliverHeader(from: from, flags: flags, payloadCount: payload.count, into: &writer)
        writer.write(bytes: payload)
        return writer.bytes
    }

    // MARK: Buffers for large frames

    /// An empty buffer for a large frame of `frameLength` bytes (prefix included): a spare one
    /// that no connection holds any more, or a new one. Its count starts past the headroom.
    func takeLargeFrameBuffer(frameLength: Int) -> SharedBuffer {
        let capacity = Relay.largeFrameCapacity(frameLength: frameLength)
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
        buffer.commit(Relay.largeFrameHeadroom)
        return buffer
    }

    /// Keeps a large-frame buffer for reuse once the connections it was queued on have sent it
    /// (one of at most 1 MiB: a file chunk; a larger one is freed once sent).
    func recycleLargeFrameBuffer(_ buffer: SharedBuffer) {
        guard buffer.capacity <= Relay.largestSpareLargeFrameBuffer else { return }
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

    // MARK: Room batches

    /// Appends one frame of `length` bytes (prefix included) to the room's batch of this iteration;
    /// `write` writes the whole frame with a Wire encoder, straight into the batch. A `presence` frame
    /// (joined, left) that opens a batch lets it wait for the presence window; any other frame ends
    /// the wait, so the batch goes out at the end of this iteration.
    func appendToBatch(
        of room: Room, length total: Int, presence: Bool = false, _ write: (inout SharedBuffer) -> Void
    ) {
        guard !room.members.isEmpty else { return }
        if room.buffers.last.map({ $0.remainingCapacity < total }) ?? true {
            room.startBuffer(takeBuffer(minimumCapacity: total))
        }
        var buffer = room.buffers[room.buffers.count - 1]
        let start = buffer.count
        write(&buffer)
        assert(buffer.count - start == total, "a frame written to a batch is not the length announced")
        room.batchLength += total
        if !room.isDirty {
            room.isDirty = true
            dirtyRooms.append(room)
            if presence && configuration.presenceWindow > .zero { startLingering(room) }
        } else if !presence {
            room.isLingering = false
        }
    }

    /// Lets the room's presence-only batch wait until the window ends (or another frame comes).
    private func startLingering(_ room: Room) {
        room.isLingering = true
        let epoch = room.epoch
        schedule(configuration.presenceWindow(members: room.members.count)) { [room] in
            // The loop's iteration end hands the batch over; a stale timer finds a later batch.
            if room.epoch == epoch { room.isLingering = false }
        }
    }

    /// Queues on the member's connection every byte of its room's batch it has not been given yet.
    func handOver(to member: RelayConnection) {
        guard let room = member.room, room.batchLength > 0 else { return }
        var cursor = member.batchEpoch == room.epoch ? member.batchCursor : 0
        guard cursor < room.batchLength else { return }
        member.caughtUp(with: room)
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
    func isOverCap(_ member: RelayConnection) -> Bool {
        if member.isTooSlow { return true }
        guard member.connection.pendingOutputByteCount > configuration.maximumPendingOutput else { return false }
        member.markTooSlow()
        tooSlow.append(member)
        return true
    }

    /// End of a loop iteration: every member of every room that got frames is handed its range,
    /// members over the cap are dropped (`leave` takes each out of its room, telling the others,
    /// whose batches are then handed over too), and the batches start afresh.
    func endIteration(leave: (RelayConnection, String) -> Void) {
        if !lingeringRooms.isEmpty {
            dirtyRooms.append(contentsOf: lingeringRooms)
            lingeringRooms.removeAll(keepingCapacity: true)
        }
        while !dirtyRooms.isEmpty || !tooSlow.isEmpty {
            swap(&dirtyRooms, &roomsBeingFlushed)
            for room in roomsBeingFlushed {
                if room.isLingering {
                    lingeringRooms.append(room)
                    continue
                }
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
            for member in slow { drop(member, leave: leave) }
        }
    }

    /// Disconnects a member whose queued output passed the cap: drops what it has not started to
    /// receive, tells it why, and tells the room it left.
    private func drop(_ member: RelayConnection, leave: (RelayConnection, String) -> Void) {
        let reason =
            "too slow: more than \(configuration.maximumPendingOutput) bytes of output waiting for it; disconnected"
        member.willClose(reason: reason)
        log(
            "dropping \(member.name ?? "unregistered client") from \(member.connection.peerDescription): \(reason)")
        member.connection.discardUnsentOutput(keepingPartlySent: Frame.endOfFrame(in:containing:))
        member.connection.write(RelayFrame.error(code: RelayErrorCode.tooSlow.rawValue, message: reason).encoded())
        leave(member, "too slow")
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
}
