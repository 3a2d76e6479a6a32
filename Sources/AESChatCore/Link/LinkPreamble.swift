/// The cleartext preamble a client sends before the Noise handshake (design: encrypted-link.md §3.1):
/// `"AESCHAT"` ‖ version byte 0x02 ‖ relay key id, 12 bytes.
///
/// The key id is the first 4 bytes of the relay fingerprint hash, so a relay that holds two keys during a rotation
/// picks the right one without trial Diffie-Hellman. The preamble goes into the handshake's ``prologue``, so a changed
/// byte fails handshake message 2. The first 7 bytes tell an aeschat peer from anything else: a v1 client's first
/// bytes are a frame length below 16 MiB and never start with `"AESC"`.
///
/// Ownership and threading: a value type of 12 bytes; `Sendable`.
public struct LinkPreamble: Equatable, Sendable {
    /// The 7 bytes every preamble starts with: `"AESCHAT"`.
    public static let magic: [UInt8] = Array("AESCHAT".utf8)
    /// The protocol version this build speaks.
    public static let version: UInt8 = 2
    /// The length of a key id, in bytes.
    public static let keyIDLength = 4
    /// The length of a whole preamble: 12 bytes.
    public static let length = magic.count + 1 + keyIDLength
    /// What the prologue starts with, before the preamble.
    public static let prologueLabel: [UInt8] = Array("aeschat/2 transport".utf8)

    /// The relay key id: the first 4 bytes of the relay fingerprint hash.
    public let keyID: [UInt8]

    /// The preamble for the relay whose fingerprint hash is `relayFingerprint`.
    ///
    /// - Parameter relayFingerprint: The relay fingerprint hash (its raw bytes); only its first 4 bytes are used.
    /// - Throws: ``LinkError/fingerprintTooShort(actual:)`` if it is shorter than 4 bytes.
    public init(relayFingerprint: [UInt8]) throws(LinkError) {
        guard relayFingerprint.count >= Self.keyIDLength else {
            throw .fingerprintTooShort(actual: relayFingerprint.count)
        }
        keyID = Array(relayFingerprint.prefix(Self.keyIDLength))
    }

    private init(keyID: [UInt8]) {
        self.keyID = keyID
    }

    /// The 12 bytes on the wire.
    public var bytes: [UInt8] { Self.magic + [Self.version] + keyID }

    /// The Noise prologue both sides hash in first: `"aeschat/2 transport"` ‖ ``bytes``.
    public var prologue: [UInt8] { Self.prologueLabel + bytes }

    /// Parses the first bytes a peer sent.
    ///
    /// It decides as early as the bytes allow: a byte that differs from `"AESCHAT"` is refused at once, and so is a
    /// version other than 2 as soon as its byte has arrived; a consistent but short prefix asks for more.
    ///
    /// - Parameter bytes: What has arrived so far; only its first 12 bytes are read (the handshake follows them).
    /// - Returns: The preamble, or `nil` when fewer than 12 bytes have arrived and they are a valid start.
    /// - Throws: ``LinkError/notAESChat`` for a wrong magic; ``LinkError/unsupportedVersion(_:)`` for the right
    ///   magic and another version.
    public static func parse(_ bytes: some Collection<UInt8>) throws(LinkError) -> LinkPreamble? {
        var prefix: [UInt8] = []
        prefix.reserveCapacity(length)
        for byte in bytes.prefix(length) {
            prefix.append(byte)
        }
        for (byte, expected) in zip(prefix, magic) where byte != expected {
            throw .notAESChat
        }
        guard prefix.count > magic.count else { return nil }
        guard prefix[magic.count] == version else { throw .unsupportedVersion(Int(prefix[magic.count])) }
        guard prefix.count == length else { return nil }
        return LinkPreamble(keyID: Array(prefix[(magic.count + 1)...]))
    }
}
