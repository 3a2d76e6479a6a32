/// The relay's first answer to a client's preamble, read as it arrives (docs/PROTOCOL.md, "The relay's answer"):
///
/// - `0x00 0x30 ‖ message 2` (48 bytes): the handshake goes on;
/// - `"AESCHAT" ‖ version ‖ kind ‖ …`, after which the relay closes: kind 0x01 **keys** (`count u8`, 1 or 2, then
///   `count` 32-byte keys, current first), 0x02 **version** (the version byte says which the relay speaks), 0x03
///   **busy**;
/// - a protocol 1 error frame (`00 00 00 xx 0x85 …`): an older relay;
/// - anything else: not an aeschat relay.
///
/// Pure: ``parse(_:)`` looks at the bytes gathered so far and decides as early as they allow.
enum RelayAnswer: Equatable {
    /// Handshake message 2, without its length prefix.
    case message2([UInt8])
    /// The relay's public keys, current first.
    case keys([RelayPublicKey])
    /// The relay speaks protocol `version`.
    case version(Int)
    /// The relay refuses handshakes for now.
    case busy
    /// A protocol 1 error frame.
    case olderRelay
    /// Anything else.
    case notAESChat

    /// The length prefix of message 2: 48, big-endian.
    static let message2Prefix: [UInt8] = [0x00, UInt8(NoiseHandshake.emptyMessageLength)]
    /// The kind bytes after `"AESCHAT" ‖ version`.
    static let keysKind: UInt8 = 0x01
    static let versionKind: UInt8 = 0x02
    static let busyKind: UInt8 = 0x03
    /// How many keys a keys answer may list.
    static let keyCounts: ClosedRange<Int> = 1...2
    /// The most bytes an answer takes: `"AESCHAT"`, version, kind, count and two keys.
    static let maximumLength = LinkPreamble.magic.count + 3 + 2 * RelayPublicKey.length

    /// Decides what the relay answered from the bytes received so far.
    ///
    /// - Parameter bytes: Everything the relay has sent, from its first byte.
    /// - Returns: The answer and how many bytes it took, or nil while the bytes are a valid start of an answer.
    static func parse(_ bytes: [UInt8]) -> (answer: RelayAnswer, length: Int)? {
        guard let first = bytes.first else { return nil }
        if first == 0x00 { return parseBinary(bytes) }
        let magic = LinkPreamble.magic
        for (byte, expected) in zip(bytes, magic) where byte != expected {
            return (.notAESChat, 0)
        }
        let versionIndex = magic.count
        let kindIndex = versionIndex + 1
        guard bytes.count > kindIndex else { return nil }
        let version = bytes[versionIndex]
        let kind = bytes[kindIndex]
        guard version == LinkPreamble.version else { return (.version(Int(version)), kindIndex + 1) }
        switch kind {
        case keysKind:
            let countIndex = kindIndex + 1
            guard bytes.count > countIndex else { return nil }
            let count = Int(bytes[countIndex])
            guard keyCounts.contains(count) else { return (.notAESChat, 0) }
            let length = countIndex + 1 + count * RelayPublicKey.length
            guard bytes.count >= length else { return nil }
            var keys: [RelayPublicKey] = []
            for index in 0..<count {
                let start = countIndex + 1 + index * RelayPublicKey.length
                // Key id 00000000 asks for the keys: no relay key may have it.
                guard let key = try? RelayPublicKey(bytes: Array(bytes[start..<start + RelayPublicKey.length])),
                    key.keyID != RelayPublicKey.keyRequestID
                else { return (.notAESChat, 0) }
                keys.append(key)
            }
            return (.keys(keys), length)
        case versionKind: return (.version(Int(version)), kindIndex + 1)
        case busyKind: return (.busy, kindIndex + 1)
        default: return (.notAESChat, 0)
        }
    }

    /// An answer starting with 0x00: message 2 (`00 30`), or a protocol 1 error frame (`00 00 00 xx 85`).
    private static func parseBinary(_ bytes: [UInt8]) -> (answer: RelayAnswer, length: Int)? {
        guard bytes.count >= 2 else { return nil }
        if bytes[1] == message2Prefix[1] {
            let length = message2Prefix.count + NoiseHandshake.emptyMessageLength
            guard bytes.count >= length else { return nil }
            return (.message2(Array(bytes[message2Prefix.count..<length])), length)
        }
        guard bytes[1] == 0x00 else { return (.notAESChat, 0) }
        guard bytes.count >= 3 else { return nil }
        guard bytes[2] == 0x00 else { return (.notAESChat, 0) }
        guard bytes.count >= 5 else { return nil }
        return bytes[4] == FrameType.error ? (.olderRelay, 5) : (.notAESChat, 0)
    }
}
