import AESChatCrypto

/// The user's own sending chain: a random id and chain key, ratcheted once per message.
final class OutgoingChain {
    let chainID: [UInt8]
    private(set) var index: UInt32 = 0
    private var chainKey: SecretBytes
    let createdAt: ContinuousClock.Instant

    init(now: ContinuousClock.Instant) {
        chainID = SecureRandom.bytes(count: AutomaticKeys.chainIDSize)
        // A chain lives for at most 100 messages or a day: the strong level, not the very strong one of long-term keys.
        chainKey = SecretBytes(strongRandomCount: 32)
        createdAt = now
    }

    /// For the fixed test vectors only.
    init(chainID: [UInt8], chainKey: [UInt8], index: UInt32, now: ContinuousClock.Instant) {
        self.chainID = chainID
        self.chainKey = SecretBytes(chainKey)
        self.index = index
        createdAt = now
    }

    /// The sender-key plaintext that lets a member read this chain from the current index on.
    var distribution: [UInt8] {
        var writer = ByteWriter(capacity: 64)
        writer.write(AutomaticKeys.senderKeyKind)
        writer.write(contentsOf: chainID)
        writer.write(index)
        chainKey.withUnsafeBytes { writer.write(contentsOf: $0) }
        return writer.bytes
    }

    /// The message key for the current index; the chain moves on and the old chain key is erased.
    func nextMessageKey() -> (index: UInt32, messageKey: SecretBytes) {
        let (messageKey, next) = AutomaticKeys.ratchet(chainKey)
        let used = index
        chainKey = next
        index += 1
        return (used, messageKey)
    }
}

/// A member's chain as this client received it.
struct IncomingChain {
    var chainID: [UInt8]
    var nextIndex: UInt32
    var chainKey: SecretBytes
}
