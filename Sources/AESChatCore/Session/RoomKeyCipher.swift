public import AESChatCrypto

/// The end-to-end payload of pre-shared-key mode, as carried (opaque to the relay) in publish and
/// deliver frames:
///
///     kind u8 = 0x01 | session id [16] | counter u64 | ciphertext | tag [16]
///
/// Each sender session draws a random 16-byte session id and derives its own message key:
///
///     key   = HKDF-SHA-256(IKM: room key, salt: session id,
///                          info: "aeschat/1 room-key message" | 0x00 | str8(room) | str8(sender), L: 32)
///     nonce = 0x00000000 | counter (u64, big-endian), counter = 0, 1, 2, …
///     AAD   = "aeschat/1" | kind | session id | counter | str8(room) | str8(sender)
///
/// So a nonce never repeats under one key: keys differ per session (random salt), and counters
/// never repeat within a session. The sender's name and the room are bound into both the key and
/// the AAD, so a relay that relabels a message or moves it to another room makes it fail.
/// See docs/PROTOCOL.md.
public enum RoomKeyEnvelope {
    /// The envelope kind byte of a room-key message.
    public static let kind: UInt8 = 0x01
    /// Length of the random session id.
    public static let sessionIDSize = 16
    /// Bytes before the ciphertext: kind, session id, counter.
    public static let headerSize = 1 + sessionIDSize + 8
    /// Smallest valid envelope: header, one plaintext byte (the content kind) and the tag.
    public static let minimumSize = headerSize + 1 + AESGCM.tagSize
    /// Messages one session sends before it moves to a fresh session id and key (far below the
    /// counter's range; keeps any one key's use modest).
    public static let messagesPerSession: UInt64 = 1 << 32

    static let keyLabel = Array("aeschat/1 room-key message".utf8)
    static let aadLabel = Array("aeschat/1".utf8)

    /// Derives the message key of one sender session.
    /// - Throws: ``CryptoError`` only if libgcrypt fails.
    static func messageKey(roomKey: RoomKey, sessionID: ArraySlice<UInt8>, room: String, sender: String)
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

    static func associatedData(header: ArraySlice<UInt8>, room: String, sender: String) -> [UInt8] {
        var writer = ByteWriter(capacity: 128)
        writer.write(contentsOf: aadLabel)
        writer.write(contentsOf: header)
        writer.writeShortString(room)
        writer.writeShortString(sender)
        return writer.bytes
    }
}

/// Seals one sender's messages under the room key. Not thread-safe; one per client.
public final class RoomKeySealer {
    private let roomKey: RoomKey
    private let room: String
    private let sender: String
    private var sessionID: [UInt8] = []
    private var cipher: AESGCM?
    private var counter: UInt64 = 0

    /// Starts a sender session with a fresh random session id.
    public init(roomKey: RoomKey, room: String, sender: String) {
        self.roomKey = roomKey
        self.room = room
        self.sender = sender
    }

    /// Starts at a given session id and counter: only for the fixed test vectors of
    /// docs/PROTOCOL.md. Real sessions always draw their id at random.
    init(roomKey: RoomKey, room: String, sender: String, fixedSessionID: [UInt8], counter: UInt64) throws(CryptoError) {
        self.roomKey = roomKey
        self.room = room
        self.sender = sender
        sessionID = fixedSessionID
        self.counter = counter
        cipher = try AESGCM(
            key: RoomKeyEnvelope.messageKey(
                roomKey: roomKey, sessionID: fixedSessionID[...], room: room, sender: sender))
    }

    /// The current session id (random; fresh for each sealer and every 2^32 messages).
    public var currentSessionID: [UInt8] { sessionID }

    /// Encrypts and authenticates one message.
    /// - Returns: the envelope to publish.
    /// - Throws: ``CryptoError`` if libgcrypt fails.
    public func seal(_ content: MessageContent) throws(CryptoError) -> [UInt8] {
        if cipher == nil || counter >= RoomKeyEnvelope.messagesPerSession { try startSession() }
        guard let cipher else { throw .authenticationFailed }
        var header = ByteWriter(capacity: RoomKeyEnvelope.headerSize)
        header.write(RoomKeyEnvelope.kind)
        header.write(contentsOf: sessionID)
        header.write(counter)
        let aad = RoomKeyEnvelope.associatedData(header: header.bytes[...], room: room, sender: sender)
        let sealed = try cipher.seal(
            content.encoded(), nonce: RoomKeyEnvelope.nonce(counter: counter), authenticating: aad)
        counter += 1
        return header.bytes + sealed
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
    /// Authentic and new. `missing` counts messages of this session skipped since the last one.
    case content(MessageContent, missing: UInt64)
    /// Failed authentication (or was malformed): never shown as text.
    case tampered(String)
    /// Authentic but already seen, or from a session this sender has left behind.
    case replayed(String)
}

/// Opens messages from every sender of one room. Keeps, per sender, the current session and the
/// next counter expected, so replays and gaps are seen. Not thread-safe; one per client.
public final class RoomKeyOpener {
    private struct SenderState {
        var sessionID: [UInt8]
        var cipher: AESGCM
        var nextCounter: UInt64
        var retiredSessions: [[UInt8]]
    }

    private let roomKey: RoomKey
    private let room: String
    private var senders: [String: SenderState] = [:]
    /// Retired session ids remembered per sender.
    static let retiredSessionLimit = 64

    /// Creates an opener for `room`.
    public init(roomKey: RoomKey, room: String) {
        self.roomKey = roomKey
        self.room = room
    }

    /// Authenticates and decrypts one envelope from `sender` (the name the relay reports).
    /// Nothing of the plaintext is used unless the tag verifies.
    public func open(_ envelope: ArraySlice<UInt8>, from sender: String) -> OpenedMessage {
        guard envelope.count >= RoomKeyEnvelope.minimumSize else {
            return .tampered("message of \(envelope.count) bytes is too short to be genuine")
        }
        var reader = ByteReader(envelope)
        do {
            let kind = try reader.readUInt8("kind")
            guard kind == RoomKeyEnvelope.kind else {
                return .tampered(
                    "unknown envelope kind 0x\(String(kind, radix: 16)) (is the sender using a different key mode?)")
            }
            let sessionID = Array(try reader.readBytes(RoomKeyEnvelope.sessionIDSize, "session id"))
            let counter = try reader.readUInt64("counter")
            let sealed = Array(reader.readRemaining())
            let header = envelope.prefix(RoomKeyEnvelope.headerSize)
            let aad = RoomKeyEnvelope.associatedData(header: header, room: room, sender: sender)
            var state = senders[sender]
            if let known = state, known.retiredSessions.contains(where: { constantTimeEquals($0, sessionID) }) {
                return .replayed("message from an earlier session of \(sender) refused")
            }
            if let known = state, constantTimeEquals(known.sessionID, sessionID) {
                guard counter >= known.nextCounter else {
                    return .replayed("message \(counter) from \(sender) was already received")
                }
            } else {
                let key = try RoomKeyEnvelope.messageKey(
                    roomKey: roomKey, sessionID: sessionID[...], room: room, sender: sender)
                let fresh = SenderState(
                    sessionID: sessionID, cipher: try AESGCM(key: key), nextCounter: counter, retiredSessions: [])
                // Authenticate before adopting a new session, so forged ids cannot evict the real one.
                let plaintext: [UInt8]
                do {
                    plaintext = try fresh.cipher.open(
                        sealed, nonce: RoomKeyEnvelope.nonce(counter: counter), authenticating: aad)
                } catch {
                    return .tampered("message from \(sender) failed authentication")
                }
                var adopted = fresh
                adopted.nextCounter = counter &+ 1
                if let previous = state {
                    adopted.retiredSessions = (previous.retiredSessions + [previous.sessionID]).suffix(
                        Self.retiredSessionLimit)
                }
                senders[sender] = adopted
                return decode(plaintext, missing: 0)
            }
            let plaintext: [UInt8]
            do {
                plaintext = try state!.cipher.open(
                    sealed, nonce: RoomKeyEnvelope.nonce(counter: counter), authenticating: aad)
            } catch {
                return .tampered("message from \(sender) failed authentication")
            }
            let missing = counter - state!.nextCounter
            state!.nextCounter = counter &+ 1
            senders[sender] = state
            return decode(plaintext, missing: missing)
        } catch {
            return .tampered("\(error)")
        }
    }

    private func decode(_ plaintext: [UInt8], missing: UInt64) -> OpenedMessage {
        do {
            return .content(try MessageContent(decoding: plaintext), missing: missing)
        } catch {
            return .tampered("authentic message with unreadable content: \(error.description)")
        }
    }
}
