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
    /// The most bytes an answer takes: `"AESCHAT"`, version, kind, count and two keys.
    static let maximumLength = LinkPreamble.magic.count + 3 + LinkAnswer.maximumKeys * RelayPublicKey.length

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
        guard bytes.count > magic.count else { return nil }
        // A relay of another version says so whatever else follows.
        let version = bytes[magic.count]
        guard version == LinkPreamble.version else { return (.version(Int(version)), magic.count + 1) }
        let parsed: (answer: LinkAnswer, length: Int)?
        do {
            parsed = try LinkAnswer.parse(bytes)
        } catch {
            return (.notAESChat, 0)
        }
        guard let (answer, length) = parsed else { return nil }
        switch answer {
        case .keys(let keys):
            // Key id 00000000 asks for the keys: no relay key may have it.
            guard !keys.contains(where: { $0.keyID == RelayPublicKey.keyRequestID }) else { return (.notAESChat, 0) }
            return (.keys(keys), length)
        case .version(let version): return (.version(Int(version)), length)
        case .busy: return (.busy, length)
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
