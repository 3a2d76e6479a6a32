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

/// The client side of a chat session: registers, turns each line of input into a message or a
/// command, hands messages to its ``MessageSecurity`` to seal, and shows what arrives.
///
/// Works on any ``Connection``; confined to the event loop's thread. Lines submitted before
/// registration completes are held and handled right after it, in order.
///
/// Every message line is followed by a ping; the relay answers a ping only after handling every
/// frame sent before it, so its pong confirms the line. Lines the relay has not confirmed when the
/// connection ends are handed back (``linesNotConfirmed``) for a ``ReconnectingSession`` to send
/// again; their message ids let members that did receive them drop the second copy.
public final class ChatClient: ConnectionHandler, SecurityOutbox, FileTransferHost {
    private enum State {
        case registering
        case ready
        case leaving
        case finished
    }

    /// The longest message text sent, in UTF-8 bytes; longer lines are refused with an error.
    public static let maximumMessageBytes = 8 * 1024 * 1024
    /// Queued output above which input is paused until the connection drains (above the file
    /// transfers' own high-water mark, so that chat input keeps flowing during a transfer).
    public static let outputHighWater = 16 * 1024 * 1024
    /// How long registration may take before the client gives up.
    public static let registrationTimeout: Duration = .seconds(15)
    /// Message lines sent but not yet confirmed by the relay, at most; later lines wait. Kept below
    /// ``RecentMessageIDs/idsPerSender`` so that members remember every id that may be repeated.
    public static let maximumUnconfirmedLines = 64
    /// Lines waiting to be sent beyond which input is paused.
    public static let waitingLinesHighWater = 1024
    /// How long a relay may show no sign of life while lines wait for its confirmation before it
    /// counts as lost.
    public static let unresponsiveRelayTimeout: Duration = .seconds(30)

    private let name: String
    private let room: String
    private let connection: any Connection
    private let output: any ClientOutput
    private let loop: any EventLoop
    private let security: any MessageSecurity
    /// Splits what the relay sends into frames; large ones (file chunks) are read straight into
    /// buffers of the client's own, and decrypted there.
    private let reader = FrameReader()
    /// Large-frame buffers the reader is done with, for the next large frames.
    private var spareFrameBuffers: [SharedBuffer] = []
    private var state = State.registering
    /// Lines not handled yet: before registration, or while too many are unconfirmed.
    private var waitingLines: [OutgoingLine] = []
    private var firstWaitingLine = 0
    /// Message lines handed to the connection, each with the token of the ping that follows it.
    private var unconfirmedLines: [(line: OutgoingLine, token: UInt64)] = []
    private var lastPingToken: UInt64 = 0
    private var messageFramesWritten = 0
    private let recentMessageIDs: RecentMessageIDs
    private var inputPaused = false
    private var confirmations = 0
    private var bytesRead = 0
    private var watchingForAnswers = false
    private var quitting = false
    private var inputEnded = false
    private var pendingOutcome: ClientOutcome = .finished
    private let onFinish: (ClientOutcome) -> Void
    private var registrationTimer: TimerID?
    private var members: [String] = []
    private var memberSet: Set<String> = []
    private var transfers: FileTransfers?

    /// Called with `true` when input should pause (too much queued) and `false` to resume.
    public var onBackpressure: ((Bool) -> Void)?
    /// Called once registration completes (after the `ready` event).
    public var onReady: (() -> Void)?

    /// Creates a client; call ``start()`` to register.
    /// - Parameters:
    ///   - name: the member name to register.
    ///   - room: the room to join.
    ///   - security: the end-to-end layer (room key or automatic keys).
    ///   - connection: a connection to the relay.
    ///   - output: receives events.
    ///   - loop: the loop driving `connection` (for timeouts).
    ///   - onFinish: called once when the session is over.
    ///   - inbox: where received files go; without one, files are neither sent nor received.
    ///   - maximumFileSize: larger offers are declined.
    ///   - transferStallTimeout: how long a receiver may hold a transfer back before it is dropped.
    ///   - recentMessageIDs: the message ids already shown; shared by the clients of one session so
    ///     that a line repeated after a reconnect is shown once.
    public init(
        name: String, room: String, security: any MessageSecurity, connection: any Connection,
        output: any ClientOutput, loop: any EventLoop, inbox: Inbox? = nil, maximumFileSize: UInt64? = nil,
        transferStallTimeout: Duration = FileTransfers.defaultStallTimeout,
        recentMessageIDs: RecentMessageIDs = RecentMessageIDs(), onFinish: @escaping (ClientOutcome) -> Void
    ) {
        self.recentMessageIDs = recentMessageIDs
        self.name = name
        self.room = room
        self.security = security
        self.connection = connection
        self.output = output
        self.loop = loop
        self.onFinish = onFinish
        if let inbox {
            transfers = FileTransfers(
                host: self, inbox: inbox, maximumFileSize: maximumFileSize, stallTimeout: transferStallTimeout)
        }
    }

    /// Creates a client in pre-shared-key mode.
    public convenience init(
        name: String, room: String, roomKey: RoomKey, connection: any Connection, output: any ClientOutput,
        loop: any EventLoop, onFinish: @escaping (ClientOutcome) -> Void
    ) {
        self.init(
            name: name, room: room, security: RoomKeySecurity(roomKey: roomKey, room: room, name: name),
            connection: connection, output: output, loop: loop, onFinish: onFinish)
    }

    /// Sends the registration and starts the registration timeout.
    public func start() {
        connection.handler = self
        connection.write(
            ClientFrame.hello(version: relayProtocolVersion, name: name, room: room, profile: security.profile)
                .encoded())
        registrationTimer = loop.schedule(after: Self.registrationTimeout) { [weak self] in
            guard let self, self.state == .registering else { return }
            let reason = "the relay did not answer the registration within 15 seconds"
            self.output.emit(.error(message: reason))
            self.finish(.relayLost(reason))
        }
    }

    /// Handles one line of input: a command (`/who`, `/msg bob hi`, …) or a message. Held until
    /// registration completes. Empty lines are skipped.
    public func submit(line: String) {
        submit(OutgoingLine(line))
    }

    /// Handles a line with a given message id (a line sent again after a reconnect keeps its id).
    public func submit(_ line: OutgoingLine) {
        guard !line.text.isEmpty, state == .registering || state == .ready, !quitting else { return }
        guard line.text.utf8.count <= Self.maximumMessageBytes else {
            emit(
                .error(
                    message:
                        "message of \(line.text.utf8.count) bytes not sent: the limit is \(Self.maximumMessageBytes) bytes"
                ))
            return
        }
        waitingLines.append(line)
        sendWaitingLines()
    }

    /// Lines the relay has not confirmed, oldest first: those sent without a pong yet, then those
    /// not sent. A session reads them when the connection is lost, to send them again.
    public var linesNotConfirmed: [OutgoingLine] {
        unconfirmedLines.map(\.line) + waitingLines[firstWaitingLine...]
    }

    /// Handles waiting lines while fewer than ``maximumUnconfirmedLines`` are unconfirmed.
    private func sendWaitingLines() {
        while state == .ready, firstWaitingLine < waitingLines.count,
            unconfirmedLines.count < Self.maximumUnconfirmedLines
        {
            let line = waitingLines[firstWaitingLine]
            firstWaitingLine += 1
            perform(line)
        }
        if firstWaitingLine == waitingLines.count {
            waitingLines.removeAll(keepingCapacity: waitingLines.count <= 64)
            firstWaitingLine = 0
        } else if firstWaitingLine > 1024 {
            waitingLines.removeFirst(firstWaitingLine)
            firstWaitingLine = 0
        }
        updateInputPause()
    }

    /// Whether this client asked for input to pause (too much output or too many lines waiting).
    public var isInputPaused: Bool { inputPaused }

    /// Pauses input while too much output or too many lines wait; resumes once both drained.
    private func updateInputPause() {
        let waiting = waitingLines.count - firstWaitingLine
        let paused =
            inputPaused
            ? connection.pendingOutputByteCount > 0 || waiting > Self.waitingLinesHighWater / 2
            : connection.pendingOutputByteCount > Self.outputHighWater || waiting > Self.waitingLinesHighWater
        guard paused != inputPaused else { return }
        inputPaused = paused
        onBackpressure?(paused)
    }

    /// Sends a message line, then a ping whose pong will confirm it. A line the security layer
    /// holds back (a changed key waiting for `/trust`) writes nothing and is not tracked.
    @discardableResult
    private func sendAwaitingConfirmation(_ line: OutgoingLine, _ send: () -> Void) -> Bool {
        let before = messageFramesWritten
        send()
        guard messageFramesWritten != before, state == .ready else { return false }
        lastPingToken += 1
        connection.write(ClientFrame.ping(token: lastPingToken).encoded())
        unconfirmedLines.append((line, lastPingToken))
        watchForAnswers()
        return true
    }

    /// The relay answered the ping with `token`: every line sent before it was handled.
    private func confirm(upTo token: UInt64) {
        guard token <= lastPingToken else { return }
        confirmations += 1
        let confirmed = unconfirmedLines.prefix { $0.token <= token }.count
        unconfirmedLines.removeFirst(confirmed)
        sendWaitingLines()
        leaveIfIdle()
    }

    /// Input has ended: leave once everything read has been handed to the relay and every file
    /// being sent is done.
    public func endOfInput() {
        inputEnded = true
        leaveIfIdle()
    }

    /// While lines wait for confirmation, a relay that shows no sign of life for
    /// ``unresponsiveRelayTimeout`` counts as lost, so that the session reconnects and sends them
    /// again rather than waiting forever (a relay that hangs keeps its connections open). Signs of
    /// life: a confirmation, any byte from the relay, or queued output going out.
    private func watchForAnswers() {
        guard !watchingForAnswers else { return }
        watchingForAnswers = true
        let confirmationsBefore = confirmations
        let bytesReadBefore = bytesRead
        let pendingBefore = connection.pendingOutputByteCount
        loop.schedule(after: Self.unresponsiveRelayTimeout) { [weak self] in
            guard let self else { return }
            self.watchingForAnswers = false
            guard self.state == .ready || self.state == .leaving, !self.unconfirmedLines.isEmpty else { return }
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
                "the relay has not answered for \(seconds) seconds; \(self.unconfirmedLines.count) line(s) unconfirmed"
            self.emit(.error(message: reason))
            self.finish(.relayLost(reason))
        }
    }

    private func leaveIfIdle() {
        guard inputEnded, state == .ready, firstWaitingLine == waitingLines.count, unconfirmedLines.isEmpty,
            quitting || !(transfers?.isBusy ?? false)
        else { return }
        leave(outcome: .finished)
    }

    /// The user asked to quit: leave at once.
    public func interrupt() {
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

    private func perform(_ line: OutgoingLine) {
        let id = line.messageID
        switch ChatCommand(parsing: line.text) {
        case .message(let text):
            sendAwaitingConfirmation(line) { security.sendToRoom(.identified(id: id, .text(text)), outbox: self) }
        case .action(let text):
            sendAwaitingConfirmation(line) { security.sendToRoom(.identified(id: id, .action(text)), outbox: self) }
        case .privateMessage(let recipient, let text):
            guard recipient != name else {
                emit(.error(message: "/msg needs another member's name, not your own"))
                return
            }
            let sent = sendAwaitingConfirmation(line) {
                security.sendPrivately(.identified(id: id, .text(text)), to: recipient, outbox: self)
            }
            if sent { emit(.info("to \(recipient), privately: \(text)")) }
        case .security(let command):
            security.handle(command, outbox: self)
        case .help:
            emit(.info(ChatCommand.helpText))
        case .quit:
            // Lines typed after /quit are dropped; those before it are confirmed first.
            inputEnded = true
            quitting = true
            waitingLines.removeAll()
            firstWaitingLine = 0
            leaveIfIdle()
        case .sendFile(let path, let recipient):
            if let transfers {
                transfers.send(path: path, to: recipient)
            } else {
                emit(.error(message: "file transfer needs an inbox"))
            }
        case .invalid(let message):
            emit(.error(message: message))
        }
    }

    /// Says goodbye; the relay handles everything sent before it, then closes, which ends the
    /// session. Gives up after a few seconds if the relay does not answer.
    private func leave(outcome: ClientOutcome) {
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
        transfers?.closeAll()
        connection.close()
        onFinish(outcome)
    }

    // MARK: SecurityOutbox

    public func publish(_ envelope: [UInt8]) {
        messageFramesWritten += 1
        connection.write(ClientFrame.publish(payload: envelope[...]).encoded())
    }

    public func direct(_ envelope: [UInt8], to name: String) {
        messageFramesWritten += 1
        connection.write(ClientFrame.direct(to: name, payload: envelope[...]).encoded())
    }

    public func emit(_ event: ClientEvent) {
        output.emit(event)
    }

    public func deliver(_ content: MessageContent, from sender: String, isPrivate: Bool) {
        // A copy its sender repeated after losing the connection before the relay confirmed it.
        if case .identified(let id, _) = content, !recentMessageIDs.recordIfNew(id, from: sender) { return }
        if let event = ClientEvent(content: content, from: sender, isPrivate: isPrivate) {
            emit(event)
        } else if let transfers {
            transfers.handleControl(content, from: sender, isPrivate: isPrivate)
            leaveIfIdle()
        }
    }

    // MARK: FileTransferHost

    public var ownName: String { name }
    public var presentMembers: [String] { members }

    /// The most members (this client included) a room may have before the relay's announcements
    /// count as a protocol violation: a cap on the member table a hostile relay could grow.
    public static let maximumMembers = 16_384
    public var outputBacklog: Int { connection.pendingOutputByteCount }

    public func sendControl(_ content: MessageContent, to recipient: String?) {
        guard state == .ready || state == .leaving else { return }
        if let recipient {
            security.sendPrivately(content, to: recipient, outbox: self)
        } else {
            security.sendToRoom(content, outbox: self)
        }
    }

    public func sendFrame(_ frame: [UInt8]) {
        connection.write(frame)
    }

    public func sendFrame(_ buffer: SharedBuffer, range: Range<Int>) {
        connection.write(buffer, range: range)
    }

    public func show(_ event: ClientEvent) {
        emit(event)
    }

    @discardableResult
    public func schedule(after delay: Duration, _ body: @escaping () -> Void) -> TimerID {
        loop.schedule(after: delay) { [weak self] in
            body()
            self?.leaveIfIdle()
        }
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
        emit(.error(message: "the relay sent invalid data: \(error.description)"))
        finish(.protocolViolation(error.description))
    }

    public func connectionDidDrainOutput(_ connection: any Connection) {
        transfers?.pump()
        updateInputPause()
    }

    public func connection(_ connection: any Connection, didCloseWith error: TransportError?) {
        switch state {
        case .leaving:
            finish(pendingOutcome)
        case .registering, .ready:
            let reason = error?.description ?? "the relay closed the connection"
            emit(.error(message: reason))
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
            self.members = members.map(\.name)
            memberSet = Set(self.members)
            if let registrationTimer { loop.cancel(registrationTimer) }
            emit(.ready(name: name, room: room, members: members.map(\.name), fingerprint: security.ownFingerprint))
            security.didRegister(members: members, outbox: self)
            onReady?()
            sendWaitingLines()
            leaveIfIdle()
        case .joined(let member):
            guard state != .registering else { throw .malformed("joined before welcome") }
            guard Names.isValidMemberName(member.name) else {
                throw .malformed(
                    "joined for an invalid name '\(TerminalText.escapeControls(String(member.name.prefix(64))))'")
            }
            guard members.count + 1 < Self.maximumMembers else {
                throw .malformed("more than \(Self.maximumMembers) members in the room")
            }
            guard !security.refusesJoining(member, outbox: self) else { return }
            emit(.joined(name: member.name))
            if memberSet.insert(member.name).inserted { members.append(member.name) }
            security.memberJoined(member, outbox: self)
        case .left(let name):
            guard state != .registering else { throw .malformed("left before welcome") }
            emit(.left(name: name))
            if memberSet.remove(name) != nil { members.removeAll { $0 == name } }
            security.memberLeft(name, outbox: self)
            transfers?.memberLeft(name)
            leaveIfIdle()
        case .deliver(let from, let isDirect, let payload):
            guard state == .ready || state == .leaving else { throw .malformed("message before welcome") }
            if EnvelopeKind(of: payload) == .fileChunk {
                transfers?.handleChunk(payload, from: from)
            } else {
                security.receive(payload, from: from, isDirect: isDirect, outbox: self)
            }
        case .error(let code, let message):
            let known = RelayErrorCode(rawValue: code) ?? .unknown
            emit(.error(message: message))
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

// MARK: FrameReaderDelegate

extension ChatClient: FrameReaderDelegate {
    /// Large-frame buffers kept for reuse, at most: one being read into while the last is let go.
    private static let maximumSpareFrameBuffers = 2
    /// The largest large-frame buffer kept for reuse; a larger one is freed after its frame.
    private static let largestSpareFrameBuffer = 4 * 1024 * 1024

    var isReadingFrames: Bool { state != .finished }

    /// A frame from the relay. A file chunk assembled in a buffer of its own is authenticated and
    /// decrypted where it lies; anything else is decoded as usual.
    func handleFrame(
        type: UInt8, body: UnsafeRawBufferPointer, storage: (buffer: SharedBuffer, offset: Int)?
    ) throws(WireError) {
        if storage != nil, type == FrameType.deliver {
            let deliver = try RelayFrame.readDeliver(body)
            if EnvelopeKind(of: deliver.payload) == .fileChunk {
                guard state == .ready || state == .leaving else { throw .malformed("message before welcome") }
                // The buffer is the client's own: the chunk may be changed in place.
                transfers?.handleChunk(
                    inPlace: UnsafeMutableRawBufferPointer(mutating: deliver.payload), from: deliver.from)
                return
            }
        }
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
