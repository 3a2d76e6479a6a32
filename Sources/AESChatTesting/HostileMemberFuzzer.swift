public import AESChatCore
import AESChatCrypto

#if canImport(Glibc)
    import Glibc
#elseif canImport(Darwin)
    import Darwin
#endif

/// State-machine fuzzing with real keys: a relay, a genuine client (`bob`, with an inbox and a
/// file to send) and a ``HostileMember`` (`mallory`) on the in-memory transport. A program — a
/// byte string, from a seeded generator or from libFuzzer — is read as a sequence of actions the
/// hostile member takes with valid keys and valid signatures: sender keys, group messages and
/// private messages at extreme indexes and counters, every file-control kind with extreme field
/// values, chunks, floods of offers, leaving and coming back, and the passing of (virtual) time.
/// Every event the victim shows is rendered in both its human and its JSON form. A trap anywhere
/// ends the process, which is what the caller watches for; ``checkInvariants()`` adds what must
/// hold after any program.
public final class HostileMemberFuzzer {
    /// The key mode of the room.
    public enum Mode: CaseIterable, Sendable {
        case automatic
        case roomKey
    }

    public let mode: Mode
    public let loop = MemoryEventLoop()
    private let listener: MemoryListener
    private let relay: Relay
    private let folder: String
    private let fileToSend: String
    private let roomKey = RoomKey(bytes: Array(repeating: 0x3C, count: 32))
    /// Identities made once per process: drawing keys is the slowest part of setting up a room.
    private static let hostileIdentity = Ed25519PrivateKey()
    private static let victimIdentity = Ed25519PrivateKey()
    private let victimOutput = RenderingOutput()
    private let outcome = OutcomeBox()
    private var victim: ChatRoom!
    private var hostile: HostileMember!
    private var filesSent = 0
    private var lastChainID: [UInt8]?
    private var descriptorsAtStart = 0

    /// Open descriptors the victim may add while a program runs: the caps on incoming transfers
    /// and part files bound them (docs/SECURITY.md), plus outgoing files and slack.
    public static let descriptorAllowance = 64

    /// Sets up the room. `folder` must be an empty, writable folder of the caller's: the inbox and
    /// the file the victim sends go there.
    public init(mode: Mode, folder: String) throws {
        self.mode = mode
        self.folder = folder
        listener = MemoryListener(loop: loop)
        relay = Relay(loop: loop) { _ in }
        relay.attach(to: listener)
        fileToSend = folder + "/outgoing.bin"
        let descriptor = open(fileToSend, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0o600)
        if descriptor >= 0 {
            let chunk = [UInt8](repeating: 0xAB, count: 300 * 1024)
            _ = chunk.withUnsafeBytes { write(descriptor, $0.baseAddress!, $0.count) }
            close(descriptor)
        }
        descriptorsAtStart = Self.openDescriptorCount(under: folder)
        let security: any MessageSecurity =
            switch mode {
            case .automatic:
                try AutomaticKeySecurity(
                    identity: Self.victimIdentity, name: "bob", room: "lobby", relay: "memory",
                    knownPeers: KnownPeers())
            case .roomKey:
                RoomKeySecurity(roomKey: roomKey, room: "lobby", name: "bob")
            }
        let inbox = try Inbox(path: folder + "/inbox")
        victim = ChatRoom(
            name: "bob", room: "lobby", security: security,
            connection: try Self.linkedConnection(to: relay, via: listener, chunkSize: 1500),
            output: victimOutput, loop: loop, inbox: inbox, maximumFileSize: nil
        ) { [outcome] in outcome.value = $0 }
        victim.start()
        loop.runUntilIdle()
        try joinHostile()
    }

    private func joinHostile() throws {
        let keys: HostileMember.Keys =
            mode == .automatic ? .automatic(identity: Self.hostileIdentity) : .roomKey(roomKey)
        hostile = try HostileMember(
            name: "mallory", room: "lobby", keys: keys, connection: try Self.linkedConnection(to: relay, via: listener))
        hostile.start()
        loop.runUntilIdle()
    }

    /// A new connection to the relay over the encrypted link.
    private static func linkedConnection(
        to relay: Relay, via listener: MemoryListener, chunkSize: Int = 4096
    ) throws -> LinkTestClient {
        let relayKey = try RelayPublicKey(bytes: relay.configuration.relayKey.publicKey)
        return try LinkTestClient(over: listener.connect(chunkSize: chunkSize), relayKey: relayKey)
    }

    /// Whether the victim's session is still running (a hostile member can never end it).
    public var isVictimRunning: Bool { outcome.value == nil }
    /// Events the victim showed.
    public var victimEventCount: Int { victimOutput.count }

    /// Runs one program: every action, each followed by the loop running until idle.
    public func run(_ program: [UInt8]) {
        var reader = ProgramReader(program)
        var actions = 0
        while !reader.isAtEnd && actions < 512 && isVictimRunning {
            perform(&reader)
            loop.runUntilIdle()
            actions += 1
        }
    }

    /// What must hold after any program: the victim still runs, and its open descriptors stay
    /// within the caps (one bad member cannot exhaust them).
    public func checkInvariants() -> [String] {
        var failures: [String] = []
        if let ended = outcome.value { failures.append("the victim's session ended: \(ended)") }
        let added = Self.openDescriptorCount(under: folder) - descriptorsAtStart
        if added > Self.descriptorAllowance {
            failures.append("the victim holds \(added) more descriptors than at the start")
        }
        return failures
    }

    /// Ends the victim's session, closes its files and every connection, and stops the relay.
    public func finish() {
        victim.interrupt()
        hostile.connection.close()
        loop.runUntilIdle()
        relay.shutdown {}
        loop.advance(by: .seconds(10))
    }

    // MARK: Actions

    private static let chainIDs: [[UInt8]] = (1...3).map { [UInt8](repeating: UInt8($0), count: 16) }
    private static let fixedFileIDs: [[UInt8]] = [
        [UInt8](repeating: 0x11, count: 16), [UInt8](repeating: 0x22, count: 16),
    ]

    /// Actions by weight: the ones that reach deep state (keys, group and private messages, file
    /// control) come up more often.
    private static let actionTable: [UInt8] = [0, 0, 0, 1, 1, 1, 1, 2, 2, 3, 3, 4, 4, 5, 6, 6, 7, 8, 9, 10, 11]

    private func perform(_ reader: inout ProgramReader) {
        let action = reader.choose(Self.actionTable)
        switch action {
        case 0:
            let chainID = reader.choose(Self.chainIDs)
            lastChainID = chainID
            let index: UInt32 = reader.choose([0, 1, 99, UInt32.max - 2, UInt32.max - 1, UInt32.max, reader.u32()])
            hostile.sendSenderKey(
                chainID: chainID, index: index, chainKey: [UInt8](repeating: reader.byte(), count: 32), to: "bob")
        case 1:
            // Mostly on the chain it sent last, at or just past its start (so that it authenticates).
            let starts = hostile.chainStarts.sorted { $0.key.lexicographicallyPrecedes($1.key) }
            let plaintext = self.plaintext(&reader)
            if let lastChainID, let start = hostile.chainStarts[lastChainID], reader.byte() % 2 == 0 {
                let step = UInt32(reader.byte() % 3)
                hostile.sendGroupMessage(
                    plaintext, chainID: lastChainID, index: start <= UInt32.max - step ? start + step : start)
            } else if !starts.isEmpty && reader.byte() % 4 != 0 {
                let (chainID, start) = starts[Int(reader.byte()) % starts.count]
                let step = UInt32(reader.byte() % 4)
                let index = start <= UInt32.max - step ? start + step : start
                hostile.sendGroupMessage(plaintext, chainID: chainID, index: index)
            } else {
                hostile.sendGroupMessage(
                    plaintext, chainID: reader.choose(Self.chainIDs + [reader.bytes(16)]), index: reader.u32())
            }
        case 2:
            let content = self.content(&reader)
            // An accepted far-ahead counter ends the channel for the rest of the program: rarely.
            if reader.byte() % 16 == 0 {
                switch mode {
                case .automatic: hostile.sendOverChannel(content.encoded(), to: "bob", counter: reader.u64())
                case .roomKey:
                    hostile.sendRoomKeyEnvelope(content, to: "bob", counter: reader.u64(), sentAt: sentAt(&reader))
                }
            } else {
                hostile.sendPrivately(content, to: "bob")
            }
        case 3:
            let content = self.content(&reader)
            if mode == .roomKey && reader.byte() % 4 == 0 {
                hostile.sendRoomKeyEnvelope(content, to: nil, counter: reader.u64(), sentAt: sentAt(&reader))
            } else {
                hostile.sendToRoom(content)
            }
        case 4:
            sendChunk(&reader)
        case 5:
            guard filesSent < 3 else { return }
            filesSent += 1
            victim.submit(line: reader.byte() % 2 == 0 ? "/send \(fileToSend)" : "/send \(fileToSend) mallory")
        case 6:
            answerVictimOffer(&reader)
        case 7:
            hostile.leave()
            loop.runUntilIdle()
            lastChainID = nil
            try? joinHostile()
        case 8:
            let garbage = reader.bytes(Int(reader.byte()))
            if reader.byte() % 2 == 0 {
                hostile.send(.publish(payload: garbage[...]))
            } else {
                hostile.send(.direct(to: "bob", payload: garbage[...]))
            }
        case 9:
            loop.advance(
                by: reader.choose([.seconds(1), .seconds(16), .seconds(31), .seconds(61), .seconds(25 * 3600)]))
        case 10:
            // A flood of offers, each with a file id of its own.
            let count = Int(reader.byte() % 48)
            for number in 0..<count {
                let fileID = [UInt8](repeating: UInt8(truncatingIfNeeded: number), count: 8) + reader.bytes(8)
                let offer = FileOffer(
                    fileID: fileID, size: reader.u64(), chunkSize: 1024, key: Array(repeating: 9, count: 32),
                    name: "flood\(number)")
                hostile.sendPrivately(.fileOffer(offer), to: "bob")
                if reader.byte() % 2 == 0 {
                    hostile.sendPrivately(.fileAbort(fileID: fileID, reason: "never mind"), to: "bob")
                }
            }
        default:
            victim.submit(line: reader.byte() % 2 == 0 ? "hello \(reader.byte())" : "/msg mallory hi")
        }
    }

    private func sentAt(_ reader: inout ProgramReader) -> UInt64 {
        let now = WallClock.milliseconds()
        switch reader.byte() % 4 {
        case 0: return now
        case 1: return reader.u64()
        case 2: return now &- RoomKeyEnvelope.freshnessWindowMilliseconds &- 1
        default: return now &+ RoomKeyEnvelope.freshnessWindowMilliseconds &+ 1
        }
    }

    private func sendChunk(_ reader: inout ProgramReader) {
        let made = hostile.offersMade
        let offer: HostileMember.OfferMade =
            made.isEmpty || reader.byte() % 5 == 0
            ? HostileMember.OfferMade(
                fileID: reader.choose(Self.fixedFileIDs), key: Array(repeating: 9, count: 32), chunkSize: 1024,
                size: reader.u64())
            : made[Int(reader.byte()) % made.count]
        let index = reader.byte() % 3 == 0 ? reader.u64() : UInt64(reader.byte() % 4)
        let length: Int =
            switch reader.byte() % 4 {
            case 0: 0
            case 1: Int(min(UInt64(offer.chunkSize), 64 * 1024))
            case 2: Int(min(offer.size, 4096))
            default: Int(reader.byte())
            }
        hostile.sendChunk(
            fileID: offer.fileID, index: index, flags: reader.byte() % 3, plaintext: Array(repeating: 0, count: length),
            key: offer.key, to: ["bob"])
    }

    private func answerVictimOffer(_ reader: inout ProgramReader) {
        let heard = hostile.offersHeard
        let fileID =
            heard.isEmpty ? reader.choose(Self.fixedFileIDs) : heard[Int(reader.byte()) % heard.count].offer.fileID
        let content: MessageContent =
            switch reader.byte() % 5 {
            case 0: .fileReply(fileID: fileID, accept: reader.byte() % 3 != 0, resumeFrom: reader.u64(), reason: "r")
            case 1: .fileProgress(fileID: fileID, nextChunk: reader.u64())
            case 2: .fileResult(fileID: fileID, accepted: reader.byte() % 2 == 0, reason: "done")
            case 3: .fileAbort(fileID: fileID, reason: "stop")
            default: .fileDone(fileID: fileID, sha256: reader.bytes(32), size: reader.u64())
            }
        if reader.byte() % 4 == 0 {
            hostile.sendToRoom(content)
        } else {
            hostile.sendPrivately(content, to: "bob")
        }
    }

    /// A plaintext for a group message: usually well-formed content, sometimes a sender key or
    /// bytes of any kind.
    private func plaintext(_ reader: inout ProgramReader) -> [UInt8] {
        switch reader.byte() % 6 {
        case 0: return [AutomaticKeys.senderKeyKind] + reader.bytes(16) + reader.bytes(4) + reader.bytes(32)
        case 1: return reader.bytes(Int(reader.byte()))
        default: return content(&reader).encoded()
        }
    }

    private func content(_ reader: inout ProgramReader) -> MessageContent {
        let heard = hostile.offersHeard.map(\.offer.fileID)
        let fileIDs = Self.fixedFileIDs + heard + hostile.offersMade.map(\.fileID)
        switch reader.byte() % 10 {
        case 0: return .text("text \(reader.byte())")
        case 1: return .identified(id: reader.u64(), .text("line"))
        case 2: return .action("waves")
        case 3, 4:
            // Out of bounds too (0, 1023, above 4 MiB, anything): such an offer is declined with a reason.
            let sizes: [UInt32] = [
                1024, 4096, 262_144, 4_194_304, reader.u32() | 1024, 0, 1023, 4_194_305, reader.u32(),
            ]
            let chunkSize = reader.choose(sizes)
            return .fileOffer(
                FileOffer(
                    fileID: reader.byte() % 2 == 0 ? reader.choose(fileIDs) : reader.bytes(16), size: reader.u64(),
                    chunkSize: chunkSize, key: Array(repeating: 9, count: 32),
                    name: reader.choose(["a.txt", "../../etc/passwd", ".aeschat-x.part", "", "\u{202E}gpj.exe", "x"])))
        case 5:
            return .fileReply(
                fileID: reader.choose(fileIDs), accept: reader.byte() % 2 == 0, resumeFrom: reader.u64(), reason: "")
        case 6: return .fileProgress(fileID: reader.choose(fileIDs), nextChunk: reader.u64())
        case 7: return .fileDone(fileID: reader.choose(fileIDs), sha256: reader.bytes(32), size: reader.u64())
        case 8: return .fileAbort(fileID: reader.choose(fileIDs), reason: "abort")
        default: return .fileResult(fileID: reader.choose(fileIDs), accepted: reader.byte() % 2 == 0, reason: "x")
        }
    }

    /// Open descriptors of this process on files under `folder` (tests running beside this one
    /// open others, which must not count).
    static func openDescriptorCount(under folder: String) -> Int {
        #if os(Linux)
            guard let directory = opendir("/proc/self/fd") else { return 0 }
            defer { closedir(directory) }
            var count = 0
            var target = [CChar](repeating: 0, count: 4096)
            while let entry = readdir(directory) {
                let name = withUnsafeBytes(of: entry.pointee.d_name) {
                    String(decoding: $0.prefix { $0 != 0 }, as: UTF8.self)
                }
                let length = readlink("/proc/self/fd/" + name, &target, target.count - 1)
                guard length > 0 else { continue }
                let path = String(decoding: target[0..<length].map { UInt8(bitPattern: $0) }, as: UTF8.self)
                if path.hasPrefix(folder + "/") { count += 1 }
            }
            return count
        #else
            return 0
        #endif
    }
}

/// Reads a program: bytes, integers biased toward the edges of their range, choices. Past the end
/// it reads zeros.
struct ProgramReader {
    private let bytes: [UInt8]
    private var position = 0

    init(_ bytes: [UInt8]) { self.bytes = bytes }

    var isAtEnd: Bool { position >= bytes.count }

    static let edges64: [UInt64] = [
        0, 1, 2, 7, 8, 9, 31, 32, 255, 256, 1023, 1024, 65_535, 65_536, 1 << 20,
        UInt64(UInt32.max) - 1, UInt64(UInt32.max), 1 << 32, (1 << 32) + 1, 1 << 52, 1 << 53, (1 << 53) + 1,
        1 << 62, UInt64(Int64.max) - 1, UInt64(Int64.max), 1 << 63, (1 << 63) + 1, UInt64.max - 2_001,
        UInt64.max - 1, UInt64.max,
    ]

    mutating func byte() -> UInt8 {
        guard position < bytes.count else { return 0 }
        defer { position += 1 }
        return bytes[position]
    }

    mutating func bytes(_ count: Int) -> [UInt8] { (0..<count).map { _ in byte() } }

    /// Mostly an edge value, sometimes a small one, sometimes any.
    mutating func u64() -> UInt64 {
        let selector = byte()
        if selector < 128 { return Self.edges64[Int(selector) % Self.edges64.count] }
        if selector < 192 { return UInt64(byte()) }
        return bytes(8).reduce(0) { $0 << 8 | UInt64($1) }
    }

    mutating func u32() -> UInt32 {
        let selector = byte()
        if selector < 128 {
            return [0, 1, 2, 99, 100, 1_999, 2_000, 2_001, UInt32.max - 2_001, UInt32.max - 1, UInt32.max][
                Int(selector) % 11]
        }
        if selector < 192 { return UInt32(byte()) }
        return bytes(4).reduce(0) { $0 << 8 | UInt32($1) }
    }

    mutating func choose<T>(_ options: [T]) -> T { options[Int(byte()) % options.count] }
}

/// Renders every event the victim shows in both forms (the JSON form is where large numbers
/// once trapped), keeping only a count.
private final class RenderingOutput: ClientOutput {
    var count = 0
    func emit(_ event: ClientEvent) {
        count += 1
        _ = event.json
        _ = event.humanText
    }
}

private final class OutcomeBox {
    var value: ClientOutcome?
}
