internal import CGcrypt
internal import CGcryptShims

/// AES in Galois/Counter Mode (NIST SP 800-38D) with a 12-byte nonce and a 16-byte tag appended to the ciphertext.
///
/// Ownership: owns one libgcrypt cipher handle with the key set, opened in `init` and closed in `deinit`
/// (`gcry_cipher_close` wipes the key schedule). The handle is reused for every message: `gcry_cipher_setiv`
/// resets it before each one. ``setKey(_:)`` replaces the key (``AESGCMWorkspace`` keys one handle per thread for
/// many connections).
///
/// Threading: not thread-safe; one owner at a time (for example one per connection direction). It is deliberately
/// not `Sendable`.
///
/// Never seal two messages with the same nonce under one key: GCM then leaks the XOR of the plaintexts and lets an
/// attacker forge tags.
public final class AESGCM {
    /// The nonce size in bytes.
    public static let nonceSize = 12
    /// The tag size in bytes; ``open(_:nonce:authenticating:)`` always expects exactly this many.
    public static let tagSize = 16

    private let handle: gcry_cipher_hd_t

    private init(handle: gcry_cipher_hd_t) {
        self.handle = handle
    }

    /// Creates a cipher for `key`: AES-128, AES-192 or AES-256 by the key's length.
    ///
    /// The corresponding libgcrypt call is `gcry_cipher_setkey` (after `gcry_cipher_open` with
    /// `GCRY_CIPHER_MODE_GCM`).
    ///
    /// - Parameter key: 16, 24 or 32 bytes.
    /// - Throws: ``CryptoError/invalidKeySize(expected:actual:)`` (with `expected` 32) for any other length;
    ///   ``CryptoError/library(operation:code:message:)`` if libgcrypt fails.
    public convenience init(key: [UInt8]) throws(CryptoError) {
        let opened = key.withUnsafeBytes { Self.openHandle(key: $0) }
        self.init(handle: try opened.get())
    }

    /// Creates a cipher for a secret key without copying it out of its zero-on-release storage.
    ///
    /// The corresponding libgcrypt call is `gcry_cipher_setkey` (after `gcry_cipher_open` with
    /// `GCRY_CIPHER_MODE_GCM`).
    ///
    /// - Parameter key: 16, 24 or 32 bytes.
    /// - Throws: ``CryptoError/invalidKeySize(expected:actual:)`` (with `expected` 32) for any other length;
    ///   ``CryptoError/library(operation:code:message:)`` if libgcrypt fails.
    public convenience init(key: SecretBytes) throws(CryptoError) {
        let opened = key.withUnsafeBytes { Self.openHandle(key: $0) }
        self.init(handle: try opened.get())
    }

    /// Creates a cipher for keys of `keyLength` bytes with no key set yet, for ``AESGCMWorkspace``: every use
    /// must follow a ``setKey(_:)``.
    ///
    /// - Parameter keyLength: 16, 24 or 32.
    /// - Throws: ``CryptoError/invalidKeySize(expected:actual:)`` for another length;
    ///   ``CryptoError/library(operation:code:message:)`` if libgcrypt fails.
    convenience init(unkeyedFor keyLength: Int) throws(CryptoError) {
        self.init(handle: try Self.openUnkeyedHandle(keyLength: keyLength).get())
    }

    /// Creates a cipher of its own for the key in slot `slot` of `keys`, without copying the key out of its
    /// zero-on-release storage (a connection that keeps its handle instead of borrowing ``AESGCMWorkspace``'s).
    ///
    /// - Parameters:
    ///   - keys: The keys.
    ///   - slot: The slot, from 0 to ``SecretKeySlots/slotCount`` − 1.
    /// - Throws: ``CryptoError/library(operation:code:message:)`` if libgcrypt fails.
    public convenience init(keyIn keys: SecretKeySlots, slot: Int) throws(CryptoError) {
        let opened = keys.withUnsafeBytes(ofSlot: slot) { Self.openHandle(key: $0) }
        self.init(handle: try opened.get())
    }

    deinit {
        gcry_cipher_close(handle)
    }

    /// Replaces the key: later messages are sealed and opened under `key`. The key must have the length the
    /// cipher was made for (32 bytes for a workspace's).
    ///
    /// The corresponding libgcrypt call is `gcry_cipher_setkey`.
    ///
    /// - Parameter key: The new key.
    /// - Throws: ``CryptoError/library(operation:code:message:)`` if libgcrypt refuses it (a wrong length
    ///   included); the cipher then has no usable key.
    public func setKey(_ key: SecretBytes) throws(CryptoError) {
        if let failure = key.withUnsafeBytes({ setKey(bytes: $0) }) { throw failure }
    }

    /// ``setKey(_:)`` from bytes the caller lends (a slot of ``SecretKeySlots``); returns the failure, if any.
    func setKey(bytes key: UnsafeRawBufferPointer) -> CryptoError? {
        Gcrypt.check(gcry_cipher_setkey(handle, key.baseAddress, key.count), "gcry_cipher_setkey")
    }

    private static func openHandle(key: UnsafeRawBufferPointer) -> Result<gcry_cipher_hd_t, CryptoError> {
        let opened = openUnkeyedHandle(keyLength: key.count)
        guard case .success(let handle) = opened else { return opened }
        if let failure = Gcrypt.check(gcry_cipher_setkey(handle, key.baseAddress, key.count), "gcry_cipher_setkey") {
            gcry_cipher_close(handle)
            return .failure(failure)
        }
        return .success(handle)
    }

    private static func openUnkeyedHandle(keyLength: Int) -> Result<gcry_cipher_hd_t, CryptoError> {
        let algorithm: gcry_cipher_algos
        switch keyLength {
        case 16: algorithm = GCRY_CIPHER_AES  // GCRY_CIPHER_AES128 is a macro alias of this.
        case 24: algorithm = GCRY_CIPHER_AES192
        case 32: algorithm = GCRY_CIPHER_AES256
        default: return .failure(.invalidKeySize(expected: 32, actual: keyLength))
        }
        Gcrypt.ensureInitialised()
        var opened: gcry_cipher_hd_t?
        let openError = gcry_cipher_open(
            &opened, Int32(algorithm.rawValue), Int32(GCRY_CIPHER_MODE_GCM.rawValue), 0)
        if let failure = Gcrypt.check(openError, "gcry_cipher_open") {
            return .failure(failure)
        }
        guard let handle = opened else {
            return .failure(.library(operation: "gcry_cipher_open", code: 0, message: "no handle returned"))
        }
        return .success(handle)
    }

    // MARK: - Public API (12-byte nonces)

    /// Encrypts and authenticates `plaintext`, and authenticates `aad` without encrypting it.
    ///
    /// The corresponding libgcrypt call is `gcry_cipher_encrypt` (between `gcry_cipher_setiv` plus
    /// `gcry_cipher_authenticate`, and `gcry_cipher_gettag`).
    ///
    /// - Parameters:
    ///   - plaintext: The message; may be empty.
    ///   - nonce: 12 bytes, never reused with this key.
    ///   - aad: Associated data to authenticate but send in the clear (for example a header); may be empty.
    /// - Returns: The ciphertext (as long as `plaintext`) followed by the 16-byte tag.
    /// - Throws: ``CryptoError/invalidNonceSize(expected:actual:)`` unless `nonce` is 12 bytes;
    ///   ``CryptoError/library(operation:code:message:)`` if libgcrypt fails.
    public func seal(_ plaintext: [UInt8], nonce: [UInt8], authenticating aad: [UInt8]) throws(CryptoError) -> [UInt8] {
        guard nonce.count == Self.nonceSize else {
            throw .invalidNonceSize(expected: Self.nonceSize, actual: nonce.count)
        }
        return try seal(plaintext, iv: nonce, authenticating: aad)
    }

    /// Checks the tag of a sealed message and, only if it is authentic, returns the decrypted plaintext.
    ///
    /// The plaintext is decrypted into a private buffer; if the tag does not match, that buffer is zeroed and never
    /// returned, so no unauthenticated byte escapes.
    ///
    /// The corresponding libgcrypt call is `gcry_cipher_decrypt` (between `gcry_cipher_setiv` plus
    /// `gcry_cipher_authenticate`, and `gcry_cipher_checktag`).
    ///
    /// - Parameters:
    ///   - sealed: Ciphertext followed by its 16-byte tag, as returned by ``seal(_:nonce:authenticating:)``.
    ///   - nonce: The 12-byte nonce used to seal it.
    ///   - aad: The associated data used to seal it.
    /// - Returns: The plaintext.
    /// - Throws: ``CryptoError/invalidNonceSize(expected:actual:)`` unless `nonce` is 12 bytes;
    ///   ``CryptoError/ciphertextTooShort`` if `sealed` is shorter than 16 bytes;
    ///   ``CryptoError/authenticationFailed`` if the tag does not match;
    ///   ``CryptoError/library(operation:code:message:)`` if libgcrypt fails.
    public func open(_ sealed: [UInt8], nonce: [UInt8], authenticating aad: [UInt8]) throws(CryptoError) -> [UInt8] {
        guard nonce.count == Self.nonceSize else {
            throw .invalidNonceSize(expected: Self.nonceSize, actual: nonce.count)
        }
        return try open(sealed, iv: nonce, authenticating: aad)
    }

    // MARK: - Public buffer API (no allocation, for streams)

    /// Seals `plaintext` straight into `output` (exactly `plaintext.count + 16` bytes): the
    /// ciphertext, then the tag. For bulk data, where the caller owns reusable buffers.
    ///
    /// The corresponding libgcrypt call is `gcry_cipher_encrypt` (between `gcry_cipher_setiv` plus
    /// `gcry_cipher_authenticate`, and `gcry_cipher_gettag`).
    ///
    /// - Parameters:
    ///   - plaintext: The message.
    ///   - nonce: 12 bytes, never reused with this key.
    ///   - aad: Associated data.
    ///   - output: Where the ciphertext and tag go; must be exactly `plaintext.count + tagSize` bytes.
    /// - Throws: ``CryptoError/invalidNonceSize(expected:actual:)`` unless `nonce` is 12 bytes;
    ///   ``CryptoError/library(operation:code:message:)`` if libgcrypt fails.
    public func seal(
        _ plaintext: UnsafeRawBufferPointer, nonce: [UInt8], authenticating aad: [UInt8],
        into output: UnsafeMutableRawBufferPointer
    ) throws(CryptoError) {
        try withValidated(nonce: nonce, aad: aad) { ivBytes, aadBytes in
            seal(plaintext, iv: ivBytes, aad: aadBytes, into: output)
        }
    }

    /// Checks the tag of `sealed` (ciphertext then 16-byte tag) and decrypts into `output`
    /// (exactly `sealed.count - 16` bytes). On any failure `output` is zeroed, so no
    /// unauthenticated byte is left in it.
    ///
    /// The corresponding libgcrypt call is `gcry_cipher_decrypt` (between `gcry_cipher_setiv` plus
    /// `gcry_cipher_authenticate`, and `gcry_cipher_checktag`).
    ///
    /// - Parameters:
    ///   - sealed: Ciphertext followed by its tag.
    ///   - nonce: The 12-byte nonce.
    ///   - aad: The associated data.
    ///   - output: Receives the plaintext; must be exactly `sealed.count - tagSize` bytes.
    /// - Throws: ``CryptoError/ciphertextTooShort``, ``CryptoError/invalidNonceSize(expected:actual:)``,
    ///   ``CryptoError/authenticationFailed`` or ``CryptoError/library(operation:code:message:)``.
    public func open(
        _ sealed: UnsafeRawBufferPointer, nonce: [UInt8], authenticating aad: [UInt8],
        into output: UnsafeMutableRawBufferPointer
    ) throws(CryptoError) {
        try withValidated(nonce: nonce, aad: aad, sealedCount: sealed.count) { ivBytes, aadBytes in
            let count = sealed.count - Self.tagSize
            return open(
                ciphertext: UnsafeRawBufferPointer(rebasing: sealed[0..<count]),
                tag: UnsafeRawBufferPointer(rebasing: sealed[count...]), iv: ivBytes, aad: aadBytes, into: output)
        }
    }

    /// Seals the first `buffer.count - 16` bytes of `buffer` in place: they become the ciphertext,
    /// and the tag goes into the last 16 bytes. For bulk data read straight into the buffer it is
    /// sent from, so that nothing is copied.
    ///
    /// The corresponding libgcrypt call is `gcry_cipher_encrypt` with the same buffer as input and output
    /// (what libgcrypt itself does when given no input buffer),
    /// between `gcry_cipher_setiv` plus `gcry_cipher_authenticate`, and `gcry_cipher_gettag`.
    ///
    /// - Parameters:
    ///   - buffer: The plaintext followed by 16 bytes of room for the tag.
    ///   - nonce: 12 bytes, never reused with this key.
    ///   - aad: Associated data.
    /// - Throws: ``CryptoError/ciphertextTooShort`` if `buffer` has no room for the tag;
    ///   ``CryptoError/invalidNonceSize(expected:actual:)`` unless `nonce` is 12 bytes;
    ///   ``CryptoError/library(operation:code:message:)`` if libgcrypt fails.
    public func sealInPlace(
        _ buffer: UnsafeMutableRawBufferPointer, nonce: [UInt8], authenticating aad: [UInt8]
    ) throws(CryptoError) {
        try withValidated(nonce: nonce, aad: aad, sealedCount: buffer.count) { ivBytes, aadBytes in
            let plaintext = UnsafeRawBufferPointer(rebasing: buffer[0..<(buffer.count - Self.tagSize)])
            return seal(plaintext, iv: ivBytes, aad: aadBytes, into: buffer)
        }
    }

    /// Checks the tag of `buffer` (ciphertext then 16-byte tag) and decrypts the ciphertext in
    /// place, so that the first `buffer.count - 16` bytes are the plaintext. On any failure those
    /// bytes are zeroed, so no unauthenticated plaintext is left in the buffer.
    ///
    /// The corresponding libgcrypt call is `gcry_cipher_decrypt` with the same buffer as input and output
    /// (what libgcrypt itself does when given no input buffer),
    /// between `gcry_cipher_setiv` plus `gcry_cipher_authenticate`, and `gcry_cipher_checktag`.
    ///
    /// - Parameters:
    ///   - buffer: The ciphertext followed by its tag.
    ///   - nonce: The 12-byte nonce.
    ///   - aad: The associated data.
    /// - Throws: ``CryptoError/ciphertextTooShort``, ``CryptoError/invalidNonceSize(expected:actual:)``,
    ///   ``CryptoError/authenticationFailed`` or ``CryptoError/library(operation:code:message:)``.
    public func openInPlace(
        _ buffer: UnsafeMutableRawBufferPointer, nonce: [UInt8], authenticating aad: [UInt8]
    ) throws(CryptoError) {
        try withValidated(nonce: nonce, aad: aad, sealedCount: buffer.count) { ivBytes, aadBytes in
            let count = buffer.count - Self.tagSize
            // Decrypting overwrites only the ciphertext, never the tag after it; a failure zeroes it.
            return open(
                ciphertext: UnsafeRawBufferPointer(rebasing: buffer[0..<count]),
                tag: UnsafeRawBufferPointer(rebasing: buffer[count...]), iv: ivBytes, aad: aadBytes,
                into: UnsafeMutableRawBufferPointer(rebasing: buffer[0..<count]))
        }
    }

    /// ``sealInPlace(_:nonce:authenticating:)`` with no associated data and the nonce in borrowed memory, so that a
    /// caller that makes a nonce per message (a counter) allocates nothing.
    ///
    /// - Parameters:
    ///   - buffer: The plaintext followed by 16 bytes of room for the tag.
    ///   - nonce: 12 bytes, never reused with this key.
    /// - Throws: As ``sealInPlace(_:nonce:authenticating:)``.
    public func sealInPlace(_ buffer: UnsafeMutableRawBufferPointer, nonce: UnsafeRawBufferPointer) throws(CryptoError)
    {
        guard nonce.count == Self.nonceSize else {
            throw .invalidNonceSize(expected: Self.nonceSize, actual: nonce.count)
        }
        guard buffer.count >= Self.tagSize else { throw .ciphertextTooShort }
        let plaintext = UnsafeRawBufferPointer(rebasing: buffer[0..<(buffer.count - Self.tagSize)])
        if let failure = seal(plaintext, iv: nonce, aad: UnsafeRawBufferPointer(start: nil, count: 0), into: buffer) {
            throw failure
        }
    }

    /// ``openInPlace(_:nonce:authenticating:)`` with no associated data and the nonce in borrowed memory. On any
    /// failure the ciphertext bytes are zeroed.
    ///
    /// - Parameters:
    ///   - buffer: The ciphertext followed by its tag.
    ///   - nonce: The 12-byte nonce.
    /// - Throws: As ``openInPlace(_:nonce:authenticating:)``.
    public func openInPlace(_ buffer: UnsafeMutableRawBufferPointer, nonce: UnsafeRawBufferPointer) throws(CryptoError)
    {
        guard nonce.count == Self.nonceSize else {
            throw .invalidNonceSize(expected: Self.nonceSize, actual: nonce.count)
        }
        guard buffer.count >= Self.tagSize else { throw .ciphertextTooShort }
        let count = buffer.count - Self.tagSize
        // Decrypting overwrites only the ciphertext, never the tag after it; a failure zeroes it.
        if let failure = open(
            ciphertext: UnsafeRawBufferPointer(rebasing: buffer[0..<count]),
            tag: UnsafeRawBufferPointer(rebasing: buffer[count...]), iv: nonce,
            aad: UnsafeRawBufferPointer(start: nil, count: 0),
            into: UnsafeMutableRawBufferPointer(rebasing: buffer[0..<count]))
        {
            throw failure
        }
    }

    /// Seals a message whose plaintext is the concatenation of `pieces`, reading each piece once: the ciphertext goes
    /// into the start of `output` and the tag into its last 16 bytes, with no copy of the plaintext made first (a
    /// record gathered from queued output is encrypted straight from where the output waits). No associated data.
    ///
    /// A piece may be exactly the part of `output` its ciphertext goes to (sealing in place); otherwise no piece may
    /// overlap `output`.
    ///
    /// The corresponding libgcrypt calls are `gcry_cipher_encrypt` once per non-empty piece (GCM is a stream mode:
    /// libgcrypt takes the message in pieces of any length), between `gcry_cipher_setiv` and `gcry_cipher_gettag`.
    ///
    /// - Parameters:
    ///   - pieces: The plaintext, in order; pieces may be empty.
    ///   - nonce: 12 bytes, never reused with this key.
    ///   - output: Exactly the pieces' total length plus 16 bytes.
    /// - Throws: ``CryptoError/invalidNonceSize(expected:actual:)`` unless `nonce` is 12 bytes;
    ///   ``CryptoError/library(operation:code:message:)`` if libgcrypt fails.
    public func seal(
        gathering pieces: UnsafeBufferPointer<UnsafeRawBufferPointer>, nonce: UnsafeRawBufferPointer,
        into output: UnsafeMutableRawBufferPointer
    ) throws(CryptoError) {
        guard nonce.count == Self.nonceSize else {
            throw .invalidNonceSize(expected: Self.nonceSize, actual: nonce.count)
        }
        let total = pieces.reduce(0) { $0 + $1.count }
        precondition(output.count == total + Self.tagSize, "AES-GCM seal output has the wrong size")
        if let failure = start(iv: nonce, aad: UnsafeRawBufferPointer(start: nil, count: 0)) { throw failure }
        let outputBase = output.baseAddress!
        var offset = 0
        for piece in pieces {
            guard let pieceBase = piece.baseAddress, piece.count > 0 else { continue }
            let error = gcry_cipher_encrypt(handle, outputBase + offset, piece.count, pieceBase, piece.count)
            if let failure = Gcrypt.check(error, "gcry_cipher_encrypt") { throw failure }
            offset += piece.count
        }
        if let failure = Gcrypt.check(
            gcry_cipher_gettag(handle, outputBase + total, Self.tagSize), "gcry_cipher_gettag")
        {
            throw failure
        }
    }

    /// ``openInPlace(_:nonce:)`` that puts the first `destination.count` bytes of the plaintext into `destination`
    /// instead: a record whose plaintext is the rest of a large frame is opened straight into the frame's buffer,
    /// with no copy. The rest of the plaintext replaces its ciphertext in place, so it ends up at
    /// `buffer[destination.count ..< buffer.count - 16]`. On any failure both `destination` and the ciphertext bytes
    /// are zeroed, so no unauthenticated plaintext is left anywhere.
    ///
    /// The corresponding libgcrypt calls are `gcry_cipher_decrypt` into `destination`, then in place (GCM takes the
    /// message in pieces of any length), between `gcry_cipher_setiv` and `gcry_cipher_checktag`.
    ///
    /// - Parameters:
    ///   - buffer: The ciphertext followed by its tag.
    ///   - nonce: The 12-byte nonce.
    ///   - destination: At most as long as the plaintext; must not overlap `buffer`.
    /// - Throws: As ``openInPlace(_:nonce:)``.
    public func openInPlace(
        _ buffer: UnsafeMutableRawBufferPointer, nonce: UnsafeRawBufferPointer,
        divertingPrefixTo destination: UnsafeMutableRawBufferPointer
    ) throws(CryptoError) {
        guard nonce.count == Self.nonceSize else {
            throw .invalidNonceSize(expected: Self.nonceSize, actual: nonce.count)
        }
        guard buffer.count >= Self.tagSize else { throw .ciphertextTooShort }
        let count = buffer.count - Self.tagSize
        precondition(destination.count <= count, "more room diverted than the message has plaintext")
        let diverted = destination.count
        guard diverted > 0, let destinationBase = destination.baseAddress, let base = buffer.baseAddress else {
            try openInPlace(buffer, nonce: nonce)
            return
        }
        var failure = start(iv: nonce, aad: UnsafeRawBufferPointer(start: nil, count: 0))
        if failure == nil {
            let error = gcry_cipher_decrypt(handle, destinationBase, diverted, base, diverted)
            failure = Gcrypt.check(error, "gcry_cipher_decrypt")
        }
        if failure == nil && count > diverted {
            let error = gcry_cipher_decrypt(
                handle, base + diverted, count - diverted, base + diverted, count - diverted)
            failure = Gcrypt.check(error, "gcry_cipher_decrypt")
        }
        if failure == nil {
            failure = checkTag(base + count)
        }
        if let failure {
            secureZero(destination)
            secureZero(UnsafeMutableRawBufferPointer(rebasing: buffer[0..<count]))
            throw failure
        }
    }

    /// The checks and borrowing the four buffer entry points share: `nonce` must be 12 bytes and, when
    /// `sealedCount` is given, the sealed bytes must have room for the tag; then `body` gets `nonce` and `aad` as
    /// raw bytes, and the failure it reports is thrown.
    private func withValidated(
        nonce: [UInt8], aad: [UInt8], sealedCount: Int? = nil,
        _ body: (_ iv: UnsafeRawBufferPointer, _ aad: UnsafeRawBufferPointer) -> CryptoError?
    ) throws(CryptoError) {
        guard nonce.count == Self.nonceSize else {
            throw .invalidNonceSize(expected: Self.nonceSize, actual: nonce.count)
        }
        if let sealedCount, sealedCount < Self.tagSize { throw .ciphertextTooShort }
        let failure = nonce.withUnsafeBytes { ivBytes in aad.withUnsafeBytes { aadBytes in body(ivBytes, aadBytes) } }
        if let failure { throw failure }
    }

    // MARK: - Internal API (any IV length, for test vectors)

    /// ``seal(_:nonce:authenticating:)`` for an IV of any length of at least one byte (GCM hashes IVs that are not
    /// 12 bytes long). For test vectors only; the protocol uses 12-byte nonces.
    func seal(_ plaintext: [UInt8], iv: [UInt8], authenticating aad: [UInt8]) throws(CryptoError) -> [UInt8] {
        let sealedCount = plaintext.count + Self.tagSize
        var failure: CryptoError?
        let sealed = [UInt8](unsafeUninitializedCapacity: sealedCount) { buffer, initialised in
            let output = buffer.rawPrefix(sealedCount)
            failure = plaintext.withUnsafeBytes { input in
                iv.withUnsafeBytes { ivBytes in
                    aad.withUnsafeBytes { aadBytes in
                        seal(input, iv: ivBytes, aad: aadBytes, into: output)
                    }
                }
            }
            initialised = failure == nil ? sealedCount : 0
        }
        if let failure {
            throw failure
        }
        return sealed
    }

    /// ``open(_:nonce:authenticating:)`` for an IV of any length of at least one byte. For test vectors only.
    func open(_ sealed: [UInt8], iv: [UInt8], authenticating aad: [UInt8]) throws(CryptoError) -> [UInt8] {
        guard sealed.count >= Self.tagSize else { throw .ciphertextTooShort }
        let plaintextCount = sealed.count - Self.tagSize
        var failure: CryptoError?
        let plaintext = [UInt8](unsafeUninitializedCapacity: plaintextCount) { buffer, initialised in
            let output = buffer.rawPrefix(plaintextCount)
            failure = sealed.withUnsafeBytes { input in
                iv.withUnsafeBytes { ivBytes in
                    aad.withUnsafeBytes { aadBytes in
                        open(
                            ciphertext: UnsafeRawBufferPointer(rebasing: input[0..<plaintextCount]),
                            tag: UnsafeRawBufferPointer(rebasing: input[plaintextCount...]),
                            iv: ivBytes, aad: aadBytes, into: output)
                    }
                }
            }
            // On failure the buffer has already been zeroed; it is freed without being handed out.
            initialised = failure == nil ? plaintextCount : 0
        }
        if let failure {
            throw failure
        }
        return plaintext
    }

    /// Opens a message whose tag travels separately; the tag must be exactly 16 bytes. For test vectors only.
    func open(
        ciphertext: [UInt8],
        tag: [UInt8],
        iv: [UInt8],
        authenticating aad: [UInt8]
    ) throws(CryptoError) -> [UInt8] {
        guard tag.count == Self.tagSize else {
            throw .invalidTagSize(expected: Self.tagSize, actual: tag.count)
        }
        return try open(ciphertext + tag, iv: iv, authenticating: aad)
    }

    // MARK: - Buffer-level core

    /// Resets the handle for a new message: sets the IV, then feeds the associated data.
    private func start(iv: UnsafeRawBufferPointer, aad: UnsafeRawBufferPointer) -> CryptoError? {
        // An empty IV must be refused here: libgcrypt would reject it in setiv, but then treat the handle as having
        // no IV and silently use a zero IV on the next encrypt.
        guard let ivBase = iv.baseAddress, iv.count > 0 else {
            return .invalidNonceSize(expected: Self.nonceSize, actual: 0)
        }
        if let failure = Gcrypt.check(gcry_cipher_setiv(handle, ivBase, iv.count), "gcry_cipher_setiv") {
            return failure
        }
        if let aadBase = aad.baseAddress, aad.count > 0 {
            let error = gcry_cipher_authenticate(handle, aadBase, aad.count)
            if let failure = Gcrypt.check(error, "gcry_cipher_authenticate") {
                return failure
            }
        }
        return nil
    }

    /// Seals `plaintext` into `output`, which must be exactly `plaintext.count + tagSize` bytes.
    private func seal(
        _ plaintext: UnsafeRawBufferPointer,
        iv: UnsafeRawBufferPointer,
        aad: UnsafeRawBufferPointer,
        into output: UnsafeMutableRawBufferPointer
    ) -> CryptoError? {
        precondition(output.count == plaintext.count + Self.tagSize, "AES-GCM seal output has the wrong size")
        if let failure = start(iv: iv, aad: aad) {
            return failure
        }
        let outputBase = output.baseAddress!
        if let plaintextBase = plaintext.baseAddress, plaintext.count > 0 {
            let error = gcry_cipher_encrypt(handle, outputBase, plaintext.count, plaintextBase, plaintext.count)
            if let failure = Gcrypt.check(error, "gcry_cipher_encrypt") {
                return failure
            }
        }
        let error = gcry_cipher_gettag(handle, outputBase + plaintext.count, Self.tagSize)
        return Gcrypt.check(error, "gcry_cipher_gettag")
    }

    /// Decrypts `ciphertext` into `output` (exactly `ciphertext.count` bytes) and checks `tag`; zeroes `output` on
    /// any failure.
    private func open(
        ciphertext: UnsafeRawBufferPointer,
        tag: UnsafeRawBufferPointer,
        iv: UnsafeRawBufferPointer,
        aad: UnsafeRawBufferPointer,
        into output: UnsafeMutableRawBufferPointer
    ) -> CryptoError? {
        precondition(output.count == ciphertext.count, "AES-GCM open output has the wrong size")
        // libgcrypt's checktag also accepts truncated tags (4, 8, 12 to 15 bytes); only full tags are allowed here.
        guard tag.count == Self.tagSize, let tagBase = tag.baseAddress else {
            return .invalidTagSize(expected: Self.tagSize, actual: tag.count)
        }
        let failure = decryptAndCheck(ciphertext: ciphertext, tag: tagBase, iv: iv, aad: aad, into: output)
        if failure != nil {
            secureZero(output)
        }
        return failure
    }

    private func decryptAndCheck(
        ciphertext: UnsafeRawBufferPointer,
        tag: UnsafeRawPointer,
        iv: UnsafeRawBufferPointer,
        aad: UnsafeRawBufferPointer,
        into output: UnsafeMutableRawBufferPointer
    ) -> CryptoError? {
        if let failure = start(iv: iv, aad: aad) {
            return failure
        }
        if let ciphertextBase = ciphertext.baseAddress, let outputBase = output.baseAddress, ciphertext.count > 0 {
            let error = gcry_cipher_decrypt(handle, outputBase, output.count, ciphertextBase, ciphertext.count)
            if let failure = Gcrypt.check(error, "gcry_cipher_decrypt") {
                return failure
            }
        }
        return checkTag(tag)
    }

    /// Checks the 16-byte tag at `tag` against the message just decrypted.
    private func checkTag(_ tag: UnsafeRawPointer) -> CryptoError? {
        let error = gcry_cipher_checktag(handle, tag, Self.tagSize)
        if error == 0 {
            return nil
        }
        if Gcrypt.code(error) == GPG_ERR_CHECKSUM.rawValue {
            return .authenticationFailed
        }
        return Gcrypt.error("gcry_cipher_checktag", error)
    }
}

@available(*, unavailable, message: "AESGCM has one owner at a time; create one per connection direction.")
extension AESGCM: Sendable {}
