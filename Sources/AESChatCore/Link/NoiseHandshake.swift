// The Noise core of the encrypted link: `Noise_NK_25519_AESGCM_SHA256`, Noise Protocol Framework revision 34
// (noiseprotocol/noise_spec, noise.md at "rev34"), as pure state machines over AESChatCrypto's primitives. Nothing
// here touches a socket: the link layer feeds bytes in and sends the bytes it gets back.
//
// - DH is X25519 (§12.1, ``X25519PrivateKey``; an all-zero result, from a low-order peer key, is refused), the
//   cipher AES-256-GCM with the nonce 32 zero bits ‖ 64-bit big-endian counter (§12.4, ``NoiseCipherState``), the
//   hash SHA-256 with Noise's HKDF over HMAC-SHA-256 (§4.3, §12.5, ``NoiseSymmetricState``).
// - The name is 28 bytes, at most HASHLEN, so `h` starts as the name padded with zeros and `ck = h` (§5.2).
// - Pattern NK (§7.4): `<- s` / `...` / `-> e, es` / `<- e, ee`. Both sides `MixHash(prologue)`, then
//   `MixHash(responder's static public key)` for the pre-message (§5.3 `Initialize`); message 1 is the initiator's
//   ephemeral key, then its payload sealed under the key from `es`; message 2 the responder's ephemeral key, then its
//   payload sealed under the key from `ee` (§5.3 `WriteMessage`, `ReadMessage`). Each message is therefore 48 bytes
//   plus its payload. `Split()` (§5.2) then gives one cipher state per direction, and `h` is the handshake hash
//   (§11.2).
// - Payload security (§7.7): message 1's payload has no forward secrecy for the sender's compromise and can be
//   replayed, so the link sends none; transport messages have full forward secrecy and authenticate the responder.
// - Rekeying (§11.3) is the default `REKEY` of §4.2; nonce 2^64 − 1 is reserved (§5.1); Noise messages are at most
//   65,535 bytes (§3). Rollback protection comes from putting any earlier negotiation in the prologue (§14).
//
// Checked against the public cacophony and snow vectors for this exact pattern and suite, and the project's own
// vectors for large counters and `Rekey()` (Tests/AESChatCoreTests/NoiseTests.swift).

public import AESChatCrypto

/// One side of a `Noise_NK_25519_AESGCM_SHA256` handshake (see the summary at the top of this file): the
/// initiator (a client), which knows the responder's static public key in advance, or the responder (the relay),
/// which holds the static private key.
///
/// Use: the initiator calls ``writeMessage(payload:)`` then ``readMessage(_:)``; the responder calls
/// ``readMessage(_:)`` then ``writeMessage(payload:)``. When ``isComplete`` is true, ``finish()`` hands out the two
/// transport cipher states. Any failure ends the handshake: every later call throws, and the connection must close.
///
/// Each side's ephemeral key is made when it writes its message, from libgcrypt's `GCRY_STRONG_RANDOM` level
/// (``SecureRandom``), so a responder that receives a bad message 1 never pays for a key generation.
///
/// Ownership: owns its ``NoiseSymmetricState`` and ephemeral private key (in ``SecretBytes``, inside
/// ``X25519PrivateKey``); the responder's static key is shared with its owner. The transport cipher states from
/// ``finish()`` belong to the caller.
///
/// Threading: not thread-safe; confined to the thread running the connection. Deliberately not `Sendable`.
public final class NoiseHandshake {
    /// The protocol name, hashed into the state first (28 bytes).
    public static let protocolName = "Noise_NK_25519_AESGCM_SHA256"
    /// The length of an X25519 public key, and of the ephemeral key at the start of each message.
    public static let keyLength = 32
    /// The length of message 1 or 2 with an empty payload: an ephemeral key and a tag.
    public static let emptyMessageLength = keyLength + NoiseCipherState.tagLength

    /// Which side of the handshake this is.
    public enum Role: Sendable, Equatable {
        /// Sends message 1; knows the responder's static public key in advance (the client).
        case initiator
        /// Receives message 1; holds the static private key (the relay).
        case responder
    }

    /// Where the handshake is, with what the next step needs.
    private enum State {
        case initiatorWritesMessage1(responderStaticKey: [UInt8])
        case initiatorReadsMessage2(ephemeralKey: X25519PrivateKey)
        case responderReadsMessage1(staticKey: X25519PrivateKey)
        case responderWritesMessage2(initiatorEphemeralKey: [UInt8])
        case complete
        case finished
        case failed
    }

    /// This side's role.
    public let role: Role
    private let symmetric: NoiseSymmetricState
    private var state: State
    /// The ephemeral key to use instead of a fresh one, for test vectors (and, later, keys made ahead of time).
    private var suppliedEphemeralKey: X25519PrivateKey?

    private init(
        role: Role, prologue: [UInt8], responderStaticKey: [UInt8], state: State, ephemeralKey: X25519PrivateKey?
    ) {
        self.role = role
        self.state = state
        suppliedEphemeralKey = ephemeralKey
        symmetric = NoiseSymmetricState(protocolName: Self.protocolName)
        symmetric.mixHash(prologue)
        symmetric.mixHash(responderStaticKey)
    }

    /// Starts the initiator's side.
    ///
    /// - Parameters:
    ///   - responderStaticKey: The responder's 32-byte X25519 public key, known in advance (the pinned relay key).
    ///   - prologue: Bytes both sides must agree on, such as a preamble sent in the clear; a difference fails
    ///     message 2.
    /// - Returns: A handshake whose first step is ``writeMessage(payload:)``.
    /// - Throws: ``LinkError/invalidKeyLength(whose:actual:)`` unless `responderStaticKey` is 32 bytes.
    public static func initiator(responderStaticKey: [UInt8], prologue: [UInt8]) throws(LinkError) -> NoiseHandshake {
        try initiator(responderStaticKey: responderStaticKey, prologue: prologue, ephemeralKey: nil)
    }

    /// ``initiator(responderStaticKey:prologue:)`` with a chosen ephemeral key instead of a fresh one, for test
    /// vectors only: an ephemeral key must never be used twice.
    static func initiator(
        responderStaticKey: [UInt8], prologue: [UInt8], ephemeralKey: X25519PrivateKey?
    ) throws(LinkError) -> NoiseHandshake {
        guard responderStaticKey.count == keyLength else {
            throw .invalidKeyLength(whose: "the relay's static key", actual: responderStaticKey.count)
        }
        return NoiseHandshake(
            role: .initiator, prologue: prologue, responderStaticKey: responderStaticKey,
            state: .initiatorWritesMessage1(responderStaticKey: responderStaticKey), ephemeralKey: ephemeralKey)
    }

    /// Starts the responder's side.
    ///
    /// - Parameters:
    ///   - staticKey: The responder's static private key (the relay key), shared with the caller.
    ///   - prologue: Bytes both sides must agree on; a difference fails message 1.
    /// - Returns: A handshake whose first step is ``readMessage(_:)``.
    public static func responder(staticKey: X25519PrivateKey, prologue: [UInt8]) -> NoiseHandshake {
        responder(staticKey: staticKey, prologue: prologue, ephemeralKey: nil)
    }

    /// ``responder(staticKey:prologue:)`` with a chosen ephemeral key instead of a fresh one, for test vectors
    /// only: an ephemeral key must never be used twice.
    static func responder(
        staticKey: X25519PrivateKey, prologue: [UInt8], ephemeralKey: X25519PrivateKey?
    ) -> NoiseHandshake {
        NoiseHandshake(
            role: .responder, prologue: prologue, responderStaticKey: staticKey.publicKey,
            state: .responderReadsMessage1(staticKey: staticKey), ephemeralKey: ephemeralKey)
    }

    /// Whether both messages have been exchanged, so that ``finish()`` may be called.
    public var isComplete: Bool {
        if case .complete = state { return true }
        return false
    }

    /// The current handshake hash `h`; once ``isComplete`` is true, the value both sides share (spec §11.2), which
    /// names this session without revealing anything secret.
    public var handshakeHash: [UInt8] {
        symmetric.handshakeHash
    }

    /// Writes this side's next message: message 1 (`e, es`) for the initiator, message 2 (`e, ee`) for the
    /// responder.
    ///
    /// - Parameter payload: Bytes to seal into the message; at most 65,487 bytes, usually empty.
    /// - Returns: The message: this side's 32-byte ephemeral public key, then the sealed payload and its tag.
    /// - Throws: ``LinkError/outOfOrder(operation:state:)`` if this side must read now, or the handshake is over or
    ///   failed; ``LinkError/messageTooLong(actual:maximum:)`` if the payload does not fit;
    ///   ``LinkError/lowOrderKey(whose:)`` if the peer's key is a low-order point; ``LinkError/crypto(_:)`` if
    ///   libgcrypt fails. After any error other than ``LinkError/outOfOrder(operation:state:)`` and
    ///   ``LinkError/messageTooLong(actual:maximum:)`` the handshake has failed.
    public func writeMessage(payload: [UInt8] = []) throws(LinkError) -> [UInt8] {
        let number = role == .initiator ? 1 : 2
        let length = Self.emptyMessageLength + payload.count
        switch state {
        case .initiatorWritesMessage1, .responderWritesMessage2:
            guard length <= NoiseCipherState.maximumMessageLength else {
                throw .messageTooLong(actual: length, maximum: NoiseCipherState.maximumMessageLength)
            }
        default:
            throw .outOfOrder(operation: "write handshake message \(number)", state: expectation)
        }
        let current = state
        state = .failed
        let ephemeralKey: X25519PrivateKey
        if let supplied = suppliedEphemeralKey {
            ephemeralKey = supplied
            suppliedEphemeralKey = nil
        } else {
            ephemeralKey = try Self.makeEphemeralKey()
        }
        symmetric.mixHash(ephemeralKey.publicKey)
        switch current {
        case .initiatorWritesMessage1(let responderStaticKey):
            try symmetric.mixKey(Self.agree(ephemeralKey, responderStaticKey, whose: "the relay's static key"))
            let sealed = try symmetric.encryptAndHash(payload)
            state = .initiatorReadsMessage2(ephemeralKey: ephemeralKey)
            return ephemeralKey.publicKey + sealed
        case .responderWritesMessage2(let initiatorEphemeralKey):
            try symmetric.mixKey(Self.agree(ephemeralKey, initiatorEphemeralKey, whose: "the client's ephemeral key"))
            let sealed = try symmetric.encryptAndHash(payload)
            state = .complete
            return ephemeralKey.publicKey + sealed
        default:
            preconditionFailure("checked above")
        }
    }

    /// Reads the peer's next message: message 1 for the responder, message 2 for the initiator.
    ///
    /// The length is checked first: 48 to 65,535 bytes.
    ///
    /// - Parameter message: The whole message, as the peer wrote it.
    /// - Returns: The payload the peer sealed into it (usually empty).
    /// - Throws: ``LinkError/outOfOrder(operation:state:)`` if this side must write now, or the handshake is over or
    ///   failed; ``LinkError/handshakeMessageLength(message:actual:minimum:maximum:)`` for a message of the wrong
    ///   length; ``LinkError/handshakeAuthenticationFailed(message:)`` if its tag does not match;
    ///   ``LinkError/lowOrderKey(whose:)`` if the peer's ephemeral key is a low-order point;
    ///   ``LinkError/crypto(_:)`` if libgcrypt fails. After any error but ``LinkError/outOfOrder(operation:state:)``
    ///   the handshake has failed.
    public func readMessage(_ message: [UInt8]) throws(LinkError) -> [UInt8] {
        let number = role == .initiator ? 2 : 1
        switch state {
        case .initiatorReadsMessage2, .responderReadsMessage1: break
        default: throw .outOfOrder(operation: "read handshake message \(number)", state: expectation)
        }
        let current = state
        state = .failed
        guard (Self.emptyMessageLength...NoiseCipherState.maximumMessageLength).contains(message.count) else {
            throw .handshakeMessageLength(
                message: number, actual: message.count, minimum: Self.emptyMessageLength,
                maximum: NoiseCipherState.maximumMessageLength)
        }
        let peerEphemeralKey = Array(message[0..<Self.keyLength])
        let sealed = Array(message[Self.keyLength...])
        symmetric.mixHash(peerEphemeralKey)
        switch current {
        case .responderReadsMessage1(let staticKey):
            try symmetric.mixKey(Self.agree(staticKey, peerEphemeralKey, whose: "the client's ephemeral key"))
            let payload = try decryptAndHash(sealed, message: number)
            state = .responderWritesMessage2(initiatorEphemeralKey: peerEphemeralKey)
            return payload
        case .initiatorReadsMessage2(let ephemeralKey):
            try symmetric.mixKey(Self.agree(ephemeralKey, peerEphemeralKey, whose: "the relay's ephemeral key"))
            let payload = try decryptAndHash(sealed, message: number)
            state = .complete
            return payload
        default:
            preconditionFailure("checked above")
        }
    }

    /// Ends a complete handshake with `Split()`: the two transport cipher states, each with `n` = 0, and the
    /// handshake hash. It hands them out once.
    ///
    /// - Returns: The transport keys, for this side's role.
    /// - Throws: ``LinkError/outOfOrder(operation:state:)`` unless ``isComplete`` is true;
    ///   ``LinkError/crypto(_:)`` if libgcrypt fails.
    public func finish() throws(LinkError) -> NoiseTransportKeys {
        guard isComplete else { throw .outOfOrder(operation: "finish the handshake", state: expectation) }
        state = .failed
        let (initiatorToResponder, responderToInitiator) = try symmetric.split()
        state = .finished
        return NoiseTransportKeys(
            role: role, initiatorToResponder: initiatorToResponder, responderToInitiator: responderToInitiator,
            handshakeHash: symmetric.handshakeHash)
    }

    /// What the handshake expects next, for ``LinkError/outOfOrder(operation:state:)``.
    private var expectation: String {
        switch state {
        case .initiatorWritesMessage1: "the initiator writes message 1 first"
        case .initiatorReadsMessage2: "the initiator reads message 2 next"
        case .responderReadsMessage1: "the responder reads message 1 first"
        case .responderWritesMessage2: "the responder writes message 2 next"
        case .complete: "the handshake is complete; finish it"
        case .finished: "the handshake is finished and its keys were handed out"
        case .failed: "the handshake failed; close the connection and start a new one"
        }
    }

    /// `DecryptAndHash` of message `message`'s payload, reporting a tag mismatch as a handshake failure.
    private func decryptAndHash(_ sealed: [UInt8], message: Int) throws(LinkError) -> [UInt8] {
        do {
            return try symmetric.decryptAndHash(sealed)
        } catch .authenticationFailed {
            throw .handshakeAuthenticationFailed(message: message)
        }
    }

    /// `DH(key, publicKey)`, refusing the all-zero result a low-order point gives.
    private static func agree(
        _ key: X25519PrivateKey, _ publicKey: [UInt8], whose: String
    ) throws(LinkError) -> SecretBytes {
        do {
            return try key.sharedSecret(with: publicKey)
        } catch .weakSharedSecret {
            throw .lowOrderKey(whose: whose)
        } catch {
            throw .crypto(error)
        }
    }

    /// `GENERATE_KEYPAIR()`: a fresh ephemeral key from `GCRY_STRONG_RANDOM` (9.5 µs a draw here, against 5 ms for
    /// the very strong level that `X25519PrivateKey()` uses).
    private static func makeEphemeralKey() throws(LinkError) -> X25519PrivateKey {
        var scalar = SecureRandom.bytes(count: keyLength)
        defer { secureZero(&scalar) }
        do {
            return try X25519PrivateKey(rawRepresentation: scalar)
        } catch {
            throw .crypto(error)
        }
    }
}

@available(*, unavailable, message: "A NoiseHandshake belongs to one connection's thread.")
extension NoiseHandshake: Sendable {}
