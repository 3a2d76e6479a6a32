import AESChatCrypto

/// The encrypted link's record layer on a connection (``Connection/protect(with:)``): seals what this side sends
/// under ``NoiseTransportKeys/sending`` and opens what it receives under ``NoiseTransportKeys/receiving``, in the
/// records of LinkRecords.swift (`len:u16 ‖ AES-256-GCM ciphertext ‖ tag`, at most 65,519 bytes of plaintext each,
/// rekeyed every 2^20 records per direction).
///
/// Used by both ends of the link, the client and the relay alike, so its failure texts speak of "the peer".
/// Failures become ``TransportError/linkFailed(reason:)``; the first one in a direction ends that direction (every
/// later call throws it again), and the connection closes with it.
///
/// Ownership: owns both directions' keys, in one ``SecretKeySlots`` (zeroed when released), their counters and
/// rekey schedules, and at most one incomplete incoming record: an idle layer is two allocations, itself and the
/// keys. With ``LinkCipherHandles/borrowed`` (the relay's) it holds no cipher handle: each seal or open borrows the
/// current thread's (see ``AESGCMWorkspace``); with ``LinkCipherHandles/owned`` each direction keeps one of its own.
///
/// Threading: not thread-safe; confined to the connection's thread. Deliberately not `Sendable`.
public final class LinkRecordLayer: RecordProtection {
    private var sealer: LinkRecordSealer<LinkSlotCipher>
    private var opener: LinkRecordOpener<LinkSlotCipher>

    /// A record layer over the transport keys of a finished handshake. It takes their keys and counters over
    /// (``NoiseCipherState/handOver(into:slot:)``): the two cipher states of `keys` can no longer seal or open.
    ///
    /// - Parameters:
    ///   - keys: This side's keys (``NoiseHandshake/finish()``).
    ///   - rekeyInterval: Records per key in each direction; the protocol's is ``LinkRekey/defaultInterval``,
    ///     smaller ones are for tests. Must be at least 1.
    ///   - handles: Borrow the thread's cipher handle for each record (the relay's many connections), or keep one
    ///     per direction (a client's one connection).
    public init(
        keys: NoiseTransportKeys, rekeyInterval: UInt64 = LinkRekey.defaultInterval,
        handles: LinkCipherHandles = .borrowed
    ) {
        let slots = SecretKeySlots.make(slotCount: 2)
        let sending = LinkSlotCipher(
            keys: slots, slot: 0, nonce: keys.sending.handOver(into: slots, slot: 0), handles: handles)
        let receiving = LinkSlotCipher(
            keys: slots, slot: 1, nonce: keys.receiving.handOver(into: slots, slot: 1), handles: handles)
        sealer = LinkRecordSealer(cipher: sending, rekeyInterval: rekeyInterval)
        opener = LinkRecordOpener(cipher: receiving, rekeyInterval: rekeyInterval)
    }

    public var maximumRecordPlaintext: Int { NoiseCipherState.maximumPlaintextLength }
    public var recordHeaderLength: Int { LinkRekey.lengthPrefixSize }
    public var recordTrailerLength: Int { NoiseCipherState.tagLength }

    /// The bytes of an incomplete incoming record held until the rest arrives.
    public var bufferedByteCount: Int { opener.pending.count }

    public func sealRecord(
        _ record: UnsafeMutableRawBufferPointer, gathering pieces: UnsafeBufferPointer<UnsafeRawBufferPointer>
    ) throws(TransportError) {
        do {
            try sealer.seal(record: record, gathering: pieces)
        } catch {
            throw Self.transportError(error)
        }
    }

    public func openRecords(
        _ bytes: UnsafeMutableRawBufferPointer, into destination: () -> UnsafeMutableRawBufferPointer?,
        filled: (Int) -> Void, deliver: (UnsafeRawBufferPointer) -> Void
    ) throws(TransportError) {
        do {
            try opener.open(bytes, into: destination, filled: filled, deliver: deliver)
        } catch {
            throw Self.transportError(error)
        }
    }

    public func preferredReadLength(limit: Int) -> Int {
        opener.preferredReadLength(limit: limit)
    }

    public func finishOpening() throws(TransportError) {
        do {
            try opener.finish()
        } catch {
            throw Self.transportError(error)
        }
    }

    /// The one-line failure a record error closes the connection with.
    static func transportError(_ error: LinkError) -> TransportError {
        let text =
            switch error {
            case .authenticationFailed:
                "a record from the peer failed authentication: altered on the way, or not from the peer"
            case .ciphertextTooShort(let actual):
                "a record from the peer claims \(actual) bytes, fewer than its 16-byte tag: the stream is corrupt"
            case .truncatedRecord(let buffered):
                "the connection ended inside a record (\(buffered) bytes of it had arrived): the end of the data "
                    + "was lost"
            case .nonceExhausted:
                "this direction has used every nonce of its key; connect again for fresh keys"
            case .crypto(let failure):
                "the cipher failed: \(failure)"
            default:
                error.description
            }
        return .linkFailed(reason: .init(text))
    }
}

@available(*, unavailable, message: "A LinkRecordLayer belongs to one connection's thread.")
extension LinkRecordLayer: Sendable {}
