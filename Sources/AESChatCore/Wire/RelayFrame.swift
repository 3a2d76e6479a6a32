/// A frame sent by the relay to a client.
public enum RelayFrame: Equatable, Sendable {
    case welcome(version: UInt16, name: String, room: String, members: [MemberEntry])
    case joined(MemberEntry)
    case left(name: String)
    case deliver(from: String, isDirect: Bool, payload: ArraySlice<UInt8>)
    case error(code: UInt16, message: String)
    case ping(token: UInt64)
    case pong(token: UInt64)
    /// The relay's public keys (32 bytes each, as `RelayPublicKey` holds them), current first: sent after
    /// `welcome` on a link made under its previous key.
    case relayKeys([[UInt8]])

    /// The length of each key a relay-keys frame lists: an X25519 public key.
    public static let relayKeyLength = 32

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
        case .relayKeys(let keys):
            precondition(
                (1...255).contains(keys.count) && keys.allSatisfy { $0.count == Self.relayKeyLength },
                "a relay-keys frame lists 1 to 255 keys of 32 bytes")
            return Frame.encode(type: FrameType.relayKeys, capacity: 1 + keys.count * Self.relayKeyLength) {
                $0.write(UInt8(keys.count))
                for key in keys { $0.write(contentsOf: key) }
            }
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
        case FrameType.relayKeys:
            let count = Int(try reader.readUInt8("relay-keys count"))
            guard count > 0, reader.remainingCount == count * Self.relayKeyLength else {
                throw .malformed(
                    "relay-keys announces \(count) keys but carries \(reader.remainingCount) bytes; "
                        + "it must list 1 to 255 keys of 32 bytes")
            }
            var keys: [[UInt8]] = []
            for _ in 0..<count {
                keys.append(Array(try reader.readBytes(Self.relayKeyLength, "relay-keys key")))
            }
            self = .relayKeys(keys)
        default:
            throw .unknownFrameType(frame.type)
        }
    }
}

// MARK: Layouts written to and read from raw memory

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
