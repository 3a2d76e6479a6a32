/// A message on a cluster channel (a room's `P:r:<room>` or an incarnation's inbox `P:n:<inc>`), built by the relay
/// it comes from (or, for a reaped relay's `left`, by the engine's reap script) and read by every relay that gets
/// it. The engine never parses one. Fields are big-endian; `str8` is a one-byte length and UTF-8 bytes, `bytes16` a
/// two-byte length and bytes, `rest` everything to the end:
///
/// ```
/// message = version:u8 (1)  kind:u8  origin:str8 (the sending incarnation)  room:str8  body
/// joined   kind 1: name:str8 ticket:u64 profile:bytes16       on P:r:<room>, by the join script
/// left     kind 2: name:str8 cause:u8                         on P:r:<room>, by the leave, join (takeover) or reap script
/// publish  kind 3: from:str8 frame:rest                       on P:r:<room>
/// direct   kind 4: from:str8 count:u8 count × to:str8 frame:rest   on P:n:<target inc>
/// ping     kind 5: counter:u64 (room empty)                   on the origin's own P:n:<inc>
/// ```
///
/// `frame` is the complete relay frame the members get (length prefix, `deliver` type, sender, flags, payload),
/// encoded once by the origin: flags 0 for publish, 1 for direct, 2 for multicast. A `direct` lists only recipients
/// whose home is the target incarnation. `ticket` is the origin's number for that registration (the same as in its
/// ``ClusterNameHolder``); other relays ignore it. `cause` is a ``ClusterLeftCause``.
public enum ClusterMessage {
    /// The layout version written and accepted.
    public static let version: UInt8 = 1

    /// The kind bytes.
    public enum Kind {
        public static let joined: UInt8 = 1
        public static let left: UInt8 = 2
        public static let publish: UInt8 = 3
        public static let direct: UInt8 = 4
        public static let ping: UInt8 = 5
    }

    /// A message read in place: strings are copied, a frame is a view of the message's bytes.
    public enum Parsed {
        case joined(origin: String, room: String, name: String, ticket: UInt64, profile: [UInt8])
        case left(origin: String, room: String, name: String, cause: ClusterLeftCause)
        case publish(origin: String, room: String, from: String, frame: UnsafeRawBufferPointer)
        case direct(origin: String, room: String, from: String, to: [String], frame: UnsafeRawBufferPointer)
        case ping(origin: String, counter: UInt64)
    }

    /// Reads a message; the result's frame is valid as long as `bytes` is. Throws for anything malformed (a wrong
    /// version, an unknown kind or cause, a field past the end, bytes left over, a frame that is not a deliver frame).
    public static func parse(_ bytes: UnsafeRawBufferPointer) throws(WireError) -> Parsed {
        var reader = RawByteReader(bytes)
        let version = try reader.readUInt8("cluster message version")
        guard version == Self.version else { throw .malformed("cluster message version \(version) is not 1") }
        let kind = try reader.readUInt8("cluster message kind")
        let origin = try reader.readShortString("cluster message origin")
        let room = try reader.readShortString("cluster message room")
        switch kind {
        case Kind.joined:
            let name = try reader.readShortString("joined name")
            let ticket = try reader.readUInt64("joined ticket")
            let count = Int(try reader.readUInt16("joined profile"))
            guard count <= MemberEntry.maximumProfileSize else {
                throw .malformed("joined profile of \(count) bytes exceeds \(MemberEntry.maximumProfileSize)")
            }
            let profile = Array(try reader.readBytes(count, "joined profile"))
            try reader.expectEnd("a joined message")
            return .joined(origin: origin, room: room, name: name, ticket: ticket, profile: profile)
        case Kind.left:
            let name = try reader.readShortString("left name")
            let byte = try reader.readUInt8("left cause")
            guard let cause = ClusterLeftCause(rawValue: byte) else { throw .malformed("left cause \(byte)") }
            try reader.expectEnd("a left message")
            return .left(origin: origin, room: room, name: name, cause: cause)
        case Kind.publish:
            let from = try reader.readShortString("publish sender")
            let frame = reader.readRemaining()
            try checkDeliverFrame(frame, from: from)
            return .publish(origin: origin, room: room, from: from, frame: frame)
        case Kind.direct:
            let from = try reader.readShortString("direct sender")
            let count = Int(try reader.readUInt8("direct recipient count"))
            guard count > 0 else { throw .malformed("direct message with no recipient") }
            var recipients: [String] = []
            recipients.reserveCapacity(count)
            for _ in 0..<count { recipients.append(try reader.readShortString("direct recipient")) }
            let frame = reader.readRemaining()
            try checkDeliverFrame(frame, from: from)
            return .direct(origin: origin, room: room, from: from, to: recipients, frame: frame)
        case Kind.ping:
            let counter = try reader.readUInt64("ping counter")
            try reader.expectEnd("a ping message")
            return .ping(origin: origin, counter: counter)
        default:
            throw .malformed("cluster message kind \(kind)")
        }
    }

    /// Checks that `frame` is one whole deliver frame from `from`: its length prefix covers exactly the rest, its type
    /// is deliver, its sender is `from`.
    private static func checkDeliverFrame(_ frame: UnsafeRawBufferPointer, from: String) throws(WireError) {
        var reader = RawByteReader(frame)
        let length = try reader.readUInt32("deliver frame length")
        guard Int(length) == reader.remainingCount, length >= 1 else {
            throw .malformed("deliver frame length \(length) does not match its \(reader.remainingCount) bytes")
        }
        let type = try reader.readUInt8("deliver frame type")
        guard type == FrameType.deliver else { throw .malformed("frame type \(type) where a deliver frame belongs") }
        let count = Int(try reader.readUInt8("deliver frame sender"))
        let sender = try reader.readBytes(count, "deliver frame sender")
        guard sender.elementsEqual(from.utf8) else { throw .malformed("deliver frame sender is not the message's") }
        _ = try reader.readUInt8("deliver frame flags")
    }

    // MARK: Encoding

    /// Writes the header every message starts with.
    static func writeHeader(kind: UInt8, origin: String, room: String, into sink: inout [UInt8]) {
        sink.write(version)
        sink.write(kind)
        sink.writeShortString(origin)
        sink.writeShortString(room)
    }

    /// A `joined` message.
    public static func joined(origin: String, room: String, name: String, ticket: UInt64, profile: [UInt8])
        -> [UInt8]
    {
        var bytes: [UInt8] = []
        writeHeader(kind: Kind.joined, origin: origin, room: room, into: &bytes)
        bytes.writeShortString(name)
        bytes.write(ticket)
        bytes.writeBytes16(profile)
        return bytes
    }

    /// A `left` message.
    public static func left(origin: String, room: String, name: String, cause: ClusterLeftCause) -> [UInt8] {
        var bytes: [UInt8] = []
        writeHeader(kind: Kind.left, origin: origin, room: room, into: &bytes)
        bytes.writeShortString(name)
        bytes.write(cause.rawValue)
        return bytes
    }

    /// Writes a `publish` message into `bytes` (emptied first, its capacity kept): the deliver frame of `payload` from
    /// `from`, flags 0.
    public static func writePublish(
        origin: String, room: String, from: String, payload: UnsafeRawBufferPointer, into bytes: inout [UInt8]
    ) {
        bytes.removeAll(keepingCapacity: true)
        writeHeader(kind: Kind.publish, origin: origin, room: room, into: &bytes)
        bytes.writeShortString(from)
        RelayFrame.writeDeliverHeader(from: from, flags: 0, payloadCount: payload.count, into: &bytes)
        bytes.write(bytes: payload)
    }

    /// Writes a `direct` message into `bytes` (emptied first, its capacity kept): the deliver frame of `payload` from
    /// `from` with `flags` (1 direct, 2 multicast), for `recipients` (1 to 255 names).
    public static func writeDirect(
        origin: String, room: String, from: String, to recipients: [String], flags: UInt8,
        payload: UnsafeRawBufferPointer, into bytes: inout [UInt8]
    ) {
        precondition(!recipients.isEmpty && recipients.count <= 255, "a direct message names 1 to 255 recipients")
        bytes.removeAll(keepingCapacity: true)
        writeHeader(kind: Kind.direct, origin: origin, room: room, into: &bytes)
        bytes.writeShortString(from)
        bytes.write(UInt8(recipients.count))
        for name in recipients { bytes.writeShortString(name) }
        RelayFrame.writeDeliverHeader(from: from, flags: flags, payloadCount: payload.count, into: &bytes)
        bytes.write(bytes: payload)
    }

    /// A `ping` message from `origin` to itself.
    public static func ping(origin: String, counter: UInt64) -> [UInt8] {
        var bytes: [UInt8] = []
        writeHeader(kind: Kind.ping, origin: origin, room: "", into: &bytes)
        bytes.write(counter)
        return bytes
    }
}

/// Why a `left` message was published.
public enum ClusterLeftCause: UInt8, Sendable {
    /// The member left (bye, closed, refused, too slow): its own relay's leave script.
    case left = 0
    /// A new connection took the name over with a verified claim (the join script): the holder's relay refuses it
    /// with `name-reclaimed`.
    case reclaimed = 1
    /// Its relay was found dead and reaped (the reap script).
    case reaped = 2
}
