/// The room side of a chat session: turns each line of input into a message or a command, hands
/// messages to its ``MessageSecurity`` to seal, keeps the lines the relay has not confirmed, runs
/// the file transfers, and shows what arrives. Its ``RelaySession`` registers, keeps the roster
/// and reads what the relay sends; the security layer and the transfers return what to do, which
/// the room carries out.
///
/// Works on any ``Connection``; confined to the event loop's thread. Lines submitted before
/// registration completes are held and handled right after it, in order.
///
/// Every message line is followed by a ping; the relay answers a ping only after handling every
/// frame sent before it, so its pong confirms the line. Lines the relay has not confirmed when the
/// connection ends are handed back (``linesNotConfirmed``) for a ``ReconnectingSession`` to send
/// again; their message ids let members that did receive them drop the second copy.
///
/// The relay answers a direct frame to a member who is not there (anymore) with error 9, naming
/// the member. Such an answer is the user's error only when it answers a direct frame sent for a
/// command the user typed (`/msg`, `/send … NAME`): those are noted with their recipient and
/// followed by a ping, and the relay answers every frame before the pong to a later ping, so the
/// note ends with that pong. Any other error 9 answers traffic the client sent on its own (a key
/// for a member who joined and left at once, file control for a receiver who left): it is not
/// shown when the member has left, and is an `info` note otherwise.
public final class ChatRoom {
    /// The longest message text sent, in UTF-8 bytes; longer lines are refused with an error.
    public static let maximumMessageBytes = 8 * 1024 * 1024
    /// Queued output above which input is paused until the connection drains (above the file
    /// transfers' own high-water mark, so that chat input keeps flowing during a transfer).
    public static let outputHighWater = 16 * 1024 * 1024
    /// Message lines sent but not yet confirmed by the relay, at most; later lines wait. Kept below
    /// ``RecentMessageIDs/idsPerSender`` so that members remember every id that may be repeated.
    public static let maximumUnconfirmedLines = 64
    /// Lines waiting to be sent beyond which input is paused.
    public static let waitingLinesHighWater = 1024
    /// Direct frames of typed commands awaiting the relay's confirmation, at most (each command is
    /// followed by a ping, so they are pruned as pongs arrive; the cap only bounds a silent relay).
    static let maximumTypedDirects = 4096

    private let name: String
    private let session: RelaySession
    private let output: any ClientOutput
    private let loop: any EventLoop
    private let security: any MessageSecurity
    /// Lines not handled yet: before registration, or while too many are unconfirmed.
    private var waitingLines: [OutgoingLine] = []
    private var firstWaitingLine = 0
    /// Message lines handed to the connection, each with the token of the ping that follows it.
    private var unconfirmedLines: [(line: OutgoingLine, token: UInt64)] = []
    /// Contents of unknown kinds received, by "kind sender".
    private var unsupportedCounts: [String: Int] = [:]
    static let maximumUnsupportedKinds = 1024
    private let recentMessageIDs: RecentMessageIDs
    private var inputPaused = false
    private var quitting = false
    private var inputEnded = false
    private var transfers: FileTransfers?
    /// Recipients of direct frames sent for a command the user typed, each with the latest ping
    /// token at the time: a pong to a later ping means the relay handled it.
    private var typedDirects: [(recipient: String, afterToken: UInt64)] = []
    /// Whether the line being performed is a command the user typed whose direct frames are noted.
    private var performingTypedCommand = false
    /// Whether ``sendWaitingLines()`` is running (lines released meanwhile join its queue instead of starting another).
    private var sendingWaitingLines = false
    /// Where the next released held line goes in ``waitingLines``: after those released by the same actions.
    private var releaseInsertionPoint: Int?
    /// The lines the security layer held when the connection was lost, for ``ReconnectingSession`` to hand to the
    /// next connection (when ``carriesHeldLines``).
    public private(set) var heldLinesAtEnd = HeldLines()
    /// Whether a ``ReconnectingSession`` carries held lines over to the next connection: a lost connection then
    /// keeps them (``heldLinesAtEnd``) instead of naming them as never sent.
    public var carriesHeldLines = false
    /// Called when the user changes `/hold`, for the next connections to keep the choice.
    public var onHoldChanged: ((Bool) -> Void)?
    /// Who was here lately, to tell a member coming back from a new one; a ``ReconnectingSession`` gives every client
    /// of a session the same one, so that members lost with a connection are back on the next.
    public var departures = RecentDepartures()

    /// Called with `true` when input should pause (too much queued) and `false` to resume.
    public var onBackpressure: ((Bool) -> Void)?
    /// Called once registration completes (after the `ready` event).
    public var onReady: (() -> Void)?
    /// Answers `/verify relay`: the relay's key and how it was pinned (a ``ClientEvent/relayKey(address:fingerprint:pinnedAt:how:)``).
    public var describeRelay: (() -> ClientEvent)?
    /// Called when the relay announces its keys (`relay-keys`), current first, inside the link made
    /// under the pinned key.
    public var onRelayKeysAnnounced: (([RelayPublicKey]) -> Void)?
    /// Called with a member's name once it joined (shown, in the roster, and given this client's
    /// keys).
    public var onMemberJoined: ((String) -> Void)?

    /// The other members present, in the order the relay announced them.
    public var memberNames: [String] { session.roster.names }

    /// Creates a client; call ``start()`` to register.
    /// - Parameters:
    ///   - name: the member name to register.
    ///   - room: the room to join.
    ///   - security: the end-to-end layer (room key or automatic keys).
    ///   - connection: a connection to the relay.
    ///   - output: receives events.
    ///   - loop: the loop driving `connection` (for timeouts).
    ///   - onFinish: called once when the session is over.
    ///   - inbox: where received files go; without one, files can be sent but every offer received is declined
    ///     with a reason.
    ///   - maximumFileSize: larger offers are declined.
    ///   - filePolicy: whether offers are taken, asked about (`/accept`, `/decline`), or declined.
    ///   - askTimeout: how long an offer waits for the user's answer before it is declined.
    ///   - transferStallTimeout: how long a receiver may hold a transfer back before it is dropped.
    ///   - recentMessageIDs: the message ids already shown; shared by the clients of one session so
    ///     that a line repeated after a reconnect is shown once.
    public init(
        name: String, room: String, security: any MessageSecurity, connection: any Connection,
        output: any ClientOutput, loop: any EventLoop, inbox: Inbox? = nil, maximumFileSize: UInt64? = nil,
        filePolicy: IncomingFilePolicy = .all, askTimeout: Duration = FileTransfers.defaultAskTimeout,
        transferStallTimeout: Duration = FileTransfers.defaultStallTimeout,
        recentMessageIDs: RecentMessageIDs = RecentMessageIDs(), onFinish: @escaping (ClientOutcome) -> Void
    ) {
        self.recentMessageIDs = recentMessageIDs
        self.name = name
        self.security = security
        self.output = output
        self.loop = loop
        session = RelaySession(
            name: name, room: room, profile: security.profile, connection: connection, output: output, loop: loop,
            onFinish: onFinish)
        transfers = FileTransfers(
            ownName: name, outputBacklog: { [unowned session] in session.pendingOutputByteCount },
            inbox: inbox, maximumFileSize: maximumFileSize, policy: filePolicy,
            askTimeout: askTimeout, stallTimeout: transferStallTimeout)
        session.delegate = self
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

    /// The name claim sent with hello (docs/PROTOCOL.md section 3.1), signed for this connection's link; set
    /// before ``start()``.
    public var nameClaim: NameClaim? {
        get { session.claim }
        set { session.claim = newValue }
    }

    /// Sends the registration and starts the registration timeout.
    public func start() {
        session.start()
    }

    /// Drops the connection at once, as a lost one, without saying so (the user asked to reconnect): the session ends
    /// with ``ClientOutcome/relayLost(_:)`` and `reason`, and unconfirmed lines are handed back as after a loss.
    public func dropConnection(reason: String) {
        session.drop(reason: reason)
    }

    /// Handles one line of input: a command (`/who`, `/msg bob hi`, …) or a message. Held until
    /// registration completes. Empty lines are skipped.
    public func submit(line: String) {
        submit(OutgoingLine(line))
    }

    /// Handles a line with a given message id (a line sent again after a reconnect keeps its id).
    public func submit(_ line: OutgoingLine) {
        guard !line.text.isEmpty, session.phase == .registering || session.phase == .ready, !quitting else { return }
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

    /// `/hold all` (true) or `/hold changed` (false) from the start, before ``start()``: a choice made on an earlier
    /// connection of the session.
    public func holdEverything(_ on: Bool) {
        carryOut(security.holdEverything(on))
    }

    /// Takes over the lines an earlier connection of the session held (``heldLinesAtEnd``), after registration: see
    /// ``MessageSecurity/adoptHeldLines(_:)``.
    public func adoptHeldLines(_ lines: HeldLines) {
        carryOut(security.adoptHeldLines(lines))
        sendWaitingLines()
    }

    /// Gives up the held lines of members still not back, with an `undelivered` warning each.
    public func forgetAbsentHeldLines(reason: String) {
        carryOut(security.forgetAbsentHeldLines(reason: reason))
    }

    /// Handles waiting lines while fewer than ``maximumUnconfirmedLines`` are unconfirmed.
    private func sendWaitingLines() {
        guard !sendingWaitingLines else { return }
        sendingWaitingLines = true
        defer { sendingWaitingLines = false }
        while session.phase == .ready, firstWaitingLine < waitingLines.count,
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
        let pending = session.pendingOutputByteCount
        let paused =
            inputPaused
            ? pending > 0 || waiting > Self.waitingLinesHighWater / 2
            : pending > Self.outputHighWater || waiting > Self.waitingLinesHighWater
        guard paused != inputPaused else { return }
        inputPaused = paused
        onBackpressure?(paused)
    }

    /// Sends a message line (what the security layer made of it), then a ping whose pong will
    /// confirm it. A line the security layer holds back (a changed key waiting for `/trust`)
    /// writes nothing and is not tracked.
    @discardableResult
    private func sendAwaitingConfirmation(_ line: OutgoingLine, _ actions: [SecurityAction]) -> Bool {
        guard carryOut(actions), session.phase == .ready else { return false }
        unconfirmedLines.append((line, session.sendPing()))
        return true
    }

    /// Input has ended: leave once everything read has been handed to the relay and every file
    /// being sent is done.
    public func endOfInput() {
        inputEnded = true
        leaveIfIdle()
    }

    private func leaveIfIdle() {
        guard inputEnded, session.phase == .ready, firstWaitingLine == waitingLines.count, unconfirmedLines.isEmpty,
            quitting || !(transfers?.isBusy ?? false)
        else { return }
        session.leave(outcome: .finished)
    }

    /// The user asked to quit: leave at once.
    public func interrupt() {
        session.interrupt()
    }

    private func perform(_ line: OutgoingLine) {
        let id = line.messageID
        if let recipient = line.onlyTo {
            // A held room line going to a member it missed alone; nothing to do if they left meanwhile (a line said so).
            let content: MessageContent
            switch ChatCommand(parsing: line.text) {
            case .message(let text): content = .text(text)
            case .action(let text): content = .action(text)
            default: return
            }
            guard session.roster.contains(recipient) else { return }
            sendAwaitingConfirmation(line, security.sendPrivately(.identified(id: id, content), to: recipient))
            return
        }
        switch ChatCommand(parsing: line.text) {
        case .message(let text):
            sendAwaitingConfirmation(line, security.sendToRoom(.identified(id: id, .text(text))))
        case .action(let text):
            sendAwaitingConfirmation(line, security.sendToRoom(.identified(id: id, .action(text))))
        case .privateMessage(let recipient, let text):
            guard recipient != name else {
                emit(.error(message: "/msg needs another member's name, not your own"))
                return
            }
            performingTypedCommand = true
            let sent = sendAwaitingConfirmation(
                line, security.sendPrivately(.identified(id: id, .text(text)), to: recipient))
            performingTypedCommand = false
            if sent { emit(.info("to \(recipient), privately: \(text)")) }
        case .security(let command):
            carryOut(security.handle(command))
        case .verifyRelay:
            emit(describeRelay?() ?? .error(message: "the relay's key is not known to this client"))
        case .help:
            emit(.info(ChatCommand.helpText))
        case .reconnect:
            // A session that reconnects takes /reconnect before it gets here.
            emit(.error(message: "this client does not reconnect"))
        case .quit:
            // Lines typed after /quit are dropped; those before it are confirmed first.
            inputEnded = true
            quitting = true
            waitingLines.removeAll()
            firstWaitingLine = 0
            leaveIfIdle()
        case .sendFile(let path, let recipient):
            if let transfers {
                let noted = typedDirects.count
                performingTypedCommand = true
                let members = session.roster.names
                let takingNoFiles = Set(
                    members.filter { security.features(of: $0).map { !$0.contains(MemberFeatures.files) } ?? false })
                carryOut(
                    transfers.send(path: path, to: recipient, members: members, takingNoFiles: takingNoFiles))
                performingTypedCommand = false
                // A ping after the offer, so that the relay's confirmation ends its note.
                if typedDirects.count > noted, session.phase == .ready { _ = session.sendPing() }
            } else {
                emit(.error(message: "file transfer needs an inbox"))
            }
        case .answerOffer(let number, let accept):
            if let transfers { carryOut(transfers.answer(number, accept: accept)) }
        case .transfers:
            if let transfers { carryOut(transfers.list()) }
        case .cancel(let target):
            if let transfers {
                carryOut(transfers.cancel(target))
                leaveIfIdle()
            }
        case .hold(let all):
            guard let all else {
                emit(
                    .info(
                        security.holdsEverything
                            ? "/hold all: while a changed key waits for /trust, every line you send is held; "
                                + "/hold changed holds lines only for that member"
                            : "/hold changed: while a changed key waits for /trust, your lines are held only for that "
                                + "member and reach the others; /hold all holds every line"))
                return
            }
            carryOut(security.holdEverything(all))
            onHoldChanged?(all)
            emit(
                .info(
                    all
                        ? "from now on, while a changed key waits for /trust, every line you send is held (sent to nobody)"
                        : "from now on, while a changed key waits for /trust, your lines are held only for that member")
            )
        case .invalid(let message):
            emit(.error(message: message))
        }
    }

    // MARK: Security actions

    /// Carries out what the security layer returned, in order: envelopes go to the relay, events
    /// to the output, opened content to the screen or the file transfers.
    /// - Returns: whether an envelope was sent.
    @discardableResult
    func carryOut(_ actions: [SecurityAction]) -> Bool {
        var sentEnvelope = false
        var released = false
        defer {
            releaseInsertionPoint = nil
            if released { sendWaitingLines() }
        }
        for action in actions {
            switch action {
            case .publish(let envelope):
                session.write(ClientFrame.publish(payload: envelope[...]).encoded())
                sentEnvelope = true
            case .direct(let envelope, let name):
                session.write(ClientFrame.direct(to: name, payload: envelope[...]).encoded())
                sentEnvelope = true
                if performingTypedCommand, typedDirects.count < Self.maximumTypedDirects {
                    typedDirects.append((name, session.latestPingToken))
                }
            case .deliver(let content, let sender, let isPrivate):
                deliver(content, from: sender, isPrivate: isPrivate)
            case .show(let event):
                emit(event)
            case .release(let line):
                // Ahead of lines typed since, in the order released; each tracked until the relay confirms it.
                let lines =
                    line.onlyTo.map { $0.compactMap { OutgoingLine(resending: line.content, onlyTo: $0) } }
                    ?? [OutgoingLine(resending: line.content)].compactMap { $0 }
                let at = releaseInsertionPoint ?? firstWaitingLine
                waitingLines.insert(contentsOf: lines, at: at)
                releaseInsertionPoint = at + lines.count
                released = true
            }
        }
        return sentEnvelope
    }

    private func emit(_ event: ClientEvent) {
        output.emit(event)
    }

    private func deliver(_ content: MessageContent, from sender: String, isPrivate: Bool) {
        // A copy its sender repeated after losing the connection before the relay confirmed it.
        if case .identified(let id, _) = content, !recentMessageIDs.recordIfNew(id, from: sender) { return }
        if case .unsupported(let kind) = content {
            noteUnsupported(kind, from: sender)
            return
        }
        if case .identified(_, .unsupported(let kind)) = content {
            noteUnsupported(kind, from: sender)
            return
        }
        if let event = ClientEvent(content: content, from: sender, isPrivate: isPrivate) {
            emit(event)
        } else if let transfers {
            carryOut(transfers.handleControl(content, from: sender, isPrivate: isPrivate))
            leaveIfIdle()
        }
    }

    /// Counts a content of a kind this version cannot show and tells the user at the first of each sender and kind,
    /// then at 10, 100, 1,000, … (at most ``maximumUnsupportedKinds`` sender-kind pairs are counted).
    private func noteUnsupported(_ kind: UInt8, from sender: String) {
        let key = "\(kind) \(sender)"
        guard
            let count = unsupportedCounts[key].map({ $0 + 1 })
                ?? (unsupportedCounts.count < Self.maximumUnsupportedKinds ? 1 : nil)
        else { return }
        unsupportedCounts[key] = count
        var shown = 1
        while shown < count { shown *= 10 }
        if shown == count { emit(.unsupported(from: sender, kind: kind, count: count)) }
    }

    // MARK: File transfer actions

    /// Carries out what the file transfers returned, in order.
    private func carryOut(_ actions: [FileTransferAction]) {
        for action in actions {
            switch action {
            case .sendControl(let content, let recipient):
                sendControl(content, to: recipient)
            case .sendFrame(let buffer, let range):
                session.write(buffer, range: range)
            case .sendFrameBytes(let frame):
                session.write(frame)
            case .show(let event):
                emit(event)
            case .totals(let totals):
                output.transfersChanged(totals)
            case .schedule(let delay, let timer):
                loop.schedule(after: delay) { [weak self] in
                    guard let self, let transfers = self.transfers else { return }
                    self.carryOut(transfers.timerFired(timer))
                    self.leaveIfIdle()
                }
            }
        }
    }

    /// Sends file control through the end-to-end layer: to the room (`nil`) or one member.
    /// Control for a member who left is dropped: nobody is there to read it.
    private func sendControl(_ content: MessageContent, to recipient: String?) {
        guard session.phase == .ready || session.phase == .leaving else { return }
        if let recipient, !session.roster.contains(recipient) { return }
        carryOut(recipient.map { security.sendPrivately(content, to: $0) } ?? security.sendToRoom(content))
    }

}

extension ChatRoom: RelaySessionDelegate {
    func relaySession(_ session: RelaySession, didRegisterWith members: [MemberEntry]) {
        emit(
            .ready(
                name: name, room: session.room, members: members.map(\.name), fingerprint: security.ownFingerprint))
        carryOut(security.didRegister(members: members))
        for member in members { departures.arrived(member.name, identity: security.identityKey(of: member)) }
        onReady?()
        sendWaitingLines()
        leaveIfIdle()
    }

    func relaySession(_ session: RelaySession, admits member: MemberEntry) -> Bool {
        guard let refusal = security.refusalOfJoining(member) else { return true }
        emit(refusal)
        return false
    }

    func relaySession(_ session: RelaySession, isReturning member: MemberEntry) -> Bool {
        departures.isReturning(member.name, identity: security.identityKey(of: member))
    }

    func relaySession(_ session: RelaySession, memberJoined member: MemberEntry) {
        carryOut(security.memberJoined(member))
        departures.arrived(member.name, identity: security.identityKey(of: member))
        onMemberJoined?(member.name)
    }

    func relaySession(_ session: RelaySession, memberLeft name: String) {
        departures.left(name)
        carryOut(security.memberLeft(name))
        if let transfers { carryOut(transfers.memberLeft(name)) }
        leaveIfIdle()
    }

    func relaySession(
        _ session: RelaySession, delivered payload: ArraySlice<UInt8>, from sender: String, isDirect: Bool
    ) {
        if EnvelopeKind(of: payload) == .fileChunk {
            if let transfers { carryOut(transfers.receiveChunk(payload, from: sender)) }
        } else {
            carryOut(security.receive(payload, from: sender, isDirect: isDirect))
        }
    }

    func relaySession(
        _ session: RelaySession, deliveredChunkInPlace payload: UnsafeMutableRawBufferPointer, from sender: String
    ) {
        if let transfers { carryOut(transfers.receiveChunk(inPlace: payload, from: sender)) }
    }

    /// Every line sent before the ping with `token` was handled.
    func relaySession(_ session: RelaySession, confirmedUpTo token: UInt64) {
        let confirmed = unconfirmedLines.prefix { $0.token <= token }.count
        unconfirmedLines.removeFirst(confirmed)
        typedDirects.removeAll { $0.afterToken < token }
        sendWaitingLines()
        leaveIfIdle()
    }

    func relaySession(_ session: RelaySession, couldNotDeliver message: String) {
        let recipient = Self.quotedName(in: message)
        let typed =
            recipient.flatMap { name in typedDirects.firstIndex { $0.recipient == name } }
            // A message that names nobody answers the oldest typed command, if any is unconfirmed.
            ?? (recipient == nil && !typedDirects.isEmpty ? 0 : nil)
        if let typed {
            typedDirects.remove(at: typed)
            emit(.error(message: message))
        } else if let recipient, session.roster.contains(recipient) {
            emit(.info("\(recipient) did not get data this client sent on its own (the relay says: \(message))"))
        }
        // Otherwise the member left (as a line said already): nothing to tell.
    }

    /// The name between the first two single quotes of a relay's error (`no member named 'bob' in
    /// lobby`), if any.
    static func quotedName(in message: String) -> String? {
        let parts = message.split(separator: "'", maxSplits: 2, omittingEmptySubsequences: false)
        guard parts.count == 3, !parts[1].isEmpty else { return nil }
        return String(parts[1])
    }

    func relaySession(_ session: RelaySession, announcedKeys keys: [RelayPublicKey]) {
        onRelayKeysAnnounced?(keys)
    }

    func relaySessionDidDrainOutput(_ session: RelaySession) {
        if let transfers { carryOut(transfers.pump()) }
        updateInputPause()
    }

    /// Every transfer ends with a line saying how to resume it; nothing more is sent.
    func relaySessionWillEnd(_ session: RelaySession, outcome: ClientOutcome) {
        let lost: Bool
        switch outcome {
        case .relayLost, .protocolViolation, .refused, .displaced: lost = true
        case .finished, .interrupted: lost = false
        }
        // Everyone here is lost with the connection: on the next one, they are back.
        if lost { departures.connectionLost() }
        // Lines held for a member whose key changed go to the next connection of a session that reconnects;
        // otherwise they never go out, and the user is told.
        if lost, carriesHeldLines {
            heldLinesAtEnd = security.takeHeldLines()
        }
        for (member, count) in security.heldLines {
            let why =
                lost
                ? "the connection to the relay was lost before they could go out" : "you left before they could go out"
            emit(
                .warning(
                    kind: "undelivered", name: member,
                    message:
                        "\(count == 1 ? "1 line" : "\(count) lines") held for \(member) will not reach them: \(why)"))
        }
        guard let transfers else { return }
        for action in transfers.closeAll(lost ? .connectionLost : .leaving) {
            switch action {
            case .show(let event): emit(event)
            case .totals(let totals): output.transfersChanged(totals)
            default: break
            }
        }
    }
}
