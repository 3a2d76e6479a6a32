import AESChatCore

/// The client side of the encrypted link (docs/PROTOCOL.md) for one load member: a handshake prepared ahead of
/// time, then the record layer once the relay's message 2 has authenticated it.
///
/// Ownership and threading: each value belongs to one ``LoadEngine`` and is used on that engine's thread only.
enum MemberLink {
    /// The relay's first answer, as far as it has arrived.
    enum Answer {
        /// Not enough bytes yet to tell.
        case incomplete
        /// Message 2 (`0x00 0x30` ‖ 48 bytes); `used` bytes of the input were its.
        case message2(used: Int)
        /// "AESCHAT" 0x02 0x03: the relay refused the handshake for now (rate or cap); try again later.
        case busy
        /// Anything else: why this relay cannot be benchmarked with this key and generator.
        case refused(String)
    }

    /// Length of the length prefix before each handshake message.
    static let prefixLength = 2
    /// Message 1 or 2 with an empty payload, and its length prefix.
    static let messageLength = NoiseHandshake.emptyMessageLength
    static let framedMessageLength = prefixLength + messageLength

    /// A handshake whose message 1 is already written: what the member sends first (preamble, then message 1 with
    /// its length), and the state that reads message 2.
    ///
    /// Threading: confined to the engine that made it.
    final class Prepared {
        let handshake: NoiseHandshake
        let opening: [UInt8]

        /// Makes a fresh ephemeral key (libgcrypt's strong level, inside ``NoiseHandshake``) and writes message 1
        /// for the relay whose key is `relayKey`.
        init(relayKey: RelayPublicKey) throws(LinkError) {
            let preamble = try LinkPreamble(relayFingerprint: relayKey.fingerprintHash)
            handshake = try NoiseHandshake.initiator(responderStaticKey: relayKey.bytes, prologue: preamble.prologue)
            let message = try handshake.writeMessage()
            opening = preamble.bytes + [UInt8(message.count >> 8), UInt8(truncatingIfNeeded: message.count)] + message
        }
    }

    /// What the relay's first bytes are (LINK.md: message 2, an "AESCHAT" answer, a v1 error frame, or not a
    /// relay).
    static func classify(_ bytes: UnsafeRawBufferPointer) -> Answer {
        guard let first = bytes.first else { return .incomplete }
        if first == 0x00 {
            guard bytes.count >= 2 else { return .incomplete }
            if bytes[1] == UInt8(messageLength) {
                return bytes.count >= framedMessageLength ? .message2(used: framedMessageLength) : .incomplete
            }
            // A v1 error frame: length u32 (00 00 00 xx) ‖ 0x85.
            guard bytes.count >= 5 else { return .incomplete }
            if bytes[2] == 0, bytes[4] == 0x85 {
                return .refused(
                    "the relay speaks aeschat protocol 1 (plaintext); drive it with its own build's aeschat-load")
            }
            return .refused("the relay's first bytes are neither message 2 nor an aeschat answer")
        }
        let magic = LinkPreamble.magic
        for (byte, expected) in zip(bytes, magic) where byte != expected {
            return .refused("the relay's first bytes are neither message 2 nor an aeschat answer")
        }
        guard bytes.count >= magic.count + 2 else { return .incomplete }
        let version = bytes[magic.count]
        switch bytes[magic.count + 1] {
        case 0x03: return .busy
        case 0x01: return .refused("the relay does not hold this key (it answered with its keys): check --relay-key")
        case 0x02:
            return .refused("the relay speaks aeschat protocol \(version), this generator \(LinkPreamble.version)")
        default: return .refused("the relay answered an unknown kind \(bytes[magic.count + 1])")
        }
    }

    /// The record layer of one linked member (``LinkRecordLayer``, as `aeschat join` uses it): seals what it sends
    /// in place in the engine's scratch buffer, opens what it receives in place in the engine's read buffer. It keeps
    /// keys and counters only, plus the start of a record cut by the end of a read.
    ///
    /// Threading: confined to the engine that made it.
    final class Records {
        private let layer: LinkRecordLayer

        init(_ keys: NoiseTransportKeys) {
            // The engine's members borrow their thread's handle and set the key for each record, as the relay's
            // connections do: a handle per member direction (4 KB a member, 4 MB for 1,000) was measured slower,
            // about 4 % more generator CPU and 10 % more paced p50 (BENCHMARKS, eighth session): opening 1,000
            // members' records in turn missed the cache on each handle more than a key setup costs.
            layer = LinkRecordLayer(keys: keys, handles: .borrowed)
        }

        /// Appends the records for `plaintext` to `output`: each laid out as length room, plaintext, tag room, then
        /// sealed where it lies.
        func seal(_ plaintext: [UInt8], into output: inout [UInt8]) throws(TransportError) {
            let header = layer.recordHeaderLength
            let trailer = layer.recordTrailerLength
            var offset = 0
            while offset < plaintext.count {
                let chunk = min(layer.maximumRecordPlaintext, plaintext.count - offset)
                let start = output.count
                output.append(contentsOf: repeatElement(0, count: header))
                output.append(contentsOf: plaintext[offset..<(offset + chunk)])
                output.append(contentsOf: repeatElement(0, count: trailer))
                var failure: TransportError?
                output.withUnsafeMutableBytes { bytes in
                    do throws(TransportError) {
                        try layer.sealRecord(UnsafeMutableRawBufferPointer(rebasing: bytes[start...]))
                    } catch {
                        failure = error
                    }
                }
                if let failure { throw failure }
                offset += chunk
            }
        }

        /// Opens the records in `bytes` (overwriting it) and hands each one's plaintext to `deliver`.
        func open(
            _ bytes: UnsafeMutableRawBufferPointer, deliver: (UnsafeRawBufferPointer) -> Void
        ) throws(TransportError) {
            try layer.openRecords(bytes, deliver: deliver)
        }
    }
}
