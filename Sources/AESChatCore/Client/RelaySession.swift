import AESChatCLI

/// How a client session ended.
public enum ClientOutcome: Equatable, Sendable {
    /// Input ended and everything read was handed to the relay.
    case finished
    /// The user interrupted (Ctrl-C, SIGTERM).
    case interrupted
    /// The relay refused registration (name taken, invalid name, …).
    case refused(String)
    /// The relay went away or shut down.
    case relayLost(String)
    /// The relay sent bytes that break the protocol.
    case protocolViolation(String)
}

/// What a ``RelaySession`` hands to the room it serves: registration, members joining and
/// leaving, what members sent, and the relay's confirmations. Loop thread only.
protocol RelaySessionDelegate: AnyObject {
    /// Registration completed; `members` are the others already present (now the roster).
    func relaySession(_ session: RelaySession, didRegisterWith members: [MemberEntry])
    /// Whether a member the relay announces as joining is shown and added to the roster; a
    /// member refused outright (see ``MessageSecurity/refusalOfJoining(_:)``) is not.
    func relaySession(_ session: RelaySession, admits member: MemberEntry) -> Bool
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
    /// The connection sent everything queued.
    func relaySessionDidDrainOutput(_ session: RelaySession)
    /// The session is ending: the connection is about to close.
    func relaySessionWillEnd(_ session: RelaySession)
}

/// The client's session with the relay over one connection: the hello and the validation of the
/// welcome, the roster the relay announces, pings whose pongs confirm what was sent before them,
/// the watchdog over a relay that stops answering, reading frames, and leaving.
///
/// Works on any ``Connection``; confined to the event loop's thread. What the relay sends for
/// the room goes to its ``RelaySessionDelegate`` (a ``ChatRoom``).
final class RelaySession: ConnectionHandler {
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
    private var decoder = FrameDecoder()
    /// A large frame (a file chunk) read straight into storage of the client's own.
    private var largeFrame = FrameBuffer()
    /// The length of the large frame that ended the last read, as a guess for the next one's
    /// storage (0: the last frame was small, or more bytes followed it).
    private var expectedLargeFrameLength = 0
    /// Frames at least this long (prefix included) are read into the frame buffer.
    static let largeFrameThreshold = 64 * 1024
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
            ClientFrame.hello(version: relayProtocolVersion, name: name, room: room, profile: profile).encoded())
        registrationTimer = loop.schedule(after: Self.registrationTimeout) { [weak self] in
            guard let self, self.state == .registering else { return }
            let reason = "the relay did not answer the registration within 15 seconds"
            self.output.emit(.error(message: reason))
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
            let seconds = Self.unresponsiveRelayTimeout.components.seconds
            let reason =
                "the relay has not answered for \(seconds) seconds; \(self.unansweredPings) line(s) unconfirmed"
            self.output.emit(.error(message: reason))
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
        delegate?.relaySessionWillEnd(self)
        connection.close()
        onFinish(outcome)
        delegate = nil
    }

    // MARK: ConnectionHandler

    public func connection(_ connection: any Connection, didRead bytes: UnsafeRawBufferPointer) {
        bytesRead &+= bytes.count
        var rest = bytes
        while rest.count > 0 && state != .finished {
            guard largeFrame.isActive else {
                feed(rest)
                return
            }
            // Only an in-memory connection gets here with a large frame under way: copy.
            let space = largeFrame.unusedSpace
            let taken = min(rest.count, space.count)
            guard taken > 0 else { return }
            space.baseAddress!.copyMemory(from: rest.baseAddress!, byteCount: taken)
            rest = UnsafeRawBufferPointer(rebasing: rest[taken...])
            largeFrame.count += taken
            assembleLargeFrame()
        }
    }

    public func readDestination(for connection: any Connection) -> UnsafeMutableRawBufferPointer? {
        if !largeFrame.isActive, expectedLargeFrameLength > 0 {
            // The previous frame was large and ended a read: the next one probably is too.
            largeFrame.start(frameLength: expectedLargeFrameLength)
        }
        return largeFrame.isActive ? largeFrame.unusedSpace : nil
    }

    public func connection(_ connection: any Connection, didReadIntoDestination count: Int) {
        bytesRead &+= count
        largeFrame.count += count
        assembleLargeFrame()
    }

    /// Splits bytes read into the loop's buffer into frames; an incomplete large frame left at the
    /// end moves to the client's own frame buffer, where the rest of it is read.
    private func feed(_ bytes: UnsafeRawBufferPointer) {
        expectedLargeFrameLength = 0
        do {
            try decoder.feed(bytes) { (type: UInt8, body: UnsafeRawBufferPointer) throws(WireError) -> Bool in
                try self.handle(RelayFrame(Frame(type: type, body: ArraySlice(body))))
                return self.state != .finished
            }
        } catch {
            protocolViolation(error)
            return
        }
        guard state != .finished, let length = decoder.incompleteFrameLength, length >= Self.largeFrameThreshold
        else { return }
        largeFrame.start(frameLength: length)
        decoder.takeIncompleteFrame { largeFrame.append($0) }
    }

    /// Handles the frame in the frame buffer once it is complete, then what was read after it.
    private func assembleLargeFrame() {
        while largeFrame.isActive && state != .finished {
            guard let length = largeFrame.frameLength else { return }
            guard length > Frame.headerSize, length - Frame.headerSize <= decoder.maximumLength else {
                largeFrame.stop()
                protocolViolation(
                    length == Frame.headerSize
                        ? .emptyFrame
                        : .frameTooLarge(length: UInt64(length - Frame.headerSize), maximum: decoder.maximumLength))
                return
            }
            largeFrame.reserve(frameLength: length)
            guard largeFrame.count >= length else { return }
            let frame = largeFrame.bytes
            do {
                try handleLarge(
                    type: frame[Frame.headerSize],
                    body: UnsafeMutableRawBufferPointer(rebasing: frame[(Frame.headerSize + 1)..<length]))
            } catch {
                largeFrame.stop()
                protocolViolation(error)
                return
            }
            guard state != .finished else { return }
            let isLarge = length >= Self.largeFrameThreshold
            if largeFrame.count == length {
                largeFrame.stop()
                expectedLargeFrameLength = isLarge ? length : 0
            } else if isLarge && largeFrame.count - length <= FrameBuffer.slack {
                // What follows a large frame (the start of the next one, most likely) moves to the
                // front; the rest of it is read after it. More than that (a guess that was too
                // large) is split as usual, so that nothing is moved more than twice.
                largeFrame.dropFrame(length: length)
            } else {
                let rest = Array(UnsafeRawBufferPointer(rebasing: frame[length..<largeFrame.count]))
                largeFrame.stop()
                rest.withUnsafeBytes { feed($0) }
            }
        }
    }

    /// A frame assembled in the frame buffer: a file chunk is handled where it lies (decrypted in
    /// place), anything else as usual.
    private func handleLarge(type: UInt8, body: UnsafeMutableRawBufferPointer) throws(WireError) {
        guard type == FrameType.deliver else {
            try handle(RelayFrame(Frame(type: type, body: ArraySlice(UnsafeRawBufferPointer(body)))))
            return
        }
        // The same checks as RelayFrame's, in place.
        guard body.count >= 1, body.count >= 2 + Int(body[0]) else {
            try handle(RelayFrame(Frame(type: type, body: ArraySlice(UnsafeRawBufferPointer(body)))))
            return
        }
        let nameLength = Int(body[0])
        let flags = body[1 + nameLength]
        let payload = UnsafeMutableRawBufferPointer(rebasing: body[(2 + nameLength)...])
        guard flags <= 2, payload.first == FileChunk.kind,
            let from = String(validating: UnsafeRawBufferPointer(rebasing: body[1..<1 + nameLength]), as: UTF8.self)
        else {
            try handle(RelayFrame(Frame(type: type, body: ArraySlice(UnsafeRawBufferPointer(body)))))
            return
        }
        guard state == .ready || state == .leaving else { throw .malformed("message before welcome") }
        delegate?.relaySession(self, deliveredChunkInPlace: payload, from: from)
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
            output.emit(.error(message: reason))
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
            output.emit(.joined(name: member.name))
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
            output.emit(.error(message: message))
            if state == .registering {
                finish(.refused(message))
            } else if known.isFatal {
                finish(.relayLost(message))
            }
        case .ping(let token):
            connection.write(ClientFrame.pong(token: token).encoded())
        case .pong(let token):
            confirm(upTo: token)
        }
    }
}

/// Storage for one large frame at a time, reused from frame to frame: the frame starts at offset
/// 0, and a little room after it takes the start of the next. Freed when the session ends, and
/// after a frame over 4 MiB. Loop thread only.
struct FrameBuffer: ~Copyable {
    /// Room after a frame for the start of the next one, read together with its end.
    static let slack = 4 * 1024
    private static let largestKept = 4 * 1024 * 1024

    private var storage = UnsafeMutableRawBufferPointer(start: nil, count: 0)
    /// Bytes in the buffer.
    var count = 0
    /// Whether a frame is being assembled.
    private(set) var isActive = false

    deinit { storage.deallocate() }

    /// The bytes held, valid until the next change.
    var bytes: UnsafeMutableRawBufferPointer { UnsafeMutableRawBufferPointer(rebasing: storage[0..<count]) }

    /// Where the next read goes.
    var unusedSpace: UnsafeMutableRawBufferPointer { UnsafeMutableRawBufferPointer(rebasing: storage[count...]) }

    /// The frame's whole length (prefix included) once its prefix is in.
    var frameLength: Int? {
        guard count >= Frame.headerSize else { return nil }
        return Frame.headerSize + storage[0..<Frame.headerSize].reduce(0) { $0 << 8 | Int($1) }
    }

    /// Starts a frame expected to be `frameLength` bytes long.
    mutating func start(frameLength: Int) {
        count = 0
        isActive = true
        reserve(frameLength: frameLength)
    }

    /// Makes room for the whole frame and the slack after it, keeping what is in.
    mutating func reserve(frameLength: Int) {
        let needed = frameLength + Self.slack
        guard storage.count < needed else { return }
        let bigger = UnsafeMutableRawBufferPointer.allocate(byteCount: needed, alignment: 16)
        if count > 0 { bigger.baseAddress!.copyMemory(from: storage.baseAddress!, byteCount: count) }
        storage.deallocate()
        storage = bigger
    }

    /// Appends bytes.
    /// - Precondition: they fit.
    mutating func append(_ bytes: UnsafeRawBufferPointer) {
        precondition(bytes.count <= storage.count - count, "frame buffer overflow")
        if bytes.count > 0 {
            (storage.baseAddress! + count).copyMemory(from: bytes.baseAddress!, byteCount: bytes.count)
        }
        count += bytes.count
    }

    /// Drops the first `length` bytes (a frame handled), moving what follows to the front.
    mutating func dropFrame(length: Int) {
        let rest = count - length
        if rest > 0 { storage.baseAddress!.copyMemory(from: storage.baseAddress! + length, byteCount: rest) }
        count = rest
    }

    /// Ends the frame; storage that grew large for one frame is given back.
    mutating func stop() {
        isActive = false
        count = 0
        if storage.count > Self.largestKept {
            storage.deallocate()
            storage = UnsafeMutableRawBufferPointer(start: nil, count: 0)
        }
    }
}
