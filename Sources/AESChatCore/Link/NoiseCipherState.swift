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

    /// Calls `body` with the 12-byte nonce for counter `value` in stack memory (no allocation per message).
    private static func withNonce(
        _ value: UInt64, _ body: (UnsafeRawBufferPointer) throws(CryptoError) -> Void
    ) throws(CryptoError) {
        // Three 32-bit words, no padding: 0, then `value` big-endian.
        var words = (
            UInt32(0), UInt32(truncatingIfNeeded: value >> 32).bigEndian, UInt32(truncatingIfNeeded: value).bigEndian
        )
        var failure: CryptoError?
        withUnsafeBytes(of: &words) { bytes in
            do throws(CryptoError) {
                try body(bytes)
            } catch {
                failure = error
            }
        }
        if let failure { throw failure }
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
        try Self.checkMessageLength(buffer.count, nonce: nonce)
        try Self.seal(buffer, nonce: nonce, with: try cipher())
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
        try Self.checkMessageLength(buffer.count, nonce: nonce)
        try Self.open(buffer, nonce: nonce, with: try cipher())
        nonce += 1
        return buffer.count - Self.tagLength
    }

    /// ``encryptInPlace(_:)`` for a plaintext in pieces: seals the concatenation of `pieces` into `buffer` (its
    /// ciphertext, then the 16-byte tag), reading each piece once, and moves the counter on.
    ///
    /// - Parameters:
    ///   - pieces: The plaintext; each piece is either exactly where its ciphertext goes in `buffer` or outside it.
    ///   - buffer: The pieces' total length plus 16 bytes, 16 to 65,535 bytes in all.
    /// - Throws: As ``encryptInPlace(_:)``.
    public func encrypt(
        gathering pieces: UnsafeBufferPointer<UnsafeRawBufferPointer>, into buffer: UnsafeMutableRawBufferPointer
    ) throws(LinkError) {
        try Self.checkMessageLength(buffer.count, nonce: nonce)
        try Self.seal(gathering: pieces, into: buffer, nonce: nonce, with: try cipher())
        nonce += 1
    }

    /// ``decryptInPlace(_:)`` that puts the first `destination.count` bytes of the plaintext into `destination`
    /// (the rest stays in place, after them: at `buffer[destination.count ..< buffer.count - 16]`). On failure
    /// `destination` and the ciphertext bytes are zeroed and the counter stays where it was.
    ///
    /// - Parameters:
    ///   - buffer: The ciphertext followed by its 16-byte tag, 16 to 65,535 bytes.
    ///   - destination: At most `buffer.count - 16` bytes, outside `buffer`.
    /// - Returns: The length of the whole plaintext, `buffer.count - 16`.
    /// - Throws: As ``decrypt(_:associatedData:)``.
    @discardableResult
    public func decryptInPlace(
        _ buffer: UnsafeMutableRawBufferPointer, divertingPrefixTo destination: UnsafeMutableRawBufferPointer
    ) throws(LinkError) -> Int {
        try Self.checkMessageLength(buffer.count, nonce: nonce)
        try Self.open(buffer, divertingPrefixTo: destination, nonce: nonce, with: try cipher())
        nonce += 1
        return buffer.count - Self.tagLength
    }

    /// The checks the in-place calls share: a sealed length of 16 to 65,535 bytes and a nonce left to use.
    static func checkMessageLength(_ count: Int, nonce: UInt64) throws(LinkError) {
        guard count >= tagLength else { throw .ciphertextTooShort(actual: count) }
        guard count <= maximumMessageLength else {
            throw .messageTooLong(actual: count, maximum: maximumMessageLength)
        }
        guard nonce != reservedNonce else { throw .nonceExhausted }
    }

    /// Seals `buffer` in place under `nonce` with `cipher` (keyed by the caller), after ``checkMessageLength``.
    static func seal(_ buffer: UnsafeMutableRawBufferPointer, nonce: UInt64, with cipher: AESGCM) throws(LinkError) {
        do {
            try withNonce(nonce) { (bytes) throws(CryptoError) in try cipher.sealInPlace(buffer, nonce: bytes) }
        } catch {
            throw .crypto(error)
        }
    }

    /// Seals the concatenation of `pieces` into `buffer` under `nonce` with `cipher` (keyed by the caller), after
    /// ``checkMessageLength``.
    static func seal(
        gathering pieces: UnsafeBufferPointer<UnsafeRawBufferPointer>, into buffer: UnsafeMutableRawBufferPointer,
        nonce: UInt64, with cipher: AESGCM
    ) throws(LinkError) {
        do {
            try withNonce(nonce) { (bytes) throws(CryptoError) in
                try cipher.seal(gathering: pieces, nonce: bytes, into: buffer)
            }
        } catch {
            throw .crypto(error)
        }
    }

    /// Opens `buffer` under `nonce` with `cipher` (keyed by the caller), the plaintext's first bytes into
    /// `destination`, the rest in place, after ``checkMessageLength``; on failure both are zeroed.
    static func open(
        _ buffer: UnsafeMutableRawBufferPointer, divertingPrefixTo destination: UnsafeMutableRawBufferPointer,
        nonce: UInt64, with cipher: AESGCM
    ) throws(LinkError) {
        do {
            try withNonce(nonce) { (bytes) throws(CryptoError) in
                try cipher.openInPlace(buffer, nonce: bytes, divertingPrefixTo: destination)
            }
        } catch .authenticationFailed {
            throw .authenticationFailed
        } catch {
            throw .crypto(error)
        }
    }

    /// Opens `buffer` in place under `nonce` with `cipher` (keyed by the caller), after ``checkMessageLength``; on
    /// failure its bytes are zeroed.
    static func open(_ buffer: UnsafeMutableRawBufferPointer, nonce: UInt64, with cipher: AESGCM) throws(LinkError) {
        do {
            try withNonce(nonce) { (bytes) throws(CryptoError) in try cipher.openInPlace(buffer, nonce: bytes) }
        } catch .authenticationFailed {
            throw .authenticationFailed
        } catch {
            throw .crypto(error)
        }
    }

    /// Computes `REKEY(k)` with `cipher` (keyed with `k` by the caller) and lends the new 32-byte key to `install`,
    /// in memory wiped afterwards.
    static func rekey(with cipher: AESGCM, install: (UnsafeRawBufferPointer) -> Void) throws(LinkError) {
        let zeros = [UInt8](repeating: 0, count: keyLength)
        do {
            var sealed = try cipher.seal(zeros, nonce: nonceBytes(reservedNonce), authenticating: [])
            defer { secureZero(&sealed) }
            sealed.withUnsafeBytes { install(UnsafeRawBufferPointer(rebasing: $0[0..<keyLength])) }
        } catch {
            throw .crypto(error)
        }
    }

    /// `Rekey()`: replaces the key by `REKEY(k)`, the first 32 bytes of `ENCRYPT(k, 2^64 − 1, empty, 32 zero
    /// bytes)` (spec §4.2, the default for AESGCM); the counter is not reset. Both sides must rekey after the
    /// same message for the stream to go on.
    ///
    /// - Throws: ``LinkError/crypto(_:)`` if libgcrypt fails; the state then keeps its old key.
    public func rekey() throws(LinkError) {
        var newKey: SecretBytes?
        try Self.rekey(with: try cipher()) { bytes in
            var copy = Array(bytes)
            defer { secureZero(&copy) }
            newKey = SecretBytes(copy)
        }
        if let newKey { key = newKey }
    }

    /// Hands this state's key and counter over to slot `slot` of `keys` (a connection's record layer, which keeps
    /// both directions' keys in one allocation) and retires this state: its key is dropped and its counter set to
    /// the reserved nonce, so it can never seal or open again (no nonce is used twice).
    ///
    /// - Returns: The counter `n` the state had, for the new owner of the key.
    func handOver(into keys: SecretKeySlots, slot: Int) -> UInt64 {
        let handedNonce = nonce
        key.withUnsafeBytes { keys.replaceKey(inSlot: slot, with: $0) }
        key = SecretBytes([])
        nonce = Self.reservedNonce
        return handedNonce
    }
}

/// What a record sealer or opener needs of one direction's cipher state: a ``NoiseCipherState``, or a
/// ``LinkSlotCipher`` whose key lives in its record layer's ``SecretKeySlots``.
protocol LinkCipher {
    /// As ``NoiseCipherState/encryptInPlace(_:)``.
    mutating func encryptInPlace(_ buffer: UnsafeMutableRawBufferPointer) throws(LinkError)
    /// As ``NoiseCipherState/decryptInPlace(_:)``.
    mutating func decryptInPlace(_ buffer: UnsafeMutableRawBufferPointer) throws(LinkError) -> Int
    /// As ``NoiseCipherState/encrypt(gathering:into:)``.
    mutating func encrypt(
        gathering pieces: UnsafeBufferPointer<UnsafeRawBufferPointer>, into buffer: UnsafeMutableRawBufferPointer
    ) throws(LinkError)
    /// As ``NoiseCipherState/decryptInPlace(_:divertingPrefixTo:)``.
    mutating func decryptInPlace(
        _ buffer: UnsafeMutableRawBufferPointer, divertingPrefixTo destination: UnsafeMutableRawBufferPointer
    ) throws(LinkError) -> Int
    /// As ``NoiseCipherState/rekey()``.
    mutating func rekey() throws(LinkError)
}

extension NoiseCipherState: LinkCipher {}

/// One direction's cipher state inside a ``LinkRecordLayer``: the counter `n` here, the key `k` in a slot of the
/// layer's ``SecretKeySlots``; it behaves as the ``NoiseCipherState`` it was handed over from
/// (``NoiseCipherState/handOver(into:slot:)``).
///
/// Ownership: shares the slots with the other direction; owns its slot's key (nothing else replaces or uses it)
/// and, with ``LinkCipherHandles/owned``, a keyed cipher handle of its own (made at the first use, made again after a
/// rekey); otherwise it borrows its thread's (``AESGCMWorkspace``).
struct LinkSlotCipher: LinkCipher {
    /// A direction's own handle (``LinkCipherHandles/owned``): made at the first use, dropped at a rekey.
    private final class OwnHandle {
        let slot: Int
        var cipher: AESGCM?
        init(slot: Int) { self.slot = slot }
    }

    /// Where the handle comes from, with the key's slot: one word, as the slot alone was, so that a relay's idle
    /// layer does not grow (LinkMemoryTests).
    private enum Handle {
        case borrowed(slot: UInt8)
        case owned(OwnHandle)
    }

    private let keys: SecretKeySlots
    /// The counter `n`: the nonce the next message uses.
    private(set) var nonce: UInt64
    private let handle: Handle

    init(keys: SecretKeySlots, slot: Int, nonce: UInt64, handles: LinkCipherHandles = .borrowed) {
        precondition(slot >= 0 && slot < keys.slotCount, "slot \(slot) of \(keys.slotCount)")
        self.keys = keys
        self.nonce = nonce
        handle = handles == .owned ? .owned(OwnHandle(slot: slot)) : .borrowed(slot: UInt8(slot))
    }

    private var slot: Int {
        switch handle {
        case .borrowed(let slot): Int(slot)
        case .owned(let own): own.slot
        }
    }

    /// A cipher handle with this direction's key set, for one operation: its own, or the current thread's.
    private func cipher() throws(LinkError) -> AESGCM {
        do {
            switch handle {
            case .borrowed(let slot):
                return try AESGCMWorkspace.current().cipher(keyedWith: keys, slot: Int(slot))
            case .owned(let own):
                if let cipher = own.cipher { return cipher }
                let made = try AESGCM(keyIn: keys, slot: own.slot)
                own.cipher = made
                return made
            }
        } catch {
            throw .crypto(error)
        }
    }

    mutating func encryptInPlace(_ buffer: UnsafeMutableRawBufferPointer) throws(LinkError) {
        try NoiseCipherState.checkMessageLength(buffer.count, nonce: nonce)
        try NoiseCipherState.seal(buffer, nonce: nonce, with: try cipher())
        nonce += 1
    }

    mutating func decryptInPlace(_ buffer: UnsafeMutableRawBufferPointer) throws(LinkError) -> Int {
        try NoiseCipherState.checkMessageLength(buffer.count, nonce: nonce)
        try NoiseCipherState.open(buffer, nonce: nonce, with: try cipher())
        nonce += 1
        return buffer.count - NoiseCipherState.tagLength
    }

    mutating func encrypt(
        gathering pieces: UnsafeBufferPointer<UnsafeRawBufferPointer>, into buffer: UnsafeMutableRawBufferPointer
    ) throws(LinkError) {
        try NoiseCipherState.checkMessageLength(buffer.count, nonce: nonce)
        try NoiseCipherState.seal(gathering: pieces, into: buffer, nonce: nonce, with: try cipher())
        nonce += 1
    }

    mutating func decryptInPlace(
        _ buffer: UnsafeMutableRawBufferPointer, divertingPrefixTo destination: UnsafeMutableRawBufferPointer
    ) throws(LinkError) -> Int {
        try NoiseCipherState.checkMessageLength(buffer.count, nonce: nonce)
        try NoiseCipherState.open(buffer, divertingPrefixTo: destination, nonce: nonce, with: try cipher())
        nonce += 1
        return buffer.count - NoiseCipherState.tagLength
    }

    mutating func rekey() throws(LinkError) {
        let (keys, slot) = (self.keys, self.slot)
        try NoiseCipherState.rekey(with: try cipher()) { keys.replaceKey(inSlot: slot, with: $0) }
        // An own handle has the old key; the next operation makes one with the new (closing this one wipes it).
        if case .owned(let own) = handle { own.cipher = nil }
    }
}

/// Where a ``LinkRecordLayer`` gets its cipher handles (about 2 KB each in libgcrypt, against 32 bytes of key).
public enum LinkCipherHandles: Sendable, Equatable {
    /// Each seal or open borrows its thread's handle and sets the key (about 120–180 ns): for a relay, whose
    /// idle connections must stay small.
    case borrowed
    /// Each direction keeps a keyed handle of its own: for a client's one connection, which sends and receives
    /// all the time. (Many connections on one thread do better borrowing: their handles would not stay in cache.)
    case owned
}

@available(*, unavailable, message: "A NoiseCipherState belongs to one connection's thread.")
extension NoiseCipherState: Sendable {}
