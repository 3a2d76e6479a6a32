/// The ``ClusterEngine`` of `serve --cluster`: one Redis 7 primary, reached over two ``RedisConnection``s on the
/// relay's event loop (cluster.md §3.1): a **command** connection (the cluster's Lua scripts, PUBLISH, the survey),
/// whose FIFO replies give the acknowledgements, and a **subscriber** connection (the relay's inbox and its rooms'
/// channels), named `aeschat.<prefix>.<inc>` in `CLIENT LIST` so that the others notice at once when this process
/// dies. The incarnation lives exactly as long as both connections: anything that may have lost a command, a reply
/// or a message (a connection closed or errored, a limit passed, `FENCED`, `NOSCRIPT` after the scripts were loaded)
/// ends it with ``ClusterEngineDelegate/engineDidLose(reason:)``, once.
///
/// Bounds: each connection's ``RedisConnection/Limits`` (a reply of at most 17 MiB, 256 MiB of commands not yet
/// taken by the kernel, a million commands awaiting replies); ``pendingOutputByteCount`` lets the relay stop reading
/// members before that. Loop thread only.
public final class RedisClusterEngine: ClusterEngine {
    public weak var delegate: (any ClusterEngineDelegate)?
    public private(set) var incarnation: String?

    private let endpoint: RedisEndpoint
    private let credentials: RedisHandshake
    private let keys: ClusterKeys
    private unowned let loop: PosixEventLoop
    private let connectTimeout: Duration
    private let limits: RedisConnection.Limits

    /// The current incarnation's state, nil between incarnations.
    private final class Session {
        let incarnation: String
        var command: RedisConnection?
        var subscriber: RedisConnection?
        var runner: RedisScriptRunner?
        var attempts: [RedisConnectAttempt] = []
        var started = false
        var ended = false
        /// The last sequence number handed out, and the highest acknowledged with every one before it.
        var sequence: UInt64 = 0
        var acknowledged: UInt64 = 0
        /// Sequence numbers completed ahead of an earlier one (only if replies came out of order, which one FIFO
        /// connection never does; kept so that an acknowledgement never overstates).
        var completedAhead: Set<UInt64> = []

        init(incarnation: String) {
            self.incarnation = incarnation
        }
    }

    private var session: Session?

    /// An engine for the Redis at `endpoint`.
    /// - Parameters:
    ///   - credentials: the user, password (from `AESCHAT_CLUSTER_PASSWORD`) and database; its client name is ignored
    ///     (the engine names its connections after the incarnation).
    ///   - prefix: `--cluster-prefix`.
    public init(
        endpoint: RedisEndpoint, credentials: RedisHandshake, prefix: String, loop: PosixEventLoop,
        connectTimeout: Duration = .seconds(5), limits: RedisConnection.Limits = RedisConnection.Limits()
    ) {
        self.endpoint = endpoint
        self.credentials = credentials
        self.keys = ClusterKeys(prefix: prefix)
        self.loop = loop
        self.connectTimeout = connectTimeout
        self.limits = limits
    }

    public var pendingOutputByteCount: Int { session?.command?.pendingOutputByteCount ?? 0 }

    // MARK: Incarnation

    public func start() {
        precondition(session == nil, "one incarnation at a time")
        let id = ClusterIncarnation.id(UInt64.random(in: 1...UInt64.max))
        let session = Session(incarnation: id)
        self.session = session
        var commandHandshake = credentials
        commandHandshake.clientName = keys.clientName(id) + ".cmd"
        var subscriberHandshake = credentials
        subscriberHandshake.clientName = keys.clientName(id)
        for (handshake, isSubscriber) in [(commandHandshake, false), (subscriberHandshake, true)] {
            let attempt = RedisConnection.connect(
                to: endpoint, loop: loop, handshake: handshake, timeout: connectTimeout, limits: limits
            ) { [weak self, weak session] result in
                guard let self, let session, !session.ended else {
                    if case .success(let connection) = result { connection.close() }
                    return
                }
                switch result {
                case .failure(let error):
                    lose(session, "cannot reach the cluster at \(endpoint): \(error)")
                case .success(let connection):
                    connection.closeHandler = { [weak self, weak session] error in
                        guard let self, let session else { return }
                        lose(
                            session,
                            isSubscriber
                                ? "the subscription ended (\(error)); Redis cuts a subscriber whose unread messages "
                                    + "pass its client-output-buffer-limit for pubsub"
                                : "the command connection ended (\(error))")
                    }
                    if isSubscriber { session.subscriber = connection } else { session.command = connection }
                    if session.command != nil && session.subscriber != nil { register(session) }
                }
            }
            session.attempts.append(attempt)
        }
    }

    /// Both connections are up: load the scripts, subscribe the inbox, register.
    private func register(_ session: Session) {
        guard let command = session.command, let subscriber = session.subscriber else { return }
        session.attempts = []
        let runner = RedisScriptRunner(connection: command)
        runner.retriesWithSource = false
        session.runner = runner
        let inbox = keys.inboxChannel(session.incarnation)
        subscriber.pushHandler = { [weak self, weak session] push in
            guard let self, let session, !session.ended, case .message(let channel, let payload) = push else {
                return
            }
            let kind: ClusterChannel = channel == Array(inbox.utf8) ? .inbox : .room
            payload.withUnsafeBytes { delegate?.engine(didReceive: $0, on: kind) }
        }
        runner.load(ClusterScripts.all) { [weak self, weak session] result in
            guard let self, let session, !session.ended else { return }
            if case .failure(let error) = result { lose(session, "cannot load the cluster's scripts: \(error)") }
        }
        subscriber.subscribe([Array(inbox.utf8)]) { [weak self, weak session] result in
            guard let self, let session, !session.ended else { return }
            guard case .success = result else {
                return lose(session, "cannot subscribe the relay's inbox: \(result)")
            }
            runner.run(ClusterScripts.register, keys: [keys.relays, keys.names], arguments: [session.incarnation]) {
                [weak self, weak session] result in
                guard let self, let session, !session.ended else { return }
                guard case .success(let value) = result else {
                    return lose(session, "cannot register in the cluster: \(result)")
                }
                guard let census = Self.census(value) else {
                    return lose(session, "the cluster's register script gave an unexpected reply")
                }
                session.started = true
                incarnation = session.incarnation
                delegate?.engineDidStart(incarnation: session.incarnation, census: census)
            }
        }
    }

    /// The cluster as the register script found it: `{now, relays, members, rooms}`, every count at least 0 (and at
    /// least one relay, this one); nil otherwise.
    static func census(_ value: RedisValue) -> ClusterCensus? {
        guard let parts = value.elements, parts.count == 4, let relays = parts[1].integer, relays >= 1,
            let members = parts[2].integer, members >= 0, let rooms = parts[3].integer, rooms >= 0,
            rooms <= members
        else { return nil }
        return ClusterCensus(relays: Int(relays), rooms: Int(rooms), members: Int(members))
    }

    public func stop() {
        guard let session, !session.ended else { return }
        let id = session.incarnation
        guard let command = session.command else { return end(session) }
        command.send(["ZREM", keys.relays, id]) { _ in }
        command.send(["DEL", keys.relay(id)]) { [weak self, weak session] _ in
            guard let self, let session else { return }
            end(session)
        }
        // Nothing more is reported for this incarnation.
        session.ended = true
        self.session = nil
        incarnation = nil
    }

    public func abandon(reason: String) {
        guard let session else { return }
        end(session)
    }

    /// Closes the incarnation's connections without telling the delegate.
    private func end(_ session: Session) {
        session.ended = true
        for attempt in session.attempts { attempt.cancel() }
        session.attempts = []
        session.command?.close()
        session.subscriber?.close()
        if self.session === session {
            self.session = nil
            incarnation = nil
        }
    }

    /// Ends the incarnation and tells the delegate, once.
    private func lose(_ session: Session, _ reason: String) {
        guard !session.ended else { return }
        end(session)
        delegate?.engineDidLose(reason: reason)
    }

    // MARK: Operations

    /// The live session, or nil (an operation after the end is dropped: the relay has been told).
    private var live: Session? {
        guard let session, !session.ended, session.started else { return nil }
        return session
    }

    /// Hands out the next sequence number and returns the completion that acknowledges it.
    private func sequenced(_ session: Session) -> (UInt64, () -> Void) {
        session.sequence += 1
        let number = session.sequence
        return (
            number,
            { [weak self, weak session] in
                guard let self, let session, !session.ended else { return }
                session.completedAhead.insert(number)
                var advanced = false
                while session.completedAhead.remove(session.acknowledged + 1) != nil {
                    session.acknowledged += 1
                    advanced = true
                }
                if advanced { delegate?.engineDidAcknowledge(through: session.acknowledged) }
            }
        )
    }

    /// The failure of a sequenced command: the incarnation ends.
    private func failed(_ session: Session, _ what: String, _ error: RedisError) {
        let reason =
            error.serverCode == "FENCED"
            ? "this relay was declared dead by the cluster (\(what))" : "the cluster refused \(what): \(error)"
        lose(session, reason)
    }

    public func subscribe(room: String, completion: @escaping () -> Void) {
        guard let session = live, let subscriber = session.subscriber else { return }
        subscriber.subscribe([Array(keys.roomChannel(room).utf8)]) { [weak self, weak session] result in
            guard let self, let session, !session.ended else { return }
            guard case .success = result else {
                return failed(session, "a room subscription", .protocolError("\(result)"))
            }
            completion()
        }
    }

    public func unsubscribe(room: String) {
        guard let session = live, let subscriber = session.subscriber else { return }
        subscriber.unsubscribe([Array(keys.roomChannel(room).utf8)]) { _ in }
    }

    @discardableResult
    public func join(_ request: ClusterJoinRequest, completion: @escaping (ClusterJoinReply) -> Void) -> UInt64 {
        guard let session = live, let runner = session.runner else { return 0 }
        let (number, acknowledge) = sequenced(session)
        let id = session.incarnation
        let arguments: [[UInt8]] = [
            Array(id.utf8), Array(request.room.utf8), Array(request.name.utf8), Array(request.holder.encoded.utf8),
            request.rosterValue, request.message, Array(keys.roomChannel(request.room).utf8),
            Array((request.wantsSnapshot ? "1" : "0").utf8), Array((request.replacing?.encoded ?? "").utf8),
            request.replacedMessage, Array(keys.prefix.utf8),
        ]
        let scriptKeys = [keys.relays, keys.names, keys.relay(id), keys.room(request.room)].map { Array($0.utf8) }
        runner.run(ClusterScripts.join, keys: scriptKeys, arguments: arguments) { [weak self, weak session] result in
            guard let self, let session, !session.ended else { return }
            switch result {
            case .success(let value):
                guard let reply = Self.joinReply(value, wantsSnapshot: request.wantsSnapshot) else {
                    return lose(session, "the cluster's join script gave an unexpected reply")
                }
                completion(reply)
            case .failure(let error):
                guard case .server(let message) = error, error.serverCode == "TAKEN" else {
                    return failed(session, "a join", error)
                }
                completion(.taken(String(message.dropFirst("TAKEN ".count))))
            }
            acknowledge()
        }
        return number
    }

    /// The reply of the join script: `{receivers}` or `{receivers, {name, value, …}}`.
    static func joinReply(_ value: RedisValue, wantsSnapshot: Bool) -> ClusterJoinReply? {
        guard let parts = value.elements, parts.first?.integer != nil else { return nil }
        guard wantsSnapshot else { return .joined(snapshot: nil) }
        guard parts.count == 2, let fields = parts[1].elements, fields.count % 2 == 0 else { return nil }
        var snapshot: [ClusterSnapshotEntry] = []
        snapshot.reserveCapacity(fields.count / 2)
        for index in stride(from: 0, to: fields.count, by: 2) {
            guard let name = fields[index].text, let entry = fields[index + 1].bytes else { return nil }
            snapshot.append(ClusterSnapshotEntry(name: name, value: entry))
        }
        return .joined(snapshot: snapshot)
    }

    @discardableResult
    public func leave(name: String, holder: ClusterNameHolder, message: UnsafeRawBufferPointer) -> UInt64 {
        guard let session = live, let runner = session.runner else { return 0 }
        let (number, acknowledge) = sequenced(session)
        let id = session.incarnation
        let scriptKeys = [keys.relays, keys.names, keys.relay(id), keys.room(holder.room)].map { Array($0.utf8) }
        let arguments: [[UInt8]] = [
            Array(id.utf8), Array(holder.encoded.utf8), Array(name.utf8), Array(message),
            Array(keys.roomChannel(holder.room).utf8),
        ]
        runner.run(ClusterScripts.leave, keys: scriptKeys, arguments: arguments) { [weak self, weak session] result in
            guard let self, let session, !session.ended else { return }
            if case .failure(let error) = result { return failed(session, "a leave", error) }
            acknowledge()
        }
        return number
    }

    @discardableResult
    public func publish(room: String, message: UnsafeRawBufferPointer) -> UInt64 {
        publish(channel: keys.roomChannel(room), message: message)
    }

    @discardableResult
    public func send(toRelay incarnation: String, message: UnsafeRawBufferPointer) -> UInt64 {
        publish(channel: keys.inboxChannel(incarnation), message: message)
    }

    private func publish(channel: String, message: UnsafeRawBufferPointer) -> UInt64 {
        guard let session = live, let command = session.command else { return 0 }
        let (number, acknowledge) = sequenced(session)
        command.send([Array("PUBLISH".utf8), Array(channel.utf8), Array(message)]) { [weak self, weak session] result in
            guard let self, let session, !session.ended else { return }
            if case .failure(let error) = result { return failed(session, "a publish", error) }
            acknowledge()
        }
        return number
    }

    @discardableResult
    public func heartbeat(completion: @escaping () -> Void) -> UInt64 {
        guard let session = live, let runner = session.runner else { return 0 }
        let (number, acknowledge) = sequenced(session)
        runner.run(ClusterScripts.heartbeat, keys: [keys.relays], arguments: [session.incarnation]) {
            [weak self, weak session] result in
            guard let self, let session, !session.ended else { return }
            if case .failure(let error) = result { return failed(session, "a heartbeat", error) }
            completion()
            acknowledge()
        }
        return number
    }

    public func findDeadRelays(deadAfter: Duration, completion: @escaping ([String]) -> Void) {
        guard let session = live, let runner = session.runner, let command = session.command else { return }
        var survey: RedisValue?
        runner.run(ClusterScripts.survey, keys: [keys.relays, keys.reaping], arguments: [String]()) { result in
            survey = try? result.get()
        }
        // After the survey on the same FIFO connection: a relay that registers in between is seen with its
        // connection (it names its subscriber before registering), so it is never misjudged.
        command.send(["CLIENT", "LIST", "TYPE", "pubsub"]) { [weak self, weak session] result in
            guard let self, let session, !session.ended else { return }
            guard let survey, case .success(let list) = result,
                let dead = Self.deadRelays(
                    survey: survey, clientList: list.text ?? "", deadAfter: deadAfter, keys: keys,
                    own: session.incarnation)
            else { return lose(session, "the cluster's survey of relays failed") }
            completion(dead)
        }
    }

    /// The incarnations to reap, from the survey script's reply and `CLIENT LIST TYPE pubsub`: those whose heartbeat
    /// is older than `deadAfter` by Redis's clock, those with no subscriber connection named for them, and those
    /// whose reaping is unfinished; never `own`. Nil when the survey is malformed.
    static func deadRelays(
        survey: RedisValue, clientList: String, deadAfter: Duration, keys: ClusterKeys, own: String
    ) -> [String]? {
        guard let parts = survey.elements, parts.count == 3, let now = parts[0].integer,
            let relays = parts[1].elements, relays.count % 2 == 0, let reaping = parts[2].elements
        else { return nil }
        var named: Set<String> = []
        for line in clientList.split(separator: "\n") {
            for field in line.split(separator: " ") where field.hasPrefix("name=") {
                named.insert(String(field.dropFirst(5)))
            }
        }
        let limit = deadAfter.wholeMilliseconds
        var dead: [String] = []
        for index in stride(from: 0, to: relays.count, by: 2) {
            guard let id = relays[index].text, let beat = relays[index + 1].text.flatMap({ Double($0) }) else {
                return nil
            }
            guard id != own else { continue }
            if now - Int64(beat) > limit || !named.contains(keys.clientName(id)) { dead.append(id) }
        }
        for entry in reaping {
            if let id = entry.text, id != own, !dead.contains(id) { dead.append(id) }
        }
        return dead
    }

    public func reap(relay dead: String, limit: Int, completion: @escaping (_ reaped: Int, _ remaining: Int) -> Void) {
        guard let session = live, let runner = session.runner else { return }
        runner.run(
            ClusterScripts.reap, keys: [keys.relays, keys.names, keys.reaping],
            arguments: [keys.prefix, dead, String(limit)]
        ) { [weak self, weak session] result in
            guard let self, let session, !session.ended else { return }
            guard case .success(let value) = result, let parts = value.elements, parts.count == 2,
                let remaining = parts[0].integer, let reaped = parts[1].integer
            else { return lose(session, "the cluster's reap script failed: \(result)") }
            completion(Int(reaped), Int(remaining))
        }
    }
}
