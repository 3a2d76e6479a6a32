import AESChatNames

/// What a ``RelaySession`` hands to the room it serves: registration, members joining and
/// leaving, what members sent, and the relay's confirmations. Loop thread only.
protocol RelaySessionDelegate: AnyObject {
    /// Registration completed; `members` are the others already present (now the roster).
    func relaySession(_ session: RelaySession, didRegisterWith members: [MemberEntry])
    /// Whether a member the relay announces as joining is shown and added to the roster; a
    /// member refused outright (see ``MessageSecurity/refusalOfJoining(_:)``) is not.
    func relaySession(_ session: RelaySession, admits member: MemberEntry) -> Bool
    /// Whether an admitted member about to be shown as joining is back (``ClientEvent/back(name:)``): it left
    /// recently, with the same identity key.
    func relaySession(_ session: RelaySession, isReturning member: MemberEntry) -> Bool
    /// A member joined (after it was shown and added to the roster).
    func relaySession(_ session: RelaySession, memberJoined member: MemberEntry)
    /// A member left (after it was shown and removed from the roster).
    func relaySession(_ session: RelaySession, memberLeft name: String)
    /// A member's payload arrived (a small file chunk among them).
    func relaySession(
        _ session: RelaySession, delivered payload: ArraySlice<UInt8>, from sender: String, isDirect: Bool)
    /// A file chunk assembled in the session's frame buffer arrived; `payload` is valid and
    /// writable during the call only.
    func relaySession(
        _ session: RelaySession, deliveredChunkInPlace payload: UnsafeMutableRawBufferPointer, from sender: String)
    /// The relay handled everything sent before the ping with `token`.
    func relaySession(_ session: RelaySession, confirmedUpTo token: UInt64)
    /// The relay could not hand a direct frame to its recipient (error 9, which does not end the
    /// session): `message` is the relay's, naming the recipient. The room tells a reply to what the
    /// user typed from one to traffic the client sent on its own.
    func relaySession(_ session: RelaySession, couldNotDeliver message: String)
    /// The relay announced its keys, current first, over the link made under the key the client
    /// pinned (a planned rotation: the pinned key vouches for the new one).
    func relaySession(_ session: RelaySession, announcedKeys keys: [RelayPublicKey])
    /// The connection sent everything queued.
    func relaySessionDidDrainOutput(_ session: RelaySession)
    /// The session is ending with `outcome`: the connection is about to close.
    func relaySessionWillEnd(_ session: RelaySession, outcome: ClientOutcome)
}

/// The client's session with the relay over one connection: the hello and the validation of the
/// welcome, the roster the relay announces, pings whose pongs confirm what was sent before them,
/// the watchdog over a relay that stops answering, reading frames, and leaving.
///
/// Works on any ``Connection``; confined to the event loop's thread. What the relay sends for
/// the room goes to its ``RelaySessionDelegate`` (a ``ChatRoom``).
final class RelaySession: ReadDestinationProvider, OutputDrainObserver {
    /// Where the session stands.
    enum Phase {
        case registering
        case ready
        case leaving
        case finished
    }

    /// How long registration may take before the client gives up.
    static let registrationTimeout: Duration = .seconds(15)
    /// How long a relay may show no sign of life while pings wait for its answer before it
    /// counts as lost.
    static let unresponsiveRelayTimeout: Duration = .seconds(30)
    /// The most members (this client included) a room may have before the relay's announcements
    /// count as a protocol violation: a cap on the member table a hostile relay could grow.
    static let maximumMembers = 16_384
    /// The most keys a `relay-keys` frame may list: the current key and the previous one.
    static let maximumAnnouncedKeys = 2

    private let name: String
    /// The room joined.
    let room: String
    private let profile: [UInt8]
    private let connection: any Connection
    private let output: any ClientOutput
    private let loop: any EventLoop
    private let onFinish: (ClientOutcome) -> Void
    /// The room this session serves. Held until the session finishes: the connection holds the
    /// session (its handler), and through it the room, as long as frames may arrive.
    var delegate: (any RelaySessionDelegate)?
    /// Splits what the relay sends into frames; large ones (file chunks) are read straight into
    /// buffers of the client's own, and decrypted there.
    private let reader = FrameReader()
    /// Large-frame buffers the reader is done with, for the next large frames.
    private var spareFrameBuffers: [SharedBuffer] = []
    private var state = Phase.registering
    private var pendingOutcome: ClientOutcome = .finished
    private var registrationTimer: TimerID?
    /// The other members present, in the order the relay announced them.
    private(set) var roster = Roster()
    private var lastPingToken: UInt64 = 0
    /// The highest token the relay confirmed: pings after it are unanswered.
    private var lastConfirmedToken: UInt64 = 0
    private var confirmations = 0
    private var bytesRead = 0
    private var watchingForAnswers = false
    /// Whether the relay announced its keys on this link already.
    private var heardRelayKeys = false
    /// The name claim hello carries, signed for this connection's link; set before ``start()``.
    var claim: NameClaim?

    /// Creates a session; call ``start()`` to register.
    /// - Parameters:
    ///   - name: the member name to register.
    ///   - room: the room to join.
    ///   - profile: the security mode's opaque profile, sent in hello.
    ///   - connection: a connection to the relay.
    ///   - output: receives the session's own events (errors).
    ///   - loop: the loop driving `connection` (for timeouts).
    ///   - onFinish: called once when the session is over.
    init(
        name: String, room: String, profile: [UInt8], connection: any Connection, output: any ClientOutput,
        loop: any EventLoop, onFinish: @escaping (ClientOutcome) -> Void
    ) {
        self.name = name
        self.room = room
        self.profile = profile
        self.connection = connection
        self.output = output
        self.loop = loop
        self.onFinish = onFinish
    }

    /// Where the session stands.
    var phase: Phase { state }

    /// Bytes queued toward the relay.
    var pendingOutputByteCount: Int { connection.pendingOutputByteCount }

    /// Sends the registration and starts the registration timeout.
    func start() {
        connection.handler = self
        connection.write(
            ClientFrame.hello(version: relayProtocolVersion, name: name, room: room, profile: profile, claim: claim)
                .encoded())
        registrationTimer = loop.schedule(after: Self.registrationTimeout) { [weak self] in
            guard let self, self.state == .registering else { return }
            let reason = "the relay did not answer the registration within 15 seconds"
            self.output.emit(.connectionLost(reason: reason))
            self.finish(.relayLost(reason))
        }
    }

    /// Queues a complete frame toward the relay.
    func write(_ frame: [UInt8]) {
        connection.write(frame)
    }

    /// Queues a complete frame that is `range` of a buffer, keeping the buffer until it is sent.
    func write(_ buffer: SharedBuffer, range: Range<Int>) {
        connection.write(buffer, range: range)
    }

    // MARK: Confirmations

    /// Sends a ping; its pong confirms everything sent before it (see
    /// ``RelaySessionDelegate/relaySession(_:confirmedUpTo:)``).
    /// - Returns: the ping's token.
    func sendPing() -> UInt64 {
        lastPingToken += 1
        connection.write(ClientFrame.ping(token: lastPingToken).encoded())
        watchForAnswers()
        return lastPingToken
    }

    /// The token of the latest ping sent (0 before the first): a frame written now is confirmed by
    /// the pong to any later ping.
    var latestPingToken: UInt64 { lastPingToken }

    /// Pings the relay has not answered yet.
    private var unansweredPings: UInt64 { lastPingToken - lastConfirmedToken }

    /// The relay answered the ping with `token`: everything sent before it was handled.
    private func confirm(upTo token: UInt64) {
        guard token <= lastPingToken else { return }
        confirmations += 1
        lastConfirmedToken = max(lastConfirmedToken, token)
        delegate?.relaySession(self, confirmedUpTo: token)
    }

    /// While pings wait for an answer, a relay that shows no sign of life for
    /// ``unresponsiveRelayTimeout`` counts as lost, so that the session reconnects and sends the
    /// lines they confirm again rather than waiting forever (a relay that hangs keeps its
    /// connections open). Signs of life: a confirmation, any byte from the relay, or queued output
    /// going out.
    private func watchForAnswers() {
        guard !watchingForAnswers else { return }
        watchingForAnswers = true
        let confirmationsBefore = confirmations
        let bytesReadBefore = bytesRead
        let pendingBefore = connection.pendingOutputByteCount
        loop.schedule(after: Self.unresponsiveRelayTimeout) { [weak self] in
            guard let self else { return }
            self.watchingForAnswers = false
            guard self.state == .ready || self.state == .leaving, self.unansweredPings > 0 else { return }
            let pending = self.connection.pendingOutputByteCount
            let alive =
                self.confirmations != confirmationsBefore || self.bytesRead != bytesReadBefore
                || (pending > 0 && pending < pendingBefore)
            if alive {
                self.watchForAnswers()
                return
            }
            let seconds = Self.unresponsiveRelayTimeout.wholeSeconds
            let reason =
                "the relay has not answered for \(seconds) seconds; \(self.unansweredPings) line(s) unconfirmed"
            self.output.emit(.connectionLost(reason: reason))
            self.finish(.relayLost(reason))
        }
    }

    // MARK: Ending

    /// The user asked to quit: leave at once.
    func interrupt() {
        switch state {
        case .registering:
            finish(.interrupted)
        case .ready:
            leave(outcome: .interrupted)
        case .leaving:
            pendingOutcome = .interrupted
        case .finished:
            break
        }
    }

    /// Drops the connection at once, as if it had been lost, without an event (the user asked to reconnect):
    /// the session ends with ``ClientOutcome/relayLost(_:)`` and `reason`.
    func drop(reason: String) {
        guard state == .registering || state == .ready else { return }
        finish(.relayLost(reason))
    }

    /// Says goodbye; the relay handles everything sent before it, then closes, which ends the
    /// session. Gives up after a few seconds if the relay does not answer.
    func leave(outcome: ClientOutcome) {
        guard state == .ready else { return }
        state = .leaving
        pendingOutcome = outcome
        connection.write(ClientFrame.bye.encoded())
        loop.schedule(after: .seconds(5)) { [weak self] in
            guard let self, self.state == .leaving else { return }
            self.connection.close()
        }
    }

    private func finish(_ outcome: ClientOutcome) {
        guard state != .finished else { return }
        state = .finished
        if let registrationTimer { loop.cancel(registrationTimer) }
        delegate?.relaySessionWillEnd(self, outcome: outcome)
        connection.close()
        onFinish(outcome)
        delegate = nil
    }

    // MARK: ConnectionHandler

    public func connection(_ connection: any Connection, didRead bytes: UnsafeRawBufferPointer) {
        bytesRead &+= bytes.count
        reader.read(bytes, for: self)
    }

    public func readDestination(for connection: any Connection) -> UnsafeMutableRawBufferPointer? {
        reader.readDestination(for: self)
    }

    public func connection(_ connection: any Connection, didReadIntoDestination count: Int) {
        bytesRead &+= count
        reader.didReadIntoDestination(count, for: self)
    }

    private func protocolViolation(_ error: WireError) {
        output.emit(.error(message: "the relay sent invalid data: \(error.description)"))
        finish(.protocolViolation(error.description))
    }

    func connectionDidDrainOutput(_ connection: any Connection) {
        delegate?.relaySessionDidDrainOutput(self)
    }

    func connection(_ connection: any Connection, didCloseWith error: TransportError?) {
        switch state {
        case .leaving:
            finish(pendingOutcome)
        case .registering, .ready:
            let reason = error?.description ?? "the relay closed the connection"
            output.emit(.connectionLost(reason: reason))
            finish(.relayLost(reason))
        case .finished:
            break
        }
    }

    private func handle(_ frame: RelayFrame) throws(WireError) {
        switch frame {
        case .welcome(_, let name, let room, let members):
            guard state == .registering else { throw .malformed("second welcome") }
            guard name == self.name, room == self.room else {
                throw .malformed("welcome names '\(name)' in '\(room)', not the registration sent")
            }
            guard members.count < Self.maximumMembers else {
                throw .malformed(
                    "welcome lists \(members.count) members; at most \(Self.maximumMembers - 1) are accepted")
            }
            if let bad = members.first(where: { !Names.isValidMemberName($0.name) }) {
                throw .malformed(
                    "welcome lists an invalid name '\(TerminalText.escapeControls(String(bad.name.prefix(64))))'")
            }
            guard !members.contains(where: { $0.name == self.name }),
                Set(members.map(\.name)).count == members.count
            else { throw .malformed("welcome lists a member twice or lists this client") }
            state = .ready
            roster = Roster(members.map(\.name))
            if let registrationTimer { loop.cancel(registrationTimer) }
            delegate?.relaySession(self, didRegisterWith: members)
        case .joined(let member):
            guard state != .registering else { throw .malformed("joined before welcome") }
            guard Names.isValidMemberName(member.name) else {
                throw .malformed(
                    "joined for an invalid name '\(TerminalText.escapeControls(String(member.name.prefix(64))))'")
            }
            guard roster.count + 1 < Self.maximumMembers else {
                throw .malformed("more than \(Self.maximumMembers) members in the room")
            }
            guard delegate?.relaySession(self, admits: member) ?? true else { return }
            let isBack = delegate?.relaySession(self, isReturning: member) ?? false
            output.emit(isBack ? .back(name: member.name) : .joined(name: member.name))
            roster.insert(member.name)
            delegate?.relaySession(self, memberJoined: member)
        case .left(let name):
            guard state != .registering else { throw .malformed("left before welcome") }
            output.emit(.left(name: name))
            roster.remove(name)
            delegate?.relaySession(self, memberLeft: name)
        case .deliver(let from, let isDirect, let payload):
            guard state == .ready || state == .leaving else { throw .malformed("message before welcome") }
            delegate?.relaySession(self, delivered: payload, from: from, isDirect: isDirect)
        case .error(let code, let message):
            let known = RelayErrorCode(rawValue: code) ?? .unknown
            if state != .registering, !known.isFatal {
                // Not the user's error unless the room finds it answers what the user typed.
                delegate?.relaySession(self, couldNotDeliver: message)
                return
            }
            if known == .nameReclaimed {
                output.emit(.error(message: message))
                finish(.displaced(message))
            } else if state == .registering {
                output.emit(.error(message: message))
                finish(.refused(message))
            } else {
                // Fatal after registration (shutting down, too slow, …): the session reconnects.
                output.emit(.connectionLost(reason: message))
                finish(.relayLost(message))
            }
        case .ping(let token):
            connection.write(ClientFrame.pong(token: token).encoded())
        case .pong(let token):
            confirm(upTo: token)
        case .relayKeys(let rawKeys):
            guard state == .ready || state == .leaving else { throw .malformed("relay-keys before welcome") }
            // Only the first announcement of a link counts: the pinned key vouches for it once.
            guard !heardRelayKeys else { return }
            heardRelayKeys = true
            guard rawKeys.count <= Self.maximumAnnouncedKeys else {
                throw .malformed("relay-keys lists \(rawKeys.count) keys; a relay holds at most 2")
            }
            // The frame's decoder checked each key's length.
            let keys = rawKeys.compactMap { try? RelayPublicKey(bytes: $0) }
            if keys.contains(where: { $0.keyID == RelayPublicKey.keyRequestID }) {
                throw .malformed("relay-keys announces a key whose key id is 00000000, which no relay key may have")
            }
            delegate?.relaySession(self, announcedKeys: keys)
        }
    }
}

// MARK: FrameReaderDelegate

extension RelaySession: FrameReaderDelegate {
    /// Large-frame buffers kept for reuse, at most: one being read into while the last is let go.
    private static let maximumSpareFrameBuffers = 2
    /// The largest large-frame buffer kept for reuse; a larger one is freed after its frame.
    private static let largestSpareFrameBuffer = 4 * 1024 * 1024

    var isReadingFrames: Bool { state != .finished }

    /// A frame from the relay. A file chunk assembled in a buffer of its own goes to the room
    /// where it lies (the transfers authenticate and decrypt it there); anything else is decoded as
    /// usual.
    func handleFrame(
        type: UInt8, body: UnsafeRawBufferPointer, storage: (buffer: SharedBuffer, offset: Int)?
    ) throws(WireError) {
        if storage != nil, type == FrameType.deliver {
            let deliver = try RelayFrame.readDeliver(body)
            if EnvelopeKind(of: deliver.payload) == .fileChunk {
                guard state == .ready || state == .leaving else { throw .malformed("message before welcome") }
                // The buffer is the client's own: the chunk may be changed in place.
                delegate?.relaySession(
                    self, deliveredChunkInPlace: UnsafeMutableRawBufferPointer(mutating: deliver.payload),
                    from: deliver.from)
                return
            }
        }
        // Every type this version knows has the optional bit clear: one with it set is a newer relay's, to skip.
        if FrameType.isOptional(type) { return }
        try handle(RelayFrame(Frame(type: type, body: ArraySlice(body))))
    }

    func largeFrameBuffer(frameLength: Int, for request: LargeFrameRequest) -> SharedBuffer? {
        let capacity = frameLength + FrameReader.largeFrameSlack
        for index in spareFrameBuffers.indices
        where spareFrameBuffers[index].capacity >= capacity && isKnownUniquelyReferenced(&spareFrameBuffers[index]) {
            let buffer = spareFrameBuffers.remove(at: index)
            buffer.reset()
            return buffer
        }
        return SharedBuffer(capacity: capacity)
    }

    func recycleLargeFrameBuffer(_ buffer: SharedBuffer) {
        guard buffer.capacity <= Self.largestSpareFrameBuffer + FrameReader.largeFrameSlack else { return }
        if spareFrameBuffers.count >= Self.maximumSpareFrameBuffers { spareFrameBuffers.removeFirst() }
        spareFrameBuffers.append(buffer)
    }

    func frameReaderFailed(_ error: WireError) {
        protocolViolation(error)
    }
}
