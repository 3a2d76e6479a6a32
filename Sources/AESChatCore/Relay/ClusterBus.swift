import AESChatCrypto
import AESChatNames

/// The ``RoomBus`` of a relay in a cluster: rooms are shared with other relays through a ``ClusterEngine``, which puts
/// every room event in one order (issue 16; the design is `cluster.md` §3.3–3.5).
///
/// - Every room event (`joined`, `left`, a publish) reaches this relay's members **only from the engine's stream**,
///   also on the relay it came from, so that every member of a room, on every relay, sees one order. A direct or
///   multicast goes to the inbox of each recipient's relay, on the same ordered path as the sender's publishes.
/// - A newcomer is welcomed at its own `joined` in the room's stream, with the roster just before it (the mirror's,
///   or the join script's snapshot while the room's mirror bootstraps). Until then its frames are held (copied,
///   bounded) and handled after the welcome.
/// - A name is claimed by the engine's join script, unique across the cluster; a verified claim takes a name over
///   from a holder on another relay (the holder's relay refuses it with `name-reclaimed` when the `left` arrives).
/// - A pong waits until a fence (the heartbeat script, which fails once this incarnation is reaped) sent after every
///   command the member caused before its ping has succeeded: those commands were executed while the incarnation was
///   still registered, so before any `left` a reaper publishes for its members, and every relay delivers them. (An
///   acknowledgement alone is not enough: a relay that Redis cut and the others reaped may still have its PUBLISH
///   executed, and dropped by every receiver; its pong would confirm a line nobody got.)
/// - A publish or direct is delivered only while its sender is in the mirror with the incarnation it came from,
///   so nothing a reaped relay sends after its members' `left` reaches anyone.
/// - Losing the engine ends the incarnation: every member gets error 7 (`lost contact with the cluster`) and is
///   closed, the mirrors go, and the engine is started again (a new incarnation) after a backoff.
/// - Every heartbeat interval: the heartbeat script, a ping to the relay's own inbox, and the reaper (dead relays'
///   members announced `left`, in chunks). No heartbeat reply or returned ping for 60 % of the dead-after time ends
///   the incarnation, before the others would reap it.
///
/// Owned by ``Relay``; confined to the event loop's thread.
final class ClusterBus: RoomBus, ClusterEngineDelegate {
    private let engine: any ClusterEngine
    private unowned let relay: Relay
    private let directory: RoomDirectory
    private let fanOut: FanOut
    private let loop: any EventLoop
    private let timings: ClusterTimings
    private let log: (String) -> Void
    /// The current incarnation, while serving.
    private(set) var incarnation: String?
    private var mirrors: [String: RoomMirror] = [:]
    private var pending: [UInt64: PendingJoin] = [:]
    private var nextTicket: UInt64 = 0
    /// Every command up to this number was executed while this incarnation was registered (a fence after it passed).
    private var fencedThrough: UInt64 = 0
    /// The sequence number of the last fence sent.
    private var fenceSentThrough: UInt64 = 0
    /// A held pong waits for a fence not sent yet: one goes out at the end of the loop iteration.
    private var fenceWanted = false
    /// Whether the relay stopped reading its connections because the engine's queue passed its high-water mark.
    private(set) var isHoldingConnections = false
    /// Pongs waiting for their member's commands: by sequence number, ascending.
    private var heldPongs: [(sequence: UInt64, member: RelayConnection, token: UInt64)] = []
    /// Where publish and direct messages are encoded, reused.
    private var scratch: [UInt8] = []
    /// Counts incarnations, so that a timer of an ended one does nothing.
    private var generation = 0
    private var ticksSinceHeartbeat = 0
    private var ticksSincePing = 0
    private var pingCounter: UInt64 = 0
    /// Dead relays being reaped, with the members announced `left` so far.
    private var reaping: [String: Int] = [:]
    private var restartDelay: Duration
    private var isStopped = false
    /// Messages dropped because their sender was not (or no longer) a member from that relay.
    private(set) var droppedFromStrangers = 0

    init(
        engine: any ClusterEngine, relay: Relay, directory: RoomDirectory, fanOut: FanOut, loop: any EventLoop,
        timings: ClusterTimings, log: @escaping (String) -> Void
    ) {
        self.engine = engine
        self.relay = relay
        self.directory = directory
        self.fanOut = fanOut
        self.loop = loop
        self.timings = timings
        self.log = log
        restartDelay = timings.restartDelay
        engine.delegate = self
        engine.start()
    }

    /// Ends the incarnation on purpose (the relay shuts down): after the leave scripts of its members.
    func stop() {
        isStopped = true
        generation += 1
        engine.stop()
        incarnation = nil
    }

    // MARK: RoomBus

    func join(_ member: RelayConnection, name: String, room roomName: String, profile: [UInt8], claim: NameClaim?) {
        guard incarnation != nil else {
            member.refuse(.shuttingDown, "lost contact with the cluster; try again shortly", reason: "no cluster")
            return
        }
        if let holder = directory.member(named: name) {
            guard directory.takeOver(name, from: holder, by: member, claim: claim, room: roomName, log: log) else {
                return
            }
        }
        guard directory.claim(name, for: member, claimKey: claim?.key) else {
            member.refuse(.nameTaken, "the name '\(name)' is already in use on this relay; choose another with --name")
            return
        }
        nextTicket += 1
        let join = PendingJoin(
            member: member, name: name, room: roomName, profile: profile, claim: claim, ticket: nextTicket)
        pending[join.ticket] = join
        member.clusterTicket = join.ticket
        member.holdFrames(limit: timings.heldInputLimit)
        let mirror = mirror(named: roomName)
        mirror.pendingCount += 1
        cancelLinger(mirror)
        switch mirror.state {
        case .subscribing: mirror.waiting.append(join)
        case .bootstrapping, .live: send(join, to: mirror)
        }
    }

    /// The mirror of `roomName`, subscribing to the room if it has none.
    private func mirror(named roomName: String) -> RoomMirror {
        if let mirror = mirrors[roomName] { return mirror }
        let mirror = RoomMirror(name: roomName)
        mirrors[roomName] = mirror
        let generation = generation
        engine.subscribe(room: roomName) { [weak self, mirror] in
            guard let self, self.generation == generation, self.mirrors[roomName] === mirror else { return }
            self.subscribed(mirror)
        }
        return mirror
    }

    private func subscribed(_ mirror: RoomMirror) {
        guard mirror.state == .subscribing else { return }
        mirror.state = .bootstrapping
        let waiting = mirror.waiting
        mirror.waiting.removeAll()
        for join in waiting { send(join, to: mirror) }
        dropIfIdle(mirror)
    }

    /// Sends the join script of `join`, asking for a snapshot unless the room is live.
    private func send(_ join: PendingJoin, to mirror: RoomMirror, replacing: ClusterNameHolder? = nil) {
        guard let incarnation else { return }
        join.isSent = true
        let holder = ClusterNameHolder(
            incarnation: incarnation, ticket: join.ticket, room: join.room, claimKey: join.claim?.key)
        var replacedMessage: [UInt8] = []
        if let replacing {
            replacedMessage = ClusterMessage.left(
                origin: replacing.incarnation, room: replacing.room, name: join.name, cause: .reclaimed)
        }
        let request = ClusterJoinRequest(
            name: join.name, room: join.room, holder: holder,
            rosterValue: ClusterRoster.value(incarnation: incarnation, profile: join.profile),
            message: ClusterMessage.joined(
                origin: incarnation, room: join.room, name: join.name, ticket: join.ticket, profile: join.profile),
            wantsSnapshot: mirror.state != .live, replacing: replacing, replacedMessage: replacedMessage)
        let generation = generation
        join.member.clusterSequence = engine.join(request) { [weak self, join] reply in
            guard let self, self.generation == generation else { return }
            self.joinReplied(join, reply)
        }
    }

    private func joinReplied(_ join: PendingJoin, _ reply: ClusterJoinReply) {
        switch reply {
        case .taken(let value):
            guard pending[join.ticket] === join else { return }
            if let holder = ClusterNameHolder(value), !join.triedTakeover, let claim = join.claim,
                let heldKey = holder.claimKey, constantTimeEquals(heldKey, claim.key),
                let hash = join.member.handshakeHash, NameClaimKey.verify(claim, handshakeHash: hash, name: join.name),
                let mirror = mirrors[join.room]
            {
                join.triedTakeover = true
                log(
                    "\(join.name) reclaimed from relay \(holder.incarnation) by \(join.member.connection.peerDescription)"
                )
                send(join, to: mirror, replacing: holder)
                return
            }
            let place = ClusterNameHolder(value)?.room == join.room ? "in \(join.room)" : "on another relay"
            forget(join)
            join.member.refuse(
                .nameTaken,
                "the name '\(join.name)' is already in use \(place) of this cluster; choose another with --name",
                reason: "name taken")
        case .joined(let snapshot):
            guard let snapshot, let mirror = mirrors[join.room], mirror.state == .bootstrapping,
                mirror.snapshot == nil
            else { return }
            var entries: [String: RoomMirror.Entry] = [:]
            for field in snapshot {
                guard Names.isValidMemberName(field.name), let (home, profile) = ClusterRoster.parse(field.value) else {
                    lose("the cluster's roster of \(join.room) holds a malformed entry")
                    return
                }
                entries[field.name] = RoomMirror.Entry(incarnation: home, profile: profile)
            }
            mirror.snapshot = (join.ticket, entries)
            let queue = mirror.queue
            mirror.queue.removeAll()
            mirror.queuedBytes = 0
            for message in queue {
                message.withUnsafeBytes { handle($0, on: .room) }
                guard incarnation != nil else { return }
            }
        }
    }

    /// Forgets a pending join (refused, or its member gone), freeing the name on this relay.
    private func forget(_ join: PendingJoin) {
        pending[join.ticket] = nil
        if directory.member(named: join.name) === join.member { directory.unclaim(join.name) }
        guard let mirror = mirrors[join.room] else { return }
        mirror.waiting.removeAll { $0 === join }
        mirror.pendingCount -= 1
        dropIfIdle(mirror)
    }

    /// Decides whether `member` takes `name` over from `holder` on this relay, as ``LocalBus`` does; the holder is
    /// refused (`name-reclaimed`), its leave script goes out before `member`'s join script.
    func leave(_ member: RelayConnection, reason: String) {
        if let join = pending[member.clusterTicket], join.member === member {
            forget(join)
            if join.isSent, let incarnation {
                sendLeave(
                    name: join.name, ticket: join.ticket, room: join.room, claimKey: join.claim?.key,
                    incarnation: incarnation, for: member)
            }
            return
        }
        guard let name = member.name, let room = member.room else { return }
        if !member.isTooSlow { fanOut.handOver(to: member) }
        let claimKey = directory.claimKey(of: name)
        directory.remove(member, named: name, from: room)
        if !member.isReleasedByCluster, let incarnation {
            sendLeave(
                name: name, ticket: member.clusterTicket, room: room.name, claimKey: claimKey,
                incarnation: incarnation, for: member)
        }
        log("\(name) left \(room.name) (\(reason)) (\(room.members.count) on this relay)")
        if let mirror = mirrors[room.name] { dropIfIdle(mirror) }
    }

    private func sendLeave(
        name: String, ticket: UInt64, room: String, claimKey: [UInt8]?, incarnation: String,
        for member: RelayConnection
    ) {
        let holder = ClusterNameHolder(incarnation: incarnation, ticket: ticket, room: room, claimKey: claimKey)
        let message = ClusterMessage.left(origin: incarnation, room: room, name: name, cause: .left)
        member.clusterSequence = message.withUnsafeBytes { engine.leave(name: name, holder: holder, message: $0) }
    }

    func publish(_ payload: UnsafeRawBufferPointer, from member: RelayConnection) {
        guard let incarnation, let room = member.room, let name = member.name, let mirror = mirrors[room.name],
            mirror.count > 1
        else { return }
        ClusterMessage.writePublish(origin: incarnation, room: room.name, from: name, payload: payload, into: &scratch)
        member.clusterSequence = scratch.withUnsafeBytes { engine.publish(room: room.name, message: $0) }
        checkEngineBacklog()
    }

    /// Stops reading every connection once the commands queued toward the engine pass the high-water mark: members
    /// are held back by TCP flow control until the queue drains (``endIteration()`` resumes them).
    private func checkEngineBacklog() {
        guard !isHoldingConnections else { return }
        let queued = engine.pendingOutputByteCount
        guard queued > timings.engineOutputHighWater else { return }
        isHoldingConnections = true
        let paused = relay.pauseReadingConnections()
        log(
            "the cluster is slow to take commands (\(queued) bytes queued): stopped reading "
                + "\(Self.count(paused, "connection")) until it drains to \(timings.engineOutputLowWater) bytes")
    }

    func direct(_ payload: ReceivedPayload, to recipientName: String, from member: RelayConnection) {
        guard incarnation != nil, let room = member.room, let name = member.name, let mirror = mirrors[room.name]
        else { return }
        guard recipientName != name, let entry = mirror.entry(recipientName) else {
            fanOut.sendPrivately(
                RelayFrame.error(
                    code: RelayErrorCode.unknownRecipient.rawValue,
                    message: "no member named '\(Relay.printable(recipientName))' in \(room.name)"
                ).encoded(), to: member)
            return
        }
        sendDirect(payload.bytes, flags: 1, to: [recipientName], at: entry.incarnation, from: member)
    }

    func multicast(_ payload: ReceivedPayload, to recipients: [String], from member: RelayConnection) {
        guard incarnation != nil, let room = member.room, let name = member.name, let mirror = mirrors[room.name]
        else { return }
        var byRelay: [String: [String]] = [:]
        var relays: [String] = []
        for recipient in recipients where recipient != name {
            guard let entry = mirror.entry(recipient) else { continue }
            if byRelay[entry.incarnation] == nil { relays.append(entry.incarnation) }
            byRelay[entry.incarnation, default: []].append(recipient)
        }
        for target in relays {
            sendDirect(payload.bytes, flags: 2, to: byRelay[target]!, at: target, from: member)
        }
    }

    private func sendDirect(
        _ payload: UnsafeRawBufferPointer, flags: UInt8, to names: [String], at target: String,
        from member: RelayConnection
    ) {
        guard let incarnation, let room = member.room, let name = member.name else { return }
        ClusterMessage.writeDirect(
            origin: incarnation, room: room.name, from: name, to: names, flags: flags, payload: payload,
            into: &scratch)
        member.clusterSequence = scratch.withUnsafeBytes { engine.send(toRelay: target, message: $0) }
        checkEngineBacklog()
    }

    func pong(_ token: UInt64, to member: RelayConnection) {
        guard member.clusterSequence > fencedThrough else {
            fanOut.sendPrivately(RelayFrame.pong(token: token).encoded(), to: member)
            return
        }
        heldPongs.append((member.clusterSequence, member, token))
        if fenceSentThrough < member.clusterSequence { fenceWanted = true }
    }

    /// End of a loop iteration: one fence for every pong held in it; reading resumes once the engine's queue drained
    /// to the low-water mark.
    func endIteration() {
        if fenceWanted {
            fenceWanted = false
            sendFence()
        }
        if !isHoldingConnections {
            checkEngineBacklog()
        } else if engine.pendingOutputByteCount <= timings.engineOutputLowWater {
            stopHoldingConnections()
        }
    }

    private func stopHoldingConnections() {
        guard isHoldingConnections else { return }
        isHoldingConnections = false
        relay.resumeReadingConnections()
        log("the cluster takes commands again (\(engine.pendingOutputByteCount) bytes queued): reading connections")
    }

    /// Sends the heartbeat script: its success proves that every command before it was executed while this
    /// incarnation was registered; it also refreshes the heartbeat.
    private func sendFence() {
        let generation = generation
        var number: UInt64 = 0
        number = engine.heartbeat { [weak self] in
            guard let self, self.generation == generation else { return }
            self.ticksSinceHeartbeat = 0
            self.fenced(through: number)
        }
        fenceSentThrough = max(fenceSentThrough, number)
    }

    /// Releases the pongs whose commands a fence covered.
    private func fenced(through sequence: UInt64) {
        fencedThrough = max(fencedThrough, sequence)
        guard !heldPongs.isEmpty else { return }
        var waiting: [(sequence: UInt64, member: RelayConnection, token: UInt64)] = []
        for held in heldPongs {
            if held.sequence <= fencedThrough {
                fanOut.sendPrivately(RelayFrame.pong(token: held.token).encoded(), to: held.member)
            } else {
                waiting.append(held)
            }
        }
        heldPongs = waiting
    }

    // MARK: ClusterEngineDelegate

    func engineDidStart(incarnation: String, census: ClusterCensus) {
        guard !isStopped else {
            engine.stop()
            return
        }
        self.incarnation = incarnation
        fencedThrough = 0
        fenceSentThrough = 0
        fenceWanted = false
        ticksSinceHeartbeat = 0
        ticksSincePing = 0
        restartDelay = timings.restartDelay
        log(
            "joined the cluster as relay \(incarnation): \(Self.count(census.relays, "relay")) alive, "
                + "\(Self.count(census.members, "member")) in \(Self.count(census.rooms, "room"))")
        let generation = generation
        loop.schedule(after: timings.heartbeatInterval) { [weak self] in self?.tick(generation) }
    }

    func engineDidAcknowledge(through sequence: UInt64) {
        // Pongs wait for a fence, which is acknowledged after the commands before it (see ``pong(_:to:)``).
    }

    func engineDidLose(reason: String) {
        endIncarnation(reason)
    }

    func engine(didReceive message: UnsafeRawBufferPointer, on channel: ClusterChannel) {
        guard incarnation != nil else { return }
        handle(message, on: channel)
    }

    // MARK: The stream

    private func handle(_ bytes: UnsafeRawBufferPointer, on channel: ClusterChannel) {
        guard let incarnation else { return }
        let message: ClusterMessage.Parsed
        do {
            message = try ClusterMessage.parse(bytes)
        } catch {
            lose("a malformed message from the cluster: \(error)")
            return
        }
        switch message {
        case .ping(let origin, _):
            if origin == incarnation { ticksSincePing = 0 }
            return
        case .joined(_, let room, _, _, _), .left(_, let room, _, _), .publish(_, let room, _, _),
            .direct(_, let room, _, _, _):
            guard let mirror = mirrors[room] else { return }
            switch mirror.state {
            case .subscribing: return
            case .bootstrapping:
                bootstrap(mirror, bytes, message, incarnation: incarnation)
            case .live:
                apply(message, to: mirror, incarnation: incarnation)
            }
        }
    }

    /// A stream message for a room whose roster is not known yet: queued until a snapshot came; then those before
    /// the snapshot's own `joined` are dropped (the snapshot holds their effect) and the room goes live at it.
    private func bootstrap(
        _ mirror: RoomMirror, _ bytes: UnsafeRawBufferPointer, _ message: ClusterMessage.Parsed, incarnation: String
    ) {
        guard let snapshot = mirror.snapshot else {
            mirror.queuedBytes += bytes.count
            guard mirror.queuedBytes <= timings.bootstrapQueueLimit else {
                lose(
                    "the roster of \(mirror.name) did not come before \(timings.bootstrapQueueLimit) bytes of its stream"
                )
                return
            }
            mirror.queue.append(Array(bytes))
            return
        }
        guard case .joined(let origin, _, let name, let ticket, _) = message, origin == incarnation,
            ticket == snapshot.ticket
        else { return }
        mirror.snapshot = nil
        mirror.replace(with: snapshot.entries)
        mirror.state = .live
        if let join = pending[ticket] { admit(join, into: mirror) }
        log("room \(mirror.name) mirrored: \(mirror.count) members across the cluster (\(name) joined)")
    }

    private func apply(_ message: ClusterMessage.Parsed, to mirror: RoomMirror, incarnation: String) {
        let room = directory.existingRoom(named: mirror.name)
        switch message {
        case .joined(let origin, _, let name, let ticket, let profile):
            if origin == incarnation, let join = pending[ticket] {
                mirror.add(name, RoomMirror.Entry(incarnation: origin, profile: profile))
                admit(join, into: mirror)
                return
            }
            mirror.add(name, RoomMirror.Entry(incarnation: origin, profile: profile))
            guard let room else { return }
            fanOut.appendToBatch(
                of: room, length: RelayFrame.joinedLength(name: name, profileCount: profile.count), presence: true
            ) {
                RelayFrame.writeJoined(name: name, profile: profile, into: &$0)
            }
        case .left(let origin, _, let name, let cause):
            guard mirror.entry(name)?.incarnation == origin else { return }
            mirror.remove(name)
            if origin == incarnation, cause != .left, let holder = directory.member(named: name),
                holder.room === room, holder.name == name
            {
                guard cause == .reclaimed else {
                    lose("this relay was reaped by the cluster")
                    return
                }
                holder.isReleasedByCluster = true
                holder.refuse(
                    .nameReclaimed,
                    "your name '\(name)' was reclaimed by a new connection of the same key; this client stops here "
                        + "and does not reconnect",
                    reason: "name reclaimed on another relay")
            }
            if let room {
                fanOut.appendToBatch(of: room, length: RelayFrame.leftLength(name: name), presence: true) {
                    RelayFrame.writeLeft(name: name, into: &$0)
                }
            }
            dropIfIdle(mirror)
        case .publish(let origin, _, let from, let frame):
            guard mirror.entry(from)?.incarnation == origin else {
                droppedFromStrangers += 1
                return
            }
            guard let room else { return }
            var sender: RelayConnection?
            if origin == incarnation, let member = directory.member(named: from), member.room === room {
                sender = member
                fanOut.handOver(to: member)
            }
            fanOut.appendToBatch(of: room, length: frame.count) { $0.write(bytes: frame) }
            sender?.caughtUp(with: room)
        case .direct(let origin, _, let from, let recipients, let frame):
            guard mirror.entry(from)?.incarnation == origin else {
                droppedFromStrangers += 1
                return
            }
            guard let room else { return }
            var sender: RelayConnection?
            if origin == incarnation, let member = directory.member(named: from), member.room === room {
                sender = member
            }
            var outgoing: OutgoingFrame?
            for name in recipients {
                guard let recipient = directory.member(named: name), recipient.room === room, recipient !== sender
                else { continue }
                if outgoing == nil { outgoing = .array(Array(frame)) }
                if let sender {
                    guard fanOut.deliverPrivately(outgoing!, from: sender, to: recipient) else { return }
                } else {
                    fanOut.sendPrivately(outgoing!, to: recipient)
                }
            }
        case .ping:
            return
        }
    }

    /// Welcomes a local member at its own `joined`: the roster just before it, then the others' `joined` for it,
    /// then the frames it sent meanwhile.
    private func admit(_ join: PendingJoin, into mirror: RoomMirror) {
        pending[join.ticket] = nil
        mirror.pendingCount -= 1
        let member = join.member
        let room = directory.room(named: mirror.name)
        member.enter(room, as: join.name, profileLength: UInt16(join.profile.count))
        fanOut.sendPrivately(mirror.welcome(for: join.name), to: member)
        if member.announcesRelayKeys { fanOut.sendPrivately(relay.link.relayKeysFrame, to: member) }
        fanOut.appendToBatch(
            of: room, length: RelayFrame.joinedLength(name: join.name, profileCount: join.profile.count),
            presence: true
        ) {
            RelayFrame.writeJoined(name: join.name, profile: join.profile, into: &$0)
        }
        directory.add(member, to: room, profile: join.profile)
        member.caughtUp(with: room)
        relay.memberRegistered(member)
        log(
            "\(join.name) joined \(mirror.name) from \(member.connection.peerDescription) (\(mirror.count) in room, "
                + "\(room.members.count) on this relay)")
        member.releaseHeldFrames()
    }

    /// Starts dropping a mirror that has no local member and no pending join: at once while it is not live, after
    /// the linger time otherwise.
    private func dropIfIdle(_ mirror: RoomMirror) {
        guard mirror.pendingCount == 0, directory.existingRoom(named: mirror.name)?.members.isEmpty ?? true,
            mirrors[mirror.name] === mirror, mirror.lingerTimer == nil
        else { return }
        guard mirror.state == .live else {
            if mirror.state == .bootstrapping { drop(mirror) }
            return
        }
        mirror.lingerTimer = loop.schedule(after: timings.roomLinger) { [weak self, mirror] in
            mirror.lingerTimer = nil
            guard let self, self.mirrors[mirror.name] === mirror, mirror.pendingCount == 0,
                self.directory.existingRoom(named: mirror.name)?.members.isEmpty ?? true
            else { return }
            self.drop(mirror)
        }
    }

    private func drop(_ mirror: RoomMirror) {
        mirrors[mirror.name] = nil
        engine.unsubscribe(room: mirror.name)
    }

    private func cancelLinger(_ mirror: RoomMirror) {
        guard let timer = mirror.lingerTimer else { return }
        loop.cancel(timer)
        mirror.lingerTimer = nil
    }

    // MARK: Liveness

    private func tick(_ generation: Int) {
        guard generation == self.generation, incarnation != nil else { return }
        ticksSinceHeartbeat += 1
        ticksSincePing += 1
        let silent = timings.heartbeatInterval * max(ticksSinceHeartbeat, ticksSincePing)
        if silent >= timings.deadAfter * 0.6 {
            lose("no heartbeat or ping answered for \(silent)")
            return
        }
        sendFence()
        if let incarnation {
            pingCounter += 1
            ClusterMessage.ping(origin: incarnation, counter: pingCounter).withUnsafeBytes {
                _ = engine.send(toRelay: incarnation, message: $0)
            }
        }
        engine.findDeadRelays(deadAfter: timings.deadAfter) { [weak self] dead in
            guard let self, self.generation == generation else { return }
            for relay in dead where self.reaping[relay] == nil { self.reap(relay, generation) }
        }
        loop.schedule(after: timings.heartbeatInterval) { [weak self] in self?.tick(generation) }
    }

    private func reap(_ dead: String, _ generation: Int) {
        if reaping[dead] == nil { reaping[dead] = 0 }
        engine.reap(relay: dead, limit: timings.reapChunk) { [weak self] reaped, remaining in
            guard let self, self.generation == generation else { return }
            let total = (self.reaping[dead] ?? 0) + reaped
            if remaining > 0 {
                self.reaping[dead] = total
                self.reap(dead, generation)
            } else {
                self.reaping[dead] = nil
                // One line per dead relay, once all its members are announced (by this relay; another reaper racing
                // with it announces the rest, and logs its own count).
                self.log("reaped relay \(dead): \(Self.count(total, "member")) left")
            }
        }
    }

    /// "1 member", "812 members".
    static func count(_ number: Int, _ noun: String) -> String {
        "\(number) \(noun)\(number == 1 ? "" : "s")"
    }

    /// Ends the incarnation because of something the engine did (or failed to do): the engine drops it too.
    private func lose(_ reason: String) {
        guard incarnation != nil else { return }
        engine.abandon(reason: reason)
        endIncarnation(reason)
    }

    /// Ends the incarnation (or a start that failed: Redis still unreachable) and schedules the next attempt, with
    /// the delay doubling up to ``ClusterTimings/maximumRestartDelay``, so that a relay rejoins however long Redis
    /// was away.
    private func endIncarnation(_ reason: String) {
        if incarnation != nil || !pending.isEmpty || !mirrors.isEmpty {
            incarnation = nil
            generation += 1
            stopHoldingConnections()
            let closed = relay.closeMembers(.shuttingDown, "lost contact with the cluster; reconnect")
            log(
                "lost contact with the cluster: \(reason); dropped \(Self.count(closed.members, "member")) "
                    + "(\(Self.count(closed.connections, "connection")) closed)")
            for mirror in mirrors.values { cancelLinger(mirror) }
            mirrors.removeAll()
            pending.removeAll()
            heldPongs.removeAll()
            reaping.removeAll()
        } else if !isStopped {
            log("could not rejoin the cluster: \(reason); trying again in \(restartDelay)")
        }
        guard !isStopped else { return }
        let delay = restartDelay
        restartDelay = min(restartDelay * 2, timings.maximumRestartDelay)
        let generation = generation
        loop.schedule(after: delay) { [weak self] in
            guard let self, self.generation == generation, !self.isStopped else { return }
            self.engine.start()
        }
    }
}
