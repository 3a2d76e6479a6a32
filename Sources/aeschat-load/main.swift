// aeschat-load: the relay benchmark's load generator (see docs/BENCHMARKS.md). Not part of the aeschat CLI.
#if canImport(Glibc)
    import Glibc
#endif

import AESChatCore

let usage = """
    Usage: aeschat-load run --relay-key KEY --members N [--port N] [--host ADDR] [--pid PID] [--messages M]
                            [--relays ADDR:PORT,ADDR:PORT,...]
                            [--window W] [--paced-seconds S] [--senders K] [--rate R] [--idle-seconds S]
                            [--payload-bytes B] [--profile-bytes B] [--room ROOM] [--join-concurrency C]
                            [--threads T] [--busy-poll 0|1] [--phase-timeout S] [--handshakes H]
                            [--storm-joins J] [--storm-delay S]
           aeschat-load run --protocol irc --members N [the same options, without --relay-key,
                            --handshakes and --storm-joins]
           aeschat-load member-cost [--messages M]
           aeschat-load room-keys [--members N] [--threads T]

    run: every connection speaks the encrypted link to the relay whose public key is KEY (the 52-character
    text of its join line); each one's message 1 is written before the timed phases. --handshakes H first
    times H connections that only complete a handshake and close (the relay's CPU per handshake). Then N
    members join one room (timed), stay idle (relay RSS measured), then W1: member m0 publishes M payloads
    with at most W not yet delivered to everyone; then W1-paced: K members each publish R messages a second
    for S seconds, and every delivery's latency is recorded; with --storm-joins J, J more members join
    another room all at once, --storm-delay seconds (default 1) into the paced phase, and the latencies of
    the messages sent during that storm are reported apart (with --threads 2 or more, the storm has the last
    thread to itself, so its handshakes delay no chatting member's reads). --relays spreads the connections round-robin over
    several relays that share rooms (aeschat serve --cluster), instead of --host and --port; KEY is then one
    key for all of them or as many keys as relays, comma-separated, in the same order. --pid is the relay's process id, for its CPU
    (/proc/PID/stat) and memory (/proc/PID/status). Prints one JSON object.
    --protocol irc drives an IRC server (--pid is the server's) with the same workloads and figures: each
    member registers (NICK/USER mK, PONG to every PING) and joins the channel #ROOM (its welcome is the end
    of the names, 366); W1 and W1-paced publish PRIVMSG #ROOM with --payload-bytes of text (default 100, at
    least 28: sequence, send time and sender in hexadecimal, then letters); any error numeric (400-599) is
    counted in relay_errors.
    Every phase gives up after --phase-timeout seconds (default 60): the JSON object then has an "error"
    saying what the phase was still waiting for, and the exit status is 1.
    member-cost: CPU per received group message in one client (verify, ratchet, decrypt, JSON line).
    room-keys: an automatic-key room of N members in this process (real keys, the relay's fan-out in memory):
      CPU for a newcomer to reach the room's code, CPU and relay bytes for a leave then one message from each of
      min(10, N - 1) senders, CPU per received group message (N at least 3). Building the room first, untimed, costs
      N^2 signature checks and key agreements (about 20 CPU-minutes at N = 1000); it runs on T threads (default: the
      number of cores), the measured phases on one. Over 300 members, the build's progress goes to standard error.
    Exit status: 0 done; 1 the run failed (run: a phase gave up, a connection failed, or a delivery was lost,
    reordered or duplicated, the JSON object says which; run with too few descriptors allowed, member-cost and
    room-keys: a message not read, a member warned or the room codes differing: one line on standard error); 64 a
    usage error (an unknown mode or option, a value out of range), with the reason on standard error.
    """

/// A usage error (options the tool cannot run with): the reason on standard error, exit status 64.
func fail(_ message: String) -> Never {
    note(message)
    exit(64)
}

/// A run that failed (not the options): one line on standard error, exit status 1, as for a failed `run`.
func failRun(_ message: String) -> Never {
    note(message)
    exit(1)
}

func note(_ message: String) {
    var line = "aeschat-load: \(message)\n"
    line.withUTF8 { _ = write(2, $0.baseAddress, $0.count) }
}

var arguments = Array(CommandLine.arguments.dropFirst())
guard let mode = arguments.first, ["run", "member-cost", "room-keys"].contains(mode) else { fail(usage) }
arguments.removeFirst()
var values: [String: String] = [:]
while !arguments.isEmpty {
    let flag = arguments.removeFirst()
    guard flag.hasPrefix("--"), !arguments.isEmpty else { fail("expected '--option value', got '\(flag)'\n\(usage)") }
    values[String(flag.dropFirst(2))] = arguments.removeFirst()
}
@MainActor func integer(_ name: String, _ fallback: Int) -> Int {
    guard let text = values.removeValue(forKey: name) else { return fallback }
    guard let value = Int(text), value >= 0 else { fail("--\(name) needs a non-negative integer, got '\(text)'") }
    return value
}
@MainActor func number(_ name: String, _ fallback: Double) -> Double {
    guard let text = values.removeValue(forKey: name) else { return fallback }
    guard let value = Double(text), value >= 0 else { fail("--\(name) needs a non-negative number, got '\(text)'") }
    return value
}
func json(_ fields: [(String, String)]) -> String {
    "{" + fields.map { "\"\($0.0)\": \($0.1)" }.joined(separator: ", ") + "}"
}
func fixed(_ value: Double, _ digits: Int = 3) -> String {
    guard value.isFinite else { return "null" }
    var scaled = (value * pow(10, Double(digits))).rounded() / pow(10, Double(digits))
    if scaled == 0 { scaled = 0 }
    return "\(scaled)"
}

if mode == "room-keys" {
    let members = integer("members", 100)
    let threads = integer("threads", max(1, sysconf(Int32(_SC_NPROCESSORS_ONLN))))
    guard values.isEmpty else { fail("unknown option --\(values.keys.sorted()[0])\n\(usage)") }
    let losingOneDelivery = getenv("AESCHAT_LOAD_LOSE_DELIVERY").map { String(cString: $0) } == "1"
    do {
        print(
            json(
                try RoomKeysCost.measure(
                    members: members, threads: threads, losingOneDelivery: losingOneDelivery, progress: note)))
        exit(0)
    } catch CostError.usage(let message) {
        fail(message)
    } catch {
        failRun("\(error)")
    }
}

if mode == "member-cost" {
    let messages = integer("messages", 1000)
    guard values.isEmpty else { fail("unknown option --\(values.keys.sorted()[0])\n\(usage)") }
    do {
        let result = try MemberCost.measure(messages: messages)
        print(
            json([
                ("workload", "\"member-cost\""), ("messages", "\(result.messages)"),
                ("envelope_bytes", "\(result.envelopeBytes)"),
                ("us_per_message", fixed(result.microsecondsPerMessage, 1)),
                ("us_signature_check", fixed(result.signatureMicroseconds, 1)),
                ("messages_per_second", fixed(1e6 / result.microsecondsPerMessage, 0)),
            ]))
        exit(0)
    } catch CostError.usage(let message) {
        fail(message)
    } catch {
        failRun("\(error)")
    }
}

#if os(Linux)
    var configuration = LoadEngine.Configuration()
    configuration.members = integer("members", 1000)
    if let list = values.removeValue(forKey: "relays") {
        guard values["host"] == nil, values["port"] == nil else { fail("--relays replaces --host and --port") }
        configuration.relays = list.split(separator: ",", omittingEmptySubsequences: false).map { item in
            let parts = item.split(separator: ":", omittingEmptySubsequences: false)
            guard parts.count == 2, !parts[0].isEmpty, let port = UInt16(parts[1]), port > 0 else {
                fail("--relays needs ADDR:PORT items separated by commas, got '\(item)'")
            }
            return (String(parts[0]), port)
        }
    } else {
        let port = integer("port", 7777)
        guard port > 0, port <= 65535 else { fail("--port must be 1 to 65535, got \(port)") }
        configuration.relays = [(values.removeValue(forKey: "host") ?? "127.0.0.1", UInt16(port))]
    }
    configuration.room = values.removeValue(forKey: "room") ?? "bench"
    switch values.removeValue(forKey: "protocol") ?? "aeschat" {
    case "aeschat": configuration.wire = .aeschat
    case "irc": configuration.wire = .irc
    case let other: fail("--protocol must be aeschat or irc, got '\(other)'")
    }
    let irc = configuration.wire == .irc
    // IRC: a 100-byte chat message is 100 bytes of text; the relay carries it as a 211-byte group envelope.
    configuration.payloadBytes = integer("payload-bytes", irc ? 100 : 211)
    configuration.profileBytes = integer("profile-bytes", 0)
    configuration.joinConcurrency = max(1, integer("join-concurrency", 1000))
    configuration.count = configuration.members
    configuration.busyPoll = integer("busy-poll", 0) != 0
    configuration.phaseTimeout = number("phase-timeout", 60)
    configuration.probeCount = integer("handshakes", 0)
    configuration.stormCount = integer("storm-joins", 0)
    configuration.stormDelay = number("storm-delay", 1)
    if irc {
        guard values["relay-key"] == nil else { fail("--relay-key is for the aeschat protocol, not irc") }
        guard configuration.probeCount == 0, configuration.stormCount == 0 else {
            fail("--handshakes and --storm-joins measure the encrypted link; --protocol irc has none")
        }
        guard configuration.payloadBytes >= IRCWire.payloadHeader, configuration.payloadBytes <= 400 else {
            fail("--payload-bytes must be 28 to 400 for IRC (a line is at most 512 bytes)")
        }
        guard configuration.room.utf8.allSatisfy({ $0 > 0x20 && $0 != UInt8(ascii: ",") && $0 < 0x7F }) else {
            fail("--room must be printable ASCII without spaces or commas for IRC, got '\(configuration.room)'")
        }
    } else {
        guard let keyText = values.removeValue(forKey: "relay-key") else {
            fail("--relay-key is required: the relay's public key, as its join line prints it\n\(usage)")
        }
        configuration.relayKeys = keyText.split(separator: ",", omittingEmptySubsequences: false).map { text in
            guard let relayKey = RelayPublicKey(text: String(text)) else {
                fail("--relay-key needs the 52-character key text of the relay's join line, got '\(text)'")
            }
            return relayKey
        }
        guard configuration.relayKeys.count == 1 || configuration.relayKeys.count == configuration.relays.count else {
            fail("--relay-key needs one key for all relays or one per relay (\(configuration.relays.count))")
        }
    }
    let pid = Int32(integer("pid", 0))
    let messages = integer("messages", 0)
    let window = integer("window", 100)
    let pacedSeconds = number("paced-seconds", 0)
    let senders = integer("senders", 10)
    let rate = integer("rate", 10)
    let idleSeconds = number("idle-seconds", 1)
    // Two engine threads by default, so the generator is not held to one core; the senders (members
    // 0 to 9) all live in the first.
    let threads = max(1, min(integer("threads", 2), configuration.members / 20))
    guard values.isEmpty else { fail("unknown option --\(values.keys.sorted()[0])\n\(usage)") }
    guard configuration.members >= 2 else { fail("--members must be at least 2") }
    let limit = ProcessLimits.raiseDescriptorLimit() ?? 1024
    guard limit > configuration.members + configuration.stormCount + configuration.probeCount + 16 else {
        // Not a usage error: the same options work where more descriptors are allowed.
        failRun("descriptor limit \(limit) is too low for \(configuration.members) members; raise ulimit -n")
    }
    var fields: [(String, String)] = [
        ("protocol", irc ? "\"irc\"" : "\"aeschat\""), ("members", "\(configuration.members)"),
        ("relays", "\(configuration.relays.count)"),
        ("payload_bytes", "\(configuration.payloadBytes)"),
        ("profile_bytes", "\(configuration.profileBytes)"),
    ]
    do {
        let group = try EngineGroup(configuration: configuration, threads: threads)
        fields.append(("load_threads", "\(group.engines.count)"))
        // Every connection's message 1, written before anything is timed (each engine on its own thread).
        let prepareStart = Measure.nanoseconds()
        let prepareCPU = try group.run { _, engine throws(LoadError) in try engine.prepare() }.reduce(0, +)
        fields.append(("prepare_seconds", fixed(Double(Measure.nanoseconds() - prepareStart) / 1e9)))
        fields.append(("prepare_load_cpu_seconds", fixed(prepareCPU)))
        fields.append(
            (
                "prepare_load_cpu_ms_per_handshake",
                fixed(
                    prepareCPU * 1e3
                        / Double(configuration.members + configuration.stormCount + configuration.probeCount))
            ))
        if configuration.probeCount > 0 {
            note("handshakes: \(configuration.probeCount)")
            let relayBefore = pid > 0 ? Measure.cpuSeconds(pid: pid) : nil
            let seconds = try group.run { _, engine throws(LoadError) in try engine.probeHandshakes() }.max() ?? 0
            let probes = Double(configuration.probeCount)
            let ownCPU = group.engines.reduce(0) { $0 + $1.handshakeCPU }
            fields.append(("handshakes", "\(configuration.probeCount)"))
            fields.append(("handshake_seconds", fixed(seconds)))
            fields.append(("handshakes_per_second", fixed(probes / seconds, 0)))
            fields.append(("handshake_load_cpu_ms", fixed(Double(ownCPU) / 1e6 / probes, 4)))
            fields.append(("handshake_busy", "\(group.engines.reduce(0) { $0 + $1.busyAnswers })"))
            if let before = relayBefore, let after = Measure.cpuSeconds(pid: pid) {
                fields.append(("handshake_relay_cpu_ms", fixed((after - before) * 1e3 / probes, 4)))
            }
        }
        let handshakeCPUBefore = group.engines.reduce(0) { $0 + $1.handshakeCPU }
        let busyBefore = group.engines.reduce(0) { $0 + $1.busyAnswers }
        let rssBefore = pid > 0 ? Measure.residentBytes(pid: pid) : nil
        let relayCPUBefore = pid > 0 ? Measure.cpuSeconds(pid: pid) : nil
        note("joining \(configuration.members) members")
        let joinOwnBefore = Measure.ownCPUSeconds()
        let joinSeconds = try group.run { _, engine throws(LoadError) in try engine.joinAll() }.max() ?? 0
        fields.append(("join_seconds", fixed(joinSeconds)))
        fields.append(("join_reconnects", "\(group.engines.reduce(0) { $0 + $1.reconnects })"))
        fields.append(("join_load_cpu_seconds", fixed(Measure.ownCPUSeconds() - joinOwnBefore)))
        let joinHandshakeCPU = group.engines.reduce(0) { $0 + $1.handshakeCPU } - handshakeCPUBefore
        fields.append(("join_load_handshake_cpu_seconds", fixed(Double(joinHandshakeCPU) / 1e9)))
        fields.append(("join_busy", "\(group.engines.reduce(0) { $0 + $1.busyAnswers } - busyBefore)"))
        fields.append(("join_late_handshakes", "\(group.engines.reduce(0) { $0 + $1.lateHandshakes })"))
        if let before = relayCPUBefore, let after = Measure.cpuSeconds(pid: pid) {
            fields.append(("join_relay_cpu_seconds", fixed(after - before)))
            fields.append(
                ("join_relay_cpu_ms_per_member", fixed((after - before) * 1e3 / Double(configuration.members), 4)))
        }
        _ = try group.run { _, engine throws(LoadError) in engine.idle(seconds: idleSeconds) }
        if let before = rssBefore, let after = Measure.residentBytes(pid: pid) {
            fields.append(("relay_rss_before", "\(before)"))
            fields.append(("relay_rss_idle", "\(after)"))
            fields.append(("bytes_per_connection", fixed(Double(after - before) / Double(configuration.members), 0)))
        }
        if messages > 0 {
            note("W1: \(messages) messages to \(configuration.members - 1) receivers, window \(window)")
            let relayBefore = pid > 0 ? Measure.cpuSeconds(pid: pid) : nil
            let ownBefore = Measure.ownCPUSeconds()
            let progress = FanOutProgress(engines: group.engines.count)
            let start = Measure.nanoseconds()
            let finishes = try group.run { k, engine throws(LoadError) in
                try engine.fanOut(messages: messages, window: window, progress: progress, engine: k)
            }
            let seconds = Double((finishes.max() ?? start) - start) / 1e9
            let wall = Double(Measure.nanoseconds() - start) / 1e9
            let ownCPU = Measure.ownCPUSeconds() - ownBefore
            let deliveries = Double(messages) * Double(configuration.members - 1)
            fields.append(("w1_messages", "\(messages)"))
            fields.append(("w1_seconds", fixed(seconds, 4)))
            fields.append(("w1_deliveries_per_second", fixed(deliveries / seconds, 0)))
            fields.append(("w1_load_cpu_share", fixed(ownCPU / wall)))
            fields.append(("w1_load_cpu_us_per_delivery", fixed(ownCPU / deliveries * 1e6, 4)))
            if let before = relayBefore, let after = Measure.cpuSeconds(pid: pid) {
                fields.append(("w1_relay_cpu_seconds", fixed(after - before)))
                fields.append(("w1_relay_cpu_share", fixed((after - before) / wall)))
                fields.append(("w1_relay_cpu_us_per_delivery", fixed((after - before) / deliveries * 1e6, 4)))
            }
            if let peak = Measure.residentBytes(pid: pid), pid > 0 { fields.append(("relay_rss_after_w1", "\(peak)")) }
        }
        if pacedSeconds > 0 {
            note("W1-paced: \(senders) senders x \(rate) msg/s for \(pacedSeconds) s")
            if configuration.stormCount > 0 {
                note("join storm: \(configuration.stormCount) members, \(configuration.stormDelay) s in")
                for engine in group.engines { engine.recordsSamples = true }
            }
            let stormBusyBefore = group.engines.reduce(0) { $0 + $1.busyAnswers }
            let relayBefore = pid > 0 ? Measure.cpuSeconds(pid: pid) : nil
            let ownBefore = Measure.ownCPUSeconds()
            let delivered = try group.run { _, engine throws(LoadError) in
                try engine.paced(senders: senders, rate: rate, seconds: pacedSeconds)
            }.reduce(0, +)
            fields.append(("paced_load_cpu_share", fixed((Measure.ownCPUSeconds() - ownBefore) / pacedSeconds)))
            var latencies = LatencyHistogram()
            var lastReceipt = group.engines[0].lastReceipt
            var firstReceipt = group.engines[0].firstReceipt
            for engine in group.engines {
                latencies.merge(engine.latencies)
                for index in lastReceipt.indices {
                    lastReceipt[index] = max(lastReceipt[index], engine.lastReceipt[index])
                    let first = engine.firstReceipt[index]
                    if first != 0 && (firstReceipt[index] == 0 || first < firstReceipt[index]) {
                        firstReceipt[index] = first
                    }
                }
            }
            var lastDeliveries = LatencyHistogram()
            for latency in lastReceipt where latency > 0 { lastDeliveries.record(nanoseconds: latency) }
            var firstDeliveries = LatencyHistogram()
            for latency in firstReceipt where latency > 0 { firstDeliveries.record(nanoseconds: latency) }
            fields.append(("paced_first_delivery_p50_ms", fixed(firstDeliveries.percentile(0.5))))
            fields.append(("paced_first_delivery_p99_ms", fixed(firstDeliveries.percentile(0.99))))
            fields.append(("paced_last_delivery_p50_ms", fixed(lastDeliveries.percentile(0.5))))
            fields.append(("paced_last_delivery_p99_ms", fixed(lastDeliveries.percentile(0.99))))
            fields.append(("paced_deliveries", "\(delivered)"))
            fields.append(("paced_p50_ms", fixed(latencies.percentile(0.50))))
            fields.append(("paced_p99_ms", fixed(latencies.percentile(0.99))))
            fields.append(("paced_p999_ms", fixed(latencies.percentile(0.999))))
            fields.append(("paced_max_ms", fixed(latencies.maximumMilliseconds)))
            if let before = relayBefore, let after = Measure.cpuSeconds(pid: pid) {
                fields.append(("paced_relay_cpu_share", fixed((after - before) / pacedSeconds)))
            }
            if configuration.stormCount > 0, let storm = group.engines.last, storm.stormEnd > storm.stormStart {
                // Messages sent while the storm was joining, against the others of the same run.
                var during = LatencyHistogram()
                var outside = LatencyHistogram()
                for engine in group.engines {
                    for sample in engine.pacedSamples {
                        if sample.sentAt >= storm.stormStart && sample.sentAt <= storm.stormEnd {
                            during.record(nanoseconds: sample.latency)
                        } else {
                            outside.record(nanoseconds: sample.latency)
                        }
                    }
                }
                fields.append(("storm_joins", "\(configuration.stormCount)"))
                fields.append(("storm_join_seconds", fixed(Double(storm.stormEnd - storm.stormStart) / 1e9)))
                fields.append(("storm_busy", "\(group.engines.reduce(0) { $0 + $1.busyAnswers } - stormBusyBefore)"))
                fields.append(("storm_deliveries", "\(during.count)"))
                fields.append(("storm_p50_ms", fixed(during.percentile(0.50))))
                fields.append(("storm_p99_ms", fixed(during.percentile(0.99))))
                fields.append(("storm_max_ms", fixed(during.maximumMilliseconds)))
                fields.append(("calm_p50_ms", fixed(outside.percentile(0.50))))
                fields.append(("calm_p99_ms", fixed(outside.percentile(0.99))))
                fields.append(("calm_max_ms", fixed(outside.maximumMilliseconds)))
            }
        }
        var faults = LoadEngine.Faults()
        for engine in group.engines {
            faults.outOfOrder += engine.faults.outOfOrder
            faults.duplicates += engine.faults.duplicates
            faults.unexpectedCloses += engine.faults.unexpectedCloses
            faults.linkFailures += engine.faults.linkFailures
            faults.relayErrors.merge(engine.faults.relayErrors, uniquingKeysWith: +)
        }
        fields.append(("out_of_order", "\(faults.outOfOrder)"))
        fields.append(("duplicates", "\(faults.duplicates)"))
        fields.append(("relay_errors", "\(faults.relayErrors.values.reduce(0, +))"))
        fields.append(("unexpected_closes", "\(faults.unexpectedCloses)"))
        fields.append(("link_failures", "\(faults.linkFailures)"))
        fields.append(("load_handshakes", "\(group.engines.reduce(0) { $0 + $1.handshakesCompleted })"))
        for engine in group.engines { engine.closeAll() }
        print(json(fields))
        exit(faults.total == 0 ? 0 : 1)
    } catch {
        fields.append(("error", "\"\(error)\""))
        print(json(fields))
        note("\(error)")
        exit(1)
    }
#else
    fail("the load tool needs Linux (epoll and /proc)")
#endif
