/// What a relay sends in the clear instead of handshake message 2, before it closes the connection (docs/PROTOCOL.md,
/// the encrypted link): `"AESCHAT"` ‖ the version the relay speaks (0x02) ‖ kind ‖ what the kind carries. Message 2
/// starts with its length prefix 0x00 0x30, so the first byte tells the two apart.
///
/// A relay that gets first bytes that are not `"AESCHAT"` (an aeschat 0.1 client, or anything else) answers with
/// ``olderClientRefusal`` instead: an error frame in the format of protocol 1, which an old client shows as a line.
///
/// Ownership and threading: a value type; `Sendable`.
public enum LinkAnswer: Equatable, Sendable {
    /// Kind 0x01: the relay's public keys, current first (one, or two during a rotation). The answer to a key
    /// request (key id 00000000) and to a key id the relay does not hold.
    case keys([RelayPublicKey])
    /// Kind 0x02: the preamble named another protocol version; the relay speaks `version`.
    case version(UInt8)
    /// Kind 0x03: the relay refuses handshakes from this address for now, or is full; try again later, as after a
    /// lost connection.
    case busy

    /// The kind byte of each answer.
    public enum Kind {
        public static let keys: UInt8 = 0x01
        public static let version: UInt8 = 0x02
        public static let busy: UInt8 = 0x03
    }

    /// The most keys a keys answer lists.
    public static let maximumKeys = 2

    /// The answer's bytes on the wire.
    public func encoded() -> [UInt8] {
        switch self {
        case .keys(let keys):
            precondition((1...Self.maximumKeys).contains(keys.count), "a keys answer lists 1 or 2 keys")
            return LinkPreamble.magic + [LinkPreamble.version, Kind.keys, UInt8(keys.count)] + keys.flatMap(\.bytes)
        case .version(let version):
            return LinkPreamble.magic + [version, Kind.version]
        case .busy:
            return LinkPreamble.magic + [LinkPreamble.version, Kind.busy]
        }
    }

    /// Parses an answer from the first bytes a relay sent (which start with `"AESCHAT"`).
    ///
    /// - Parameter bytes: What has arrived so far.
    /// - Returns: The answer and how many bytes it took; nil while the bytes are a valid start of an answer.
    /// - Throws: ``WireError/malformed(_:)`` for bytes that cannot be an answer (another magic, an unknown kind, a
    ///   key count of 0 or more than 2).
    public static func parse(_ bytes: some Collection<UInt8>) throws(WireError) -> (answer: LinkAnswer, length: Int)? {
        let head = Array(bytes.prefix(LinkPreamble.magic.count + 3))
        for (byte, expected) in zip(head, LinkPreamble.magic) where byte != expected {
            throw .malformed("the relay's answer does not start with \"AESCHAT\"")
        }
        let kindIndex = LinkPreamble.magic.count + 1
        guard head.count > kindIndex else { return nil }
        let version = head[LinkPreamble.magic.count]
        switch head[kindIndex] {
        case Kind.version:
            return (.version(version), kindIndex + 1)
        case Kind.busy:
            return (.busy, kindIndex + 1)
        case Kind.keys:
            guard head.count > kindIndex + 1 else { return nil }
            let count = Int(head[kindIndex + 1])
            guard (1...maximumKeys).contains(count) else {
                throw .malformed("the relay's keys answer lists \(count) keys; it must list 1 or 2")
            }
            let length = kindIndex + 2 + count * RelayPublicKey.length
            let all = Array(bytes.prefix(length))
            guard all.count == length else { return nil }
            var keys: [RelayPublicKey] = []
            for index in 0..<count {
                let start = kindIndex + 2 + index * RelayPublicKey.length
                guard let key = try? RelayPublicKey(bytes: Array(all[start..<(start + RelayPublicKey.length)])) else {
                    throw .malformed("the relay's keys answer carries a key that is not 32 bytes")
                }
                keys.append(key)
            }
            return (.keys(keys), length)
        default:
            throw .malformed("the relay's answer has the unknown kind 0x\(String(head[kindIndex], radix: 16))")
        }
    }

    /// The text of ``olderClientRefusal``.
    public static let olderClientMessage = "this relay speaks aeschat protocol 2 (encrypted link); upgrade aeschat"

    /// What a relay sends to first bytes that are not `"AESCHAT"`: an error frame of protocol 1's format (`len u32 ‖
    /// 0x85 ‖ code 5, unsupported-version ‖ str16 message`), which an aeschat 0.1 client shows as one line.
    public static var olderClientRefusal: [UInt8] {
        RelayFrame.error(code: RelayErrorCode.unsupportedVersion.rawValue, message: olderClientMessage).encoded()
    }
}
