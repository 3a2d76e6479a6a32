import AESChatCrypto

/// A relay's static X25519 public key (the key clients pin), with the names people and the protocol give it: its
/// fingerprint, its key id and its base32 text.
///
/// - The **fingerprint hash** is `SHA-256("aeschat/2 relay fingerprint" ‖ key)`; its first 16 bytes are shown as the
///   fingerprint, `relay 4f1c 93a0 …` (8 groups of 4 hex digits), and its first 4 bytes are the key id that the
///   cleartext preamble carries (``LinkPreamble``). The key id 00000000 is reserved for a client that asks for the
///   relay's key, so no relay key may have it.
/// - The **text form** is the 32 bytes in RFC 4648 base32, lower case and without padding: 52 characters, as the
///   join line prints them.
///
/// Ownership and threading: a value type holding public bytes only; `Sendable`.
public struct RelayPublicKey: Hashable, Sendable, CustomStringConvertible {
    /// The length of the key, in bytes.
    public static let length = 32
    /// The length of the key's text form: 52 characters.
    public static let textLength = 52
    /// The number of bytes of the fingerprint hash that the fingerprint shows.
    public static let fingerprintLength = 16
    /// The label hashed before the key.
    static let fingerprintLabel = Array("aeschat/2 relay fingerprint".utf8)
    /// The key id a client sends to ask for the relay's key instead of starting a handshake.
    public static let keyRequestID: [UInt8] = [0, 0, 0, 0]

    /// The 32 bytes of the X25519 public key.
    public let bytes: [UInt8]

    /// A relay key from its 32 bytes.
    ///
    /// - Throws: ``LinkError/invalidKeyLength(whose:actual:)`` unless `bytes` is 32 bytes long.
    public init(bytes: [UInt8]) throws(LinkError) {
        guard bytes.count == Self.length else {
            throw .invalidKeyLength(whose: "a relay key", actual: bytes.count)
        }
        self.bytes = bytes
    }

    /// A relay key from its text form (52 base32 characters, either case; spaces and dashes between them are
    /// ignored); nil for anything else.
    public init?(text: String) {
        guard let decoded = Base32.decode(text), decoded.count == Self.length else { return nil }
        bytes = decoded
    }

    /// `SHA-256("aeschat/2 relay fingerprint" ‖ key)`: the fingerprint's and the key id's source.
    public var fingerprintHash: [UInt8] { SHA256.hash(Self.fingerprintLabel + bytes) }

    /// The first 16 bytes of the fingerprint hash.
    public var fingerprintBytes: [UInt8] { Array(fingerprintHash.prefix(Self.fingerprintLength)) }

    /// The fingerprint as people compare it: `relay ` and 8 groups of 4 lower-case hex digits.
    public var fingerprint: String {
        let hex = fingerprintBytes.map { byte in
            String(byte >> 4, radix: 16) + String(byte & 0x0f, radix: 16)
        }
        let groups = stride(from: 0, to: hex.count, by: 2).map { hex[$0] + hex[$0 + 1] }
        return "relay " + groups.joined(separator: " ")
    }

    /// The key id: the first 4 bytes of the fingerprint hash.
    public var keyID: [UInt8] { Array(fingerprintHash.prefix(LinkPreamble.keyIDLength)) }

    /// The key in text form: 52 lower-case base32 characters.
    public var text: String { Base32.encode(bytes) }

    public var description: String { fingerprint }

    /// Reads a fingerprint as a person might paste it: 32 hex digits, optionally after `relay`, with any spaces,
    /// colons or dashes between them; nil for anything else.
    public static func parseFingerprint(_ text: String) -> [UInt8]? {
        var digits = Substring(text.lowercased()).drop { $0 == " " }
        if digits.hasPrefix("relay") { digits = digits.dropFirst("relay".count) }
        var bytes: [UInt8] = []
        var high: UInt8?
        for character in digits {
            if character == " " || character == ":" || character == "-" { continue }
            guard let ascii = character.asciiValue, let nibble = UInt8(String(UnicodeScalar(ascii)), radix: 16)
            else { return nil }
            if let pending = high {
                bytes.append(pending << 4 | nibble)
                high = nil
            } else {
                high = nibble
            }
        }
        guard high == nil, bytes.count == fingerprintLength else { return nil }
        return bytes
    }
}

/// RFC 4648 base32 (alphabet `a`–`z`, `2`–`7`), lower case, without padding.
enum Base32 {
    private static let alphabet = Array("abcdefghijklmnopqrstuvwxyz234567".utf8)

    /// The text for `bytes`.
    static func encode(_ bytes: [UInt8]) -> String {
        var output: [UInt8] = []
        output.reserveCapacity((bytes.count * 8 + 4) / 5)
        var buffer: UInt32 = 0
        var bits = 0
        for byte in bytes {
            buffer = buffer << 8 | UInt32(byte)
            bits += 8
            while bits >= 5 {
                bits -= 5
                output.append(alphabet[Int(buffer >> UInt32(bits) & 31)])
            }
            buffer &= (1 << UInt32(bits)) - 1
        }
        if bits > 0 { output.append(alphabet[Int(buffer << UInt32(5 - bits) & 31)]) }
        return String(decoding: output, as: UTF8.self)
    }

    /// The bytes of `text` (either case; spaces and dashes ignored), or nil if it holds another character or
    /// leftover bits that are not zero.
    static func decode(_ text: String) -> [UInt8]? {
        var output: [UInt8] = []
        var buffer: UInt32 = 0
        var bits = 0
        for unit in text.utf8 {
            let value: UInt8
            switch unit {
            case UInt8(ascii: "a")...UInt8(ascii: "z"): value = unit - UInt8(ascii: "a")
            case UInt8(ascii: "A")...UInt8(ascii: "Z"): value = unit - UInt8(ascii: "A")
            case UInt8(ascii: "2")...UInt8(ascii: "7"): value = unit - UInt8(ascii: "2") + 26
            case UInt8(ascii: " "), UInt8(ascii: "-"): continue
            default: return nil
            }
            buffer = buffer << 5 | UInt32(value)
            bits += 5
            if bits >= 8 {
                bits -= 8
                output.append(UInt8(truncatingIfNeeded: buffer >> UInt32(bits)))
                buffer &= (1 << UInt32(bits)) - 1
            }
        }
        guard bits < 5, buffer == 0 else { return nil }
        return output
    }
}
