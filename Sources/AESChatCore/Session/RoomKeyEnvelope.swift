package import AESChatCrypto

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
        throws(CryptoError) -> SecretBytes
    {
        var info = ByteWriter(capacity: 128)
        info.write(contentsOf: keyLabel)
        info.write(UInt8(0))
        info.writeShortString(room)
        info.writeShortString(sender)
        return try HKDFSHA256.deriveKey(
            inputKeyMaterial: roomKey.secret, salt: Array(sessionID), info: info.bytes, outputByteCount: 32)
    }

    static func nonce(counter: UInt64) -> [UInt8] { AutomaticKeys.counterNonce(counter) }

    static func associatedData(header: ArraySlice<UInt8>, room: String, sender: String, recipient: String?)
        -> [UInt8]
    {
        var writer = AESChatCore.associatedData(label: aadLabel, header: header, room: room, sender: sender)
        writer.writeShortString(recipient ?? "")
        return writer.bytes
    }

    static func header(sessionID: [UInt8], counter: UInt64, sentAt: UInt64) -> [UInt8] {
        var header = ByteWriter(capacity: headerSize)
        header.write(EnvelopeKind.roomKey.rawValue)
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
