public import AESChatCrypto

/// The key by which a client proves, inside a fresh encrypted link, that it is the one that registered a name, so
/// that its new connection may take the name over from a stale one at once (docs/PROTOCOL.md section 3.1).
///
/// The claim key is an Ed25519 key derived from a secret the client keeps (its identity key's seed in automatic-key
/// mode, the `relay-name-key` file's in pre-shared-key mode), separately for each relay and name:
///
/// ```
/// claim seed = HKDF-SHA-256(IKM = secret seed, salt = empty,
///                           info = "aeschat/2 name claim key" ‖ relay public key (32) ‖ str8(name), L = 32)
/// ```
///
/// so the relay learns a key that names no one elsewhere, and the identity key itself signs nothing new. The claim
/// signs the handshake hash of the connection that carries it, which is unique to that connection: a claim cannot
/// be replayed on another connection, and only the relay, which already sees the link's plaintext, ever sees it.
///
/// Ownership: holds the derived private key (its seed wiped on release). Threading: immutable; `Sendable`.
public final class NameClaimKey: Sendable {
    /// The label of the derivation's info.
    static let derivationLabel = Array("aeschat/2 name claim key".utf8)
    /// The label that starts the signed message.
    static let signatureLabel = Array("aeschat/2 name claim".utf8)

    /// The name the key claims.
    public let name: String
    private let key: Ed25519PrivateKey

    /// Derives the claim key for `name` on the relay whose key is `relayKey`.
    /// - Parameters:
    ///   - secret: the client's 32-byte secret seed.
    ///   - relayKey: the relay's public key (the one pinned when the session started).
    ///   - name: the member name.
    /// - Throws: ``CryptoError`` when libgcrypt fails.
    public init(secret: SecretBytes, relayKey: RelayPublicKey, name: String) throws(CryptoError) {
        var info = ByteWriter(capacity: Self.derivationLabel.count + RelayPublicKey.length + 1 + name.utf8.count)
        info.write(contentsOf: Self.derivationLabel)
        info.write(contentsOf: relayKey.bytes)
        info.writeShortString(name)
        let seed = try HKDFSHA256.deriveKey(
            inputKeyMaterial: secret, salt: [], info: info.bytes, outputByteCount: Ed25519.seedSize)
        self.name = name
        key = try Ed25519PrivateKey(seed: seed)
    }

    /// The public claim key the relay keeps for the name.
    public var publicKey: [UInt8] { key.publicKey }

    /// The claim for a connection whose handshake hash is `handshakeHash`.
    /// - Throws: ``CryptoError`` when libgcrypt fails to sign.
    public func claim(handshakeHash: [UInt8]) throws(CryptoError) -> NameClaim {
        NameClaim(
            key: key.publicKey,
            signature: try key.signature(for: Self.signedMessage(handshakeHash: handshakeHash, name: name)))
    }

    /// What a claim signs: `"aeschat/2 name claim" ‖ handshake hash (32) ‖ str8(name)`.
    public static func signedMessage(handshakeHash: [UInt8], name: String) -> [UInt8] {
        var message = ByteWriter(capacity: signatureLabel.count + handshakeHash.count + 1 + name.utf8.count)
        message.write(contentsOf: signatureLabel)
        message.write(contentsOf: handshakeHash)
        message.writeShortString(name)
        return message.bytes
    }

    /// Whether `claim` proves its key for `name` on the connection whose handshake hash is `handshakeHash`
    /// (strict RFC 8032 verification, ``Ed25519/isValidSignature(_:for:publicKey:)``).
    public static func verify(_ claim: NameClaim, handshakeHash: [UInt8], name: String) -> Bool {
        Ed25519.isValidSignature(
            claim.signature, for: signedMessage(handshakeHash: handshakeHash, name: name), publicKey: claim.key)
    }
}
