/// Frame type bytes. Client-to-relay types are below 0x80, relay-to-client types at or above it.
/// See docs/PROTOCOL.md for each layout.
public enum FrameType {
    /// The bit that marks a frame type as **optional**: 0x40–0x7F from a client, 0xC0–0xFF from the relay. A side
    /// that does not know an optional type skips the frame (its length prefix says how far) instead of closing the
    /// connection, so later versions can add frames that older peers may ignore. No type this version sends has it.
    public static let optionalBit: UInt8 = 0x40

    /// Whether `type` is an optional frame type (see ``optionalBit``).
    public static func isOptional(_ type: UInt8) -> Bool { type & optionalBit != 0 }

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
    /// Relay → client, right after `welcome` on a link made under the relay's previous key (a planned rotation):
    /// `count u8 | count × 32-byte public key`, the relay's keys, current first.
    public static let relayKeys: UInt8 = 0x86
}

/// The relay protocol version this build speaks: 2, the frame stream inside the encrypted link.
public let relayProtocolVersion: UInt16 = 2

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
    /// A hello's name claim carried the key that holds the name, but its signature does not verify for this
    /// connection's handshake hash (a claim made for another connection, or a broken signer); the holder stays.
    case invalidClaim = 19
    /// Sent to a member whose name a new connection took over with a valid claim of the same key: the client
    /// stops and does not reconnect (its owner is on the new connection).
    case nameReclaimed = 20
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
func withBytes<R>(
    _ slice: ArraySlice<UInt8>, _ body: (UnsafeRawBufferPointer) throws(WireError) -> R
) throws(WireError) -> R {
    let result = slice.withUnsafeBytes { raw in Result { () throws(WireError) -> R in try body(raw) } }
    return try result.get()
}
