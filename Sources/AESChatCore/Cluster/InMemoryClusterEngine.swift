/// What one Redis primary holds for a cluster, kept in process: the state of ``ClusterEngine``'s keys and channels,
/// changed by the same steps as its scripts, one step at a time in one global order. Each relay talks to it through
/// its own ``InMemoryClusterEngine``, whose three gates (commands on their way in, replies and stream messages on
/// their way out) can be held or given a delay, so that tests set up every race deterministically on a
/// ``MemoryEventLoop``.
///
/// Confined to the loop's thread.
public final class InMemoryCluster {
    let loop: MemoryEventLoop
    /// `P:relays`: each registered incarnation and its last heartbeat by the loop's clock.
    public private(set) var relays: [String: Duration] = [:]
    /// `P:names`.
    public private(set) var names: [String: String] = [:]
    /// `P:relay:<inc>`.
    private(set) var relayMembers: [String: [String: String]] = [:]
    /// `P:room:<room>`.
    public private(set) var rooms: [String: [String: [UInt8]]] = [:]
    /// The engines subscribed to each channel (`r:<room>`, `n:<inc>`), in subscription order.
    private var subscribers: [String: [InMemoryClusterEngine]] = [:]
    /// Incarnations whose subscriber connection is open (what `CLIENT LIST TYPE pubsub` shows).
    public private(set) var connected: Set<String> = []
    private var incarnations: UInt64 = 0
    /// Every message published, with its channel, in execution order (for tests).
    public private(set) var published: [(channel: String, message: [UInt8])] = []

    /// An empty cluster on `loop`.
    public init(loop: MemoryEventLoop) {
        self.loop = loop
    }

    /// A new engine (a relay's two connections) to this cluster.
    public func engine() -> InMemoryClusterEngine {
        InMemoryClusterEngine(cluster: self)
    }

    // MARK: Steps, each atomic

    func newIncarnation() -> String {
        incarnations += 1
        return ClusterIncarnation.id(0xc1_0000_0000 + incarnations)
    }

    func connect(_ engine: InMemoryClusterEngine, incarnation: String) {
        connected.insert(incarnation)
        subscribe(engine, to: "n:" + incarnation)
    }

    func register(_ incarnation: String) {
        relays[incarnation] = loop.now
    }

    func disconnect(_ engine: InMemoryClusterEngine, incarnation: String) {
        connected.remove(incarnation)
        for channel in subscribers.keys { subscribers[channel]?.removeAll { $0 === engine } }
    }

    func subscribe(_ engine: InMemoryClusterEngine, to channel: String) {
        if !(subscribers[channel]?.contains { $0 === engine } ?? false) {
            subscribers[channel, default: []].append(engine)
        }
    }

    func unsubscribe(_ engine: InMemoryClusterEngine, from channel: String) {
        subscribers[channel]?.removeAll { $0 === engine }
    }

    func publish(_ channel: String, _ message: [UInt8]) {
        published.append((channel, message))
        let kind: ClusterChannel = channel.hasPrefix("n:") ? .inbox : .room
        for engine in subscribers[channel] ?? [] { engine.receive(message, on: kind) }
    }

    func isRegistered(_ incarnation: String) -> Bool { relays[incarnation] != nil }

    /// What the register script counts.
    var census: ClusterCensus {
        ClusterCensus(relays: relays.count, rooms: rooms.count, members: names.count)
    }

    func join(_ request: ClusterJoinRequest, incarnation: String) -> ClusterJoinReply? {
        guard isRegistered(incarnation) else { return nil }
        if let replacing = request.replacing, names[request.name] == replacing.encoded {
            names[request.name] = nil
            relayMembers[replacing.incarnation]?[request.name] = nil
            rooms[replacing.room]?[request.name] = nil
            if rooms[replacing.room]?.isEmpty ?? false { rooms[replacing.room] = nil }
            publish("r:" + replacing.room, request.replacedMessage)
        }
        if let held = names[request.name] { return .taken(held) }
        names[request.name] = request.holder.encoded
        relayMembers[incarnation, default: [:]][request.name] = request.room
        rooms[request.room, default: [:]][request.name] = request.rosterValue
        publish("r:" + request.room, request.message)
        guard request.wantsSnapshot else { return .joined(snapshot: nil) }
        let snapshot = (rooms[request.room] ?? [:]).map { ClusterSnapshotEntry(name: $0.key, value: $0.value) }
        return .joined(snapshot: snapshot.sorted { $0.name.utf8.lexicographicallyPrecedes($1.name.utf8) })
    }

    /// Nil when fenced.
    func leave(name: String, holder: ClusterNameHolder, message: [UInt8], incarnation: String) -> Bool {
        guard isRegistered(incarnation) else { return false }
        guard names[name] == holder.encoded else { return true }
        names[name] = nil
        relayMembers[incarnation]?[name] = nil
        rooms[holder.room]?[name] = nil
        if rooms[holder.room]?.isEmpty ?? false { rooms[holder.room] = nil }
        publish("r:" + holder.room, message)
        return true
    }

    func heartbeat(_ incarnation: String) -> Bool {
        guard isRegistered(incarnation) else { return false }
        relays[incarnation] = loop.now
        return true
    }

    func deadRelays(deadAfter: Duration, asking incarnation: String) -> [String] {
        relays.filter { $0.key != incarnation && (!connected.contains($0.key) || loop.now - $0.value > deadAfter) }
            .map(\.key).sorted()
    }

    func reap(_ dead: String, limit: Int) -> (reaped: Int, remaining: Int) {
        let members = (relayMembers[dead] ?? [:]).sorted { $0.key < $1.key }
        var reaped = 0
        for (name, room) in members.prefix(limit) {
            if names[name]?.hasPrefix(dead + " ") ?? false { names[name] = nil }
            if let value = rooms[room]?[name], value.starts(with: Array(dead.utf8)) {
                rooms[room]?[name] = nil
                if rooms[room]?.isEmpty ?? false { rooms[room] = nil }
                publish("r:" + room, ClusterMessage.left(origin: dead, room: room, name: name, cause: .reaped))
                reaped += 1
            }
            relayMembers[dead]?[name] = nil
        }
        let remaining = relayMembers[dead]?.count ?? 0
        if remaining == 0 {
            relayMembers[dead] = nil
            relays[dead] = nil
        }
        return (reaped, remaining)
    }

    func deregister(_ incarnation: String) {
        relays[incarnation] = nil
        relayMembers[incarnation] = nil
    }
}

/// One relay's connection to an ``InMemoryCluster``, a ``ClusterEngine``.
///
/// Commands go through ``commands`` to the cluster, which executes each when it leaves the gate (in the order given,
/// one global order across engines); replies come back through ``replies``, and stream messages through ``stream``.
/// Commands already in the gate when the incarnation ends still execute (they were on the wire), their replies are
/// dropped; nothing more reaches the delegate after the loss.
public final class InMemoryClusterEngine: ClusterEngine {
    public weak var delegate: (any ClusterEngineDelegate)?
    public private(set) var incarnation: String?
    let cluster: InMemoryCluster
    /// Commands on their way to the cluster.
    public let commands: InMemoryGate
    /// Replies on their way back.
    public let replies: InMemoryGate
    /// Stream messages (and subscription confirmations) on their way to the relay.
    public let stream: InMemoryGate
    private var sequence: UInt64 = 0
    /// Counts incarnations, so that what was in flight for an ended one is dropped.
    private var generation = 0

    init(cluster: InMemoryCluster) {
        self.cluster = cluster
        commands = InMemoryGate(loop: cluster.loop)
        replies = InMemoryGate(loop: cluster.loop)
        stream = InMemoryGate(loop: cluster.loop)
    }

    /// The bytes of the messages that publishes and sends queued in ``commands`` and the cluster has not run yet.
    public private(set) var pendingOutputByteCount = 0

    /// Whether an incarnation is running.
    public var isRunning: Bool { incarnation != nil }

    /// While set, ``start()`` fails as a start against an unreachable Redis does: the delegate hears of the loss.
    public var isUnreachable = false

    public func start() {
        guard incarnation == nil else { return }
        generation += 1
        if isUnreachable {
            cluster.loop.enqueue { [weak self] in self?.delegate?.engineDidLose(reason: "cannot reach the cluster") }
            return
        }
        let generation = generation
        let id = cluster.newIncarnation()
        commands.push { [self] in
            cluster.connect(self, incarnation: id)
            cluster.register(id)
            let census = cluster.census
            replies.push { [self] in
                guard self.generation == generation else { return }
                incarnation = id
                sequence = 0
                delegate?.engineDidStart(incarnation: id, census: census)
            }
        }
    }

    public func stop() {
        guard let id = incarnation else { return }
        incarnation = nil
        generation += 1
        commands.push { [self] in
            cluster.deregister(id)
            cluster.disconnect(self, incarnation: id)
        }
    }

    /// Ends the incarnation as a closed connection would: the delegate hears of it (later), the cluster sees the
    /// subscriber connection gone. Commands already in ``commands`` still execute.
    public func fail(_ reason: String) {
        guard incarnation != nil else { return }
        abandon(reason: reason)
        cluster.loop.enqueue { [weak self] in self?.delegate?.engineDidLose(reason: reason) }
    }

    public func abandon(reason: String) {
        guard let id = incarnation else { return }
        incarnation = nil
        generation += 1
        abandonedReason = reason
        cluster.disconnect(self, incarnation: id)
        replies.removeAll()
        stream.removeAll()
    }

    /// Why the relay last abandoned an incarnation (for tests).
    public private(set) var abandonedReason: String?

    public func subscribe(room: String, completion: @escaping () -> Void) {
        let generation = generation
        commands.push { [self] in
            guard self.generation == generation else { return }
            cluster.subscribe(self, to: "r:" + room)
            stream.push { [self] in
                guard self.generation == generation else { return }
                completion()
            }
        }
    }

    public func unsubscribe(room: String) {
        let generation = generation
        commands.push { [self] in
            guard self.generation == generation else { return }
            cluster.unsubscribe(self, from: "r:" + room)
        }
    }

    /// Queues `step` (run by the cluster, giving nil when fenced) and its reply; returns its sequence number.
    private func command<Reply>(_ step: @escaping (String) -> Reply?, reply: @escaping (Reply) -> Void) -> UInt64 {
        guard let id = incarnation else { return sequence }
        sequence += 1
        let number = sequence
        let generation = generation
        commands.push { [self] in
            let result = step(id)
            replies.push { [self] in
                guard self.generation == generation else { return }
                guard let result else {
                    fail("FENCED relay incarnation is not registered")
                    return
                }
                reply(result)
                delegate?.engineDidAcknowledge(through: number)
            }
        }
        return number
    }

    @discardableResult
    public func join(_ request: ClusterJoinRequest, completion: @escaping (ClusterJoinReply) -> Void) -> UInt64 {
        command({ [cluster] in cluster.join(request, incarnation: $0) }, reply: completion)
    }

    @discardableResult
    public func leave(name: String, holder: ClusterNameHolder, message: UnsafeRawBufferPointer) -> UInt64 {
        let message = Array(message)
        return command(
            { [cluster] in cluster.leave(name: name, holder: holder, message: message, incarnation: $0) ? () : nil },
            reply: { _ in })
    }

    @discardableResult
    public func publish(room: String, message: UnsafeRawBufferPointer) -> UInt64 {
        let message = Array(message)
        return queued(message.count) { [cluster] in cluster.publish("r:" + room, message) }
    }

    /// A publish of `count` bytes: counted in ``pendingOutputByteCount`` until the cluster runs it.
    private func queued(_ count: Int, _ step: @escaping () -> Void) -> UInt64 {
        let before = sequence
        let number = command(
            { [weak self] _ in
                self?.pendingOutputByteCount -= count
                step()
            }, reply: { _ in })
        if number != before { pendingOutputByteCount += count }
        return number
    }

    @discardableResult
    public func send(toRelay target: String, message: UnsafeRawBufferPointer) -> UInt64 {
        let message = Array(message)
        return queued(message.count) { [cluster] in cluster.publish("n:" + target, message) }
    }

    @discardableResult
    public func heartbeat(completion: @escaping () -> Void) -> UInt64 {
        command({ [cluster] in cluster.heartbeat($0) ? () : nil }, reply: { _ in completion() })
    }

    public func findDeadRelays(deadAfter: Duration, completion: @escaping ([String]) -> Void) {
        _ = command({ [cluster] in cluster.deadRelays(deadAfter: deadAfter, asking: $0) }, reply: completion)
    }

    public func reap(relay dead: String, limit: Int, completion: @escaping (Int, Int) -> Void) {
        _ = command({ [cluster] _ in cluster.reap(dead, limit: limit) }, reply: { completion($0.reaped, $0.remaining) })
    }

    /// A stream message from the cluster.
    func receive(_ message: [UInt8], on channel: ClusterChannel) {
        let generation = generation
        stream.push { [self] in
            guard self.generation == generation else { return }
            message.withUnsafeBytes { delegate?.engine(didReceive: $0, on: channel) }
        }
    }
}

/// A FIFO of steps between a relay and its in-memory cluster: each step runs once it has waited ``delay`` (taken
/// when it was queued) and every step before it has run, unless the gate is ``isHeld``. Steps run later on the loop,
/// never inside the call that queued them.
public final class InMemoryGate {
    private let loop: MemoryEventLoop
    private var steps: [(readyAt: Duration, body: () -> Void)] = []
    private var pumpQueued = false
    /// When the timer that runs the next step not yet ready fires, if one is set.
    private var wakeAt: Duration?
    /// The delay given to each step queued from now on.
    public var delay: Duration = .zero
    /// While true, nothing runs (``pass(_:)`` still runs steps).
    public var isHeld = false {
        didSet { if !isHeld { schedulePump() } }
    }

    init(loop: MemoryEventLoop) {
        self.loop = loop
    }

    /// Steps waiting.
    public var count: Int { steps.count }

    func push(_ body: @escaping () -> Void) {
        steps.append((loop.now + delay, body))
        schedulePump()
    }

    func removeAll() {
        steps.removeAll()
    }

    /// Runs the first `count` waiting steps now, held or not, ready or not.
    public func pass(_ count: Int = 1) {
        for _ in 0..<count {
            guard !steps.isEmpty else { return }
            steps.removeFirst().body()
        }
    }

    private func schedulePump() {
        guard !pumpQueued else { return }
        pumpQueued = true
        loop.enqueue { [weak self] in self?.pump() }
    }

    private func pump() {
        pumpQueued = false
        while !isHeld, let first = steps.first {
            guard first.readyAt <= loop.now else {
                if wakeAt.map({ $0 > first.readyAt }) ?? true {
                    wakeAt = first.readyAt
                    loop.schedule(after: first.readyAt - loop.now) { [weak self] in
                        self?.wakeAt = nil
                        self?.schedulePump()
                    }
                }
                return
            }
            steps.removeFirst()
            first.body()
        }
    }
}
