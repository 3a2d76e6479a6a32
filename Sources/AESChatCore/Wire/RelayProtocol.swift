/// Frame type bytes. Client-to-relay types are below 0x80, relay-to-client types at or above it.
/// See docs/PROTOCOL.md for each layout.
public enum FrameType {
    /// Client → relay: `version u16 | name str8 | room str8 | profile bytes16`.
    public static let hello: UInt8 = 0x01
    /// Client → relay: opaque payload for every other member of the room.
    public static let publish: UInt8 = 0x02
    /// Client → relay: `to str8 | payload` for one member of the room.
    public static let direct: UInt8 = 0x03
    /// Client → relay: leaving; the relay closes after everything before it is handled.
    public static let bye: UInt8 = 0x04
    /// Either way: `token u64`; answered with ``pong``.
    public static let ping: UInt8 = 0x05
    /// Client → relay: `count u8 | count × to str8 | payload` for some members of the room
    /// (file chunks for the members that accepted a file).
    public static let multicast: UInt8 = 0x07
    /// Either way: `token u64`, echoing a ``ping``.
    public static let pong: UInt8 = 0x06

    /// Relay → client: `version u16 | name str8 | room str8 | count u16 | count × (name str8 | profile bytes16)`.
    public static let welcome: UInt8 = 0x81
    /// Relay → client: `name str8 | profile bytes16`.
    public static let joined: UInt8 = 0x82
    /// Relay → client: `name str8`.
    public static let left: UInt8 = 0x83
    /// Relay → client: `from str8 | flags u8 | payload`.
    public static let deliver: UInt8 = 0x84
    /// Relay → client: `code u16 | message str16`.
    public static let error: UInt8 = 0x85
}

/// The relay protocol version this build speaks.
public let relayProtocolVersion: UInt16 = 1

/// Error codes carried by an `error` frame.
public enum RelayErrorCode: UInt16, Sendable, CaseIterable {
    case malformedFrame = 1
    case invalidName = 2
    case nameTaken = 3
    case invalidRoom = 4
    case unsupportedVersion = 5
    case notRegistered = 6
    case shuttingDown = 7
    case frameTooLarge = 8
    case unknownRecipient = 9
    case alreadyRegistered = 10
    case tooSlow = 11
    case handshakeTimeout = 12
    case tooManyConnections = 13
    case flooding = 14
    case idleTimeout = 15
    /// A sender's direct and multicast frames waiting for one member passed its share of that
    /// member's output cap: the sender is refused, not the member.
    case recipientBacklog = 16
    /// A frame in progress did not complete within its deadline (``RelayLimits/minimumFrameRate``).
    case slowFrame = 17
    /// A large frame in progress would pass the relay's budget for partly received frames, in all
    /// or from one address.
    case frameBudget = 18
    case unknown = 0xFFFF

    /// Whether the relay closes the connection after sending this error.
    public var isFatal: Bool { self != .unknownRecipient }
}

/// A member as the relay announces it: its name and the profile it registered with (opaque to
/// the relay; empty in pre-shared-key mode, signed session keys with automatic keys).
public struct MemberEntry: Equatable, Sendable {
    public var name: String
    public var profile: [UInt8]

    /// Creates an entry.
    public init(name: String, profile: [UInt8] = []) {
        self.name = name
        self.profile = profile
    }

    /// The largest profile a relay accepts.
    public static let maximumProfileSize = 1024
}

/// A frame sent by a client to the relay.
public enum ClientFrame: Equatable, Sendable {
    case hello(version: UInt16, name: String, room: String, profile: [UInt8])
    case publish(payload: ArraySlice<UInt8>)
    case direct(to: String, payload: ArraySlice<UInt8>)
    case multicast(to: [String], payload: ArraySlice<UInt8>)
    case bye
    case ping(token: UInt64)
    case pong(token: UInt64)

    /// Encodes this frame with its length prefix.
    public func encoded() -> [UInt8] {
        switch self {
        case .hello(let version, let name, let room, let profile):
            return Frame.encode(type: FrameType.hello, capacity: 8 + profile.count + name.utf8.count + room.utf8.count)
            {
                $0.write(version)
                $0.writeShortString(name)
                $0.writeShortString(room)
                $0.writeBytes16(profile)
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
            try reader.expectEnd("hello")
            self = .hello(version: version, name: name, room: room, profile: profile)
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

/// A frame sent by the relay to a client.
public enum RelayFrame: Equatable, Sendable {
    case welcome(version: UInt16, name: String, room: String, members: [MemberEntry])
    case joined(MemberEntry)
    case left(name: String)
    case deliver(from: String, isDirect: Bool, payload: ArraySlice<UInt8>)
    case error(code: UInt16, message: String)
    case ping(token: UInt64)
    case pong(token: UInt64)

    /// The most members a welcome frame lists (the count field is 16 bits).
    public static let maximumWelcomeMembers = 65_535

    /// Encodes this frame with its length prefix.
    public func encoded() -> [UInt8] {
        switch self {
        case .welcome(let version, let name, let room, let members):
            return Frame.encode(type: FrameType.welcome, capacity: 8 + members.reduce(0) { $0 + 16 + $1.profile.count })
            {
                $0.write(version)
                $0.writeShortString(name)
                $0.writeShortString(room)
                $0.write(UInt16(members.count))
                for member in members { Self.writeMemberEntry(name: member.name, profile: member.profile, into: &$0) }
            }
        case .joined(let member):
            var writer = ByteWriter(capacity: Self.joinedLength(name: member.name, profileCount: member.profile.count))
            Self.writeJoined(name: member.name, profile: member.profile, into: &writer)
            return writer.bytes
        case .left(let name):
            var writer = ByteWriter(capacity: Self.leftLength(name: name))
            Self.writeLeft(name: name, into: &writer)
            return writer.bytes
        case .deliver(let from, let isDirect, let payload):
            return Self.encodeDeliver(from: from, isDirect: isDirect, payload: payload)
        case .error(let code, let message):
            return Frame.encode(type: FrameType.error) {
                $0.write(code)
                $0.writeLongString(message)
            }
        case .ping(let token):
            return TokenFrame.encode(type: FrameType.ping, token: token)
        case .pong(let token):
            return TokenFrame.encode(type: FrameType.pong, token: token)
        }
    }

    /// Encodes a deliver frame straight from a payload slice: one copy of the payload, shared by
    /// every recipient.
    public static func encodeDeliver(from: String, isDirect: Bool, payload: ArraySlice<UInt8>) -> [UInt8] {
        var writer = ByteWriter(capacity: deliverHeaderLength(from: from) + payload.count)
        writeDeliverHeader(from: from, flags: isDirect ? 1 : 0, payloadCount: payload.count, into: &writer)
        writer.write(contentsOf: payload)
        return writer.bytes
    }

    /// Decodes a frame received by a client.
    /// - Throws: ``WireError`` for an unknown type or a malformed body.
    public init(_ frame: Frame) throws(WireError) {
        var reader = ByteReader(frame.body)
        switch frame.type {
        case FrameType.welcome:
            let version = try reader.readUInt16("welcome version")
            let name = try reader.readShortString("welcome name")
            let room = try reader.readShortString("welcome room")
            let count = Int(try reader.readUInt16("welcome member count"))
            // Each member takes at least four bytes, so a count larger than that is a lie we can
            // spot before reserving anything.
            guard count * 4 <= reader.remainingCount else {
                throw .malformed("welcome announces \(count) members but carries \(reader.remainingCount) bytes")
            }
            var members: [MemberEntry] = []
            members.reserveCapacity(count)
            for _ in 0..<count {
                let member = try reader.readShortString("welcome member")
                let profile = try reader.readBytes16("welcome profile", maximum: MemberEntry.maximumProfileSize)
                members.append(MemberEntry(name: member, profile: profile))
            }
            try reader.expectEnd("welcome")
            self = .welcome(version: version, name: name, room: room, members: members)
        case FrameType.joined:
            let name = try reader.readShortString("joined name")
            let profile = try reader.readBytes16("joined profile", maximum: MemberEntry.maximumProfileSize)
            try reader.expectEnd("joined")
            self = .joined(MemberEntry(name: name, profile: profile))
        case FrameType.left:
            let name = try reader.readShortString("left name")
            try reader.expectEnd("left")
            self = .left(name: name)
        case FrameType.deliver:
            let (from, isDirect, payloadCount) = try withBytes(frame.body) { (body) throws(WireError) in
                let deliver = try Self.readDeliver(body)
                return (deliver.from, deliver.isDirect, deliver.payload.count)
            }
            self = .deliver(from: from, isDirect: isDirect, payload: frame.body.suffix(payloadCount))
        case FrameType.error:
            let code = try reader.readUInt16("error code")
            let message = try reader.readLongString("error message")
            try reader.expectEnd("error")
            self = .error(code: code, message: message)
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

/// The body of ping and pong frames, the same both ways: `token u64`.
public enum TokenFrame {
    /// Encodes a ping or pong frame carrying `token`.
    public static func encode(type: UInt8, token: UInt64) -> [UInt8] {
        Frame.encode(type: type) { $0.write(token) }
    }

    /// Reads a ping's body in place.
    /// - Throws: ``WireError/malformed(_:)`` unless it is exactly a token.
    public static func read(ping body: UnsafeRawBufferPointer) throws(WireError) -> UInt64 {
        try read(body, field: "ping token", frame: "ping")
    }

    /// Reads a pong's body in place.
    /// - Throws: ``WireError/malformed(_:)`` unless it is exactly a token.
    public static func read(pong body: UnsafeRawBufferPointer) throws(WireError) -> UInt64 {
        try read(body, field: "pong token", frame: "pong")
    }

    private static func read(
        _ body: UnsafeRawBufferPointer, field: String, frame: String
    ) throws(WireError) -> UInt64 {
        var reader = RawByteReader(body)
        let token = try reader.readUInt64(field)
        try reader.expectEnd(frame)
        return token
    }
}

/// Calls `body` with the bytes of `slice` in place, passing on its typed error.
private func withBytes<R>(
    _ slice: ArraySlice<UInt8>, _ body: (UnsafeRawBufferPointer) throws(WireError) -> R
) throws(WireError) -> R {
    let result = slice.withUnsafeBytes { raw in Result { () throws(WireError) -> R in try body(raw) } }
    return try result.get()
}

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

extension RelayFrame {
    /// The length of a member entry, `name str8 | profile bytes16`, as welcome and joined list it.
    public static func memberEntryLength(name: String, profileCount: Int) -> Int {
        1 + name.utf8.count + 2 + profileCount
    }

    /// Writes a member entry, `name str8 | profile bytes16`.
    public static func writeMemberEntry<S: ByteSink>(name: String, profile: [UInt8], into sink: inout S) {
        sink.writeShortString(name)
        sink.writeBytes16(profile)
    }

    /// The length of a whole welcome frame, prefix included, that lists `memberCount` members
    /// whose entries take `entryBytes`.
    public static func welcomeLength(name: String, room: String, entryBytes: Int) -> Int {
        Frame.headerSize + 1 + 2 + 1 + name.utf8.count + 1 + room.utf8.count + 2 + entryBytes
    }

    /// Writes a whole welcome frame in this build's protocol version, its member entries copied
    /// from `entries` (``writeMemberEntry(name:profile:into:)`` each, `memberCount` of them).
    public static func writeWelcome<S: ByteSink>(
        name: String, room: String, memberCount: Int, entries: UnsafeRawBufferPointer, into sink: inout S
    ) {
        sink.write(UInt32(welcomeLength(name: name, room: room, entryBytes: entries.count) - Frame.headerSize))
        sink.write(FrameType.welcome)
        sink.write(relayProtocolVersion)
        sink.writeShortString(name)
        sink.writeShortString(room)
        sink.write(UInt16(memberCount))
        sink.write(bytes: entries)
    }

    /// The length of a whole joined frame, prefix included.
    public static func joinedLength(name: String, profileCount: Int) -> Int {
        Frame.headerSize + 1 + memberEntryLength(name: name, profileCount: profileCount)
    }

    /// Writes a whole joined frame.
    public static func writeJoined<S: ByteSink>(name: String, profile: [UInt8], into sink: inout S) {
        sink.write(UInt32(joinedLength(name: name, profileCount: profile.count) - Frame.headerSize))
        sink.write(FrameType.joined)
        writeMemberEntry(name: name, profile: profile, into: &sink)
    }

    /// The length of a whole left frame, prefix included.
    public static func leftLength(name: String) -> Int { Frame.headerSize + 1 + 1 + name.utf8.count }

    /// Writes a whole left frame.
    public static func writeLeft<S: ByteSink>(name: String, into sink: inout S) {
        sink.write(UInt32(leftLength(name: name) - Frame.headerSize))
        sink.write(FrameType.left)
        sink.writeShortString(name)
    }

    /// The length of a deliver frame's start, before its payload: prefix, type, sender and flags.
    public static func deliverHeaderLength(from sender: String) -> Int {
        Frame.headerSize + 1 + 1 + sender.utf8.count + 1
    }

    /// Writes the start of a deliver frame, `length | type | from str8 | flags u8`; the caller
    /// writes the `payloadCount` bytes of payload next.
    public static func writeDeliverHeader<S: ByteSink>(
        from sender: String, flags: UInt8, payloadCount: Int, into sink: inout S
    ) {
        sink.write(UInt32(deliverHeaderLength(from: sender) - Frame.headerSize + payloadCount))
        sink.write(FrameType.deliver)
        sink.writeShortString(sender)
        sink.write(flags)
    }

    /// Reads a deliver frame's body in place: the sender, whether it was sent privately, and the
    /// payload where it lies.
    /// - Throws: ``WireError/malformed(_:)``.
    public static func readDeliver(_ body: UnsafeRawBufferPointer) throws(WireError) -> (
        from: String, isDirect: Bool, payload: UnsafeRawBufferPointer
    ) {
        var reader = RawByteReader(body)
        let from = try reader.readShortString("deliver sender")
        let flags = try reader.readUInt8("deliver flags")
        guard flags <= 2 else { throw .malformed("deliver flags 0x\(String(flags, radix: 16)) unknown") }
        return (from, flags == 1, reader.readRemaining())
    }
}
