/// The optional last field of `hello` (docs/PROTOCOL.md section 3.1): a public **claim key** and a signature with
/// it over this connection's handshake hash, by which a client may take over its own name from a stale connection
/// of the same key. Only the layout lives here; ``NameClaimKey`` (Link) makes and checks the signature.
///
/// ```
/// claim = 0x01 ‖ claim key (32) ‖ signature (64)          97 bytes, after hello's profile
/// ```
///
/// Value type; `Sendable`.
public struct NameClaim: Equatable, Sendable {
    /// The kind byte that starts a claim; any other byte after the profile makes the hello malformed.
    public static let kind: UInt8 = 0x01
    /// The length of a claim key (an Ed25519 public key).
    public static let keyLength = 32
    /// The length of its signature.
    public static let signatureLength = 64
    /// The whole field: kind, key and signature.
    public static let encodedLength = 1 + keyLength + signatureLength

    /// The claim key, 32 bytes.
    public let key: [UInt8]
    /// The Ed25519 signature over ``NameClaimKey/signedMessage(handshakeHash:name:)``, 64 bytes.
    public let signature: [UInt8]

    /// A claim from its parts.
    /// - Precondition: `key` is 32 bytes and `signature` 64 (they are written as they are).
    public init(key: [UInt8], signature: [UInt8]) {
        precondition(key.count == Self.keyLength && signature.count == Self.signatureLength, "a claim's sizes")
        self.key = key
        self.signature = signature
    }

    /// Writes the field: kind, key, signature.
    func write(into writer: inout ByteWriter) {
        writer.write(Self.kind)
        writer.write(contentsOf: key)
        writer.write(contentsOf: signature)
    }

    /// Reads the field from what follows hello's profile: nil when nothing does.
    /// - Throws: ``WireError/malformed(_:)`` for another kind byte, a short field or bytes after it.
    static func read(from reader: inout ByteReader) throws(WireError) -> NameClaim? {
        guard !reader.isAtEnd else { return nil }
        let kind = try reader.readUInt8("hello claim kind")
        guard kind == Self.kind else { throw .malformed("hello claim of unknown kind \(kind)") }
        let key = Array(try reader.readBytes(Self.keyLength, "hello claim key"))
        let signature = Array(try reader.readBytes(Self.signatureLength, "hello claim signature"))
        try reader.expectEnd("hello")
        return NameClaim(key: key, signature: signature)
    }
}
