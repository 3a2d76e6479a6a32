public import AESChatCrypto

/// The end-to-end payload of pre-shared-key mode, as carried (opaque to the relay) in publish and
/// deliver frames:
///
///     kind u8 = 0x05 | session id [16] | counter u64 | sent at u64 (ms since 1970) | ciphertext | tag [16]
///
/// Each sender session draws a random 16-byte session id and derives its own message key:
///
///     key   = HKDF-SHA-256(IKM: room key, salt: session id,
///                          info: "aeschat/1 room-key message" | 0x00 | str8(room) | str8(sender), L: 32)
///     nonce = 0x00000000 | counter (u64, big-endian), counter = 0, 1, 2, …
///     AAD   = "aeschat/1" | header | str8(room) | str8(sender) | str8(recipient, empty for the room)
///
/// So a nonce never repeats under one key: keys differ per session (random salt), and counters
/// never repeat within a session. The sender's name and the room are bound into both the key and
/// the AAD, and the recipient (none for the room) into the AAD, so a relay that relabels a message,
/// moves it to another room, turns a room message into a private one or hands a private one to
/// someone else makes it fail. The sending time bounds replays to a receiver that has no memory
/// of the stream (one that just started). See docs/PROTOCOL.md section 5.
public enum RoomKeyEnvelope {
    /// The envelope kind byte of a room-key message.
    public static let kind = EnvelopeKind.roomKey.rawValue
    /// The kind byte of the first version's envelope (no sending time, no recipient), refused
    /// with a message that names it.
    public static let firstVersionKind = EnvelopeKind.roomKeyFirstVersion.rawValue
    /// Length of the random session id.
    public static let sessionIDSize = 16
    /// Bytes before the ciphertext: kind, session id, counter, sending time.
    public static let headerSize = 1 + sessionIDSize + 8 + 8
    /// Smallest valid envelope: header, one plaintext byte (the content kind) and the tag.
    public static let minimumSize = headerSize + 1 + AESGCM.tagSize
    /// Messages one session sends before it moves to a fresh session id and key (far below the
    /// counter's range; keeps any one key's use modest).
    public static let messagesPerSession: UInt64 = 1 << 32
    /// How far a message's sending time may lie from the receiver's clock, either way.
    public static let freshnessWindowMilliseconds: UInt64 = 10 * 60 * 1000

    static let keyLabel = Array("aeschat/1 room-key message".utf8)
    static let aadLabel = Array("aeschat/1".utf8)

    /// Derives the message key of one sender session.
    /// - Throws: ``CryptoError`` only if libgcrypt fails.
    package static func messageKey(roomKey: RoomKey, sessionID: ArraySlice<UInt8>, room: String, sender: String)
        throws(CryptoError) -> [UInt8]
    {
        var info = ByteWriter(capacity: 128)
        info.write(contentsOf: keyLabel)
        info.write(UInt8(0))
        info.writeShortString(room)
        info.writeShortString(sender)
        let ikm = roomKey.secret.withUnsafeBytes { Array($0) }
        return try HKDFSHA256.deriveKey(
            inputKeyMaterial: ikm, salt: Array(sessionID), info: info.bytes, outputByteCount: 32)
    }

    static func nonce(counter: UInt64) -> [UInt8] { AutomaticKeys.counterNonce(counter) }

    static func associatedData(header: ArraySlice<UInt8>, room: String, sender: String, recipient: String?)
        -> [UInt8]
    {
        var writer = ByteWriter(capacity: 128)
        writer.write(contentsOf: aadLabel)
        writer.write(contentsOf: header)
        writer.writeShortString(room)
        writer.writeShortString(sender)
        writer.writeShortString(recipient ?? "")
        return writer.bytes
    }

    static func header(sessionID: [UInt8], counter: UInt64, sentAt: UInt64) -> [UInt8] {
        var header = ByteWriter(capacity: headerSize)
        header.write(kind)
        header.write(contentsOf: sessionID)
        header.write(counter)
        header.write(sentAt)
        return header.bytes
    }

    /// `3 h 2 min`-style ages for messages about stale envelopes.
    static func describeAge(milliseconds: UInt64) -> String {
        let minutes = milliseconds / 60_000
        if minutes < 1 { return "\(milliseconds / 1000) s" }
        if minutes < 120 { return "\(minutes) min" }
        return "\(minutes / 60) h \(minutes % 60) min"
    }
}

/// Seals one sender's messages under the room key: to the room, or to one recipient. Not
/// thread-safe; one per stream.
public final class RoomKeySealer {
    private let roomKey: RoomKey
    private let room: String
    private let sender: String
    private let clock: () -> UInt64
    private var sessionID: [UInt8] = []
    private var cipher: AESGCM?
    private var counter: UInt64 = 0

    /// Starts a sender session with a fresh random session id.
    /// - Parameter clock: the wall clock in milliseconds since 1970 (tests pass their own).
    public init(
        roomKey: RoomKey, room: String, sender: String,
        clock: @escaping () -> UInt64 = WallClock.milliseconds
    ) {
        self.roomKey = roomKey
        self.room = room
        self.sender = sender
        self.clock = clock
    }

    /// Starts at a given session id and counter: only for the fixed test vectors of
    /// docs/PROTOCOL.md and for tests that play a hostile member. Real sessions always draw their
    /// id at random.
    package init(
        roomKey: RoomKey, room: String, sender: String, fixedSessionID: [UInt8], counter: UInt64,
        clock: @escaping () -> UInt64 = WallClock.milliseconds
    ) throws(CryptoError) {
        self.roomKey = roomKey
        self.room = room
        self.sender = sender
        self.clock = clock
        sessionID = fixedSessionID
        self.counter = counter
        cipher = try AESGCM(
            key: RoomKeyEnvelope.messageKey(
                roomKey: roomKey, sessionID: fixedSessionID[...], room: room, sender: sender))
    }

    /// The current session id (random; fresh for each sealer and every 2^32 messages).
    public var currentSessionID: [UInt8] { sessionID }

    /// Encrypts and authenticates one message for the room (`recipient` nil) or for one member.
    /// - Returns: the envelope to publish or send.
    /// - Throws: ``CryptoError`` if libgcrypt fails.
    public func seal(_ content: MessageContent, to recipient: String? = nil) throws(CryptoError) -> [UInt8] {
        if cipher == nil || counter >= RoomKeyEnvelope.messagesPerSession { try startSession() }
        guard let cipher else { throw .authenticationFailed }
        let header = RoomKeyEnvelope.header(sessionID: sessionID, counter: counter, sentAt: clock())
        let aad = RoomKeyEnvelope.associatedData(header: header[...], room: room, sender: sender, recipient: recipient)
        let sealed = try cipher.seal(
            content.encoded(), nonce: RoomKeyEnvelope.nonce(counter: counter), authenticating: aad)
        counter += 1
        return header + sealed
    }

    private func startSession() throws(CryptoError) {
        sessionID = SecureRandom.bytes(count: RoomKeyEnvelope.sessionIDSize)
        counter = 0
        cipher = try AESGCM(
            key: RoomKeyEnvelope.messageKey(roomKey: roomKey, sessionID: sessionID[...], room: room, sender: sender))
    }
}

/// Why a received envelope was not accepted, or what it revealed about the stream.
public enum OpenedMessage: Equatable, Sendable {
    /// Authentic and new. `missing` counts messages of this session skipped since the last one
    /// (or, for a session that must have started in the receiver's presence, before the first).
    case content(MessageContent, missing: UInt64)
    /// Failed authentication (or was malformed): never shown as text.
    case tampered(String)
    /// Authentic but already seen, from a session this sender has left behind, or sent too long
    /// ago (or too far ahead) to be told apart from a replay.
    case replayed(String)
}

/// Opens messages from every sender of one stream kind (room messages, or private messages to
/// this member). Keeps, per sender, the current session and the next counter expected, so replays
/// and gaps are seen. Not thread-safe; one per client and stream kind.
public final class RoomKeyOpener {
    private struct SenderState {
        var sessionID: [UInt8]
        var cipher: AESGCM
        var nextCounter: UInt64
        var retiredSessions: [[UInt8]]
    }

    private let roomKey: RoomKey
    private let room: String
    private let clock: () -> UInt64
    private var senders: [String: SenderState] = [:]
    /// Retired session ids remembered per sender.
    static let retiredSessionLimit = 64

    /// Creates an opener for `room`.
    /// - Parameter clock: the wall clock in milliseconds since 1970 (tests pass their own).
    public init(roomKey: RoomKey, room: String, clock: @escaping () -> UInt64 = WallClock.milliseconds) {
        self.roomKey = roomKey
        self.room = room
        self.clock = clock
    }

    /// Authenticates and decrypts one envelope from `sender` (the name the relay reports).
    /// Nothing of the plaintext is used unless the tag verifies.
    /// - Parameters:
    ///   - recipient: this member's name for a private message; nil for a room message.
    ///   - sessionMayBeUnderway: whether `sender`'s first session seen here may have started
    ///     before this member could see it (the sender was in the room before this member joined).
    ///     When false, or for any later session, a first counter above 0 is reported as missing.
    public func open(
        _ envelope: ArraySlice<UInt8>, from sender: String, to recipient: String? = nil,
        sessionMayBeUnderway: Bool = true
    ) -> OpenedMessage {
        guard envelope.count >= RoomKeyEnvelope.minimumSize || envelope.first == RoomKeyEnvelope.firstVersionKind
        else {
            return .tampered("message of \(envelope.count) bytes is too short to be genuine")
        }
        var reader = ByteReader(envelope)
        do {
            let kind = try reader.readUInt8("kind")
            guard kind == RoomKeyEnvelope.kind else {
                if kind == RoomKeyEnvelope.firstVersionKind {
                    return .tampered(
                        "message in the first room-key format, which this version no longer accepts "
                            + "(\(sender) runs an older aeschat?)")
                }
                return .tampered(
                    "unknown envelope kind 0x\(String(kind, radix: 16)) (is the sender using a different key mode?)")
            }
            let sessionID = Array(try reader.readBytes(RoomKeyEnvelope.sessionIDSize, "session id"))
            let counter = try reader.readUInt64("counter")
            let sentAt = try reader.readUInt64("sent at")
            let sealed = Array(reader.readRemaining())
            let header = envelope.prefix(RoomKeyEnvelope.headerSize)
            let aad = RoomKeyEnvelope.associatedData(header: header, room: room, sender: sender, recipient: recipient)
            let known = senders[sender]
            if let known, known.retiredSessions.contains(where: { constantTimeEquals($0, sessionID) }) {
                return .replayed("message from an earlier session of \(sender) refused")
            }
            let isCurrentSession = known.map { constantTimeEquals($0.sessionID, sessionID) } ?? false
            if isCurrentSession, let known, counter < known.nextCounter {
                return .replayed("message \(counter) from \(sender) was already received")
            }
            // The last counter would leave no next one: a wrapped next counter would accept replays.
            guard counter < UInt64.max else { return .tampered("message from \(sender) at the last counter refused") }
            let cipher: AESGCM
            if isCurrentSession, let known {
                cipher = known.cipher
            } else {
                cipher = try AESGCM(
                    key: RoomKeyEnvelope.messageKey(
                        roomKey: roomKey, sessionID: sessionID[...], room: room, sender: sender))
            }
            // Authenticate before anything else: forged ids cannot evict the real session, and
            // a forged time cannot raise a false alarm.
            let plaintext: [UInt8]
            do {
                plaintext = try cipher.open(sealed, nonce: RoomKeyEnvelope.nonce(counter: counter), authenticating: aad)
            } catch {
                return .tampered("message from \(sender) failed authentication")
            }
            if let stale = staleness(sentAt: sentAt, from: sender) { return .replayed(stale) }
            let missing: UInt64
            if isCurrentSession, var state = known {
                missing = counter - state.nextCounter
                state.nextCounter = counter + 1
                senders[sender] = state
            } else {
                // A new session: it starts at counter 0 unless it may have been under way before
                // this member could see it.
                missing = known == nil && sessionMayBeUnderway ? 0 : counter
                var adopted = SenderState(
                    sessionID: sessionID, cipher: cipher, nextCounter: counter + 1, retiredSessions: [])
                if let known {
                    adopted.retiredSessions = (known.retiredSessions + [known.sessionID]).suffix(
                        Self.retiredSessionLimit)
                }
                senders[sender] = adopted
            }
            return decode(plaintext, missing: missing)
        } catch {
            return .tampered("\(error)")
        }
    }

    /// Why an authentic message's sending time makes it unacceptable, if it does.
    private func staleness(sentAt: UInt64, from sender: String) -> String? {
        let now = clock()
        let window = RoomKeyEnvelope.freshnessWindowMilliseconds
        if now > sentAt, now - sentAt > window {
            return "message from \(sender) sent \(RoomKeyEnvelope.describeAge(milliseconds: now - sentAt)) ago "
                + "refused: older than the 10-minute window (a replay, or a clock that is far off)"
        }
        if sentAt > now, sentAt - now > window {
            return "message from \(sender) dated \(RoomKeyEnvelope.describeAge(milliseconds: sentAt - now)) ahead "
                + "refused: beyond the 10-minute window (a clock that is far off, here or there)"
        }
        return nil
    }

    private func decode(_ plaintext: [UInt8], missing: UInt64) -> OpenedMessage {
        do {
            return .content(try MessageContent(decoding: plaintext), missing: missing)
        } catch {
            return .tampered("authentic message with unreadable content: \(error.description)")
        }
    }
}
