#if canImport(Glibc)
    import Glibc
#endif
import AESChatTesting
import Testing

@testable import AESChatCore

/// A lean member over a real socket: registers, counts the others it hears of, and checks that the
/// payloads of every sender arrive once, whole and in order.
final class CountingMember: ConnectionHandler {
    let name: String
    let connection: LinkTestClient
    var decoder = FrameDecoder()
    var welcomed = false
    var others = 0
    var nextSequence: [Int: UInt32] = [:]
    var delivered = 0
    var faults: [String] = []
    var errorCodes: [UInt16] = []
    var left: [String] = []
    var closed = false
    var onChange: () -> Void = {}

    init(name: String, room: String, port: UInt16, loop: PosixEventLoop, relayKey: RelayPublicKey) throws {
        self.name = name
        connection = try LinkTestClient(
            over: try TCPConnection.connectNow(host: "127.0.0.1", port: port, loop: loop), relayKey: relayKey)
        connection.handler = self
        connection.write(
            ClientFrame.hello(version: relayProtocolVersion, name: name, room: room, profile: []).encoded())
    }

    /// A payload of `size` bytes that names its sender and sequence number and can be checked.
    static func payload(sender: Int, sequence: UInt32, size: Int) -> [UInt8] {
        var bytes: [UInt8] = [UInt8(sender >> 8), UInt8(sender & 0xFF)]
        for shift in stride(from: 24, through: 0, by: -8) { bytes.append(UInt8(truncatingIfNeeded: sequence >> shift)) }
        while bytes.count < size { bytes.append(UInt8(truncatingIfNeeded: Int(sequence) &+ bytes.count)) }
        return bytes
    }

    func connection(_ connection: any Connection, didRead bytes: UnsafeRawBufferPointer) {
        do {
            try decoder.feed(bytes) { (type: UInt8, body: UnsafeRawBufferPointer) throws(WireError) -> Bool in
                self.handle(type: type, body: body)
                return true
            }
        } catch {
            faults.append("\(name): \(error)")
        }
        onChange()
    }

    private func handle(type: UInt8, body: UnsafeRawBufferPointer) {
        guard let frame = try? RelayFrame(Frame(type: type, body: ArraySlice(body))) else {
            faults.append("\(name): undecodable frame 0x\(String(type, radix: 16))")
            return
        }
        switch frame {
        case .welcome(_, _, _, let members):
            welcomed = true
            others += members.count
        case .joined:
            others += 1
        case .left(let name):
            others -= 1
            left.append(name)
        case .deliver(_, _, let payload):
            guard payload.count >= 6 else { return faults.append("\(name): short payload") }
            let bytes = Array(payload)
            let sender = Int(bytes[0]) << 8 | Int(bytes[1])
            let sequence = bytes[2..<6].reduce(UInt32(0)) { $0 << 8 | UInt32($1) }
            let expected = nextSequence[sender, default: 0]
            if sequence != expected {
                faults.append("\(name): from sender \(sender) got \(sequence), expected \(expected)")
            }
            if bytes != Self.payload(sender: sender, sequence: sequence, size: bytes.count) {
                faults.append("\(name): payload \(sequence) from \(sender) damaged")
            }
            nextSequence[sender] = sequence &+ 1
            delivered += 1
        case .error(let code, _):
            errorCodes.append(code)
        case .ping, .pong, .relayKeys:
            break
        }
    }

    func connection(_ connection: any Connection, didCloseWith error: TransportError?) {
        closed = true
        onChange()
    }
}

@Suite(.serialized) struct RelayScaleTests {
    /// Runs `loop` until `done` holds (checked after every read) or `seconds` pass.
    func run(_ loop: PosixEventLoop, seconds: Int, until done: @escaping () -> Bool) throws -> Bool {
        var finished = false
        // Both timers are cancelled on the way out: a watchdog left behind by an earlier, quicker call would
        // otherwise stop a later call's loop early (which a loaded machine turns into a failure).
        let watchdog = loop.schedule(after: .seconds(seconds)) { loop.stop() }
        var pollTimer: TimerID?
        func poll() {
            if done() {
                finished = true
                loop.stop()
            } else {
                pollTimer = loop.schedule(after: .milliseconds(5), poll)
            }
        }
        poll()
        defer {
            loop.cancel(watchdog)
            if let pollTimer { loop.cancel(pollTimer) }
        }
        try loop.run()
        return finished
    }

    @Test func soak_500Members_everyDeliveryArrivesOnce_inOrder() throws {
        ProcessLimits.raiseDescriptorLimit()
        let loop = try PosixEventLoop()
        let listener = try TCPListener(host: "127.0.0.1", port: 0, loop: loop)
        // Every member comes from 127.0.0.1: no per-address handshake rate here.
        var configuration = RelayConfiguration()
        configuration.limits.handshakeRate = 0
        let relay = Relay(configuration: configuration, loop: loop) { _ in }
        relay.attach(to: listener)
        let count = 500
        let members = try (0..<count).map {
            try CountingMember(
                name: "m\($0)", room: "soak", port: listener.localPort, loop: loop, relayKey: relay.publicKey)
        }
        let joined = try run(loop, seconds: 30) { members.allSatisfy { $0.welcomed && $0.others == count - 1 } }
        #expect(joined, "not every member saw the \(count - 1) others")
        #expect(relay.memberCount == count)

        // Five senders, 60 messages each of the W1 size (202 bytes), in bursts of varying size.
        let senders = 5
        let perSender = 60
        var sent = [Int](repeating: 0, count: senders)
        func burst(_ round: Int) {
            for sender in 0..<senders {
                let size = 1 + (round * 7 + sender * 3) % 17
                for _ in 0..<size where sent[sender] < perSender {
                    let payload = CountingMember.payload(sender: sender, sequence: UInt32(sent[sender]), size: 202)
                    members[sender].connection.write(ClientFrame.publish(payload: payload[...]).encoded())
                    sent[sender] += 1
                }
            }
            if sent.contains(where: { $0 < perSender }) {
                loop.schedule(after: .milliseconds(round % 3 == 0 ? 0 : 3)) { burst(round + 1) }
            }
        }
        burst(0)
        let expectedPerMember = { (index: Int) in (index < senders ? senders - 1 : senders) * perSender }
        let delivered = try run(loop, seconds: 60) {
            members.indices.allSatisfy { members[$0].delivered >= expectedPerMember($0) }
        }
        #expect(delivered, "deliveries missing")
        for (index, member) in members.enumerated() {
            #expect(member.faults.isEmpty, "\(member.faults.prefix(3))")
            #expect(member.delivered == expectedPerMember(index))
            #expect(member.errorCodes.isEmpty)
            for sender in 0..<senders where sender != index {
                #expect(member.nextSequence[sender] == UInt32(perSender))
            }
            #expect(member.nextSequence[index] == nil, "\(member.name) got its own messages")
        }
        for member in members { member.connection.close() }
        listener.close()
    }

    @Test func slowConsumer_isDisconnectedAtTheCap_andTheOthersGetEverything() throws {
        let loop = try PosixEventLoop()
        let listener = try TCPListener(host: "127.0.0.1", port: 0, loop: loop)
        var configuration = RelayConfiguration()
        configuration.maximumFrameLength = 64 * 1024
        // The cap must exceed what one loop iteration reads from a sender (4 reads of 256 KiB), since
        // here the members share the relay's thread and read only between its iterations.
        configuration.maximumPendingOutput = 4 * 1024 * 1024
        configuration.closeTimeout = .seconds(60)
        var logged: [String] = []
        let relay = Relay(configuration: configuration, loop: loop) { logged.append($0) }
        relay.attach(to: listener)
        let members = try ["alice", "bob", "carol"].map {
            try CountingMember(name: $0, room: "lobby", port: listener.localPort, loop: loop, relayKey: relay.publicKey)
        }
        // The slow member is a bare socket outside the loop with a small receive buffer: after its
        // welcome it reads nothing until the relay has given up on it.
        let slow = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        #expect(slow >= 0)
        defer { close(slow) }
        System.setOption(slow, SOL_SOCKET, SO_RCVBUF, 4096)
        var address = sockaddr_in()
        address.sin_family = sa_family_t(AF_INET)
        address.sin_port = listener.localPort.bigEndian
        address.sin_addr.s_addr = inet_addr("127.0.0.1")
        let connected = withUnsafePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) {
                connect(slow, $0, socklen_t(MemoryLayout<sockaddr_in>.size))
            }
        }
        #expect(connected == 0)
        // The sloth's link, by hand on the bare socket: preamble and message 1, then message 2.
        let preamble = try LinkPreamble(relayFingerprint: relay.publicKey.fingerprintHash)
        let handshake = try NoiseHandshake.initiator(
            responderStaticKey: relay.publicKey.bytes, prologue: preamble.prologue)
        let opening = preamble.bytes + LinkTestClient.messagePrefix + (try handshake.writeMessage())
        #expect(send(slow, opening, opening.count, Int32(MSG_NOSIGNAL)) == opening.count)
        var message2: [UInt8] = []
        var piece = [UInt8](repeating: 0, count: 50)
        _ = try run(loop, seconds: 10) {
            let count = recv(slow, &piece, 50 - message2.count, Int32(MSG_DONTWAIT))
            if count > 0 { message2 += piece[0..<count] }
            return message2.count == 50
        }
        _ = try handshake.readMessage(Array(message2.dropFirst(2)))
        let keys = try handshake.finish()
        let hello = try LinkRecordWriter(cipher: keys.sending).seal(
            ClientFrame.hello(version: relayProtocolVersion, name: "sloth", room: "lobby", profile: []).encoded())
        #expect(send(slow, hello, hello.count, Int32(MSG_NOSIGNAL)) == hello.count)
        #expect(try run(loop, seconds: 10) { members.allSatisfy { $0.welcomed && $0.others == 3 } })

        // 400 messages of 60,000 bytes: 24 MB for each member, far beyond what the kernel buffers and
        // the cap hold for the sloth.
        let messages = 400
        for sequence in 0..<messages {
            let payload = CountingMember.payload(sender: 0, sequence: UInt32(sequence), size: 60_000)
            members[0].connection.write(ClientFrame.publish(payload: payload[...]).encoded())
        }
        let everything = try run(loop, seconds: 30) {
            members[1].delivered == messages && members[2].delivered == messages
                && members.allSatisfy { $0.left == ["sloth"] }
        }
        #expect(everything)
        for member in members {
            #expect(member.faults.isEmpty, "\(member.faults.prefix(3))")
            #expect(member.errorCodes.isEmpty)
        }
        #expect(logged.contains { $0.hasPrefix("dropping sloth") && $0.contains("too slow") })
        #expect(relay.memberCount == 3)

        // The sloth's stream: whole records of whole frames (deliveries in order), then the too-slow error, then
        // the end.
        let records = LinkRecordReader(cipher: keys.receiving)
        var decoder = FrameDecoder(maximumLength: 64 * 1024)
        var frames: [RelayFrame] = []
        var sawEnd = false
        let deadline = ContinuousClock.now + .seconds(10)
        var chunk = [UInt8](repeating: 0, count: 65536)
        func drain() {
            while !sawEnd && ContinuousClock.now < deadline {
                let count = recv(slow, &chunk, chunk.count, Int32(MSG_DONTWAIT))
                if count > 0 {
                    var plaintext: [UInt8] = []
                    do {
                        try records.read(Array(chunk[0..<count]), into: &plaintext)
                    } catch {
                        Issue.record("the sloth's records: \(error)")
                        sawEnd = true
                    }
                    for frame in decoder.frames(after: plaintext[...]).frames {
                        if let decoded = try? RelayFrame(frame) { frames.append(decoded) }
                    }
                } else if count == 0 {
                    sawEnd = true
                } else {
                    return
                }
            }
        }
        _ = try run(loop, seconds: 10) {
            drain()
            return sawEnd
        }
        #expect(sawEnd, "the relay never closed the sloth's connection")
        #expect(records.bufferedByteCount == 0, "the sloth's stream ended inside a record")
        #expect(decoder.bufferedByteCount == 0, "the sloth's stream ended inside a frame")
        guard case .error(let code, let message)? = frames.last else {
            Issue.record("the sloth's stream does not end with an error: \(String(describing: frames.last))")
            return
        }
        #expect(code == RelayErrorCode.tooSlow.rawValue)
        #expect(message.contains("too slow"))
        let sequences: [UInt32] = frames.compactMap {
            guard case .deliver(_, _, let payload) = $0 else { return nil }
            return Array(payload)[2..<6].reduce(UInt32(0)) { $0 << 8 | UInt32($1) }
        }
        #expect(sequences == (0..<UInt32(sequences.count)).map { $0 })
        #expect(sequences.count < messages)
        for member in members { member.connection.close() }
        listener.close()
    }
}
