import AESChatCrypto

/// A Noise `SymmetricState` (spec rev. 34 §5.2) for SHA-256: the chaining key `ck`, the handshake hash `h` and the
/// cipher state that `MixKey` gives, which together absorb everything a handshake sends and computes.
///
/// `HKDF(ck, ikm, 2)` is Noise's (§4.3): `temp = HMAC(ck, ikm)`, `out1 = HMAC(temp, 0x01)`,
/// `out2 = HMAC(temp, out1 ‖ 0x02)`. That is exactly RFC 5869 HKDF with salt `ck`, input `ikm`, empty info and 64
/// bytes of output, which is how it is computed here (``HKDFSHA256``).
///
/// Ownership: `ck` lives in ``SecretBytes``; it is copied into an array only for the moment an HKDF call needs it
/// as a salt, and that array is wiped. `h` is not secret (it is a hash of public values and ciphertexts).
///
/// Threading: not thread-safe; confined to the thread running the handshake. Deliberately not `Sendable`.
final class NoiseSymmetricState {
    /// The hash output length, HASHLEN.
    static let hashLength = SHA256.digestSize

    /// `h`: the hash of everything sent and received so far; after ``split()``, the handshake hash (§11.2).
    private(set) var handshakeHash: [UInt8]
    private var chainingKey: SecretBytes
    /// `k` and `n`; `nil` until the first ``mixKey(_:)``, where the spec's `HasKey()` is false.
    private var cipher: NoiseCipherState?

    /// `InitializeSymmetric(protocol_name)`: `h` is the name padded with zeros to 32 bytes when it fits, its
    /// SHA-256 otherwise; `ck = h`; no key.
    ///
    /// - Parameter protocolName: The full protocol name, for example `Noise_NK_25519_AESGCM_SHA256`.
    init(protocolName: String) {
        let name = Array(protocolName.utf8)
        if name.count <= Self.hashLength {
            handshakeHash = name + [UInt8](repeating: 0, count: Self.hashLength - name.count)
        } else {
            handshakeHash = SHA256.hash(name)
        }
        chainingKey = SecretBytes(handshakeHash)
    }

    /// Whether a key has been mixed in (`HasKey()`), so that ``encryptAndHash(_:)`` encrypts.
    var hasKey: Bool { cipher != nil }

    /// `MixHash(data)`: `h = SHA-256(h ‖ data)`.
    func mixHash(_ data: [UInt8]) {
        handshakeHash = SHA256.hash(handshakeHash + data)
    }

    /// `MixKey(input_key_material)`: `ck, temp_k = HKDF(ck, ikm, 2)`, then a new cipher state with `temp_k` and
    /// `n` = 0.
    ///
    /// - Parameter inputKeyMaterial: A Diffie-Hellman output.
    /// - Throws: ``LinkError/crypto(_:)`` if libgcrypt fails.
    func mixKey(_ inputKeyMaterial: SecretBytes) throws(LinkError) {
        let (nextChainingKey, key) = try hkdf(inputKeyMaterial)
        chainingKey = nextChainingKey
        cipher = try NoiseCipherState(key: key)
    }

    /// `EncryptAndHash(plaintext)`: encrypts with `h` as associated data once a key is set (returns the plaintext
    /// before that), then mixes the result into `h`.
    ///
    /// - Throws: ``LinkError`` from ``NoiseCipherState/encrypt(_:associatedData:)``.
    func encryptAndHash(_ plaintext: [UInt8]) throws(LinkError) -> [UInt8] {
        let ciphertext = try cipher?.encrypt(plaintext, associatedData: handshakeHash) ?? plaintext
        mixHash(ciphertext)
        return ciphertext
    }

    /// `DecryptAndHash(ciphertext)`: decrypts with `h` as associated data once a key is set (returns the input
    /// before that), then mixes the ciphertext into `h`. Nothing is mixed in when authentication fails.
    ///
    /// - Throws: ``LinkError`` from ``NoiseCipherState/decrypt(_:associatedData:)``.
    func decryptAndHash(_ ciphertext: [UInt8]) throws(LinkError) -> [UInt8] {
        let plaintext = try cipher?.decrypt(ciphertext, associatedData: handshakeHash) ?? ciphertext
        mixHash(ciphertext)
        return plaintext
    }

    /// `Split()`: `temp_k1, temp_k2 = HKDF(ck, empty, 2)`, and a cipher state for each. The symmetric state must
    /// not be used afterwards, except for ``handshakeHash``.
    ///
    /// - Returns: The initiator-to-responder state, then the responder-to-initiator state.
    /// - Throws: ``LinkError/crypto(_:)`` if libgcrypt fails.
    func split() throws(LinkError) -> (initiatorToResponder: NoiseCipherState, responderToInitiator: NoiseCipherState) {
        let (first, second) = try hkdf(SecretBytes([]))
        cipher = nil
        return (try NoiseCipherState(key: first), try NoiseCipherState(key: second))
    }

    /// Noise's `HKDF(ck, ikm, 2)`, as RFC 5869 HKDF-SHA-256 with salt `ck` and empty info.
    private func hkdf(_ inputKeyMaterial: SecretBytes) throws(LinkError) -> (SecretBytes, SecretBytes) {
        var salt = chainingKey.withUnsafeBytes { Array($0) }
        defer { secureZero(&salt) }
        let output: SecretBytes
        do {
            output = try HKDFSHA256.deriveKey(
                inputKeyMaterial: inputKeyMaterial, salt: salt, info: [], outputByteCount: 2 * Self.hashLength)
        } catch {
            throw .crypto(error)
        }
        return output.withUnsafeBytes { bytes in
            (Self.secret(bytes[0..<Self.hashLength]), Self.secret(bytes[Self.hashLength...]))
        }
    }

    /// Copies `bytes` into new ``SecretBytes``, wiping the intermediate array.
    private static func secret(_ bytes: Slice<UnsafeRawBufferPointer>) -> SecretBytes {
        var copy = Array(bytes)
        defer { secureZero(&copy) }
        return SecretBytes(copy)
    }
}

@available(*, unavailable, message: "A NoiseSymmetricState belongs to one handshake's thread.")
extension NoiseSymmetricState: Sendable {}
