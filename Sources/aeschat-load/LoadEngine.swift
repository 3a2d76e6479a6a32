import AESChatCore
import Foundation

#if os(Linux)
    import CLinux
    import Glibc

    /// Opens many real connections to a relay, or to an IRC server, and drives the benchmark workloads over them.
    ///
    /// One thread, one epoll instance, no per-message allocation: reads land in one shared buffer, are
    /// opened as link records and parsed; only a frame cut across two records is copied, into that
    /// member's carry buffer. Every connection speaks the encrypted link (docs/PROTOCOL.md): its
    /// handshake's message 1 is written ahead of time by ``prepare()`` (ephemeral key and the `es`
    /// agreement), so the timed phases pay only for reading message 2. Connections are kept in flat
    /// arrays indexed by slot, which is also the epoll token: the engine's members first, then the
    /// members of the join storm (``Configuration/stormCount``), then the handshake probes
    /// (``Configuration/probeCount``). With ``Configuration/wire`` `.irc` the same workloads, with the same
    /// accounting, go to an IRC server instead (``IRCWire``): members register with `NICK`/`USER`, join the channel
    /// `#` + room, publish with `PRIVMSG` and answer `PING`; reads are split into lines, with no link. Not
    /// thread-safe.
    final class LoadEngine {
        /// What the connections speak.
        enum Wire {
            /// The relay protocol inside the encrypted link.
            case aeschat
            /// Plain IRC (RFC 1459 client lines), to measure IRC servers the same way.
            case irc
        }

        struct Configuration {
            var wire = Wire.aeschat
            /// The relays (IPv4 address and port); connection `i` of the run goes to relay `i` modulo their
            /// count, so members are spread round-robin (relays sharing rooms through `--cluster`).
            var relays: [(host: String, port: UInt16)] = [("127.0.0.1", 7777)]
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
            /// The relays' static public keys, which the handshakes authenticate: one for all relays, or one per
            /// relay in the order of ``relays``.
            var relayKeys: [RelayPublicKey] = []
            /// Members of a second room (``stormRoom``) that all connect at once during the paced phase,
            /// ``stormDelay`` seconds after it starts, while the paced senders go on.
            var stormCount = 0
            var stormRoom = "storm"
            var stormDelay: Double = 1
            /// Connections that only complete a handshake and close (``probeHandshakes()``).
            var probeCount = 0
            /// Probes in progress at once.
            var probeConcurrency = 64
        }

        /// What went wrong, counted and shown in the results.
        struct Faults {
            var outOfOrder = 0
            var duplicates = 0
            var relayErrors: [UInt16: Int] = [:]
            var unexpectedCloses = 0
            /// Records that failed to open, or handshakes whose message 2 did not authenticate.
            var linkFailures = 0
            var total: Int {
                outOfOrder + duplicates + relayErrors.values.reduce(0, +) + unexpectedCloses + linkFailures
            }
        }

        private enum Phase {
            case probing
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
        /// Per slot: 0 not linked, 1 message 1 sent and waiting for message 2, 2 linked.
        private var linkState: [UInt8]
        private var prepared: [MemberLink.Prepared?]
        private var records: [MemberLink.Records?]
        /// Per slot: busy answers since its last message 2.
        private var busyInARow: [Int]
        /// Slots refused as busy, and when they may connect again (nanoseconds).
        private var busyQueue: [(slot: Int, at: UInt64)] = []
        /// Why the relay cannot be driven, once known: every phase then stops with it.
        private var fatal: String?
        private var sealed: [UInt8] = []
        /// Handshakes written during a timed phase because the prepared one was used (reconnects).
        private(set) var lateHandshakes = 0
        /// Busy answers received.
        private(set) var busyAnswers = 0
        /// This thread's CPU spent reading message 2 and setting up the records, in nanoseconds.
        private(set) var handshakeCPU: UInt64 = 0
        /// Handshakes completed (message 2 authenticated).
        private(set) var handshakesCompleted = 0
        private var total: Int { configuration.count + configuration.stormCount + configuration.probeCount }
        private var stormRange: Range<Int> {
            configuration.count..<(configuration.count + configuration.stormCount)
        }
        private var probeRange: Range<Int> { (configuration.count + configuration.stormCount)..<total }
        private let senderSlots = 16
        private let readBuffer: UnsafeMutableRawBufferPointer
        private let events: UnsafeMutableBufferPointer<epoll_event>
        private var phase = Phase.joining
        private(set) var faults = Faults()
        /// One per relay of ``Configuration/relays``.
        private var addresses: [sockaddr_in] = []

        // Join accounting.
        private var fullyJoined = 0
        private var waitingForWelcome = 0
        private var stormJoined = 0
        private var probesDone = 0
        /// When the storm's first member connected and when its last had seen all the others (0: not yet).
        private(set) var stormStart: UInt64 = 0
        private(set) var stormEnd: UInt64 = 0

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
        /// Per paced delivery, when the storm runs in this process: (sent at, latency), to tell the messages
        /// sent during the storm from the others.
        private(set) var pacedSamples: [(sentAt: UInt64, latency: UInt64)] = []
        var recordsSamples = false

        private var frameScratch: [UInt8] = []
        /// The IRC channel the members join (`#` + room).
        private let channel: [UInt8]

        init(_ configuration: Configuration) throws(LoadError) {
            self.configuration = configuration
            epoll = epoll_create1(Int32(EPOLL_CLOEXEC))
            guard epoll >= 0 else { throw .system("epoll_create1") }
            let n = configuration.count + configuration.stormCount + configuration.probeCount
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
            linkState = [UInt8](repeating: 0, count: n)
            busyInARow = [Int](repeating: 0, count: n)
            prepared = [MemberLink.Prepared?](repeating: nil, count: n)
            records = [MemberLink.Records?](repeating: nil, count: n)
            guard
                configuration.wire == .irc || configuration.relayKeys.count == 1
                    || configuration.relayKeys.count == configuration.relays.count
            else {
                throw .usage("--relay-key is required: one key for every relay, or one per relay")
            }
            guard !configuration.relays.isEmpty else { throw .usage("no relay to connect to") }
            channel = Array("#\(configuration.room)".utf8)
            readBuffer = .allocate(byteCount: 256 * 1024, alignment: 16)
            events = .allocate(capacity: 4096)
            for relay in configuration.relays {
                var address = sockaddr_in()
                address.sin_family = sa_family_t(AF_INET)
                address.sin_port = relay.port.bigEndian
                guard inet_pton(AF_INET, relay.host, &address.sin_addr) == 1 else {
                    throw .usage("a relay's host must be an IPv4 address such as 127.0.0.1, not '\(relay.host)'")
                }
                addresses.append(address)
            }
        }

        deinit {
            for descriptor in descriptors where descriptor >= 0 { close(descriptor) }
            close(epoll)
            readBuffer.deallocate()
            events.deallocate()
        }

        static func memberName(_ index: Int) -> String { "m\(index)" }

        // MARK: Handshakes

        /// Writes every slot's message 1 ahead of the timed phases (a fresh ephemeral key each).
        /// - Returns: this thread's CPU seconds for it.
        func prepare() throws(LoadError) -> Double {
            guard configuration.wire == .aeschat else { return 0 }
            let before = Measure.threadCPUNanoseconds()
            for slot in 0..<total { prepared[slot] = try makeHandshake(slot) }
            return Double(Measure.threadCPUNanoseconds() - before) / 1e9
        }

        /// The relay of connection `slot`: round-robin over the run's connections.
        private func relay(of slot: Int) -> Int { (configuration.first + slot) % configuration.relays.count }

        private func makeHandshake(_ slot: Int) throws(LoadError) -> MemberLink.Prepared {
            let keys = configuration.relayKeys
            do {
                return try MemberLink.Prepared(relayKey: keys.count == 1 ? keys[0] : keys[relay(of: slot)])
            } catch {
                throw .relay("could not write a handshake message: \(error)")
            }
        }

        /// Sends the slot's preamble and message 1, once its connection is up.
        private func startLink(_ index: Int) {
            if configuration.wire == .irc {
                // No link: the connection goes straight to registration; JOIN follows its 001.
                linkState[index] = 2
                sendRaw(IRCWire.registration(name: Self.memberName(configuration.first + index)), from: index)
                return
            }
            if prepared[index] == nil {
                guard let fresh = try? makeHandshake(index) else {
                    fatal = "could not write a handshake message"
                    return
                }
                prepared[index] = fresh
                lateHandshakes += 1
            }
            linkState[index] = 1
            sendRaw(prepared[index]!.opening, from: index)
        }

        /// The relay's answer to message 1 in `bytes` (with anything carried from earlier reads).
        private func readAnswer(_ index: Int, _ bytes: UnsafeRawBufferPointer, now: UInt64) {
            var joined = carry[index]
            carry[index] = []
            joined.append(contentsOf: bytes)
            let answer = joined.withUnsafeBytes { MemberLink.classify($0) }
            switch answer {
            case .incomplete:
                carry[index] = joined
            case .busy:
                busyAnswers += 1
                // A busy answer is not a failed attempt: the member waits and tries again, as a client does, with
                // a new handshake (an ephemeral key is never sent twice), waiting 10 ms, then twice as long after
                // each busy answer in a row, up to 320 ms, plus up to 15 ms so that they do not all come back at once.
                attempts[index] -= 1
                let wait = UInt64(10_000_000) << UInt64(min(busyInARow[index], 5))
                busyInARow[index] += 1
                retryLater(index, at: now + wait + UInt64(index % 16) * 1_000_000)
            case .refused(let why):
                fatal = why
                memberLost(index)
            case .message2(let used):
                let cpuBefore = Measure.threadCPUNanoseconds()
                let handshake = prepared[index]!.handshake
                prepared[index] = nil
                do {
                    _ = try handshake.readMessage(Array(joined[MemberLink.prefixLength..<used]))
                    records[index] = MemberLink.Records(try handshake.finish())
                } catch {
                    faults.linkFailures += 1
                    fatal = "message 2 did not authenticate (\(error)): is --relay-key the relay's key?"
                    memberLost(index)
                    return
                }
                linkState[index] = 2
                busyInARow[index] = 0
                handshakesCompleted += 1
                handshakeCPU += Measure.threadCPUNanoseconds() - cpuBefore
                if probeRange.contains(index) {
                    finishProbe(index)
                    return
                }
                sendHello(index)
                // Records that came with message 2 (an honest relay sends none before hello).
                if used < joined.count {
                    var rest = Array(joined[used...])
                    var failed = false
                    rest.withUnsafeMutableBytes { raw in
                        do throws(TransportError) {
                            try records[index]!.open(raw) { consume(index, $0, now: now) }
                        } catch {
                            failed = true
                        }
                    }
                    if failed {
                        faults.linkFailures += 1
                        memberLost(index)
                    }
                }
            }
        }

        /// Closes a connection (the slot is done with it, or will reconnect).
        private func closeSlot(_ index: Int) {
            let descriptor = descriptors[index]
            guard descriptor >= 0 else { return }
            _ = epoll_ctl(epoll, EPOLL_CTL_DEL, descriptor, nil)
            close(descriptor)
            descriptors[index] = -1
        }

        /// Puts a slot refused as busy back in line, to connect again at `at`.
        private func retryLater(_ index: Int, at: UInt64) {
            closeSlot(index)
            if !welcomed[index] && !lost[index] { waitingForWelcome -= 1 }
            carry[index] = []
            outbox[index] = []
            wantsWritable[index] = false
            connecting[index] = false
            if linkState[index] == 1 { prepared[index] = nil }
            linkState[index] = 0
            records[index] = nil
            busyQueue.append((index, at))
        }

        /// Opens the busy slots whose wait is over, within `limit` connections waiting at once.
        private func reopenBusy(now: UInt64, limit: Int) throws(LoadError) {
            var kept = 0
            for entry in busyQueue {
                if entry.at <= now && waitingForWelcome < limit {
                    try open(member: entry.slot)
                } else {
                    busyQueue[kept] = entry
                    kept += 1
                }
            }
            busyQueue.removeLast(busyQueue.count - kept)
        }

        private func checkFatal() throws(LoadError) {
            if let fatal { throw .relay(fatal) }
        }

        // MARK: Handshake probes

        /// Connections that complete a handshake (preamble, message 1, message 2) and close, at most
        /// ``Configuration/probeConcurrency`` at once: what one handshake costs the relay.
        /// - Returns: seconds from the first connect to the last message 2.
        func probeHandshakes() throws(LoadError) -> Double {
            phase = .probing
            let start = Measure.nanoseconds()
            let deadline = start + UInt64(configuration.phaseTimeout * 1e9)
            var next = probeRange.lowerBound
            let limit = configuration.probeConcurrency
            while probesDone < configuration.probeCount {
                try checkFatal()
                let now = Measure.nanoseconds()
                try reopenBusy(now: now, limit: limit)
                while waitingForWelcome < limit, let slot = reconnectQueue.popLast() { try open(member: slot) }
                while next < probeRange.upperBound && waitingForWelcome < limit {
                    try open(member: next)
                    next += 1
                }
                pump(timeoutMilliseconds: 10)
                if now > deadline {
                    throw .timedOut(
                        "handshake probes after \(configuration.phaseTimeout) s: \(probesDone) of "
                            + "\(configuration.probeCount) done, \(busyAnswers) busy answers")
                }
            }
            return Double(Measure.nanoseconds() - start) / 1e9
        }

        private func finishProbe(_ index: Int) {
            closeSlot(index)
            welcomed[index] = true
            waitingForWelcome -= 1
            records[index] = nil
            probesDone += 1
        }

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
                try checkFatal()
                try reopenBusy(now: Measure.nanoseconds(), limit: configuration.joinConcurrency)
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
            text += ", \(lostCount) lost (connection closed or failed), \(reconnects) reconnects, \(busyAnswers) busy "
            text += "answers (\(busyQueue.count) waiting to retry)"
            if example >= 0 { text += "; e.g. \(Self.memberName(configuration.first + example))" }
            return text
        }

        /// A member's connection failed or closed. Before its welcome, in the join phase, the member
        /// connects again (if the relay had registered it, the others see it leave and join again);
        /// otherwise it is lost.
        private func memberLost(_ index: Int) {
            closeSlot(index)
            let wasWaiting = !welcomed[index] && !lost[index]
            if wasWaiting { waitingForWelcome -= 1 }
            carry[index] = []
            outbox[index] = []
            wantsWritable[index] = false
            connecting[index] = false
            // A message 1 that went out is spent: a reconnect writes a new one.
            if linkState[index] == 1 { prepared[index] = nil }
            linkState[index] = 0
            records[index] = nil
            if wasWaiting && fatal == nil && attempts[index] < configuration.connectAttempts {
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
            let target = relay(of: index)
            let result = withUnsafePointer(to: &addresses[target]) { pointer in
                pointer.withMemoryRebound(to: sockaddr.self, capacity: 1) {
                    connect(descriptor, $0, socklen_t(MemoryLayout<sockaddr_in>.size))
                }
            }
            guard result == 0 || errno == EINPROGRESS else {
                close(descriptor)
                let (host, port) = configuration.relays[target]
                throw .system("connect to \(host):\(port)")
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
            if result == 0 { startLink(index) }
        }

        private func sendHello(_ index: Int) {
            if configuration.wire == .irc {
                sendRaw(IRCWire.join(channel: String(decoding: channel, as: UTF8.self)), from: index)
                return
            }
            let storm = stormRange.contains(index)
            let global = storm ? index - configuration.count : configuration.first + index
            let size = configuration.profileBytes
            // A profile of the configured size: a version byte, then filler.
            let profile = size > 0 ? [0x01] + (1..<size).map { UInt8(truncatingIfNeeded: $0 &* 31 &+ global) } : []
            let hello = ClientFrame.hello(
                version: relayProtocolVersion, name: (storm ? "s" : "m") + "\(global)",
                room: storm ? configuration.stormRoom : configuration.room, profile: profile)
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
            let stormAt = start + UInt64(configuration.stormDelay * 1e9)
            var stormNext = stormRange.lowerBound
            if recordsSamples { pacedSamples.reserveCapacity(perSender * senders * configuration.count) }
            while totalSent < perSender * senders {
                try serviceStorm(now: Measure.nanoseconds(), at: stormAt, next: &stormNext)
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
            while pacedDelivered < expectedDeliveries || stormJoined < configuration.stormCount {
                try serviceStorm(now: Measure.nanoseconds(), at: stormAt, next: &stormNext)
                if Measure.nanoseconds() > deadline {
                    throw .timedOut(
                        "W1-paced \(Int(seconds + 10)) s after the start: members \(configuration.first)..<"
                            + "\(configuration.first + configuration.count): \(pacedDelivered) of "
                            + "\(expectedDeliveries) deliveries, \(expectedDeliveries - pacedDelivered) missing, "
                            + "\(lost.filter { $0 }.count) members lost; storm: \(stormJoined) of "
                            + "\(configuration.stormCount) joined, \(busyAnswers) busy answers")
                }
                pump(timeoutMilliseconds: configuration.busyPoll ? 0 : 10)
            }
            return pacedDelivered
        }

        /// Starts the join storm at `at`, all of it at once, and keeps its busy and reconnecting members going.
        private func serviceStorm(now: UInt64, at: UInt64, next: inout Int) throws(LoadError) {
            guard configuration.stormCount > 0, now >= at else { return }
            try checkFatal()
            if stormStart == 0 { stormStart = now }
            while next < stormRange.upperBound {
                try open(member: next)
                next += 1
            }
            try reopenBusy(now: now, limit: .max)
            while let slot = reconnectQueue.popLast() { try open(member: slot) }
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
            if configuration.wire == .irc {
                IRCWire.appendPrivmsg(
                    &frame, channel: channel, sender: sender, sequence: sequence, sentAt: Measure.nanoseconds(),
                    payloadBytes: configuration.payloadBytes)
                return
            }
            let payload = max(configuration.payloadBytes, 15)
            ClientFrame.writePublishHeader(payloadCount: payload, into: &frame)
            frame.write(EnvelopeKind.group.rawValue)
            frame.write(sequence)
            frame.write(Measure.nanoseconds())
            frame.write(UInt16(truncatingIfNeeded: sender))
            for i in 15..<payload { frame.append(UInt8(truncatingIfNeeded: i)) }
        }

        // MARK: Sockets

        /// Sends frames: sealed into records (every frame goes after the handshake).
        private func send(_ bytes: [UInt8], from index: Int) {
            if configuration.wire == .irc {
                sendRaw(bytes, from: index)
                return
            }
            guard let link = records[index] else { return }
            sealed.removeAll(keepingCapacity: true)
            do {
                try link.seal(bytes, into: &sealed)
            } catch {
                faults.linkFailures += 1
                memberLost(index)
                return
            }
            sendRaw(sealed, from: index)
        }

        private func sendRaw(_ bytes: [UInt8], from index: Int) {
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
                startLink(index)
                return
            }
            let pending = outbox[index]
            outbox[index] = []
            setWritable(index, false)
            if !pending.isEmpty { sendRaw(pending, from: index) }
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
                    let bytes = UnsafeMutableRawBufferPointer(rebasing: readBuffer[0..<count])
                    if configuration.wire == .irc {
                        consume(index, UnsafeRawBufferPointer(bytes), now: now)
                    } else if linkState[index] == 2 {
                        do {
                            try records[index]!.open(bytes) { consume(index, $0, now: now) }
                        } catch {
                            faults.linkFailures += 1
                            memberLost(index)
                            return
                        }
                    } else {
                        readAnswer(index, UnsafeRawBufferPointer(bytes), now: now)
                    }
                    guard descriptors[index] >= 0 else { return }
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
                let used = parse(index, bytes, now: now)
                if used < bytes.count { carry[index] = Array(bytes[used...]) }
            } else {
                var joined = carry[index]
                carry[index] = []
                joined.append(contentsOf: bytes)
                joined.withUnsafeBytes { raw in
                    let used = parse(index, raw, now: now)
                    if used < raw.count { carry[index] = Array(raw[used...]) }
                }
            }
        }

        /// Handles every whole frame or line in `bytes`; returns the bytes used.
        private func parse(_ index: Int, _ bytes: UnsafeRawBufferPointer, now: UInt64) -> Int {
            configuration.wire == .irc ? parseLines(index, bytes, now: now) : parseFrames(index, bytes, now: now)
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
                delivered(index, sender: sender, sequence: sequence, sentAt: sentAt, now: now)
            case FrameType.welcome:
                // version u16, name str8, room str8, count u16: only the count is needed.
                var reader = RawByteReader(body)
                _ = try? reader.readUInt16("version")
                _ = try? reader.readShortString("name")
                _ = try? reader.readShortString("room")
                welcome(index, others: Int32((try? reader.readUInt16("count")) ?? 0))
            case FrameType.joined:
                others[index] += 1
                noteJoinProgress(index)
            case FrameType.left:
                otherLeft(index)
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

        /// A delivery of `sender`'s message `sequence`, sent at `sentAt`, to member `index`: checks the order and
        /// counts it for the phase.
        private func delivered(_ index: Int, sender: Int, sequence: UInt32, sentAt: UInt64, now: UInt64) {
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
                if recordsSamples { pacedSamples.append((sentAt, latency)) }
                let key = sender * 100_000 + Int(sequence)
                if key < lastReceipt.count && latency > lastReceipt[key] { lastReceipt[key] = latency }
                if key < firstReceipt.count && (firstReceipt[key] == 0 || latency < firstReceipt[key]) {
                    firstReceipt[key] = latency
                }
            default:
                break
            }
        }

        /// The member's welcome (IRC: the end of the names), which counted `count` others in the room.
        private func welcome(_ index: Int, others count: Int32) {
            guard !welcomed[index] else { return }
            welcomed[index] = true
            waitingForWelcome -= 1
            others[index] += count
            noteJoinProgress(index)
        }

        /// Another member left the room.
        private func otherLeft(_ index: Int) {
            others[index] -= 1
            if joinCounted[index] {
                joinCounted[index] = false
                if stormRange.contains(index) { stormJoined -= 1 } else { fullyJoined -= 1 }
            }
        }

        // MARK: IRC

        /// Handles every whole line in `bytes`; returns the bytes used.
        private func parseLines(_ index: Int, _ bytes: UnsafeRawBufferPointer, now: UInt64) -> Int {
            guard let base = bytes.baseAddress else { return 0 }
            var offset = 0
            while offset < bytes.count {
                guard let newline = memchr(base + offset, 0x0A, bytes.count - offset) else { break }
                let end = base.distance(to: UnsafeRawPointer(newline))
                var lineEnd = end
                if lineEnd > offset && bytes[lineEnd - 1] == 0x0D { lineEnd -= 1 }
                handleLine(index, UnsafeRawBufferPointer(rebasing: bytes[offset..<lineEnd]), now: now)
                offset = end + 1
                guard descriptors[index] >= 0 else { return bytes.count }
            }
            return offset
        }

        private func handleLine(_ index: Int, _ line: UnsafeRawBufferPointer, now: UInt64) {
            switch IRCWire.parse(line) {
            case .message(let sender, let sequence, let sentAt):
                guard sender < senderSlots else { return }
                delivered(index, sender: sender, sequence: sequence, sentAt: sentAt, now: now)
            case .registered:
                sendHello(index)
            case .names(let count):
                // The names include the member itself, taken off at the end of the names.
                others[index] += Int32(count)
            case .endOfNames:
                welcome(index, others: -1)
            case .joined:
                // Before its welcome, the only JOIN a member sees is its own.
                if welcomed[index] {
                    others[index] += 1
                    noteJoinProgress(index)
                }
            case .left:
                if welcomed[index] { otherLeft(index) }
            case .ping(let parameters):
                sendRaw(IRCWire.pong(line, parameters: parameters), from: index)
            case .failure(let code):
                faults.relayErrors[code, default: 0] += 1
            case .closing:
                memberLost(index)
            case .foreignMessage, .other:
                break
            }
        }

        private func noteJoinProgress(_ index: Int) {
            let storm = stormRange.contains(index)
            let others = storm ? configuration.stormCount - 1 : configuration.members - 1
            guard !joinCounted[index], welcomed[index], Int(self.others[index]) == others else { return }
            joinCounted[index] = true
            if !storm {
                fullyJoined += 1
                return
            }
            stormJoined += 1
            if stormJoined == configuration.stormCount { stormEnd = Measure.nanoseconds() }
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
    /// The relay cannot be driven (wrong key, another protocol version, not a relay).
    case relay(String)
    /// Several engines failed; their descriptions, joined.
    case several(String)

    var description: String {
        switch self {
        case .usage(let text): text
        case .system(let call): "\(call) failed: errno \(errno)"
        case .timedOut(let what): "timed out: \(what)"
        case .relay(let why): why
        case .several(let descriptions): descriptions
        }
    }
}
