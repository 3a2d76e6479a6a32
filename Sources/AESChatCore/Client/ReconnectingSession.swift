/// A chat session that survives the relay going away: every connection first opens the encrypted
/// link to the pinned relay key (``RelayLinkStarter``); when the connection is lost after
/// registration, it says so, reconnects with exponential backoff and jitter (capped low, so that a relay back after
/// a restart is rejoined within about ``Policy/maximumDelay`` of its return), registers again with
/// fresh session keys, and sends the lines typed meanwhile. Lines the lost connection had not had
/// confirmed by the relay go first, with their message ids, so nothing typed is lost and members
/// that did receive a line show it once. A relay that is busy is retried like a lost connection; a
/// link that fails for any other reason (the pinned key in question, another protocol version, not
/// a relay) ends the session at once with ``Outcome/linkFailed(_:)``.
///
/// Queued lines wait for the room to reassemble: when a member present before the loss is not back
/// at registration, they are held (with lines typed meanwhile) until every such member has joined
/// again, or for ``Policy/rejoinGrace`` at most; a member still missing then is named in a warning
/// (kind `undelivered`) saying it did not receive them.
///
/// Room lines held for members whose changed key waits for `/trust` (or for everyone, under `/hold all`) survive a
/// reconnect: the next connection's client takes them over at registration, keeps them held for members still
/// presenting the changed key, sends them to members back with a key they can read, and waits up to
/// ``Policy/rejoinGrace`` for those not back yet (an `undelivered` warning names each member still missing then, as it
/// does when the session ends with lines held). The `/hold` choice holds for every connection of the session.
///
/// `/reconnect` (``submit(line:)``) tries at once: while waiting for the next attempt, the wait is cut short; while
/// connected, the connection is dropped and made again (a connection that seems stuck). Loop thread only.
public final class ReconnectingSession {
    /// How a session ended; `JoinMode` maps it to the process exit code.
    public enum Outcome: Equatable, Sendable {
        /// Input ended and everything was sent, or the user left with `/quit`.
        case finished
        /// The user interrupted (Ctrl-C, SIGINT or SIGTERM).
        case interrupted
        /// The relay could not be reached, refused before registration, or stayed unreachable too long.
        case unavailable
        /// The relay broke the protocol before registration.
        case protocolViolation
        /// The first connection failed for a reason other than the transport.
        case failed
        /// The encrypted link failed for a reason that trying again does not fix: the pinned key is in question
        /// (``RelayLinkFailure/isPinFailure``), or the relay speaks another protocol or is not a relay. Nothing
        /// was sent on that connection; the session does not report it (the caller shows it).
        case linkFailed(RelayLinkFailure)
    }

    /// How reconnection waits and when it gives up.
    public struct Policy: Sendable {
        /// The first wait after a loss.
        public var initialDelay: Duration = .milliseconds(500)
        /// The longest wait between attempts while the relay is away: a relay back after a restart is rejoined
        /// within this long of its return.
        public var maximumDelay: Duration = .seconds(2)
        /// The longest wait between attempts once connections keep being dropped soon after registration (two in
        /// a row lasting less than ``stableConnection``): such a relay is retried ever more slowly, up to this.
        public var flappingMaximumDelay: Duration = .seconds(30)
        /// Time without a working connection after which the session ends (``Outcome/unavailable``, exit 69).
        public var giveUpAfter: Duration = .seconds(300)
        /// Lines typed while disconnected that are kept to be sent after reconnecting.
        public var maximumQueuedLines = 1000
        /// How long a connection must last for the backoff to start again from ``initialDelay``:
        /// a relay that keeps dropping the client soon after registration (as too slow, say) is
        /// retried ever more slowly (up to ``flappingMaximumDelay``) instead of every second or two.
        public var stableConnection: Duration = .seconds(30)
        /// How long queued lines wait after reconnecting for the members present before the loss to
        /// be back (they reconnect on their own backoff); members not back by then miss the lines
        /// and the author is told.
        public var rejoinGrace: Duration = .seconds(5)

        /// The documented defaults.
        public init() {}
    }

    /// Starts a connection to the relay without blocking the loop (bounded by its own timeout); calls
    /// `completion` once, later, on the loop thread, with the connection or the reason it failed.
    public typealias Connector = (_ completion: @escaping (Result<any Connection, TransportError>) -> Void) -> Void
    /// Makes the end-to-end layer for one connection (fresh session keys every time).
    public typealias SecurityFactory = (_ connection: any Connection) throws -> any MessageSecurity
    /// Makes the client of one connection; `recentMessageIDs` is the session's, shared by its clients.
    public typealias ClientFactory = (
        _ security: any MessageSecurity, _ connection: any Connection, _ recentMessageIDs: RecentMessageIDs,
        _ onFinish: @escaping (ClientOutcome) -> Void
    ) -> ChatRoom

    private let output: any ClientOutput
    private let loop: any EventLoop
    private let policy: Policy
    /// The pinned relay key and the relay's name.
    public private(set) var link: RelayLinkConfiguration
    private let connect: Connector
    private let makeSecurity: SecurityFactory
    private let makeClient: ClientFactory
    private let random: () -> Double
    private let now: () -> ContinuousClock.Instant
    private let fatal: (String) -> Void
    private let onFinish: (Outcome) -> Void

    private var client: ChatRoom?
    private var hasRegistered = false
    private var reconnecting = false
    private var attempts = 0
    /// Registered connections in a row that lasted less than ``Policy/stableConnection``.
    private var quickDrops = 0
    /// The wait before the next attempt, while there is one.
    private var retryTimer: TimerID?
    /// The user asked to reconnect: the next attempt starts at once.
    private var reconnectNow = false
    /// Who was here lately, shared by every client of the session.
    private let departures: RecentDepartures
    /// When the current client registered; nil while it has not (its lines are then newer than the queue).
    private var registeredAt: ContinuousClock.Instant?
    private var disconnectedSince: ContinuousClock.Instant?
    private var queuedLines: [OutgoingLine] = []
    /// The other members present when the last registered connection was lost.
    private var membersBeforeLoss: Set<String> = []
    /// While queued lines wait for members to be back: those not back yet.
    private var awaitedMembers: Set<String>?
    private var rejoinTimer: TimerID?
    private var linesToSendAgain = 0
    /// The lines held when the last connection was lost, for the next one.
    private var carriedHeldLines = HeldLines()
    /// While held lines wait for their members to be back after a reconnect.
    private var heldGraceTimer: TimerID?
    /// `/hold all`: kept for every connection of the session.
    public var holdsEverything = false
    private let recentMessageIDs = RecentMessageIDs()
    private var inputEnded = false
    private var finished = false
    /// Whether a connection attempt is under way (the loop keeps running meanwhile).
    private var connecting = false

    /// Called with `true` when input should pause and `false` to resume.
    public var onBackpressure: ((Bool) -> Void)?
    /// The key whose claim each hello carries (docs/PROTOCOL.md section 3.1), signed for each connection's link: a
    /// new connection then takes the name over at once from a stale one of the same key. When the relay ends a
    /// connection because another of the same key took the name (`name-reclaimed`), the session stops instead of
    /// reconnecting, so that two live clients of one key do not take the name from each other in turn.
    public var nameClaimKey: NameClaimKey?
    /// Called when the relay announces a new current key over a link made under the pinned one (a
    /// planned rotation), with the keys it announced (current first) and the key that vouched for
    /// them. The session already uses the new key for its next connections; the caller pins it and
    /// tells the user. Not called for an announcement whose current key is the pinned one.
    public var onRelayKeysAnnounced: ((_ announced: [RelayPublicKey], _ vouchedBy: RelayPublicKey) -> Void)?

    /// Creates a session; call ``start()``.
    /// - Parameters:
    ///   - link: The relay's pinned key, with which every connection opens the encrypted link.
    ///   - connect: Makes a fresh connection to the relay (the link starts on it).
    public init(
        output: any ClientOutput, loop: any EventLoop, policy: Policy = Policy(), link: RelayLinkConfiguration,
        connect: @escaping Connector,
        makeSecurity: @escaping SecurityFactory, makeClient: @escaping ClientFactory,
        random: @escaping () -> Double = { Double.random(in: 0.5...1.0) },
        now: @escaping () -> ContinuousClock.Instant = { .now }, fatal: @escaping (String) -> Void,
        onFinish: @escaping (Outcome) -> Void
    ) {
        departures = RecentDepartures(now: now)
        self.fatal = fatal
        self.output = output
        self.loop = loop
        self.policy = policy
        self.link = link
        self.connect = connect
        self.makeSecurity = makeSecurity
        self.makeClient = makeClient
        self.random = random
        self.now = now
        self.onFinish = onFinish
    }

    /// Connects for the first time; a relay that cannot be reached now ends the session (``Outcome/unavailable``), and
    /// so does a peer that says nothing at all (``RelayLinkFailure/Kind/silent(reason:)``: probably not a relay).
    /// - Parameter onFirstAttempt: called once the first attempt has settled (connected, or failed
    ///   and the session finished), so that the caller can start reading input then.
    public func start(onFirstAttempt: (() -> Void)? = nil) {
        open { [weak self] error in
            guard let self else { return }
            if let failure = error as? RelayLinkFailure {
                if case .silent = failure.kind {
                    self.finish(.linkFailed(failure))
                } else {
                    self.linkFailed(failure)
                }
            } else if let error = error as? TransportError {
                self.fatal(error.description)
                self.finish(.unavailable)
            } else if let error {
                self.fatal("\(error)")
                self.finish(.failed)
            }
            onFirstAttempt?()
        }
    }

    /// A line of input: to the current client, or queued while disconnected; `/reconnect` reconnects at once.
    public func submit(line: String) {
        guard !finished else { return }
        if line.hasPrefix("/reconnect") {
            switch ChatCommand(parsing: line) {
            case .reconnect:
                reconnect()
                return
            case .invalid(let message) where line.hasPrefix("/reconnect "):
                output.emit(.error(message: message))
                return
            default:
                break
            }
        }
        if client != nil, awaitedMembers != nil {
            // After the lines queued before it, once the members are back.
            guard queuedLines.count < policy.maximumQueuedLines else {
                output.emit(
                    .error(message: "\(queuedLines.count) lines are already waiting to be sent: this line was not sent")
                )
                return
            }
            queuedLines.append(OutgoingLine(line))
        } else if let client {
            client.submit(line: line)
        } else if queuedLines.count - linesToSendAgain < policy.maximumQueuedLines {
            queuedLines.append(OutgoingLine(line))
            output.emit(.info("not connected: the line is queued and will be sent after reconnecting"))
        } else {
            output.emit(
                .error(
                    message:
                        "not connected and \(queuedLines.count - linesToSendAgain) lines are already queued: "
                        + "this line was not sent"))
        }
    }

    /// Input has ended.
    public func endOfInput() {
        inputEnded = true
        if awaitedMembers != nil {
            // Ends once the queued lines are sent.
        } else if let client {
            client.endOfInput()
        } else if queuedLines.isEmpty {
            finish(.finished)
        }
    }

    /// `/reconnect`: an attempt now, instead of after the wait; while connected, the connection is dropped first
    /// (the user thinks it is stuck), and unconfirmed lines are sent again on the new one.
    public func reconnect() {
        guard !finished else { return }
        if let client {
            reconnectNow = true
            client.dropConnection(reason: "reconnecting as asked (/reconnect)")
        } else if connecting {
            output.emit(.info("already connecting to the relay"))
        } else if retryTimer != nil {
            if let retryTimer { loop.cancel(retryTimer) }
            retryTimer = nil
            reconnectNow = true
            scheduleReconnect(reason: "reconnecting as asked (/reconnect)")
        }
    }

    /// The user asked to quit.
    public func interrupt() {
        if let client { client.interrupt() } else { finish(.interrupted) }
    }

    // MARK: Connections

    /// Starts a connection attempt and the encrypted link on it; `settled` is called once it is
    /// over, with nil when a client now runs on the new connection, or the error that stopped it (a
    /// ``TransportError`` from connecting, a ``RelayLinkFailure`` from the link). Nothing is called
    /// once the session has finished meanwhile (the connection, if one came, is closed).
    private func open(settled: @escaping ((any Error)?) -> Void) {
        connecting = true
        connect { [weak self] result in
            guard let self else { return }
            let connection: any Connection
            do {
                connection = try result.get()
            } catch {
                self.connecting = false
                if !self.finished { settled(error) }
                return
            }
            guard !self.finished else {
                self.connecting = false
                connection.close()
                return
            }
            RelayLinkStarter.start(on: connection, configuration: self.link, loop: self.loop) {
                [weak self] (linked: Result<LinkedRelayConnection, RelayLinkFailure>) in
                guard let self else { return }
                self.connecting = false
                guard !self.finished else {
                    if case .success(let linked) = linked { linked.connection.close() }
                    return
                }
                do {
                    try self.begin(on: linked.get())
                    settled(nil)
                } catch {
                    settled(error)
                }
            }
        }
    }

    /// The link failed: a busy relay or a lost handshake is retried as a lost connection is;
    /// anything else ends the session at once.
    private func linkFailed(_ failure: RelayLinkFailure) {
        if failure.isRetryable {
            scheduleReconnect(reason: failure.description)
        } else {
            finish(.linkFailed(failure))
        }
    }

    /// Makes the security layer and the client of a new connection, and starts the client.
    private func begin(on linked: LinkedRelayConnection) throws {
        let connection = linked.connection
        let claim = try nameClaimKey?.claim(handshakeHash: linked.handshakeHash)
        let security = try makeSecurity(connection)
        let made = makeClient(security, connection, recentMessageIDs) { [weak self] outcome in
            self?.clientEnded(outcome)
        }
        made.nameClaim = claim
        made.onReady = { [weak self] in self?.registered() }
        made.onBackpressure = { [weak self] paused in self?.onBackpressure?(paused) }
        made.onRelayKeysAnnounced = { [weak self] keys in self?.relayAnnounced(keys) }
        made.onMemberJoined = { [weak self] name in self?.memberJoined(name) }
        made.departures = departures
        made.carriesHeldLines = true
        made.onHoldChanged = { [weak self] all in self?.holdsEverything = all }
        if holdsEverything { made.holdEverything(true) }
        client = made
        made.start()
    }

    /// The relay that holds the pinned key announced its keys: a new current key is pinned for the
    /// next connections, and reported.
    private func relayAnnounced(_ keys: [RelayPublicKey]) {
        guard let current = keys.first, current != link.relayKey else { return }
        let vouchedBy = link.relayKey
        link.relayKey = current
        onRelayKeysAnnounced?(keys, vouchedBy)
    }

    private func registered() {
        hasRegistered = true
        disconnectedSince = nil
        registeredAt = now()
        let missing = membersBeforeLoss.subtracting(client?.memberNames ?? [])
        if reconnecting {
            reconnecting = false
            output.emit(.reconnected)
        }
        if !carriedHeldLines.isEmpty, let client {
            let held = carriedHeldLines
            carriedHeldLines = HeldLines()
            client.adoptHeldLines(held)
            let seconds = policy.rejoinGrace.wholeSeconds
            heldGraceTimer = loop.schedule(after: policy.rejoinGrace) { [weak self] in
                self?.heldGraceTimer = nil
                self?.client?.forgetAbsentHeldLines(reason: "they were not back within \(seconds) s of reconnecting")
            }
        }
        if !queuedLines.isEmpty, !missing.isEmpty {
            awaitedMembers = missing
            let count = queuedLines.count
            let seconds = policy.rejoinGrace.wholeSeconds
            output.emit(
                .info(
                    "waiting up to \(seconds) s for \(missing.sorted().joined(separator: ", ")) to be back before "
                        + "sending \(count) queued line(s)"))
            rejoinTimer = loop.schedule(after: policy.rejoinGrace) { [weak self] in
                guard let self, let missing = self.awaitedMembers else { return }
                self.rejoinTimer = nil
                self.sendQueuedLines(missing: missing)
            }
            return
        }
        sendQueuedLines(missing: [])
    }

    /// A member joined the current connection's room: the queued lines go once every awaited member is back.
    private func memberJoined(_ name: String) {
        guard var awaited = awaitedMembers, awaited.remove(name) != nil else { return }
        awaitedMembers = awaited
        guard awaited.isEmpty else { return }
        if let rejoinTimer { loop.cancel(rejoinTimer) }
        rejoinTimer = nil
        sendQueuedLines(missing: [])
    }

    /// Sends the queued lines to the current client; `missing` did not come back in time and are told
    /// of as not receiving them.
    private func sendQueuedLines(missing: Set<String>) {
        awaitedMembers = nil
        let present = Set(client?.memberNames ?? [])
        for name in missing.sorted() where !present.contains(name) {
            output.emit(
                .warning(
                    kind: "undelivered", name: name,
                    message:
                        "\(name) was not back within \(policy.rejoinGrace.wholeSeconds) s of reconnecting and did not "
                        + "receive the \(queuedLines.count) line(s) queued while the relay was unreachable"))
        }
        // The queue goes first (lines the lost connection had not had confirmed, then those typed
        // while disconnected); only then may input that waited meanwhile flow again.
        let lines = queuedLines
        let sentAgain = linesToSendAgain
        queuedLines.removeAll()
        linesToSendAgain = 0
        for line in lines { client?.submit(line) }
        if sentAgain > 0 {
            output.emit(
                .info("sent again \(sentAgain) line(s) the relay had not confirmed when the connection was lost"))
        }
        // Input paused by the lost connection's backlog resumes, unless the new one is full already.
        if client?.isInputPaused == false { onBackpressure?(false) }
        if inputEnded { client?.endOfInput() }
    }

    private func clientEnded(_ outcome: ClientOutcome) {
        if let rejoinTimer { loop.cancel(rejoinTimer) }
        rejoinTimer = nil
        if let heldGraceTimer { loop.cancel(heldGraceTimer) }
        heldGraceTimer = nil
        if let client {
            // Those adopted at registration are in the client's again; those never adopted stay.
            let held = client.heldLinesAtEnd
            for line in held.lines { carriedHeldLines.append(line) }
            for (name, count) in held.dropped { carriedHeldLines.dropped[name, default: 0] += count }
        }
        awaitedMembers = nil
        if let client, registeredAt != nil { membersBeforeLoss = Set(client.memberNames) }
        if let client {
            let unconfirmed = client.linesNotConfirmed
            if registeredAt != nil {
                // The queue was handed to this client: what it could not get confirmed goes out
                // again first, ahead of lines typed since.
                queuedLines.insert(contentsOf: unconfirmed, at: 0)
                linesToSendAgain += unconfirmed.count
            } else {
                // Lines typed while it was registering: newer than the queue.
                queuedLines.append(contentsOf: unconfirmed)
            }
        }
        if let registeredAt, !reconnectNow {
            if now() - registeredAt >= policy.stableConnection {
                attempts = 0
                quickDrops = 0
            } else {
                quickDrops += 1
            }
        }
        registeredAt = nil
        client = nil
        switch outcome {
        case .finished:
            finish(.finished)
        case .interrupted:
            finish(.interrupted)
        case .refused where !hasRegistered:
            finish(.unavailable)
        case .displaced:
            // The relay's line said why; reconnecting would take the name back from the owner's new connection.
            finish(.unavailable)
        case .protocolViolation where !hasRegistered:
            finish(.protocolViolation)
        case .refused(let reason), .relayLost(let reason), .protocolViolation(let reason):
            if inputEnded && queuedLines.isEmpty {
                finish(.finished)
            } else {
                scheduleReconnect(reason: reason)
            }
        }
    }

    private func scheduleReconnect(reason: String) {
        guard !finished else { return }
        reconnecting = true
        let since = disconnectedSince ?? now()
        disconnectedSince = since
        if now() - since >= policy.giveUpAfter {
            let minutes = policy.giveUpAfter.wholeSeconds / 60
            var message = "the relay has been unreachable for \(minutes) minutes; giving up"
            if !queuedLines.isEmpty { message += " (\(queuedLines.count) queued lines were not sent)" }
            fatal(message)
            finish(.unavailable)
            return
        }
        attempts += 1
        let exponent = min(attempts - 1, 16)
        let base = policy.initialDelay * (1 << exponent)
        let cap = quickDrops >= 2 ? policy.flappingMaximumDelay : policy.maximumDelay
        let delay = reconnectNow ? .zero : min(base, cap) * random()
        reconnectNow = false
        output.emit(.reconnecting(attempt: attempts, delayMilliseconds: Int(delay.wholeMilliseconds), reason: reason))
        retryTimer = loop.schedule(after: delay) { [weak self] in
            guard let self else { return }
            self.retryTimer = nil
            guard !self.finished, self.client == nil, !self.connecting else { return }
            self.open { [weak self] error in
                if let failure = error as? RelayLinkFailure {
                    self?.linkFailed(failure)
                } else if let error = error as? TransportError {
                    self?.scheduleReconnect(reason: error.description)
                } else if let error {
                    self?.scheduleReconnect(reason: "\(error)")
                }
            }
        }
    }

    private func finish(_ outcome: Outcome) {
        guard !finished else { return }
        finished = true
        let why =
            outcome == .finished || outcome == .interrupted
            ? "you left before they could go out" : "the relay could not be reached again"
        for (name, count) in carriedHeldLines.counts {
            output.emit(
                .warning(
                    kind: "undelivered", name: name,
                    message: "\(count == 1 ? "1 line" : "\(count) lines") held for \(name) will not reach them: \(why)")
            )
        }
        carriedHeldLines = HeldLines()
        onFinish(outcome)
    }
}
