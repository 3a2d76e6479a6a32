import AESChatCrypto

/// A Noise `CipherState` (spec rev. 34 §5.1) for the `AESGCM` cipher: a key `k` and a message counter `n`, which
/// seals or opens one message per nonce.
///
/// The nonce is 32 zero bits followed by `n` as a 64-bit big-endian integer (§12.4). `n` starts at 0 and goes up by
/// one per successful encryption or decryption; 2^64 − 1 is reserved (§5.1), so once `n` reaches it every further
/// call throws ``LinkError/nonceExhausted`` instead of reusing a nonce. A failed decryption leaves `n` unchanged.
/// ``rekey()`` replaces `k` by the spec's default `REKEY(k)` (§4.2, §11.3) and keeps `n`.
///
/// A state always has a key: where the spec's `CipherState` may be empty (during a handshake, before the first
/// `MixKey`), ``NoiseSymmetricState`` holds no cipher state at all.
///
/// Ownership: owns only `k` (32 bytes, in ``SecretBytes``, wiped when released) and `n`: no cipher handle, so an
/// idle connection costs its keys and counters and nothing more. Each operation borrows the current thread's
/// ``AESGCMWorkspace`` and sets `k` in it (skipped when the workspace's handle already has it). One state serves one
/// direction of one connection; copying the reference shares the counter, so it never leads to a reused nonce.
///
/// Threading: not thread-safe; used by one thread at a time (a state made by a handshake on a worker thread may be
/// handed to the event loop's thread, and then used only there). Deliberately not `Sendable`.
public final class NoiseCipherState {
    /// The largest Noise message, in bytes (spec §3): a transport message's ciphertext and tag together.
    public static let maximumMessageLength = 65_535
    /// The length of the AES-GCM tag that ends every ciphertext.
    public static let tagLength = AESGCM.tagSize
    /// The largest plaintext one message can carry: 65,519 bytes.
    public static let maximumPlaintextLength = maximumMessageLength - tagLength
    /// The length of a key, in bytes.
    static let keyLength = 32
    /// The nonce the spec reserves (§5.1): never used to encrypt a message; ``rekey()`` uses it.
    static let reservedNonce = UInt64.max

    /// The key `k`.
    private var key: SecretBytes
    /// The counter `n`: the nonce the next message uses.
    public private(set) var nonce: UInt64 = 0

    /// `InitializeKey(key)`: a state with key `key` and `n` = 0.
    ///
    /// - Parameter key: The 32-byte key.
    /// - Throws: ``LinkError/crypto(_:)`` if the key is not 32 bytes or libgcrypt fails.
    init(key: SecretBytes) throws(LinkError) {
        guard key.count == Self.keyLength else {
            throw .crypto(.invalidKeySize(expected: Self.keyLength, actual: key.count))
        }
        self.key = key
    }

    /// The current thread's cipher handle with `k` set, for one operation.
    private func cipher() throws(LinkError) -> AESGCM {
        do {
            return try AESGCMWorkspace.current().cipher(keyedWith: key)
        } catch {
            throw .crypto(error)
        }
    }

    /// `SetNonce(n)`: sets the counter, for test vectors at chosen counters.
    func setNonce(_ value: UInt64) {
        nonce = value
    }

    /// The 12-byte AESGCM nonce for counter `value`: 4 zero bytes, then `value` big-endian (spec §12.4).
    static func nonceBytes(_ value: UInt64) -> [UInt8] {
        [0, 0, 0, 0] + (0..<8).map { UInt8(truncatingIfNeeded: value >> (56 - 8 * $0)) }
    }

    /// `EncryptWithAd(ad, plaintext)`: seals `plaintext` under the next nonce and moves the counter on.
    ///
    /// - Parameters:
    ///   - plaintext: At most ``maximumPlaintextLength`` bytes; may be empty.
    ///   - associatedData: Authenticated but not encrypted; empty for transport messages.
    /// - Returns: The ciphertext followed by the 16-byte tag.
    /// - Throws: ``LinkError/messageTooLong(actual:maximum:)`` if the result would exceed 65,535 bytes;
    ///   ``LinkError/nonceExhausted`` once the counter has reached 2^64 − 1; ``LinkError/crypto(_:)`` if libgcrypt
    ///   fails.
    public func encrypt(_ plaintext: [UInt8], associatedData: [UInt8] = []) throws(LinkError) -> [UInt8] {
        guard plaintext.count <= Self.maximumPlaintextLength else {
            throw .messageTooLong(actual: plaintext.count + Self.tagLength, maximum: Self.maximumMessageLength)
        }
        guard nonce != Self.reservedNonce else { throw .nonceExhausted }
        let sealed: [UInt8]
        let cipher = try cipher()
        do {
            sealed = try cipher.seal(plaintext, nonce: Self.nonceBytes(nonce), authenticating: associatedData)
        } catch {
            throw .crypto(error)
        }
        nonce += 1
        return sealed
    }

    /// `DecryptWithAd(ad, ciphertext)`: checks the tag under the next nonce and, only if it is authentic, returns
    /// the plaintext and moves the counter on. On failure the counter stays where it was.
    ///
    /// - Parameters:
    ///   - ciphertext: The ciphertext followed by its 16-byte tag, 16 to 65,535 bytes.
    ///   - associatedData: The associated data it was sealed with.
    /// - Returns: The plaintext.
    /// - Throws: ``LinkError/ciphertextTooShort(actual:)`` or ``LinkError/messageTooLong(actual:maximum:)`` for a
    ///   length outside 16 to 65,535; ``LinkError/nonceExhausted`` once the counter has reached 2^64 − 1;
    ///   ``LinkError/authenticationFailed`` if the tag does not match; ``LinkError/crypto(_:)`` if libgcrypt fails.
    public func decrypt(_ ciphertext: [UInt8], associatedData: [UInt8] = []) throws(LinkError) -> [UInt8] {
        guard ciphertext.count >= Self.tagLength else { throw .ciphertextTooShort(actual: ciphertext.count) }
        guard ciphertext.count <= Self.maximumMessageLength else {
            throw .messageTooLong(actual: ciphertext.count, maximum: Self.maximumMessageLength)
        }
        guard nonce != Self.reservedNonce else { throw .nonceExhausted }
        let plaintext: [UInt8]
        let cipher = try cipher()
        do {
            plaintext = try cipher.open(ciphertext, nonce: Self.nonceBytes(nonce), authenticating: associatedData)
        } catch .authenticationFailed {
            throw .authenticationFailed
        } catch {
            throw .crypto(error)
        }
        nonce += 1
        return plaintext
    }

    /// ``encrypt(_:associatedData:)`` in place, with an empty associated data: seals the first `buffer.count - 16`
    /// bytes of `buffer` and writes the tag into its last 16 bytes, then moves the counter on.
    ///
    /// - Parameter buffer: The plaintext followed by 16 bytes of room for the tag, 16 to 65,535 bytes in all.
    /// - Throws: ``LinkError/ciphertextTooShort(actual:)`` or ``LinkError/messageTooLong(actual:maximum:)`` for a
    ///   length outside 16 to 65,535; ``LinkError/nonceExhausted`` once the counter has reached 2^64 − 1;
    ///   ``LinkError/crypto(_:)`` if libgcrypt fails.
    public func encryptInPlace(_ buffer: UnsafeMutableRawBufferPointer) throws(LinkError) {
        try checkMessageLength(buffer.count)
        let cipher = try cipher()
        do {
            try cipher.sealInPlace(buffer, nonce: Self.nonceBytes(nonce), authenticating: [])
        } catch {
            throw .crypto(error)
        }
        nonce += 1
    }

    /// ``decrypt(_:associatedData:)`` in place, with an empty associated data: checks the tag in the last 16 bytes
    /// of `buffer` and, only if it is authentic, leaves the plaintext in its first `buffer.count - 16` bytes and
    /// moves the counter on. On failure those bytes are zeroed (no unauthenticated plaintext is left) and the
    /// counter stays where it was.
    ///
    /// - Parameter buffer: The ciphertext followed by its 16-byte tag, 16 to 65,535 bytes.
    /// - Returns: The length of the plaintext, `buffer.count - 16`.
    /// - Throws: As ``decrypt(_:associatedData:)``.
    @discardableResult
    public func decryptInPlace(_ buffer: UnsafeMutableRawBufferPointer) throws(LinkError) -> Int {
        try checkMessageLength(buffer.count)
        let cipher = try cipher()
        do {
            try cipher.openInPlace(buffer, nonce: Self.nonceBytes(nonce), authenticating: [])
        } catch .authenticationFailed {
            throw .authenticationFailed
        } catch {
            throw .crypto(error)
        }
        nonce += 1
        return buffer.count - Self.tagLength
    }

    /// The checks the in-place calls share: a sealed length of 16 to 65,535 bytes and a nonce left to use.
    private func checkMessageLength(_ count: Int) throws(LinkError) {
        guard count >= Self.tagLength else { throw .ciphertextTooShort(actual: count) }
        guard count <= Self.maximumMessageLength else {
            throw .messageTooLong(actual: count, maximum: Self.maximumMessageLength)
        }
        guard nonce != Self.reservedNonce else { throw .nonceExhausted }
    }

    /// `Rekey()`: replaces the key by `REKEY(k)`, the first 32 bytes of `ENCRYPT(k, 2^64 − 1, empty, 32 zero
    /// bytes)` (spec §4.2, the default for AESGCM); the counter is not reset. Both sides must rekey after the
    /// same message for the stream to go on.
    ///
    /// - Throws: ``LinkError/crypto(_:)`` if libgcrypt fails; the state then keeps its old key.
    public func rekey() throws(LinkError) {
        let zeros = [UInt8](repeating: 0, count: Self.keyLength)
        let cipher = try cipher()
        do {
            var sealed = try cipher.seal(zeros, nonce: Self.nonceBytes(Self.reservedNonce), authenticating: [])
            defer { secureZero(&sealed) }
            var newKey = Array(sealed[0..<Self.keyLength])
            defer { secureZero(&newKey) }
            key = SecretBytes(newKey)
        } catch {
            throw .crypto(error)
        }
    }
}

@available(*, unavailable, message: "A NoiseCipherState belongs to one connection's thread.")
extension NoiseCipherState: Sendable {}
