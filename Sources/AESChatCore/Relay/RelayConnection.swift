/// One connection's state at the relay: its frame decoder and, once registered, its name, room
/// and place in the room's current batch, its token buckets and its timers. It reads and parses
/// the frames its peer sends and hands each to the ``Relay``; the relay's parts change its state
/// through its methods (``refuse(_:_:reason:)``, ``enter(_:as:profileLength:)``,
/// ``caughtUp(with:)``, …).
///
/// Owned by the relay's list of connections and by its transport connection (as its handler);
/// confined to the event loop's thread.
final class RelayConnection: ConnectionHandler {
    unowned let relay: Relay
    let connection: any Connection
    var decoder: FrameDecoder
    /// A large frame being read straight into a buffer of its own, at ``Relay/largeFrameHeadroom``;
    /// counted against the relay's budget for frames in progress while held.
    var largeFrame: SharedBuffer? {
        didSet {
            let delta = (largeFrame?.capacity ?? 0) - (oldValue?.capacity ?? 0)
            if delta != 0 { relay.admission.frameBytesChanged(by: delta, isLarge: true, address: address) }
        }
    }
    /// The bytes the decoder reserves for a small frame in progress (its whole length), counted
    /// against the per-address budget for frames in progress.
    var smallFrameBytes = 0 {
        didSet {
            let delta = smallFrameBytes - oldValue
            if delta != 0 { relay.admission.frameBytesChanged(by: delta, isLarge: false, address: address) }
        }
    }
    /// The length of the large frame that ended the last read, as a guess for the next one's
    /// buffer (0: the last frame was small, or more bytes followed it).
    var expectedLargeFrameLength = 0
    /// The member's name, once registered.
    private(set) var name: String?
    /// The length of the profile the member registered with (its roster entry holds the profile).
    private(set) var profileLength: UInt16 = 0
    /// The member's room, while it is in one.
    private(set) var room: Room?
    /// Index in the relay's list of connections.
    private(set) var index: Int
    /// The batch epoch `batchCursor` belongs to.
    private(set) var batchEpoch: UInt64 = 0
    /// Bytes of the room's current batch already handed to this member's connection.
    private(set) var batchCursor = 0
    /// Set once the member's queued output passed the cap; it is dropped at the end of the iteration.
    private(set) var isTooSlow = false
    /// Why the connection is closing, for the log line when it has closed.
    private(set) var closeReason: String?
    /// The peer's address, as counted by the per-address limit.
    let address: String
    /// Frames, for ``RelayLimits/messageRate``.
    private var bucket: TokenBucket
    /// Payload bytes, for ``RelayLimits/byteRate``.
    private var byteBucket: TokenBucket
    /// This connection's number at the relay, unique while the relay runs.
    let serial: UInt64
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

    /// Creates the state of a new connection.
    /// - Parameters:
    ///   - relay: the relay it belongs to.
    ///   - connection: the transport connection.
    ///   - maximumFrameLength: the largest frame accepted.
    ///   - address: the peer's address, as counted by the per-address limit.
    ///   - serial: its number at the relay.
    ///   - index: its index in the relay's list of connections.
    ///   - limits: the limits its token buckets are sized by.
    init(
        relay: Relay, connection: any Connection, maximumFrameLength: Int, address: String, serial: UInt64,
        index: Int, limits: RelayLimits
    ) {
        self.relay = relay
        self.connection = connection
        self.decoder = FrameDecoder(maximumLength: maximumFrameLength)
        self.address = address
        self.serial = serial
        self.index = index
        self.bucket = TokenBucket(capacity: max(1, limits.messageBurst))
        self.byteBucket = TokenBucket(capacity: max(1, limits.byteBurst))
    }

    // MARK: State kept for the relay's parts

    /// Refuses this connection: the relay sends it `code` and `message`, takes it out of its room
    /// and closes it. `reason`, when given, is what the log says once the connection has closed.
    func refuse(_ code: RelayErrorCode, _ message: String, reason: String? = nil) {
        if let reason { willClose(reason: reason) }
        relay.refuse(self, code, message)
    }

    /// Records why the connection is being closed, for the log line once it has closed.
    func willClose(reason: String) {
        closeReason = reason
    }

    /// Registers the member as `name` in `room`, owed nothing the room's batch holds so far.
    func enter(_ room: Room, as name: String, profileLength: UInt16) {
        self.name = name
        self.profileLength = profileLength
        self.room = room
        caughtUp(with: room)
    }

    /// Takes the member out of its room (its name stays, for the log).
    func leaveRoom() {
        room = nil
    }

    /// Marks the member as handed everything in `room`'s current batch.
    func caughtUp(with room: Room) {
        batchEpoch = room.epoch
        batchCursor = room.batchLength
    }

    /// Marks the member as over its output cap.
    func markTooSlow() {
        isTooSlow = true
    }

    /// Records that the connection now sits at `index` in the relay's list of connections.
    func move(to index: Int) {
        self.index = index
    }

    /// Refills the token buckets by `frames` frames and `bytes` payload bytes.
    func refillBuckets(frames: Double, bytes: Double) {
        bucket.refill(frames)
        byteBucket.refill(bytes)
    }

    /// Takes one frame token; false when none is left.
    func takeFrameToken() -> Bool { bucket.take() }

    /// Takes `count` payload-byte tokens; false (taking none) when fewer are left.
    func takeByteTokens(_ count: Int) -> Bool { byteBucket.take(count) }

    /// Gives back what the connection holds for a frame in progress (it has closed).
    func releaseFrameInProgress() {
        largeFrame = nil
        smallFrameBytes = 0
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
            relay.admission.frameBudgetExceeded(
                capacity: Relay.largeFrameCapacity(frameLength: expectedLargeFrameLength), isLarge: true, for: self)
                == nil
        {
            // The previous frame was large and ended a read: the next one probably is too.
            largeFrame = relay.fanOut.takeLargeFrameBuffer(frameLength: expectedLargeFrameLength)
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
                let budget = relay.admission.frameBudgetExceeded(capacity: length, isLarge: false, for: self)
            {
                relay.admission.refuseOverFrameBudget(self, frameLength: length, budget: budget)
                return
            }
            smallFrameBytes = length
            return
        }
        if let budget = relay.admission.frameBudgetExceeded(
            capacity: Relay.largeFrameCapacity(frameLength: length), isLarge: true, for: self)
        {
            relay.admission.refuseOverFrameBudget(self, frameLength: length, budget: budget)
            return
        }
        let frame = relay.fanOut.takeLargeFrameBuffer(frameLength: length)
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
                if let budget = relay.admission.frameBudgetExceeded(capacity: capacity, isLarge: true, for: self) {
                    largeFrame = nil
                    relay.admission.refuseOverFrameBudget(self, frameLength: Frame.headerSize + length, budget: budget)
                    return
                }
                let bigger = relay.fanOut.takeLargeFrameBuffer(frameLength: Frame.headerSize + length)
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
            relay.fanOut.recycleLargeFrameBuffer(frame)
            guard connection.isOpen else { return }
            let isLarge = Frame.headerSize + length >= Relay.largeFrameThreshold
            if frame.count == end {
                expectedLargeFrameLength = isLarge ? Frame.headerSize + length : 0
                return
            }
            let nextCapacity = Relay.largeFrameCapacity(frameLength: Frame.headerSize + length)
            if isLarge && frame.count - end <= Relay.largeFrameSlack
                && relay.admission.frameBudgetExceeded(capacity: nextCapacity, isLarge: true, for: self) == nil
            {
                // What follows a large frame (the start of the next one, most likely) goes to a new
                // buffer straight away; the rest of it is read there. More than that (a guess that
                // was too large) is split as usual, so that nothing is copied more than twice.
                let next = relay.fanOut.takeLargeFrameBuffer(frameLength: Frame.headerSize + length)
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
        refuse(code, error.description, reason: error.description)
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
            } else if relay.admission.allowFrame(from: self, bytes: body.count) {
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
            } else if !relay.admission.allowFrame(from: self, bytes: cost.overflow ? Int.max : cost.partialValue) {
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
            guard relay.admission.allowFrame(from: self) else { return }
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
            if relay.admission.allowFrame(from: self) { pongDue = token }
        case (.pong, _):
            _ = relay.admission.allowFrame(from: self)
        case (.publish, nil), (.direct, nil), (.multicast, nil):
            relay.refuse(self, .notRegistered, "send hello before anything else")
        }
    }

    func connection(_ connection: any Connection, didCloseWith error: TransportError?) {
        relay.connectionClosed(self, reason: closeReason ?? error?.description ?? "disconnected")
    }
}
