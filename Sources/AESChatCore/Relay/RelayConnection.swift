/// One connection's state at the relay: first its encrypted link's handshake (``RelayLink`` reads the preamble and
/// message 1), then its frame reader and, once registered, its name, room
/// and place in the room's current batch, its token buckets and its timers. It reads and parses
/// the frames its peer sends and hands each to the ``Relay``; the relay's parts change its state
/// through its methods (``refuse(_:_:reason:)``, ``enter(_:as:profileLength:)``,
/// ``caughtUp(with:)``, …).
///
/// Owned by the relay's list of connections and by its transport connection (as its handler);
/// confined to the event loop's thread.
final class RelayConnection: ReadDestinationProvider {
    unowned let relay: Relay
    let connection: any Connection
    /// Splits the connection's bytes into frames; a large one is read straight into a buffer of its
    /// own, at ``Relay/largeFrameHeadroom``, counted against the relay's budgets for frames in
    /// progress while held (as is a small frame in progress, for the address).
    let reader: FrameReader
    /// The member's name, once registered.
    private(set) var name: String?
    /// The length of the profile the member registered with (its roster entry holds the profile).
    private(set) var profileLength: UInt16 = 0
    // The one-byte fields next to `profileLength`, in what would otherwise be padding.
    /// Set once the member's queued output passed the cap; it is dropped at the end of the iteration.
    private(set) var isTooSlow = false
    /// Whether the link is up, so that bytes are frames (the hot path's check).
    private(set) var isLinked = false
    /// Whether the link was made under the relay's previous key: the relay then sends `relay-keys` after `welcome`.
    private(set) var announcesRelayKeys = false
    var pingOutstanding = false
    /// The deadline for the link and the hello (``Relay``'s handshake timeout), until the member registers or closes.
    var handshakeTimer: TimerID?
    /// The member's room, while it is in one.
    private(set) var room: Room?
    /// Index in the relay's list of connections.
    private(set) var index: Int
    /// The batch epoch `batchCursor` belongs to.
    private(set) var batchEpoch: UInt64 = 0
    /// Bytes of the room's current batch already handed to this member's connection.
    private(set) var batchCursor = 0
    /// Why the connection is closing, for the log line when it has closed.
    private(set) var closeReason: String?
    /// Where its encrypted link's handshake is; ``RelayLink`` moves it on.
    var linkStage = LinkStage.preamble
    /// The preamble or message 1 received so far, while the handshake reads them.
    var handshakeBytes: [UInt8] = []
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
    /// The token of the last ping handled in the current read, answered once the read is handled:
    /// pings that arrive together get one pong, which confirms every frame before the last of them.
    var pongDue: UInt64?
    /// In a cluster: the ticket of the member's registration at this relay's incarnation.
    var clusterTicket: UInt64 = 0
    /// In a cluster: the engine's number for the last command this member's frames caused (its pong waits for it).
    var clusterSequence: UInt64 = 0
    /// In a cluster: the engine already took the member's name away (reclaimed elsewhere), so it sends no leave.
    var isReleasedByCluster = false
    /// Frames received between hello and welcome while a cluster bus registers the member, handled after the
    /// welcome; nil when frames are handled as they come.
    private var heldFrames: [(type: UInt8, body: [UInt8])]?
    private var heldBytes = 0
    private var heldLimit = 0

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
        self.reader = FrameReader(maximumLength: maximumFrameLength)
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

    /// The handshake completed and the connection is protected: from now on its bytes are frames, hello first. The
    /// handshake hash is kept until hello, whose name claim signs it.
    func becomeLinked(announcingRelayKeys: Bool, handshakeHash: [UInt8]) {
        linkStage = .awaitingHello(handshakeHash: handshakeHash)
        isLinked = true
        announcesRelayKeys = announcingRelayKeys
    }

    /// The handshake hash of this connection's link, until the member registers.
    var handshakeHash: [UInt8]? {
        if case .awaitingHello(let hash) = linkStage { return hash }
        return nil
    }

    /// Registers the member as `name` in `room`, owed nothing the room's batch holds so far.
    func enter(_ room: Room, as name: String, profileLength: UInt16) {
        linkStage = .linked
        self.name = name
        self.profileLength = profileLength
        self.room = room
        caughtUp(with: room)
    }

    /// Takes the member out of its room (its name stays, for the log).
    func leaveRoom() {
        room = nil
    }

    /// Holds every frame from now on, up to `limit` bytes, until ``releaseHeldFrames()``.
    func holdFrames(limit: Int) {
        heldFrames = []
        heldBytes = 0
        heldLimit = limit
    }

    /// Handles the frames held since ``holdFrames(limit:)``, in order, then those that come.
    func releaseHeldFrames() {
        guard let frames = heldFrames else { return }
        heldFrames = nil
        for frame in frames {
            guard connection.isOpen else { return }
            let failure = frame.body.withUnsafeBytes { body -> WireError? in
                do {
                    try handleFrame(type: frame.type, body: body, storage: nil)
                    return nil
                } catch let error as WireError {
                    return error
                } catch {
                    return .malformed("\(error)")
                }
            }
            if let failure {
                refuse(failure)
                return
            }
        }
        answerPings()
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
        reader.releaseFrameInProgress(for: self)
    }

    /// The whole length (prefix included) of the frame whose first bytes arrived and whose last
    /// have not: 0 while its length prefix is incomplete; nil when no frame is in progress.
    var frameInProgressLength: Int? { reader.frameInProgressLength }

    /// The capacity of the buffer the connection holds for a large frame in progress (0 when none).
    var largeFrameBytes: Int { reader.largeFrameCapacity }

    /// The bytes its decoder reserves for a small frame in progress.
    var smallFrameBytes: Int { reader.smallFrameBytes }

    func connection(_ connection: any Connection, didRead bytes: UnsafeRawBufferPointer) {
        guard isLinked else {
            relay.link.read(bytes, for: self)
            return
        }
        silentFor = .zero
        pingOutstanding = false
        reader.read(bytes, for: self)
        answerPings()
    }

    /// Sends the pong for the pings of the read just handled, if any.
    private func answerPings() {
        guard let token = pongDue else { return }
        pongDue = nil
        if connection.isOpen { relay.sendPong(token, to: self) }
    }

    func readDestination(for connection: any Connection) -> UnsafeMutableRawBufferPointer? {
        // A closing connection's input is dropped (by the transport, which counts it); the handshake reads into the
        // loop's buffer.
        guard isLinked else { return nil }
        return reader.readDestination(for: self)
    }

    func connection(_ connection: any Connection, didReadIntoDestination count: Int) {
        silentFor = .zero
        pingOutstanding = false
        reader.didReadIntoDestination(count, for: self)
        guard connection.isOpen else { return }
        answerPings()
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
    func handleFrame(
        type: UInt8, body: UnsafeRawBufferPointer, storage: (buffer: SharedBuffer, offset: Int)?
    ) throws(WireError) {
        frameInProgressFor = .zero
        if heldFrames != nil {
            heldBytes += body.count + 1
            guard heldBytes <= heldLimit else {
                relay.refuse(self, .notRegistered, "more than \(heldLimit) bytes of frames sent before the welcome")
                return
            }
            heldFrames!.append((type, Array(body)))
            return
        }
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
            var recipients: [String] = []
            let bytes: UnsafeRawBufferPointer
            if type == FrameType.direct {
                let direct = try ClientFrame.readDirect(body)
                recipients.append(direct.to)
                bytes = direct.payload
            } else {
                bytes = try ClientFrame.readMulticast(body, recipients: &recipients)
                if let repeated = Self.firstRepeatedName(in: recipients) {
                    throw .malformed("multicast names '\(Relay.printable(repeated))' more than once")
                }
            }
            let offset = body.count - bytes.count
            let payload = ReceivedPayload(bytes: bytes, storage: storage.map { ($0.buffer, $0.offset + offset) })
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
            let token = try type == FrameType.ping ? TokenFrame.read(ping: body) : TokenFrame.read(pong: body)
            guard relay.admission.allowFrame(from: self) else { return }
            if type == FrameType.ping { pongDue = token }
            return
        }
        // A newer client's optional frame: skipped, but it costs a frame of the rate like any other.
        if FrameType.isOptional(type) {
            _ = relay.admission.allowFrame(from: self)
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

    private func handle(_ frame: ClientFrame) throws(WireError) {
        switch (frame, name) {
        case (.hello(let version, let name, let room, let profile, let claim), nil):
            relay.register(self, version: version, name: name, room: room, profile: profile, claim: claim)
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

extension RelayConnection: FrameReaderDelegate {
    var isReadingFrames: Bool { connection.isOpen }

    func largeFrameBuffer(frameLength: Int, for request: LargeFrameRequest) -> SharedBuffer? {
        if let budget = relay.admission.frameBudgetExceeded(
            capacity: Relay.largeFrameCapacity(frameLength: frameLength), isLarge: true, for: self)
        {
            // A guess, or the start of the next frame, is read as usual instead; a frame is refused.
            if request == .frame {
                relay.admission.refuseOverFrameBudget(self, frameLength: frameLength, budget: budget)
            }
            return nil
        }
        return relay.fanOut.takeLargeFrameBuffer(frameLength: frameLength)
    }

    func recycleLargeFrameBuffer(_ buffer: SharedBuffer) {
        relay.fanOut.recycleLargeFrameBuffer(buffer)
    }

    func mayHoldSmallFrame(length: Int) -> Bool {
        guard let budget = relay.admission.frameBudgetExceeded(capacity: length, isLarge: false, for: self) else {
            return true
        }
        relay.admission.refuseOverFrameBudget(self, frameLength: length, budget: budget)
        return false
    }

    func frameBytesHeldChanged(by delta: Int, isLarge: Bool) {
        relay.admission.frameBytesChanged(by: delta, isLarge: isLarge, address: address)
    }

    func frameReaderFailed(_ error: WireError) {
        refuse(error)
    }
}
