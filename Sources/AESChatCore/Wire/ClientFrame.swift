/// A frame sent by a client to the relay.
public enum ClientFrame: Equatable, Sendable {
    /// Registration; `claim`, when given, lets a new connection of the same claim key take the name over from a
    /// stale one (docs/PROTOCOL.md section 3.1).
    case hello(version: UInt16, name: String, room: String, profile: [UInt8], claim: NameClaim? = nil)
    case publish(payload: ArraySlice<UInt8>)
    case direct(to: String, payload: ArraySlice<UInt8>)
    case multicast(to: [String], payload: ArraySlice<UInt8>)
    case bye
    case ping(token: UInt64)
    case pong(token: UInt64)

    /// Encodes this frame with its length prefix.
    public func encoded() -> [UInt8] {
        switch self {
        case .hello(let version, let name, let room, let profile, let claim):
            let claimLength = claim == nil ? 0 : NameClaim.encodedLength
            return Frame.encode(
                type: FrameType.hello, capacity: 8 + profile.count + name.utf8.count + room.utf8.count + claimLength
            ) {
                $0.write(version)
                $0.writeShortString(name)
                $0.writeShortString(room)
                $0.writeBytes16(profile)
                claim?.write(into: &$0)
            }
        case .publish(let payload):
            return Frame.encode(type: FrameType.publish, capacity: payload.count) { $0.write(contentsOf: payload) }
        case .direct(let to, let payload):
            var writer = ByteWriter(capacity: Self.directHeaderLength(to: to) + payload.count)
            Self.writeDirectHeader(to: to, payloadCount: payload.count, into: &writer)
            writer.write(contentsOf: payload)
            return writer.bytes
        case .multicast(let recipients, let payload):
            var writer = ByteWriter(capacity: Self.multicastHeaderLength(to: recipients) + payload.count)
            Self.writeMulticastHeader(to: recipients, payloadCount: payload.count, into: &writer)
            writer.write(contentsOf: payload)
            return writer.bytes
        case .bye:
            return Frame.encode(type: FrameType.bye) { _ in }
        case .ping(let token):
            return TokenFrame.encode(type: FrameType.ping, token: token)
        case .pong(let token):
            return TokenFrame.encode(type: FrameType.pong, token: token)
        }
    }

    /// Decodes a frame received by the relay.
    /// - Throws: ``WireError`` for an unknown type or a malformed body.
    public init(_ frame: Frame) throws(WireError) {
        var reader = ByteReader(frame.body)
        switch frame.type {
        case FrameType.hello:
            let version = try reader.readUInt16("hello version")
            let name = try reader.readShortString("hello name")
            let room = try reader.readShortString("hello room")
            let profile = try reader.readBytes16("hello profile", maximum: MemberEntry.maximumProfileSize)
            let claim = try NameClaim.read(from: &reader)
            self = .hello(version: version, name: name, room: room, profile: profile, claim: claim)
        case FrameType.publish:
            self = .publish(payload: frame.body)
        case FrameType.direct:
            let (to, payloadCount) = try withBytes(frame.body) { (body) throws(WireError) in
                let direct = try Self.readDirect(body)
                return (direct.to, direct.payload.count)
            }
            self = .direct(to: to, payload: frame.body.suffix(payloadCount))
        case FrameType.multicast:
            var recipients: [String] = []
            let payloadCount = try withBytes(frame.body) { (body) throws(WireError) in
                try Self.readMulticast(body, recipients: &recipients).count
            }
            self = .multicast(to: recipients, payload: frame.body.suffix(payloadCount))
        case FrameType.bye:
            try reader.expectEnd("bye")
            self = .bye
        case FrameType.ping:
            self = .ping(
                token: try withBytes(frame.body) { (body) throws(WireError) in try TokenFrame.read(ping: body) })
        case FrameType.pong:
            self = .pong(
                token: try withBytes(frame.body) { (body) throws(WireError) in try TokenFrame.read(pong: body) })
        default:
            throw .unknownFrameType(frame.type)
        }
    }
}

// MARK: Layouts written to and read from raw memory

extension ClientFrame {
    /// Writes the start of a publish frame, `length | type`; the caller writes the `payloadCount`
    /// bytes of payload next.
    @inlinable
    public static func writePublishHeader<S: ByteSink>(payloadCount: Int, into sink: inout S) {
        sink.write(UInt32(1 + payloadCount))
        sink.write(FrameType.publish)
    }

    /// The length of a direct frame's start, before its payload: prefix, type and recipient.
    public static func directHeaderLength(to recipient: String) -> Int {
        Frame.headerSize + 1 + 1 + recipient.utf8.count
    }

    /// The length of a multicast frame's start, before its payload: prefix, type, count and
    /// recipients.
    public static func multicastHeaderLength<C: Collection<String>>(to recipients: C) -> Int {
        recipients.reduce(Frame.headerSize + 1 + 1) { $0 + 1 + $1.utf8.count }
    }

    /// Writes the start of a direct frame, `length | type | to str8`; the caller writes the
    /// `payloadCount` bytes of payload next.
    public static func writeDirectHeader<S: ByteSink>(to recipient: String, payloadCount: Int, into sink: inout S) {
        sink.write(UInt32(directHeaderLength(to: recipient) - Frame.headerSize + payloadCount))
        sink.write(FrameType.direct)
        sink.writeShortString(recipient)
    }

    /// Writes the start of a multicast frame, `length | type | count u8 | count × to str8`; the
    /// caller writes the `payloadCount` bytes of payload next.
    /// - Precondition: at most 255 recipients.
    public static func writeMulticastHeader<S: ByteSink, C: Collection<String>>(
        to recipients: C, payloadCount: Int, into sink: inout S
    ) {
        precondition(recipients.count <= 255, "a multicast names at most 255 members")
        sink.write(UInt32(multicastHeaderLength(to: recipients) - Frame.headerSize + payloadCount))
        sink.write(FrameType.multicast)
        sink.write(UInt8(recipients.count))
        for name in recipients { sink.writeShortString(name) }
    }

    /// Reads a direct frame's body in place: the recipient, and the payload where it lies.
    /// - Throws: ``WireError/malformed(_:)``.
    public static func readDirect(_ body: UnsafeRawBufferPointer) throws(WireError) -> (
        to: String, payload: UnsafeRawBufferPointer
    ) {
        var reader = RawByteReader(body)
        let to = try reader.readShortString("direct recipient")
        return (to, reader.readRemaining())
    }

    /// Reads a multicast frame's body in place: appends the recipients to `recipients` and returns
    /// the payload where it lies.
    /// - Throws: ``WireError/malformed(_:)``.
    public static func readMulticast(
        _ body: UnsafeRawBufferPointer, recipients: inout [String]
    ) throws(WireError) -> UnsafeRawBufferPointer {
        var reader = RawByteReader(body)
        let count = Int(try reader.readUInt8("multicast count"))
        recipients.reserveCapacity(recipients.count + count)
        for _ in 0..<count { recipients.append(try reader.readShortString("multicast recipient")) }
        return reader.readRemaining()
    }
}
