import AESChatCore
import Foundation

#if os(Linux)
    import CLinux
    import Glibc

    /// Opens many real connections to a relay and drives the benchmark workloads over them.
    ///
    /// One thread, one epoll instance, no per-message allocation: reads land in one shared buffer and
    /// are parsed in place; only a frame cut across two reads is copied, into that member's carry
    /// buffer. Members are kept in flat arrays indexed by member number, which is also the epoll
    /// token. Not thread-safe.
    final class LoadEngine {
        struct Configuration {
            var host = "127.0.0.1"
            var port: UInt16 = 7777
            /// Members in the room, across all engines.
            var members = 1000
            /// This engine's members: `first ..< first + count` (global numbers, which name them).
            var first = 0
            var count = 1000
            var room = "bench"
            var profileBytes = 0
            var payloadBytes = 211
            /// Connections that may be waiting for their welcome at once.
            var joinConcurrency = 256
            /// In the paced phase, poll without sleeping, so that the generator's own wake-ups are not
            /// part of the latencies it measures (it then uses a whole core).
            var busyPoll = false
            /// Give up on any phase after this many seconds, reporting what it was still waiting for.
            var phaseTimeout: Double = 60
            /// Connections a member may open before its welcome: a connection the kernel refused or
            /// reset before the relay registered the member (a listen-queue overflow, say) is
            /// replaced by a new one, as a real client would reconnect.
            var connectAttempts = 5
        }

        /// What went wrong, counted and shown in the results.
        struct Faults {
            var outOfOrder = 0
            var duplicates = 0
            var relayErrors: [UInt16: Int] = [:]
            var unexpectedCloses = 0
            var total: Int { outOfOrder + duplicates + relayErrors.values.reduce(0, +) + unexpectedCloses }
        }

        private enum Phase {
            case joining
            case idle
            case fanOut
            case paced
        }

        let configuration: Configuration
        private let epoll: Int32
        private var descriptors: [Int32]
        private var welcomed: [Bool]
        /// Whether the member is counted in `fullyJoined`.
        private var joinCounted: [Bool]
        private var others: [Int32]
        private var carry: [[UInt8]]
        private var outbox: [[UInt8]]
        private var wantsWritable: [Bool]
        private var connecting: [Bool]
        /// Connections opened per member.
        private var attempts: [Int]
        /// Members whose connection was lost and who wait to be connected again (join phase).
        private var reconnectQueue: [Int] = []
        /// Members given up on: lost after their welcome, or out of connection attempts.
        private var lost: [Bool]
        private(set) var reconnects = 0
        private var expected: [UInt32]
        private let senderSlots = 16
        private let readBuffer: UnsafeMutableRawBufferPointer
        private let events: UnsafeMutableBufferPointer<epoll_event>
        private var phase = Phase.joining
        private(set) var faults = Faults()
        private var address = sockaddr_in()

        // Join accounting.
        private var fullyJoined = 0
        private var waitingForWelcome = 0

        // Fan-out accounting.
        private var remaining: [Int32] = []
        private var completed = 0
        private var completedPrefix = 0
        private var lastCompletion: UInt64 = 0

        // Paced accounting.
        private(set) var latencies = LatencyHistogram()
        /// Per paced message (sender × 100,000 + sequence): the latency of its last delivery.
        private(set) var lastReceipt: [UInt64] = []
        /// Per paced message: the latency of its first delivery.
        private(set) var firstReceipt: [UInt64] = []
        private var pacedDelivered = 0

        private var frameScratch: [UInt8] = []

        init(_ configuration: Configuration) throws(LoadError) {
            self.configuration = configuration
            epoll = epoll_create1(Int32(EPOLL_CLOEXEC))
            guard epoll >= 0 else { throw .system("epoll_create1") }
            let n = configuration.count
            descriptors = [Int32](repeating: -1, count: n)
            welcomed = [Bool](repeating: false, count: n)
            joinCounted = [Bool](repeating: false, count: n)
            others = [Int32](repeating: 0, count: n)
            carry = [[UInt8]](repeating: [], count: n)
            outbox = [[UInt8]](repeating: [], count: n)
            wantsWritable = [Bool](repeating: false, count: n)
            connecting = [Bool](repeating: false, count: n)
            attempts = [Int](repeating: 0, count: n)
            lost = [Bool](repeating: false, count: n)
            expected = [UInt32](repeating: 0, count: n * senderSlots)
            readBuffer = .allocate(byteCount: 256 * 1024, alignment: 16)
            events = .allocate(capacity: 4096)
            address.sin_family = sa_family_t(AF_INET)
            address.sin_port = configuration.port.bigEndian
            guard inet_pton(AF_INET, configuration.host, &address.sin_addr) == 1 else {
                throw .usage("--host must be an IPv4 address such as 127.0.0.1")
            }
        }

        deinit {
            for descriptor in descriptors where descriptor >= 0 { close(descriptor) }
            close(epoll)
            readBuffer.deallocate()
            events.deallocate()
        }

        static func memberName(_ index: Int) -> String { "m\(index)" }

        // MARK: Join

        /// Connects every member and registers it in the room; returns when each member has seen all
        /// the others (its welcome plus a joined for each later member).
        /// - Returns: seconds from the first connect to the last member's full view.
        func joinAll() throws(LoadError) -> Double {
            phase = .joining
            let start = Measure.nanoseconds()
            let deadline = start + UInt64(configuration.phaseTimeout * 1e9)
            var next = 0
            let n = configuration.count
            while fullyJoined < n {
                while waitingForWelcome < configuration.joinConcurrency, let member = reconnectQueue.popLast() {
                    try open(member: member)
                }
                while next < n && waitingForWelcome < configuration.joinConcurrency {
                    try open(member: next)
                    next += 1
                }
                pump(timeoutMilliseconds: 10)
                if Measure.nanoseconds() > deadline {
                    throw .timedOut("join after \(configuration.phaseTimeout) s: " + joinReport(opened: next))
                }
            }
            return Double(Measure.nanoseconds() - start) / 1e9
        }

        /// What the join phase is still waiting for, member by member state.
        private func joinReport(opened: Int) -> String {
            let n = configuration.count
            var neverOpened = n - opened
            var connectingCount = 0
            var awaitingWelcome = 0
            var incomplete = 0
            var lostCount = 0
            var fewestOthers = Int32.max
            var example = -1
            for index in 0..<n {
                if lost[index] {
                    lostCount += 1
                } else if index >= opened {
                    continue
                } else if descriptors[index] < 0 {
                    neverOpened += 1
                } else if connecting[index] {
                    connectingCount += 1
                } else if !welcomed[index] {
                    awaitingWelcome += 1
                    if example < 0 { example = index }
                } else if Int(others[index]) != configuration.members - 1 {
                    incomplete += 1
                    fewestOthers = min(fewestOthers, others[index])
                    if example < 0 { example = index }
                }
            }
            var text =
                "members \(configuration.first)..<\(configuration.first + n): \(fullyJoined) of \(n) have seen all "
                + "\(configuration.members - 1) others; \(neverOpened) not connected yet, \(connectingCount) still "
                + "connecting, \(awaitingWelcome) connected but never welcomed, \(incomplete) welcomed but missing "
                + "joined frames"
            if incomplete > 0 { text += " (fewest others seen: \(fewestOthers))" }
            text += ", \(lostCount) lost (connection closed or failed), \(reconnects) reconnects"
            if example >= 0 { text += "; e.g. \(Self.memberName(configuration.first + example))" }
            return text
        }

        /// A member's connection failed or closed. Before its welcome, in the join phase, the member
        /// connects again (if the relay had registered it, the others see it leave and join again);
        /// otherwise it is lost.
        private func memberLost(_ index: Int) {
            let descriptor = descriptors[index]
            if descriptor >= 0 {
                _ = epoll_ctl(epoll, EPOLL_CTL_DEL, descriptor, nil)
                close(descriptor)
                descriptors[index] = -1
            }
            let wasWaiting = !welcomed[index] && !lost[index]
            if wasWaiting { waitingForWelcome -= 1 }
            carry[index] = []
            outbox[index] = []
            wantsWritable[index] = false
            connecting[index] = false
            if wasWaiting && phase == .joining && attempts[index] < configuration.connectAttempts {
                reconnects += 1
                reconnectQueue.append(index)
                return
            }
            lost[index] = true
            faults.unexpectedCloses += 1
        }

        private func open(member index: Int) throws(LoadError) {
            let descriptor = socket(AF_INET, Int32(SOCK_STREAM.rawValue) | Int32(SOCK_NONBLOCK.rawValue), 0)
            guard descriptor >= 0 else { throw .system("socket (raise ulimit -n?)") }
            var one: Int32 = 1
            _ = setsockopt(descriptor, Int32(IPPROTO_TCP), TCP_NODELAY, &one, socklen_t(MemoryLayout<Int32>.size))
            let result = withUnsafePointer(to: &address) { pointer in
                pointer.withMemoryRebound(to: sockaddr.self, capacity: 1) {
                    connect(descriptor, $0, socklen_t(MemoryLayout<sockaddr_in>.size))
                }
            }
            guard result == 0 || errno == EINPROGRESS else {
                close(descriptor)
                throw .system("connect to \(configuration.host):\(configuration.port)")
            }
            descriptors[index] = descriptor
            attempts[index] += 1
            waitingForWelcome += 1
            connecting[index] = result != 0
            var event = epoll_event()
            event.events = EPOLLIN.rawValue | (result != 0 ? EPOLLOUT.rawValue : 0)
            event.data.u64 = UInt64(index)
            guard epoll_ctl(epoll, EPOLL_CTL_ADD, descriptor, &event) == 0 else { throw .system("epoll_ctl") }
            wantsWritable[index] = result != 0
            if result == 0 { sendHello(index) }
        }

        private func sendHello(_ index: Int) {
            let global = configuration.first + index
            let size = configuration.profileBytes
            // A profile of the configured size: a version byte, then filler.
            let profile = size > 0 ? [0x01] + (1..<size).map { UInt8(truncatingIfNeeded: $0 &* 31 &+ global) } : []
            let hello = ClientFrame.hello(
                version: relayProtocolVersion, name: Self.memberName(global), room: configuration.room, profile: profile
            )
            send(hello.encoded(), from: index)
        }

        // MARK: Idle

        /// Keeps every connection open and serviced for `seconds`.
        func idle(seconds: Double) {
            phase = .idle
            let end = Measure.nanoseconds() + UInt64(seconds * 1e9)
            while Measure.nanoseconds() < end { pump(timeoutMilliseconds: 20) }
        }

        // MARK: W1 fan-out

        /// Member 0 publishes `messages` payloads with at most `window` not yet delivered to everyone
        /// (in every engine: `progress` carries each engine's count of messages complete there). The
        /// engine holding member 0 sends; every engine counts its own members' deliveries.
        /// - Returns: the monotonic time of this engine's last completed message, in nanoseconds.
        func fanOut(messages: Int, window: Int, progress: FanOutProgress, engine: Int) throws(LoadError) -> UInt64 {
            phase = .fanOut
            resetExpectations()
            let isSender = configuration.first == 0
            let receivers = configuration.count - (isSender ? 1 : 0)
            remaining = [Int32](repeating: Int32(receivers), count: messages)
            completed = 0
            completedPrefix = 0
            var sent = 0
            let start = Measure.nanoseconds()
            lastCompletion = start
            let deadline = start + UInt64(configuration.phaseTimeout * 1e9)
            if receivers == 0 {
                completedPrefix = messages
            }
            progress.publish(engine: engine, completed: completedPrefix)
            while completedPrefix < messages || (isSender && sent < messages) {
                if isSender {
                    let everywhere = progress.minimum()
                    var batch: [UInt8] = []
                    while sent < messages && sent - everywhere < window {
                        appendPublish(&batch, sender: 0, sequence: UInt32(sent))
                        sent += 1
                    }
                    if !batch.isEmpty { send(batch, from: 0) }
                }
                let before = completedPrefix
                pump(timeoutMilliseconds: isSender ? 1 : 100)
                while completedPrefix < messages && remaining[completedPrefix] == 0 { completedPrefix += 1 }
                if completedPrefix != before { progress.publish(engine: engine, completed: completedPrefix) }
                if Measure.nanoseconds() > deadline {
                    throw .timedOut(
                        "W1 after \(configuration.phaseTimeout) s: " + fanOutReport(messages: messages, sent: sent))
                }
            }
            return lastCompletion
        }

        /// What the fan-out is still waiting for.
        private func fanOutReport(messages: Int, sent: Int) -> String {
            var missing = 0
            for s in completedPrefix..<messages { missing += Int(remaining[s]) }
            var behind = 0
            var lowest = UInt32.max
            var example = -1
            for index in 0..<configuration.count where configuration.first + index != 0 && !lost[index] {
                let received = expected[index * senderSlots]
                if received < UInt32(messages) {
                    behind += 1
                    if received < lowest {
                        lowest = received
                        example = index
                    }
                }
            }
            var text =
                "members \(configuration.first)..<\(configuration.first + configuration.count): \(completed) of "
                + "\(messages) messages delivered to every member here, \(missing) deliveries missing"
            if configuration.first == 0 { text += ", \(sent) of \(messages) sent" }
            text += "; \(behind) members behind"
            if example >= 0 {
                text += " (\(Self.memberName(configuration.first + example)) has \(lowest), "
                text += "\(carry[example].count) bytes of a partial frame, \(outbox[example].count) bytes unsent)"
            }
            text += ", \(lost.filter { $0 }.count) members lost"
            return text
        }

        // MARK: W1-paced

        /// `senders` members each publish `rate` messages a second for `seconds`; every delivery's
        /// latency goes into ``latencies``. Only the engine holding members 0… sends; the others
        /// receive until they have `rate × seconds × senders` messages for each of their members.
        /// - Returns: deliveries counted here.
        func paced(senders: Int, rate: Int, seconds: Double) throws(LoadError) -> Int {
            phase = .paced
            resetExpectations()
            latencies = LatencyHistogram()
            lastReceipt = [UInt64](repeating: 0, count: senderSlots * 100_000)
            firstReceipt = lastReceipt
            pacedDelivered = 0
            let senders = min(senders, configuration.members, senderSlots)
            let interval = UInt64(1e9) / UInt64(rate)
            let stagger = interval / UInt64(senders)
            let perSender = Int(Double(rate) * seconds)
            let start = Measure.nanoseconds() + 50_000_000
            var sentBy = [Int](repeating: 0, count: senders)
            let isSender = configuration.first == 0
            var totalSent = isSender ? 0 : perSender * senders
            while totalSent < perSender * senders {
                var nextDue = UInt64.max
                let now = Measure.nanoseconds()
                for s in 0..<senders where sentBy[s] < perSender {
                    let due = start + UInt64(s) * stagger + UInt64(sentBy[s]) * interval
                    if due <= now {
                        var frame: [UInt8] = []
                        appendPublish(&frame, sender: s, sequence: UInt32(sentBy[s]))
                        send(frame, from: s)
                        sentBy[s] += 1
                        totalSent += 1
                    } else {
                        nextDue = min(nextDue, due)
                    }
                }
                if nextDue != .max {
                    let wait = nextDue > now ? (nextDue - now) / 1_000_000 : 0
                    pump(timeoutMilliseconds: configuration.busyPoll ? 0 : Int32(min(wait, 100)))
                }
            }
            let expectedDeliveries =
                isSender
                ? totalSent * (configuration.count - 1)
                : totalSent * configuration.count
            let deadline = Measure.nanoseconds() + UInt64((seconds + 10) * 1e9)
            while pacedDelivered < expectedDeliveries {
                if Measure.nanoseconds() > deadline {
                    throw .timedOut(
                        "W1-paced \(Int(seconds + 10)) s after the start: members \(configuration.first)..<"
                            + "\(configuration.first + configuration.count): \(pacedDelivered) of "
                            + "\(expectedDeliveries) deliveries, \(expectedDeliveries - pacedDelivered) missing, "
                            + "\(lost.filter { $0 }.count) members lost")
                }
                pump(timeoutMilliseconds: configuration.busyPoll ? 0 : 10)
            }
            return pacedDelivered
        }

        /// Closes every connection (members leave by disconnecting).
        func closeAll() {
            for index in descriptors.indices where descriptors[index] >= 0 {
                close(descriptors[index])
                descriptors[index] = -1
            }
        }

        private func resetExpectations() {
            for index in expected.indices { expected[index] = 0 }
        }

        /// Appends a publish frame whose payload is `payloadBytes` long, shaped like a group envelope:
        /// kind 0x03, then (in place of the chain id) the sequence number, the send time and the
        /// sender's number, then filler.
        private func appendPublish(_ frame: inout [UInt8], sender: Int, sequence: UInt32) {
            let payload = max(configuration.payloadBytes, 15)
            ClientFrame.writePublishHeader(payloadCount: payload, into: &frame)
            frame.write(EnvelopeKind.group.rawValue)
            frame.write(sequence)
            frame.write(Measure.nanoseconds())
            frame.write(UInt16(truncatingIfNeeded: sender))
            for i in 15..<payload { frame.append(UInt8(truncatingIfNeeded: i)) }
        }

        // MARK: Sockets

        private func send(_ bytes: [UInt8], from index: Int) {
            guard descriptors[index] >= 0 else { return }
            if !outbox[index].isEmpty || connecting[index] {
                outbox[index].append(contentsOf: bytes)
                return
            }
            let written = bytes.withUnsafeBytes { raw in
                Glibc.send(descriptors[index], raw.baseAddress, raw.count, Int32(MSG_NOSIGNAL))
            }
            if written == bytes.count { return }
            let kept = written > 0 ? Array(bytes[written...]) : bytes
            if written < 0 && errno != EAGAIN && errno != EINTR {
                memberLost(index)
                return
            }
            outbox[index] = kept
            setWritable(index, true)
        }

        private func setWritable(_ index: Int, _ on: Bool) {
            guard wantsWritable[index] != on else { return }
            wantsWritable[index] = on
            var event = epoll_event()
            event.events = EPOLLIN.rawValue | (on ? EPOLLOUT.rawValue : 0)
            event.data.u64 = UInt64(index)
            _ = epoll_ctl(epoll, EPOLL_CTL_MOD, descriptors[index], &event)
        }

        private func flushOutbox(_ index: Int) {
            if connecting[index] {
                var error: Int32 = 0
                var length = socklen_t(MemoryLayout<Int32>.size)
                _ = getsockopt(descriptors[index], SOL_SOCKET, SO_ERROR, &error, &length)
                connecting[index] = false
                if error != 0 {
                    memberLost(index)
                    return
                }
                setWritable(index, false)
                sendHello(index)
                return
            }
            let pending = outbox[index]
            outbox[index] = []
            setWritable(index, false)
            if !pending.isEmpty { send(pending, from: index) }
        }

        /// Waits for readiness once and handles everything ready.
        func pump(timeoutMilliseconds: Int32) {
            let count = epoll_wait(epoll, events.baseAddress, Int32(events.count), timeoutMilliseconds)
            guard count > 0 else { return }
            for slot in 0..<Int(count) {
                let event = events[slot]
                let index = Int(event.data.u64)
                guard descriptors[index] >= 0 else { continue }
                if event.events & EPOLLOUT.rawValue != 0 { flushOutbox(index) }
                if event.events & (EPOLLIN.rawValue | EPOLLERR.rawValue | EPOLLHUP.rawValue) != 0 {
                    readMember(index)
                }
            }
        }

        private func readMember(_ index: Int) {
            let descriptor = descriptors[index]
            guard descriptor >= 0 else { return }
            while true {
                let count = read(descriptor, readBuffer.baseAddress, readBuffer.count)
                if count > 0 {
                    let now = Measure.nanoseconds()
                    consume(index, UnsafeRawBufferPointer(rebasing: readBuffer[0..<count]), now: now)
                    if count < readBuffer.count { return }
                } else if count == 0 || (errno != EAGAIN && errno != EINTR) {
                    memberLost(index)
                    return
                } else {
                    return
                }
            }
        }

        private func consume(_ index: Int, _ bytes: UnsafeRawBufferPointer, now: UInt64) {
            if carry[index].isEmpty {
                let used = parseFrames(index, bytes, now: now)
                if used < bytes.count { carry[index] = Array(bytes[used...]) }
            } else {
                var joined = carry[index]
                carry[index] = []
                joined.append(contentsOf: bytes)
                joined.withUnsafeBytes { raw in
                    let used = parseFrames(index, raw, now: now)
                    if used < raw.count { carry[index] = Array(raw[used...]) }
                }
            }
        }

        /// Handles every whole frame in `bytes`; returns the bytes used.
        private func parseFrames(_ index: Int, _ bytes: UnsafeRawBufferPointer, now: UInt64) -> Int {
            var offset = 0
            while bytes.count - offset >= Frame.headerSize + 1 {
                var prefix = RawByteReader(UnsafeRawBufferPointer(rebasing: bytes[offset..<offset + Frame.headerSize]))
                let length = Int(try! prefix.readUInt32("length"))
                guard bytes.count - offset >= Frame.headerSize + length else { break }
                let frame = UnsafeRawBufferPointer(
                    rebasing: bytes[offset + Frame.headerSize..<offset + Frame.headerSize + length])
                handleFrame(index, type: frame[0], body: UnsafeRawBufferPointer(rebasing: frame[1...]), now: now)
                offset += Frame.headerSize + length
            }
            return offset
        }

        private func handleFrame(_ index: Int, type: UInt8, body: UnsafeRawBufferPointer, now: UInt64) {
            switch type {
            case FrameType.deliver:
                guard let deliver = try? RelayFrame.readDeliver(body) else { return }
                // The payload written by appendPublish.
                var payload = RawByteReader(deliver.payload)
                guard payload.remainingCount >= 15, (try? payload.readUInt8("kind")) != nil,
                    let sequence = try? payload.readUInt32("sequence"), let sentAt = try? payload.readUInt64("sent at"),
                    let sender = (try? payload.readUInt16("sender")).map(Int.init), sender < senderSlots
                else { return }
                let slot = index * senderSlots + sender
                if sequence != expected[slot] {
                    if sequence < expected[slot] { faults.duplicates += 1 } else { faults.outOfOrder += 1 }
                }
                expected[slot] = sequence &+ 1
                switch phase {
                case .fanOut:
                    let s = Int(sequence)
                    if s < remaining.count && remaining[s] > 0 {
                        remaining[s] -= 1
                        if remaining[s] == 0 {
                            completed += 1
                            lastCompletion = now
                        }
                    }
                case .paced:
                    pacedDelivered += 1
                    let latency = now > sentAt ? now - sentAt : 0
                    latencies.record(nanoseconds: latency)
                    let key = sender * 100_000 + Int(sequence)
                    if key < lastReceipt.count && latency > lastReceipt[key] { lastReceipt[key] = latency }
                    if key < firstReceipt.count && (firstReceipt[key] == 0 || latency < firstReceipt[key]) {
                        firstReceipt[key] = latency
                    }
                default:
                    break
                }
            case FrameType.welcome:
                // version u16, name str8, room str8, count u16: only the count is needed.
                var welcome = RawByteReader(body)
                _ = try? welcome.readUInt16("version")
                _ = try? welcome.readShortString("name")
                _ = try? welcome.readShortString("room")
                let count = Int32((try? welcome.readUInt16("count")) ?? 0)
                welcomed[index] = true
                waitingForWelcome -= 1
                others[index] += count
                noteJoinProgress(index)
            case FrameType.joined:
                others[index] += 1
                noteJoinProgress(index)
            case FrameType.left:
                others[index] -= 1
                if joinCounted[index] {
                    joinCounted[index] = false
                    fullyJoined -= 1
                }
            case FrameType.error:
                var error = RawByteReader(body)
                guard let code = try? error.readUInt16("code") else { return }
                faults.relayErrors[code, default: 0] += 1
            case FrameType.ping:
                guard let token = try? TokenFrame.read(ping: body) else { return }
                send(ClientFrame.pong(token: token).encoded(), from: index)
            default:
                break
            }
        }

        private func noteJoinProgress(_ index: Int) {
            guard !joinCounted[index], welcomed[index], Int(others[index]) == configuration.members - 1 else { return }
            joinCounted[index] = true
            fullyJoined += 1
        }
    }
#endif

/// Each engine's count of W1 messages delivered to all of its members (a prefix: messages 0 ..< n), so
/// the sending engine can keep at most the window in flight across all engines.
final class FanOutProgress: @unchecked Sendable {
    // Guard: `lock` protects `completed`.
    private let lock = NSLock()
    private var completed: [Int]

    init(engines: Int) { completed = [Int](repeating: 0, count: engines) }

    func publish(engine: Int, completed count: Int) {
        lock.lock()
        completed[engine] = count
        lock.unlock()
    }

    func minimum() -> Int {
        lock.lock()
        defer { lock.unlock() }
        return completed.min() ?? 0
    }
}

/// Why a load run stopped.
enum LoadError: Error, CustomStringConvertible {
    case usage(String)
    case system(String)
    case timedOut(String)
    /// Several engines failed; their descriptions, joined.
    case several(String)

    var description: String {
        switch self {
        case .usage(let text): text
        case .system(let call): "\(call) failed: errno \(errno)"
        case .timedOut(let what): "timed out: \(what)"
        case .several(let descriptions): descriptions
        }
    }
}
