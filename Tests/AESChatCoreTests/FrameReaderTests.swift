import AESChatTesting
import Testing

@testable import AESChatCore

/// How the bytes of a stream arrive: all at once, one byte at a time, or in seeded random pieces.
enum StreamChunking: CustomStringConvertible, Sendable {
    case whole
    case byteByByte
    case random(seed: UInt64)

    static let all: [StreamChunking] = [.whole, .byteByByte] + (1...6).map { .random(seed: $0) }
    /// Without byte by byte, for long streams.
    static let coarse: [StreamChunking] = [.whole] + (1...6).map { .random(seed: $0) }

    var description: String {
        switch self {
        case .whole: "whole"
        case .byteByByte: "byte by byte"
        case .random(let seed): "random chunks (seed \(seed))"
        }
    }

    /// The sizes of the pieces `count` bytes arrive in.
    func pieces(of count: Int) -> [Int] {
        switch self {
        case .whole:
            return [count]
        case .byteByByte:
            return Array(repeating: 1, count: count)
        case .random(let seed):
            var generator = SeededGenerator(seed: seed &* 0x9E37_79B9_7F4A_7C15)
            var sizes: [Int] = []
            var left = count
            while left > 0 {
                // Sizes from one byte to a few hundred KiB, mostly small.
                let mixed = generator.next()
                let scale = [16, 4096, 70_000, 300_000][Int(mixed & 3)]
                let size = min(left, 1 + Int((mixed >> 8) % UInt64(scale)))
                sizes.append(size)
                left -= size
            }
            return sizes
        }
    }
}

/// Delivers a byte stream the way ``TCPConnection`` reads a socket: each piece that arrives is read
/// into the endpoint's own storage while it offers some, and into a loop buffer of
/// `readBufferSize` bytes otherwise. `afterPiece` runs after each piece (a loop iteration's end).
func deliver(
    _ stream: [UInt8], in chunking: StreamChunking, readBufferSize: Int = 256 * 1024,
    destination: () -> UnsafeMutableRawBufferPointer?, didReadInto: (Int) -> Void,
    didRead: (UnsafeRawBufferPointer) -> Void, afterPiece: () -> Void = {}
) {
    stream.withUnsafeBytes { bytes in
        var offset = 0
        for piece in chunking.pieces(of: bytes.count) {
            let end = offset + piece
            while offset < end {
                if let target = destination(), target.count > 0 {
                    let count = min(end - offset, target.count)
                    target.baseAddress!.copyMemory(from: bytes.baseAddress! + offset, byteCount: count)
                    offset += count
                    didReadInto(count)
                } else {
                    let count = min(end - offset, readBufferSize)
                    // A copy, as the loop's buffer would be: the stream itself is not the reader's.
                    let read = Array(UnsafeRawBufferPointer(rebasing: bytes[offset..<offset + count]))
                    offset += count
                    read.withUnsafeBytes { didRead($0) }
                }
            }
            afterPiece()
        }
    }
}

/// Delivers a byte stream to a connection handler as a TCP connection would (see ``deliver``).
func deliver(
    _ stream: [UInt8], in chunking: StreamChunking, to handler: any ConnectionHandler, on connection: any Connection,
    afterPiece: () -> Void = {}
) {
    let provider = handler as? any ReadDestinationProvider
    #expect(provider != nil, "the relay's and the client's handlers read large frames into their own storage")
    deliver(
        stream, in: chunking, destination: { provider?.readDestination(for: connection) },
        didReadInto: { provider?.connection(connection, didReadIntoDestination: $0) },
        didRead: { handler.connection(connection, didRead: $0) }, afterPiece: afterPiece)
}

/// A frame reader's endpoint that records what it is handed, lending buffers as the relay (with
/// headroom in front) or the client (without) does.
final class RecordingFrameEndpoint: FrameReaderDelegate {
    struct Received: Equatable {
        var type: UInt8
        var body: [UInt8]
    }

    let headroom: Int
    var frames: [Received] = []
    /// Whether each frame was handed over in a buffer of its own.
    var inStorage: [Bool] = []
    var failure: WireError?
    var bytesHeld = (large: 0, small: 0)
    var buffersLent = 0

    init(headroom: Int) { self.headroom = headroom }

    var isReadingFrames: Bool { failure == nil }

    func handleFrame(
        type: UInt8, body: UnsafeRawBufferPointer, storage: (buffer: SharedBuffer, offset: Int)?
    ) throws(WireError) {
        if let storage {
            #expect(storage.buffer.storage + storage.offset == UnsafeMutableRawPointer(mutating: body.baseAddress!))
        }
        frames.append(Received(type: type, body: Array(body)))
        inStorage.append(storage != nil)
    }

    func largeFrameBuffer(frameLength: Int, for request: LargeFrameRequest) -> SharedBuffer? {
        buffersLent += 1
        let buffer = SharedBuffer(capacity: headroom + frameLength + FrameReader.largeFrameSlack)
        buffer.commit(headroom)
        return buffer
    }

    func frameBytesHeldChanged(by delta: Int, isLarge: Bool) {
        if isLarge { bytesHeld.large += delta } else { bytesHeld.small += delta }
    }

    func frameReaderFailed(_ error: WireError) {
        #expect(failure == nil, "a reader reports one failure")
        failure = error
    }
}

/// Runs a frame reader over `stream` delivered whole, byte by byte and in seeded random chunks,
/// with buffers lent as the relay and the client lend them, and checks that the same frames (and
/// the same failure, if any) come out every time, in the style of NIO's `verifyDecoder`.
/// - Returns: what the reader handed over when the stream arrived whole, as the client reads it.
@discardableResult
func verifyFrameReader(
    _ stream: [UInt8], expecting expected: [RecordingFrameEndpoint.Received], failure: WireError? = nil,
    maximumLength: Int = Frame.defaultMaximumLength, chunkings: [StreamChunking] = StreamChunking.all,
    sourceLocation: SourceLocation = #_sourceLocation
) -> RecordingFrameEndpoint {
    var first: RecordingFrameEndpoint?
    for headroom in [0, 64] {
        for chunking in chunkings {
            let reader = FrameReader(maximumLength: maximumLength)
            let endpoint = RecordingFrameEndpoint(headroom: headroom)
            deliver(
                stream, in: chunking, destination: { reader.readDestination(for: endpoint) },
                didReadInto: { reader.didReadIntoDestination($0, for: endpoint) },
                didRead: { reader.read($0, for: endpoint) })
            let context = "\(chunking), headroom \(headroom)"
            #expect(endpoint.frames == expected, "\(context)", sourceLocation: sourceLocation)
            #expect(endpoint.failure == failure, "\(context)", sourceLocation: sourceLocation)
            if failure == nil {
                #expect(reader.frameInProgressLength == nil, "\(context)", sourceLocation: sourceLocation)
                #expect(endpoint.bytesHeld.large == reader.largeFrameCapacity, sourceLocation: sourceLocation)
                #expect(endpoint.bytesHeld.small == 0, "\(context)", sourceLocation: sourceLocation)
            }
            if case .byteByByte = chunking {
                // Every large frame arrives in pieces, so each is assembled in a buffer of its own.
                for (index, frame) in endpoint.frames.enumerated()
                where Frame.headerSize + 1 + frame.body.count >= FrameReader.largeFrameThreshold {
                    #expect(endpoint.inStorage[index], "frame \(index), \(context)", sourceLocation: sourceLocation)
                }
            }
            if first == nil { first = endpoint }
        }
    }
    return first!
}

@Suite struct FrameReaderTests {
    static func payload(_ size: Int, seed: Int) -> [UInt8] {
        (0..<size).map { UInt8(truncatingIfNeeded: $0 &* 31 &+ seed) }
    }

    /// Frames of many sizes, around and far above the large-frame threshold, back to back.
    static let mixedFrames: [RecordingFrameEndpoint.Received] = {
        let threshold = FrameReader.largeFrameThreshold - Frame.headerSize - 1
        let sizes = [
            0, 5, threshold - 1, threshold, threshold + 1, 100, 262_144 + 42, 262_144 + 42, 3, 70_000, 1_000_000,
            threshold, 0, 4000, 300_001, 9,
        ]
        return sizes.enumerated().map { index, size in
            RecordingFrameEndpoint.Received(type: UInt8(index % 7 + 1), body: payload(size, seed: index))
        }
    }()

    static func encode(_ frames: [RecordingFrameEndpoint.Received]) -> [UInt8] {
        frames.flatMap { frame in
            Frame.encode(type: frame.type, capacity: frame.body.count) { $0.write(contentsOf: frame.body) }
        }
    }

    @Test func frameReader_handsOverTheSameFrames_howeverTheStreamArrives() {
        let stream = Self.encode(Self.mixedFrames)
        verifyFrameReader(stream, expecting: Self.mixedFrames, chunkings: StreamChunking.coarse)
    }

    @Test func frameReader_handsOverTheSameFrames_byteByByte() {
        // Byte by byte over a shorter stream that still crosses the threshold both ways.
        let frames = Array(Self.mixedFrames[0..<10])
        verifyFrameReader(Self.encode(frames), expecting: frames, chunkings: [.byteByByte])
    }

    @Test func frameReader_reportsAnOversizedPrefix_afterTheFramesBeforeIt_howeverTheStreamArrives() {
        let frames = Array(Self.mixedFrames[0..<7])
        let stream = Self.encode(frames) + [0x00, 0x20, 0x00, 0x00, 0x02]
        verifyFrameReader(
            stream, expecting: frames, failure: .frameTooLarge(length: 0x20_0000, maximum: 1_000_000),
            maximumLength: 1_000_000)
    }

    @Test func frameReader_reportsAnEmptyFrame_afterTheFramesBeforeIt_howeverTheStreamArrives() {
        let frames = Array(Self.mixedFrames[0..<8])
        verifyFrameReader(Self.encode(frames) + [0, 0, 0, 0, 9], expecting: frames, failure: .emptyFrame)
    }

    @Test func frameReader_stopsAtTheFrameTheEndpointRefuses() {
        final class Refusing: FrameReaderDelegate {
            var seen: [UInt8] = []
            var failure: WireError?
            var isReadingFrames: Bool { failure == nil }
            func handleFrame(
                type: UInt8, body: UnsafeRawBufferPointer, storage: (buffer: SharedBuffer, offset: Int)?
            ) throws(WireError) {
                seen.append(type)
                if type == 3 { throw .malformed("no") }
            }
            func largeFrameBuffer(frameLength: Int, for request: LargeFrameRequest) -> SharedBuffer? {
                SharedBuffer(capacity: frameLength + FrameReader.largeFrameSlack)
            }
            func frameReaderFailed(_ error: WireError) { failure = error }
        }
        let stream = Self.encode(Array(Self.mixedFrames[0..<6]))
        for chunking in StreamChunking.coarse {
            let reader = FrameReader()
            let endpoint = Refusing()
            deliver(
                stream, in: chunking, destination: { reader.readDestination(for: endpoint) },
                didReadInto: { reader.didReadIntoDestination($0, for: endpoint) },
                didRead: { reader.read($0, for: endpoint) })
            #expect(endpoint.seen == [1, 2, 3], "\(chunking)")
            #expect(endpoint.failure == .malformed("no"), "\(chunking)")
        }
    }

    @Test func frameReader_keepsTheStartOfTheNextFrame_andMovesItToABiggerBuffer() {
        // A large frame and the first bytes of a larger one arrive together.
        let first = Self.payload(70_000, seed: 1)
        let second = Self.payload(100_000, seed: 2)
        let firstFrame = Frame.encode(type: 2) { $0.write(contentsOf: first) }
        let secondFrame = Frame.encode(type: 3) { $0.write(contentsOf: second) }
        let reader = FrameReader()
        let endpoint = RecordingFrameEndpoint(headroom: 64)
        (firstFrame[0..<1000]).withUnsafeBytes { reader.read($0, for: endpoint) }
        #expect(reader.frameInProgressLength == firstFrame.count)
        let rest = Array(firstFrame[1000...]) + secondFrame[0..<5]
        let destination = reader.readDestination(for: endpoint)!
        rest.withUnsafeBytes { destination.baseAddress!.copyMemory(from: $0.baseAddress!, byteCount: $0.count) }
        reader.didReadIntoDestination(rest.count, for: endpoint)
        #expect(endpoint.frames == [.init(type: 2, body: first)])
        #expect(endpoint.inStorage == [true])
        // The next frame's start moved to a buffer of its own, where the rest of it is read.
        #expect(reader.frameInProgressLength == secondFrame.count)
        secondFrame[5...].withUnsafeBytes { reader.read($0, for: endpoint) }
        #expect(endpoint.frames.last == .init(type: 3, body: second))
        #expect(endpoint.inStorage == [true, true])
        #expect(reader.frameInProgressLength == nil)
        #expect(endpoint.bytesHeld.large == 0)
    }

    @Test func frameReader_guessesALargeNextFrame_afterALargeFrameEndedARead() {
        let frame = Frame.encode(type: 2) { $0.write(contentsOf: Self.payload(80_000, seed: 3)) }
        let reader = FrameReader()
        let endpoint = RecordingFrameEndpoint(headroom: 0)
        func readIntoDestination(_ bytes: ArraySlice<UInt8>) {
            let destination = reader.readDestination(for: endpoint)!
            bytes.withUnsafeBytes { destination.baseAddress!.copyMemory(from: $0.baseAddress!, byteCount: $0.count) }
            reader.didReadIntoDestination(bytes.count, for: endpoint)
        }
        // A frame that arrives whole in one read is split from it; nothing is guessed.
        frame.withUnsafeBytes { reader.read($0, for: endpoint) }
        #expect(reader.readDestination(for: endpoint) == nil)
        // One assembled in a buffer of its own that ends a read: the next read goes into one too.
        frame[0..<100].withUnsafeBytes { reader.read($0, for: endpoint) }
        readIntoDestination(frame[100...])
        #expect(reader.readDestination(for: endpoint)?.count == frame.count + FrameReader.largeFrameSlack)
        readIntoDestination(frame[...])
        #expect(endpoint.frames.count == 3)
        #expect(endpoint.inStorage == [false, true, true])
    }
}

/// The relay's and the client's reading, through ``FrameReader`` as they use it, fed the same
/// stream in many ways.
@Suite(.serialized) struct FrameReaderProductionPathTests {
    static func payload(_ size: Int, seed: Int) -> [UInt8] { FrameReaderTests.payload(size, seed: seed) }

    @Test func relay_forwardsTheSameFrames_howeverAMembersStreamArrives() {
        let threshold = FrameReader.largeFrameThreshold
        verifyRelay(
            sizes: [300_000, 7, threshold - 20, threshold, 70_000, 100, 262_170, 262_170, 5], StreamChunking.coarse)
        verifyRelay(sizes: [70_000, 7, threshold - 20, threshold, 100, 5], [.byteByByte])
    }

    func verifyRelay(sizes: [Int], _ chunkings: [StreamChunking]) {
        var stream = ClientFrame.hello(version: relayProtocolVersion, name: "alice", room: "lobby", profile: [])
            .encoded()
        var expectedBob: [RelayFrame] = []
        var expectedCarol: [RelayFrame] = []
        for (index, size) in sizes.enumerated() {
            let body = Self.payload(size, seed: index)
            switch index % 3 {
            case 0:
                stream += ClientFrame.multicast(to: ["bob", "carol"], payload: body[...]).encoded()
                expectedBob.append(.deliver(from: "alice", isDirect: false, payload: body[...]))
                expectedCarol.append(.deliver(from: "alice", isDirect: false, payload: body[...]))
            case 1:
                stream += ClientFrame.publish(payload: body[...]).encoded()
                expectedBob.append(.deliver(from: "alice", isDirect: false, payload: body[...]))
                expectedCarol.append(.deliver(from: "alice", isDirect: false, payload: body[...]))
            default:
                stream += ClientFrame.direct(to: "bob", payload: body[...]).encoded()
                expectedBob.append(.deliver(from: "alice", isDirect: true, payload: body[...]))
            }
            stream += ClientFrame.ping(token: UInt64(index)).encoded()
        }
        for chunking in chunkings {
            let harness = RelayHarness()
            let bob = harness.member("bob")
            let carol = harness.member("carol")
            guard let alice = connect(sending: stream, in: chunking, to: harness) else { return }
            func delivered(_ peer: RawPeer) -> [RelayFrame] {
                peer.frames.filter { if case .deliver = $0 { true } else { false } }
            }
            #expect(delivered(bob) == expectedBob, "\(chunking)")
            #expect(delivered(carol) == expectedCarol, "\(chunking)")
            #expect(alice.errors == [], "\(chunking)")
            #expect(alice.frames.last == .pong(token: UInt64(sizes.count - 1)), "\(chunking)")
        }
    }

    /// A new connection to `harness`'s relay that, once its encrypted link is up, sends `stream` in the pieces
    /// `chunking` makes, with the loop run after each; its far end, or nil (recorded as an issue) when the relay did
    /// not accept it. The pieces go to the relay's handler as its protected connection hands plaintext over.
    func connect(sending stream: [UInt8], in chunking: StreamChunking, to harness: RelayHarness) -> RawPeer? {
        let peer = harness.peer()
        harness.loop.runUntilIdle()
        guard peer.connection.state == .linked, let relayEnd = peer.memory.otherEnd, let handler = relayEnd.handler
        else {
            Issue.record("not accepted: \(harness.log.lines)")
            return nil
        }
        deliver(stream, in: chunking, to: handler, on: relayEnd) { harness.loop.runUntilIdle() }
        harness.loop.runUntilIdle()
        return peer
    }

    @Test func relay_refusesTheSameWay_howeverABadStreamArrives() {
        var configuration = RelayConfiguration()
        configuration.maximumFrameLength = 200_000
        var stream = ClientFrame.hello(version: relayProtocolVersion, name: "alice", room: "lobby", profile: [])
            .encoded()
        stream += ClientFrame.direct(to: "bob", payload: Self.payload(90_000, seed: 1)[...]).encoded()
        stream += ClientFrame.publish(payload: [1, 2, 3][...]).encoded()
        stream += [0x00, 0x04, 0x00, 0x00, FrameType.direct] + Self.payload(1000, seed: 2)
        for chunking in StreamChunking.all {
            let harness = RelayHarness(configuration: configuration)
            let bob = harness.member("bob")
            guard let alice = connect(sending: stream, in: chunking, to: harness) else { return }
            #expect(bob.frames.filter { if case .deliver = $0 { true } else { false } }.count == 2, "\(chunking)")
            #expect(alice.errors == [RelayErrorCode.frameTooLarge.rawValue], "\(chunking)")
            #expect(alice.closed, "\(chunking)")
        }
    }

    /// What a relay sends bob: the welcome, then alice's messages of `sizes` bytes, sealed with
    /// the room key.
    static func clientStream(sizes: [Int], key: RoomKey) -> (stream: [UInt8], texts: [String]) {
        var stream = RelayFrame.welcome(
            version: relayProtocolVersion, name: "bob", room: "lobby", members: [MemberEntry(name: "alice")]
        )
        .encoded()
        let sealer = RoomKeySealer(roomKey: key, room: "lobby", sender: "alice")
        var texts: [String] = []
        for (index, size) in sizes.enumerated() {
            let text = String(repeating: Character(Unicode.Scalar(UInt8(97 + index % 26))), count: size)
            texts.append("alice: \(text)")
            let sealed = try! sealer.seal(.text(text))
            stream += RelayFrame.deliver(from: "alice", isDirect: false, payload: sealed[...]).encoded()
            stream += RelayFrame.ping(token: UInt64(index)).encoded()
        }
        return (stream, texts)
    }

    /// bob, a room-key client, reading `stream` from its relay in the pieces `chunking` makes: the messages it showed
    /// and how it ended (nil while it is still running, when it is then interrupted).
    func clientReading(_ stream: [UInt8], in chunking: StreamChunking, key: RoomKey) -> (
        messages: [String], outcome: ClientOutcome?
    ) {
        let loop = MemoryEventLoop()
        let (clientEnd, _) = MemoryConnection.pair(loop: loop)
        let output = EventCollector()
        let outcome = Box<ClientOutcome?>(nil)
        let client = ChatRoom(
            name: "bob", room: "lobby", roomKey: key, connection: clientEnd, output: output, loop: loop
        ) { outcome.value = $0 }
        client.start()
        deliver(stream, in: chunking, to: clientEnd.handler!, on: clientEnd) { loop.runUntilIdle() }
        let result = (output.messages, outcome.value)
        if result.1 == nil {
            client.interrupt()
            loop.runUntilIdle()
        }
        return result
    }

    @Test func client_showsTheSameMessages_howeverTheRelaysStreamArrives() {
        let key = RoomKey(bytes: Array(0..<32))
        let threshold = FrameReader.largeFrameThreshold
        let (stream, texts) = Self.clientStream(
            sizes: [10, 70_000, threshold - 80, threshold, 300_000, 5, 262_144, 262_144, 1], key: key)
        for chunking in StreamChunking.all {
            let bob = clientReading(stream, in: chunking, key: key)
            #expect(bob.messages == texts, "\(chunking)")
            #expect(bob.outcome == nil, "\(chunking)")
        }
    }

    @Test func client_refusesTheSameWay_howeverABadLargeDeliverArrives() {
        let key = RoomKey(bytes: Array(0..<32))
        var (stream, texts) = Self.clientStream(sizes: [10, 100_000], key: key)
        // A large deliver frame whose flags are unknown.
        stream += Frame.encode(type: FrameType.deliver) {
            $0.writeShortString("alice")
            $0.write(UInt8(7))
            $0.write(contentsOf: Self.payload(90_000, seed: 4))
        }
        stream += RelayFrame.deliver(from: "alice", isDirect: false, payload: [5][...]).encoded()
        for chunking in StreamChunking.all {
            let bob = clientReading(stream, in: chunking, key: key)
            #expect(bob.messages == texts, "\(chunking)")
            #expect(bob.outcome == .protocolViolation("malformed frame: deliver flags 0x7 unknown"), "\(chunking)")
            texts = bob.messages
        }
    }
}
