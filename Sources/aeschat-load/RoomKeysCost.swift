#if canImport(Glibc)
    import Glibc
#endif

import AESChatCore
import AESChatCrypto

/// The costs of an automatic-key room of N members in one process (issue 15 §2; docs/BENCHMARKS.md): every member
/// runs the real ``AutomaticKeySecurity`` (real keys, signatures and ciphers); the relay's part is done in memory as it
/// does it (a publish goes to every other member, a direct to its one recipient, a leave is announced to all), and
/// the bytes through it are counted as the deliver frames it would write. Measured, each in CPU time of this thread:
/// - a newcomer joining a room of N − 1 until every member shows the same room code: the newcomer's own CPU and
///   the whole room's;
/// - one member leaving, then one room message from each of 10 active senders, until all are read: the room's CPU,
///   and the frames and bytes the relay delivers;
/// - a member's cost per received group message.
/// The room itself is built before any timer (each pair of members verifies and agrees keys once: N² work), with the
/// members' work shared out over `--threads` threads (``Room/joinSharingWork(_:threads:)``); the measured join,
/// leave and messages run on one thread. The room codes must agree and no member be shown a warning (a missing,
/// replayed or tampered message) after each phase, or the run fails.
enum RoomKeysCost {
    private final class Member {
        let name: String
        let security: AutomaticKeySecurity
        var cpuNanoseconds: UInt64 = 0
        var roomCode: String?
        var messagesRead = 0
        init(name: String, security: AutomaticKeySecurity) {
            self.name = name
            self.security = security
        }

        /// Runs `body`, one of this member's calls, on the calling thread, and adds its CPU to the member's.
        func perform(_ body: () -> [SecurityAction]) -> [SecurityAction] {
            let start = Measure.threadCPUNanoseconds()
            let actions = body()
            cpuNanoseconds += Measure.threadCPUNanoseconds() - start
            return actions
        }
    }

    private struct Delivery {
        let to: Member
        let from: String
        let payload: [UInt8]
        let isDirect: Bool
    }

    private final class Room {
        var members: [String: Member] = [:]
        var order: [String] = []
        var queue: [Delivery] = []
        var frames = 0
        var bytes = 0
        var groupReceiveNanoseconds: UInt64 = 0
        var groupReceptions = 0
        /// Set, the next group delivery is lost instead of queued (a relay fault, for the test that the run's checks
        /// catch it).
        var losesNextGroupDelivery = false
        /// Warnings the members were shown (a tampered, missing or replayed message, …): none in a sound room.
        var warnings = 0
        var firstWarning: String?

        /// Runs `body` as `member`'s work: its CPU is added to the member, its actions routed.
        func run(_ member: Member, _ body: () -> [SecurityAction]) {
            route(member.perform(body), from: member)
        }

        func route(_ actions: [SecurityAction], from member: Member) {
            for action in actions {
                switch action {
                case .publish(let envelope):
                    for name in order where name != member.name {
                        deliver(Delivery(to: members[name]!, from: member.name, payload: envelope, isDirect: false))
                    }
                case .direct(let envelope, let to):
                    if let recipient = members[to] {
                        deliver(Delivery(to: recipient, from: member.name, payload: envelope, isDirect: true))
                    }
                case .show(.roomCode(let code, _, _)):
                    member.roomCode = code
                case .show(.warning(let kind, _, let message)):
                    warnings += 1
                    if firstWarning == nil { firstWarning = "\(member.name) was warned (\(kind)): \(message)" }
                case .deliver(let content, _, _):
                    if case .identified = content { member.messagesRead += 1 }
                case .show, .release:
                    break
                }
            }
        }

        private func deliver(_ delivery: Delivery) {
            if losesNextGroupDelivery && !delivery.isDirect {
                losesNextGroupDelivery = false
                return
            }
            // deliver frame: length u32, type u8, from str8, flags u8, payload.
            frames += 1
            bytes += 4 + 1 + 1 + delivery.from.utf8.count + 1 + delivery.payload.count
            queue.append(delivery)
        }

        /// Hands `delivery` to its member; returns what it did and its CPU.
        private static func receive(_ delivery: Delivery) -> (actions: [SecurityAction], nanoseconds: UInt64) {
            let start = Measure.threadCPUNanoseconds()
            let actions = delivery.to.security.receive(
                delivery.payload[...], from: delivery.from, isDirect: delivery.isDirect)
            let spent = Measure.threadCPUNanoseconds() - start
            delivery.to.cpuNanoseconds += spent
            return (actions, spent)
        }

        private func routeReceived(_ delivery: Delivery, _ result: (actions: [SecurityAction], nanoseconds: UInt64)) {
            if !delivery.isDirect {
                groupReceiveNanoseconds += result.nanoseconds
                groupReceptions += 1
            }
            route(result.actions, from: delivery.to)
        }

        func drain() {
            var next = 0
            while next < queue.count {
                let delivery = queue[next]
                next += 1
                routeReceived(delivery, Self.receive(delivery))
            }
            queue.removeAll()
        }

        /// ``drain()`` with the deliveries shared out over `threads` threads, one member's deliveries in one piece
        /// in their order, and what they cause routed in the order ``drain()`` routes it: each member receives the
        /// same payloads in the same order, and what they send is queued in the same order. (Deliveries queued by
        /// routing come after every delivery already queued, in both.)
        func drainSharingWork(threads: Int) {
            while !queue.isEmpty {
                let wave = queue
                queue.removeAll()
                var pieceOfMember: [ObjectIdentifier: Int] = [:]
                var indices: [[Int]] = []
                for (index, delivery) in wave.enumerated() {
                    let member = ObjectIdentifier(delivery.to)
                    if let piece = pieceOfMember[member] {
                        indices[piece].append(index)
                    } else {
                        pieceOfMember[member] = indices.count
                        indices.append([index])
                    }
                }
                let done = SharedWork(
                    indices.map { piece in { piece.map { (index: $0, result: Self.receive(wave[$0])) } } }
                ).run(threads: threads)
                var results: [(actions: [SecurityAction], nanoseconds: UInt64)?] = Array(
                    repeating: nil, count: wave.count)
                for received in done.joined() { results[received.index] = received.result }
                for (delivery, result) in zip(wave, results) { routeReceived(delivery, result!) }
            }
        }

        private func newMember(_ name: String) throws -> Member {
            Member(
                name: name,
                security: try AutomaticKeySecurity(
                    identity: Ed25519PrivateKey(), name: name, room: "bench", relay: "bench:1", knownPeers: KnownPeers()
                ))
        }

        /// `name` joins: the relay's welcome to it, then a joined to every other member.
        func join(_ name: String) throws -> Member {
            let member = try newMember(name)
            let present = order.map { MemberEntry(name: $0, profile: members[$0]!.security.profile) }
            members[name] = member
            order.append(name)
            run(member) { member.security.didRegister(members: present) }
            let entry = MemberEntry(name: name, profile: member.security.profile)
            for other in order.dropLast() {
                let existing = members[other]!
                run(existing) { existing.security.memberJoined(entry) }
            }
            drain()
            return member
        }

        /// The join of ``join(_:)`` — the same calls of every member, in the same order per member, and the same
        /// deliveries — with the members' work shared out over `threads` threads: the newcomer's welcome and each
        /// other member's joined touch only that member (its own ``AutomaticKeySecurity`` and ``KnownPeers``;
        /// libgcrypt is thread-safe once initialised), and so do the deliveries to different members. The actions
        /// are routed afterwards in the order ``join(_:)`` routes them. For building the room: the members' CPU is
        /// summed over threads.
        func joinSharingWork(_ name: String, threads: Int) throws {
            let member = try newMember(name)
            let present = order.map { MemberEntry(name: $0, profile: members[$0]!.security.profile) }
            let entry = MemberEntry(name: name, profile: member.security.profile)
            let existing = order.map { members[$0]! }
            members[name] = member
            order.append(name)
            // The newcomer's piece (admitting everyone) is the longest: first, so that it starts at once.
            let calls: [(member: Member, call: () -> [SecurityAction])] =
                [(member, { member.security.didRegister(members: present) })]
                + existing.map { other in (other, { other.security.memberJoined(entry) }) }
            let actions = SharedWork(calls.map { call in { call.member.perform(call.call) } }).run(threads: threads)
            for (call, actions) in zip(calls, actions) { route(actions, from: call.member) }
            drainSharingWork(threads: threads)
        }

        func leave(_ name: String) {
            order.removeAll { $0 == name }
            members[name] = nil
            for other in order {
                let member = members[other]!
                run(member) { member.security.memberLeft(name) }
            }
        }

        func checkNoWarnings(during phase: String) throws {
            guard let firstWarning else { return }
            throw CostError.unsound("room-keys: \(warnings) warnings during \(phase); the first: \(firstWarning)")
        }

        var totalCPU: UInt64 { members.values.reduce(0) { $0 + $1.cpuNanoseconds } }
        func resetCounters() {
            for member in members.values { member.cpuNanoseconds = 0 }
            frames = 0
            bytes = 0
            groupReceiveNanoseconds = 0
            groupReceptions = 0
        }
        var consistent: Bool { Set(members.values.map(\.roomCode)).count == 1 && members.values.first?.roomCode != nil }
    }

    /// Measures a room of `members` (at least 3): after the leave, min(10, members − 1) of them send; the figures as
    /// JSON fields.
    /// - Parameters:
    ///   - count: the members, the newcomer included.
    ///   - threads: threads that build the room (at least 1); the measured phases run on the calling thread.
    ///   - progress: told how far the build is, for long builds.
    ///   - losingOneDelivery: the in-memory relay loses the first group message after the leave, so that the run must
    ///     fail (`AESCHAT_LOAD_LOSE_DELIVERY=1`, for the test of the tool's checks and exit status).
    /// - Throws: ``CostError/usage(_:)`` for fewer than 3 members or no thread; ``CostError/unsound(_:)`` if the
    ///   members' room codes differ, a member was warned, or a message was not read.
    static func measure(
        members count: Int, threads: Int, losingOneDelivery: Bool = false, progress: (String) -> Void = { _ in }
    ) throws -> [(String, String)] {
        guard count >= 3 else { throw CostError.usage("room-keys: --members must be at least 3") }
        guard threads >= 1 else { throw CostError.usage("room-keys: --threads must be at least 1") }
        let senders = min(10, count - 1)
        let room = Room()
        let buildStart = Measure.nanoseconds()
        let buildCPUStart = Measure.ownCPUSeconds()
        let tenth = max(1, (count - 1) / 10)
        for index in 0..<(count - 1) {
            try room.joinSharingWork("m\(index)", threads: threads)
            if count >= 300, (index + 1) % tenth == 0 {
                let seconds = Double(Measure.nanoseconds() - buildStart) / 1e9
                progress("room-keys: \(index + 1) of \(count - 1) members in the room (\(fixed(seconds, 0)) s)")
            }
        }
        guard room.consistent else { throw CostError.unsound("room-keys: the room codes differ after the build") }
        try room.checkNoWarnings(during: "the build")
        let buildSeconds = Double(Measure.nanoseconds() - buildStart) / 1e9
        let buildCPUSeconds = Measure.ownCPUSeconds() - buildCPUStart
        let residentBytes = Measure.residentBytes(pid: getpid()) ?? 0

        room.resetCounters()
        let newcomer = try room.join("newcomer")
        guard room.consistent else { throw CostError.unsound("room-keys: the room codes differ after the join") }
        try room.checkNoWarnings(during: "the join")
        let joinNewcomer = Double(newcomer.cpuNanoseconds) / 1e6
        let joinRoom = Double(room.totalCPU) / 1e6
        let joinBytes = room.bytes

        room.resetCounters()
        room.leave("m0")
        room.losesNextGroupDelivery = losingOneDelivery
        let text = String(repeating: "x", count: 100)
        let active = Array(room.order.suffix(senders))
        for (number, name) in active.enumerated() {
            let sender = room.members[name]!
            room.run(sender) { sender.security.sendToRoom(.identified(id: UInt64(number), .text(text))) }
        }
        let readBefore = room.members.values.reduce(0) { $0 + $1.messagesRead }
        room.drain()
        let read = room.members.values.reduce(0) { $0 + $1.messagesRead } - readBefore
        let expected = senders * (room.order.count - 1)
        guard read == expected else { throw CostError.unsound("room-keys: \(read) of \(expected) messages read") }
        guard room.consistent else { throw CostError.unsound("room-keys: the room codes differ after the leave") }
        try room.checkNoWarnings(during: "the leave and the messages")
        return [
            ("workload", "\"room-keys\""), ("members", "\(count)"), ("senders", "\(senders)"),
            ("build_threads", "\(threads)"), ("build_seconds", fixed(buildSeconds, 1)),
            ("build_cpu_seconds", fixed(buildCPUSeconds, 1)), ("resident_mb_after_build", "\(residentBytes >> 20)"),
            ("join_newcomer_cpu_ms", fixed(joinNewcomer, 1)), ("join_room_cpu_ms", fixed(joinRoom, 1)),
            ("join_relay_bytes", "\(joinBytes)"),
            ("leave_room_cpu_ms", fixed(Double(room.totalCPU) / 1e6, 1)),
            ("leave_relay_frames", "\(room.frames)"), ("leave_relay_bytes", "\(room.bytes)"),
            ("leave_messages_read", "\(read)"),
            (
                "us_per_received_message",
                fixed(Double(room.groupReceiveNanoseconds) / 1e3 / Double(max(1, room.groupReceptions)), 1)
            ),
        ]
    }
}
