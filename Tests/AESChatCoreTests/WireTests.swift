import AESChatTesting
import Testing

@testable import AESChatCore

@Suite struct FrameDecoderTests {
    static let frames: [[UInt8]] = [
        ClientFrame.hello(version: 1, name: "alice", room: "lobby", profile: []).encoded(),
        ClientFrame.publish(payload: Array(repeating: 7, count: 3000)[...]).encoded(),
        ClientFrame.bye.encoded(),
        RelayFrame.deliver(from: "bob", isDirect: false, payload: [1, 2, 3][...]).encoded(),
    ]

    static func decodeAll(_ bytes: [UInt8], chunkSizes: (Int) -> Int) throws -> [Frame] {
        var decoder = FrameDecoder()
        var result: [Frame] = []
        var offset = 0
        var step = 0
        while offset < bytes.count {
            let size = min(max(1, chunkSizes(step)), bytes.count - offset)
            let split = decoder.frames(after: bytes[offset..<offset + size])
            offset += size
            step += 1
            result += split.frames
            if let error = split.error { throw error }
        }
        #expect(decoder.bufferedByteCount == 0)
        return result
    }

    @Test func decoder_yieldsSameFrames_whenFedByteByByte() throws {
        let stream = Self.frames.flatMap { $0 }
        let frames = try Self.decodeAll(stream, chunkSizes: { _ in 1 })
        #expect(frames.count == 4)
        #expect(frames.map(\.type) == [FrameType.hello, FrameType.publish, FrameType.bye, FrameType.deliver])
        #expect(frames[1].body.count == 3000)
    }

    @Test func decoder_yieldsSameFrames_whenFedRandomChunks() throws {
        let stream = Array(repeating: Self.frames.flatMap { $0 }, count: 20).flatMap { $0 }
        var generator = SeededGenerator(seed: 42)
        for _ in 0..<50 {
            let frames = try Self.decodeAll(stream, chunkSizes: { _ in Int.random(in: 1...700, using: &generator) })
            #expect(frames.count == 80)
            #expect(frames[1].body == Array(repeating: 7, count: 3000)[...])
        }
    }

    @Test func decoder_refusesOversizedPrefix_beforeBufferingBody() {
        var decoder = FrameDecoder(maximumLength: 1024)
        let split = decoder.frames(after: [0xFF, 0xFF, 0xFF, 0xFF, 0x02])
        #expect(split.error == .frameTooLarge(length: 0xFFFF_FFFF, maximum: 1024))
        #expect(split.frames.isEmpty)
        #expect(decoder.bufferedByteCount == 0)
    }

    @Test func decoder_refusesZeroLength() {
        var decoder = FrameDecoder()
        #expect(decoder.frames(after: [0, 0, 0, 0]).error == .emptyFrame)
    }

    @Test func decoder_waitsForTheRest_ofAPartialFrame() throws {
        var decoder = FrameDecoder()
        let frame = ClientFrame.publish(payload: [1, 2, 3, 4][...]).encoded()
        #expect(decoder.frames(after: frame.dropLast()).frames.isEmpty)
        #expect(decoder.bufferedByteCount == frame.count - 1)
        #expect(decoder.frames(after: frame.suffix(1)).frames.map(\.body) == [[1, 2, 3, 4][...]])
    }

    @Test func endOfFrame_isTheEndOfTheFrameCoveringAPosition_orOfWhatIsThere() {
        let frames = Self.frames[0] + Self.frames[1] + Self.frames[2]
        let firstEnd = Self.frames[0].count
        let secondEnd = firstEnd + Self.frames[1].count
        frames.withUnsafeBytes { bytes in
            #expect(Frame.endOfFrame(in: bytes, containing: 0) == firstEnd)
            #expect(Frame.endOfFrame(in: bytes, containing: firstEnd - 1) == firstEnd)
            #expect(Frame.endOfFrame(in: bytes, containing: firstEnd) == secondEnd)
            #expect(Frame.endOfFrame(in: bytes, containing: secondEnd + 1) == frames.count)
            // Cut short: the end of what is there.
            let cut = UnsafeRawBufferPointer(rebasing: bytes[0..<secondEnd - 10])
            #expect(Frame.endOfFrame(in: cut, containing: firstEnd + 1) == secondEnd - 10)
            let prefixOnly = UnsafeRawBufferPointer(rebasing: bytes[0..<firstEnd + 2])
            #expect(Frame.endOfFrame(in: prefixOnly, containing: firstEnd + 1) == firstEnd + 2)
        }
    }

    @Test func decoder_carriesAMebibyteAndMore_inOneFrame() throws {
        let payload = (0..<(1 << 20) + 123).map { UInt8(truncatingIfNeeded: $0 &* 31) }
        let frames = try Self.decodeAll(
            ClientFrame.publish(payload: payload[...]).encoded(), chunkSizes: { _ in 65536 })
        #expect(frames.count == 1)
        #expect(Array(frames[0].body) == payload)
    }
}

@Suite struct RelayProtocolTests {
    func roundTrip(_ frame: ClientFrame) throws -> ClientFrame {
        var decoder = FrameDecoder()
        return try ClientFrame(try #require(decoder.frames(after: frame.encoded()).frames.first))
    }

    func roundTrip(_ frame: RelayFrame) throws -> RelayFrame {
        var decoder = FrameDecoder()
        return try RelayFrame(try #require(decoder.frames(after: frame.encoded()).frames.first))
    }

    @Test func clientFrames_roundTrip() throws {
        let frames: [ClientFrame] = [
            .hello(version: 1, name: "alice", room: "lobby", profile: []), .publish(payload: [9, 8, 7][...]),
            .direct(to: "bob", payload: [1][...]), .bye, .ping(token: 0xDEAD_BEEF_0102_0304), .pong(token: 5),
        ]
        for frame in frames { #expect(try roundTrip(frame) == frame) }
    }

    @Test func relayFrames_roundTrip() throws {
        let frames: [RelayFrame] = [
            .welcome(
                version: 1, name: "alice", room: "lobby",
                members: [MemberEntry(name: "bob", profile: [1, 2, 3]), MemberEntry(name: "carol")]),
            .welcome(version: 1, name: "alice", room: "lobby", members: []), .joined(MemberEntry(name: "bob")),
            .left(name: "bob"),
            .deliver(from: "bob", isDirect: true, payload: [1, 2][...]), .error(code: 3, message: "name taken — ü"),
            .ping(token: 1), .pong(token: 2),
        ]
        for frame in frames { #expect(try roundTrip(frame) == frame) }
    }

    @Test func helloLayout_matchesProtocolDocument() {
        // docs/PROTOCOL.md: 00000011 01 0001 05 "alice" 05 "lobby" 0000
        let expected: [UInt8] = [0, 0, 0, 17, 1, 0, 1, 5] + Array("alice".utf8) + [5] + Array("lobby".utf8) + [0, 0]
        #expect(ClientFrame.hello(version: 1, name: "alice", room: "lobby", profile: []).encoded() == expected)
    }

    @Test func welcome_withInflatedMemberCount_isRefusedBeforeReserving() {
        let body: [UInt8] = [0, 1, 1, 0x61, 1, 0x62, 0xFF, 0xFF, 1, 0x63]
        #expect(throws: WireError.self) { try RelayFrame(Frame(type: FrameType.welcome, body: body[...])) }
    }

    @Test func strings_withInvalidUTF8_areRefused() {
        let body: [UInt8] = [0, 1, 2, 0xC3, 0x28, 1, 0x61]
        #expect(throws: WireError.malformed("hello name is not valid UTF-8")) {
            try ClientFrame(Frame(type: FrameType.hello, body: body[...]))
        }
    }

    @Test func frames_withTrailingBytes_orUnknownTypes_areRefused() {
        #expect(throws: WireError.self) { try ClientFrame(Frame(type: FrameType.bye, body: [0][...])) }
        #expect(throws: WireError.unknownFrameType(0x7F)) { try ClientFrame(Frame(type: 0x7F, body: [][...])) }
        #expect(throws: WireError.unknownFrameType(0x02)) { try RelayFrame(Frame(type: 0x02, body: [][...])) }
        #expect(throws: WireError.self) { try RelayFrame(Frame(type: FrameType.deliver, body: [1, 0x61, 7][...])) }
    }

    @Test func seededRandomBodies_neverCrashTheParsers() {
        var generator = SeededGenerator(seed: 7)
        for _ in 0..<20_000 {
            let type = UInt8.random(in: 0...255, using: &generator)
            let body = (0..<Int.random(in: 0...40, using: &generator)).map { _ in
                UInt8.random(in: 0...255, using: &generator)
            }
            _ = try? ClientFrame(Frame(type: type, body: body[...]))
            _ = try? RelayFrame(Frame(type: type, body: body[...]))
        }
    }
}

/// A small deterministic generator (SplitMix64) so random tests repeat exactly.
struct SeededGenerator: RandomNumberGenerator {
    private var state: UInt64
    init(seed: UInt64) { state = seed }
    mutating func next() -> UInt64 {
        state &+= 0x9E37_79B9_7F4A_7C15
        var z = state
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }
}

extension SeededGenerator {
    /// `count` bytes, one from each draw (so a failure's seed reproduces them).
    mutating func bytes(_ count: Int) -> [UInt8] { (0..<count).map { _ in UInt8(truncatingIfNeeded: next()) } }
}
