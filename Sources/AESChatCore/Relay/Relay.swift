/// The relay: registers members by name into rooms, and forwards each member's opaque payloads
/// to the other members of its room, in order. It holds no room or member key and never looks
/// inside a payload; its own key authenticates it to clients through the encrypted link
/// (``RelayLink``), inside which every connection's frames travel.
///
/// Fan-out is batched per loop iteration: every frame for a room (deliver, joined, left) is
/// encoded once into the room's shared buffer, and at the end of the iteration each member gets
/// one range of that buffer queued on its connection, covering everything it is owed. A frame
/// meant for one member (welcome, direct, pong, error) first hands that member what the room owes
/// it, so each member's stream stays in order. Publishing allocates nothing in steady state: the
/// payload is copied once from the read buffer into a shared buffer, and buffers are reused once
/// no connection holds them.
///
/// A façade over its parts: ``RelayLink`` (handshakes), ``RelayAdmission`` (limits and timers), ``RoomDirectory`` (names,
/// rooms, rosters), ``FanOut`` (batches, buffers, slow members) and the ``RoomBus`` between the
/// last two (``LocalBus``); each connection is a ``RelayConnection``. The relay keeps the list of
/// connections, the timers and the shutdown.
///
/// Works on any ``Connection``; confined to the event loop's thread.
public final class Relay {
    public let configuration: RelayConfiguration
    private let loop: any EventLoop
    private let log: (String) -> Void
    let admission: RelayAdmission
    let link: RelayLink
    let directory: RoomDirectory
    let fanOut: FanOut
    /// Held as its concrete type, so that publishing is dispatched statically.
    let bus: LocalBus
    /// The bus of a relay in a cluster; when set, every room event goes through it instead of ``bus``.
    private(set) var clusterBus: ClusterBus?
    private var connections: [RelayConnection] = []
    /// Numbers the connections, so that a member's backlog can name its senders.
    private var nextConnectionSerial: UInt64 = 0
    private var isShuttingDown = false
    private var shutdownCompletion: (() -> Void)?

    /// Creates a relay.
    /// - Parameters:
    ///   - configuration: keys and limits.
    ///   - loop: the loop that drives its connections (for timers and the end-of-iteration fan-out).
    ///   - handshakes: where the encrypted link's handshakes run: on the loop thread at once (the default, for
    ///     in-memory tests) or on a worker thread (``WorkerHandshakes``, what `aeschat serve` uses).
    ///   - cluster: the engine this relay shares its rooms through with other relays (issue 16), started at once; nil
    ///     for a relay on its own.
    ///   - log: receives one line per join, leave and refusal.
    public init(
        configuration: RelayConfiguration = RelayConfiguration(), loop: any EventLoop,
        handshakes: any HandshakeExecutor = InlineHandshakes(), cluster: (any ClusterEngine)? = nil,
        log: @escaping (String) -> Void
    ) {
        precondition(
            configuration.maximumPendingOutput > configuration.maximumFrameLength,
            "the pending-output cap must exceed the largest frame")
        self.configuration = configuration
        self.loop = loop
        self.log = log
        fanOut = FanOut(
            configuration: configuration, log: log,
            schedule: { [unowned loop] delay, body in loop.schedule(after: delay, body) })
        admission = RelayAdmission(limits: configuration.limits, fanOut: fanOut)
        link = RelayLink(configuration: configuration, admission: admission, executor: handshakes, log: log)
        directory = RoomDirectory()
        bus = LocalBus(directory: directory, fanOut: fanOut, log: log)
        if let cluster {
            clusterBus = ClusterBus(
                engine: cluster, relay: self, directory: directory, fanOut: fanOut, loop: loop,
                timings: configuration.cluster, log: log)
        }
        loop.addIterationEndHandler { [weak self] in self?.endIteration() }
        scheduleTick()
    }

    /// Connections open, registered or not.
    public var connectionCount: Int { connections.count }
    /// Registered members across all rooms.
    public var memberCount: Int { directory.memberCount }
    /// Joins and leaves so far; a serve loop uses it to decide when to give memory back.
    public var membershipChanges: Int { directory.membershipChanges }

    /// Gives back what bursts left behind: spare fan-out buffers beyond a couple, and (through
    /// the allocator) freed memory. Cheap enough to call every few seconds.
    public func releaseIdleMemory() {
        fanOut.releaseIdleBuffers()
        System.releaseFreeMemory()
    }

    /// Accepts every connection `listener` hands out.
    public func attach(to listener: any Listener) {
        listener.acceptHandler = { [unowned self] connection in self.accept(connection) }
    }

    /// Takes charge of a new connection.
    public func accept(_ connection: any Connection) {
        guard !isShuttingDown else {
            // No link yet, so no frame: busy tells the client to try again later.
            connection.write(LinkAnswer.busy.encoded())
            connection.closeAfterFlushing(timeout: .seconds(1))
            return
        }
        let limits = configuration.limits
        let address = String(RelayLimits.address(ofPeer: connection.peerDescription))
        if let refusal = admission.refusal(forConnectionFrom: address, open: connections.count) {
            refuseAtAccept(connection, refusal)
            return
        }
        nextConnectionSerial &+= 1
        let member = RelayConnection(
            relay: self, connection: connection, maximumFrameLength: configuration.maximumFrameLength,
            address: address, serial: nextConnectionSerial, index: connections.count, limits: limits)
        admission.connectionOpened(from: address)
        connections.append(member)
        connection.handler = member
        if clusterBus?.isHoldingConnections == true { connection.pauseReading() }
        // The timer holds the member strongly and is cancelled once the member registers or closes: a weak
        // reference would give every member a side table, and every retain of it the runtime's slow path.
        member.handshakeTimer = loop.schedule(after: limits.handshakeTimeout) { [weak self, member] in
            member.handshakeTimer = nil
            guard let self, member.name == nil, member.connection.isOpen, !self.isShuttingDown else { return }
            self.admission.refuseHandshakeTimeout(member)
        }
    }

    /// Drops the member's handshake deadline (it registered, or its connection closed), and the timer's hold on it.
    private func cancelHandshakeTimer(of member: RelayConnection) {
        guard let timer = member.handshakeTimer else { return }
        loop.cancel(timer)
        member.handshakeTimer = nil
    }

    /// Refuses a connection over a connection cap: it has no link yet, so it gets the busy answer (try again later)
    /// in the clear, and the reason goes to the log only.
    private func refuseAtAccept(_ connection: any Connection, _ message: String) {
        log("refused connection from \(connection.peerDescription): \(message)")
        connection.write(LinkAnswer.busy.encoded())
        connection.closeAfterFlushing(timeout: .seconds(1))
    }

    private func scheduleTick() {
        loop.schedule(after: configuration.limits.tickInterval) { [weak self] in
            guard let self, !self.isShuttingDown else { return }
            self.admission.tick(self.connections)
            self.scheduleTick()
        }
    }

    /// End of a loop iteration: the fan-out hands every member its range and drops the too slow.
    private func endIteration() {
        fanOut.endIteration { member, reason in leave(member, reason: reason) }
        clusterBus?.endIteration()
    }

    /// Tells every client that the relay is stopping, gives them a moment to receive it, then
    /// calls `completion` once every connection is closed (or the close timeout passed).
    public func shutdown(completion: @escaping () -> Void) {
        guard !isShuttingDown else { return }
        isShuttingDown = true
        shutdownCompletion = completion
        let farewell = RelayFrame.error(code: RelayErrorCode.shuttingDown.rawValue, message: "relay is shutting down")
            .encoded()
        for member in connections {
            if member.isLinked {
                fanOut.sendPrivately(farewell, to: member)
                // In a cluster the members leave now, while the engine still takes their leave scripts.
                if clusterBus != nil { leave(member, reason: "relay is shutting down") }
                member.connection.closeAfterFlushing(timeout: .seconds(1))
            } else if member.connection.isOpen {
                link.answerBusy(member, reason: "relay is shutting down")
            }
        }
        clusterBus?.stop()
        loop.schedule(after: .seconds(2)) { [weak self] in self?.finishShutdown() }
        if connections.isEmpty { finishShutdown() }
    }

    private func finishShutdown() {
        guard let completion = shutdownCompletion else { return }
        shutdownCompletion = nil
        completion()
    }

    // MARK: Called by RelayConnection

    /// Registers `member` from its hello: checks it, then hands it to the bus to claim its name (taking it over from
    /// a stale connection of the same claim key) and join its room.
    func register(
        _ member: RelayConnection, version: UInt16, name: String, room roomName: String, profile: [UInt8],
        claim: NameClaim? = nil
    ) {
        if let (code, message) = directory.refusal(version: version, name: name, room: roomName) {
            refuse(member, code, message)
            return
        }
        if let clusterBus {
            clusterBus.join(member, name: name, room: roomName, profile: profile, claim: claim)
            return
        }
        bus.join(member, name: name, room: roomName, profile: profile, claim: claim)
        if member.name != nil { cancelHandshakeTimer(of: member) }
    }

    /// A member's welcome was queued (a cluster bus welcomes later than the hello).
    func memberRegistered(_ member: RelayConnection) {
        cancelHandshakeTimer(of: member)
    }

    /// Sends every linked connection error `code` with `message`, takes it out of its room and closes it; returns
    /// how many connections, and how many of them were members of a room (a cluster relay that lost its cluster).
    func closeMembers(_ code: RelayErrorCode, _ message: String) -> (connections: Int, members: Int) {
        let frame = RelayFrame.error(code: code.rawValue, message: message).encoded()
        var closed = 0
        var members = 0
        for member in connections where member.isLinked && member.connection.isOpen {
            if member.room != nil { members += 1 }
            member.willClose(reason: message)
            fanOut.sendPrivately(frame, to: member)
            leave(member, reason: message)
            member.connection.closeAfterFlushing(timeout: configuration.closeTimeout)
            closed += 1
        }
        return (closed, members)
    }

    /// Stops reading every open connection (the cluster's engine is slow to take commands); returns how many.
    func pauseReadingConnections() -> Int {
        var paused = 0
        for member in connections where member.connection.isOpen {
            member.connection.pauseReading()
            paused += 1
        }
        return paused
    }

    /// Reads every connection again.
    func resumeReadingConnections() {
        for member in connections { member.connection.resumeReading() }
    }

    func publish(_ payload: UnsafeRawBufferPointer, from member: RelayConnection) {
        if let clusterBus {
            clusterBus.publish(payload, from: member)
        } else {
            bus.publish(payload, from: member)
        }
    }

    func direct(_ payload: ReceivedPayload, to recipientName: String, from member: RelayConnection) {
        if let clusterBus {
            clusterBus.direct(payload, to: recipientName, from: member)
        } else {
            bus.direct(payload, to: recipientName, from: member)
        }
    }

    /// Delivers one payload to several members of the sender's room, encoded once. Names not in
    /// the room are skipped (they may have just left); the names are distinct (checked by the
    /// caller).
    func multicast(_ payload: ReceivedPayload, to recipients: [String], from member: RelayConnection) {
        if let clusterBus {
            clusterBus.multicast(payload, to: recipients, from: member)
        } else {
            bus.multicast(payload, to: recipients, from: member)
        }
    }

    /// Sends `member` an error and closes it, after taking it out of its room. (Refusals happen once its link is up:
    /// before that it only ever gets a handshake answer.)
    func refuse(_ member: RelayConnection, _ code: RelayErrorCode, _ message: String) {
        log("refused \(member.name ?? "unregistered client") from \(member.connection.peerDescription): \(message)")
        guard member.isLinked else {
            link.end(member, reason: message)
            return
        }
        fanOut.sendPrivately(RelayFrame.error(code: code.rawValue, message: message).encoded(), to: member)
        leave(member, reason: message)
        member.connection.closeAfterFlushing(timeout: configuration.closeTimeout)
    }

    /// Takes a member out of its room and tells the others; does nothing if it is not in one.
    /// Called on bye (before the connection has finished closing) and when a connection closes.
    /// A member that leaves in order first gets what the room sent before it left.
    func leave(_ member: RelayConnection, reason: String) {
        if let clusterBus {
            clusterBus.leave(member, reason: reason)
        } else {
            bus.leave(member, reason: reason)
        }
    }

    func connectionClosed(_ member: RelayConnection, reason: String) {
        cancelHandshakeTimer(of: member)
        leave(member, reason: reason)
        member.releaseFrameInProgress()
        admission.connectionClosed(from: member.address)
        let index = member.index
        if index < connections.count, connections[index] === member {
            let last = connections.removeLast()
            if last !== member {
                connections[index] = last
                last.move(to: index)
            }
        }
        if isShuttingDown && connections.isEmpty { finishShutdown() }
    }

    func sendPong(_ token: UInt64, to member: RelayConnection) {
        if let clusterBus {
            clusterBus.pong(token, to: member)
        } else {
            bus.pong(token, to: member)
        }
    }

    // MARK: Large frames

    /// Frames at least this long (prefix included) are read into a buffer of their own, so that a
    /// direct or multicast payload (a file chunk) goes out from where it was read.
    static let largeFrameThreshold = FrameReader.largeFrameThreshold
    /// Room left in front of a large frame for the deliver header that replaces its own.
    static let largeFrameHeadroom = 64
    /// Room after a large frame for the start of the next one, read together with its end.
    static let largeFrameSlack = FrameReader.largeFrameSlack
    /// The largest large-frame buffer kept for reuse.
    static let largestSpareLargeFrameBuffer = 1024 * 1024 + largeFrameHeadroom + largeFrameSlack

    /// The capacity of the buffer that a large frame of `frameLength` bytes is read into.
    static func largeFrameCapacity(frameLength: Int) -> Int {
        largeFrameHeadroom + frameLength + largeFrameSlack
    }

    /// Makes network text safe for a log line: control characters become `\u{…}` escapes.
    static func printable(_ text: String) -> String {
        TerminalText.escapeControls(String(text.prefix(64)))
    }
}
