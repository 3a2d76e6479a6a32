// The record layer of the encrypted link (design: encrypted-link.md §3.1, §3.2): after the Noise handshake, each
// direction is a stream of records `len:u16 big-endian ‖ AES-256-GCM(k, n, ad = empty, chunk) ‖ tag`, with
// `16 ≤ len ≤ 65,535`, so a record carries at most 65,519 bytes of plaintext. The plaintext is the v1 byte stream of
// frames, cut into records however it falls: a frame may span records and a record may hold many frames (the 16 MiB
// frame limit is the inner stream's business). Each direction calls `Rekey()` after every 2^20 records (TCP is
// ordered, so no signal is needed); the counter `n` is not reset, and the cipher state refuses to go past
// 2^64 − 2. Nothing here touches a socket.

import AESChatCrypto

/// When each direction rekeys: after every `interval` records, counted from the handshake.
public enum LinkRekey {
    /// The interval of the protocol: 2^20 records, so a key covers at most 2^36 bytes.
    public static let defaultInterval: UInt64 = 1 << 20
    /// The length of the big-endian length prefix of a record.
    public static let lengthPrefixSize = 2
}

/// One direction's count of records under its current key, for ``LinkRecordWriter`` and ``LinkRecordReader`` alike:
/// both sides count the same records, so both rekey at the same one.
struct LinkRekeySchedule {
    /// After how many records the key is replaced; at least 1.
    let interval: UInt64
    private var recordsUnderKey: UInt64 = 0

    init(interval: UInt64) {
        precondition(interval > 0, "a rekey interval of 0 records")
        self.interval = interval
    }

    /// Counts one record sealed or opened with `cipher`, and rekeys it after every ``interval``; returns the
    /// failure, if any.
    mutating func countRecord(rekeying cipher: NoiseCipherState) -> LinkError? {
        recordsUnderKey += 1
        guard recordsUnderKey == interval else { return nil }
        recordsUnderKey = 0
        do {
            try cipher.rekey()
            return nil
        } catch {
            return error
        }
    }
}

/// Seals this side's outgoing byte stream into records, under the sending cipher state of a finished handshake.
///
/// Ownership: owns its use of the cipher state (nothing else may encrypt with it). Any failure ends the writer: every
/// later call throws the same error, and the connection must close.
///
/// Threading: not thread-safe; confined to the connection's thread. Deliberately not `Sendable`.
public final class LinkRecordWriter {
    /// The most plaintext one record carries: 65,519 bytes.
    public static let maximumChunk = NoiseCipherState.maximumPlaintextLength

    private let cipher: NoiseCipherState
    private var rekeySchedule: LinkRekeySchedule
    /// After how many records the key is replaced.
    public var rekeyInterval: UInt64 { rekeySchedule.interval }
    private var failure: LinkError?

    /// A writer over `cipher`, which must be fresh from the handshake (`n` = 0) or only ever used by writers.
    ///
    /// - Parameters:
    ///   - cipher: The sending cipher state (``NoiseTransportKeys/sending``).
    ///   - rekeyInterval: Records per key; the protocol's is ``LinkRekey/defaultInterval``, smaller ones are for
    ///     tests. Must be at least 1.
    public init(cipher: NoiseCipherState, rekeyInterval: UInt64 = LinkRekey.defaultInterval) {
        self.cipher = cipher
        rekeySchedule = LinkRekeySchedule(interval: rekeyInterval)
    }

    /// Seals `plaintext` into as few records as it takes (full ones of 65,519 bytes, then the rest) and appends
    /// them to `output`. Empty plaintext makes no record. The plaintext is copied once, into `output`, and sealed
    /// there in place.
    ///
    /// - Parameters:
    ///   - plaintext: The next bytes of the stream.
    ///   - output: Where the records go; on failure it is left as it was.
    /// - Throws: ``LinkError/nonceExhausted`` when the cipher state has no nonce left; ``LinkError/crypto(_:)`` if
    ///   libgcrypt fails; after any failure, that failure again.
    public func seal(_ plaintext: UnsafeRawBufferPointer, into output: inout [UInt8]) throws(LinkError) {
        if let failure { throw failure }
        let start = output.count
        var offset = 0
        while offset < plaintext.count {
            let chunk = min(Self.maximumChunk, plaintext.count - offset)
            let sealedLength = chunk + NoiseCipherState.tagLength
            output.append(UInt8(truncatingIfNeeded: sealedLength >> 8))
            output.append(UInt8(truncatingIfNeeded: sealedLength))
            let recordStart = output.count
            output.append(contentsOf: UnsafeRawBufferPointer(rebasing: plaintext[offset..<(offset + chunk)]))
            output.append(contentsOf: repeatElement(0, count: NoiseCipherState.tagLength))
            let error = output.withUnsafeMutableBytes { bytes -> LinkError? in
                do throws(LinkError) {
                    try cipher.encryptInPlace(
                        UnsafeMutableRawBufferPointer(rebasing: bytes[recordStart..<(recordStart + sealedLength)]))
                    return nil
                } catch {
                    return error
                }
            }
            if let error = error ?? rekeySchedule.countRecord(rekeying: cipher) {
                failure = error
                output.removeSubrange(start...)
                throw error
            }
            offset += chunk
        }
    }

    /// ``seal(_:into:)`` for an array: the records for `plaintext`.
    ///
    /// - Throws: As ``seal(_:into:)``.
    public func seal(_ plaintext: [UInt8]) throws(LinkError) -> [UInt8] {
        var output: [UInt8] = []
        output.reserveCapacity(Self.recordsLength(forPlaintext: plaintext.count))
        let error = plaintext.withUnsafeBytes { bytes -> LinkError? in
            do throws(LinkError) {
                try seal(bytes, into: &output)
                return nil
            } catch {
                return error
            }
        }
        if let error { throw error }
        return output
    }

    /// How many bytes of records ``seal(_:into:)`` makes of `count` bytes of plaintext.
    public static func recordsLength(forPlaintext count: Int) -> Int {
        let records = count / maximumChunk + (count % maximumChunk == 0 ? 0 : 1)
        return count + records * (LinkRekey.lengthPrefixSize + NoiseCipherState.tagLength)
    }
}

@available(*, unavailable, message: "A LinkRecordWriter belongs to one connection's thread.")
extension LinkRecordWriter: Sendable {}

/// Opens the peer's incoming records, under the receiving cipher state of a finished handshake, from the TCP stream
/// in whatever pieces it arrives: a piece may end inside a length prefix or a record, or hold many records.
///
/// Every length is checked before it is used: a `len` below 16 (no room for the tag) is refused with
/// ``LinkError/ciphertextTooShort(actual:)``; a `len` above 65,535 cannot be written in 16 bits. A record is
/// delivered only once its tag has been checked, and decrypted in place in the reader's buffer. The first failure
/// ends the reader (fail closed): nothing from that record or anything after it is delivered, every later call
/// throws the same error, and the connection must close. Records before it in the same piece have been delivered.
///
/// Ownership: owns its use of the cipher state and a buffer of at most one incomplete record (65,537 bytes) between
/// calls, plus the piece being read.
///
/// Threading: not thread-safe; confined to the connection's thread. Deliberately not `Sendable`.
public final class LinkRecordReader {
    private let cipher: NoiseCipherState
    private var rekeySchedule: LinkRekeySchedule
    /// After how many records the key is replaced; must match the writer's.
    public var rekeyInterval: UInt64 { rekeySchedule.interval }
    private var pending: [UInt8] = []
    private var failure: LinkError?

    /// A reader over `cipher`, which must be fresh from the handshake (`n` = 0) or only ever used by readers.
    ///
    /// - Parameters:
    ///   - cipher: The receiving cipher state (``NoiseTransportKeys/receiving``).
    ///   - rekeyInterval: Records per key; the protocol's is ``LinkRekey/defaultInterval``, smaller ones are for
    ///     tests. Must be at least 1.
    public init(cipher: NoiseCipherState, rekeyInterval: UInt64 = LinkRekey.defaultInterval) {
        self.cipher = cipher
        rekeySchedule = LinkRekeySchedule(interval: rekeyInterval)
    }

    /// The bytes of an incomplete record held until the rest arrives.
    public var bufferedByteCount: Int { pending.count }

    /// Whether the reader has failed; it then delivers nothing more.
    public var hasFailed: Bool { failure != nil }

    /// Reads the next piece of the stream and hands each authentic record's plaintext, in order, to `deliver`.
    ///
    /// - Parameters:
    ///   - bytes: The next bytes from the connection, any number.
    ///   - deliver: Called once per complete, authentic record that carries plaintext, with that plaintext; the
    ///     pointer is valid only during the call.
    /// - Throws: ``LinkError/ciphertextTooShort(actual:)`` for a `len` below 16; ``LinkError/authenticationFailed``
    ///   for a record whose tag does not match (altered, reordered, or under another key);
    ///   ``LinkError/nonceExhausted`` when the cipher state has no nonce left; ``LinkError/crypto(_:)`` if libgcrypt
    ///   fails; after any failure, that failure again.
    public func read(_ bytes: UnsafeRawBufferPointer, deliver: (UnsafeRawBufferPointer) -> Void) throws(LinkError) {
        if let failure { throw failure }
        pending.append(contentsOf: bytes)
        let (consumed, error) = pending.withUnsafeMutableBytes { buffer -> (Int, LinkError?) in
            var offset = 0
            while buffer.count - offset >= LinkRekey.lengthPrefixSize {
                let length = Int(buffer[offset]) << 8 | Int(buffer[offset + 1])
                guard length >= NoiseCipherState.tagLength else {
                    return (offset, .ciphertextTooShort(actual: length))
                }
                let start = offset + LinkRekey.lengthPrefixSize
                guard buffer.count - start >= length else { break }
                let record = UnsafeMutableRawBufferPointer(rebasing: buffer[start..<(start + length)])
                let plaintextLength: Int
                do throws(LinkError) {
                    plaintextLength = try cipher.decryptInPlace(record)
                } catch {
                    return (offset, error)
                }
                if plaintextLength > 0 {
                    deliver(UnsafeRawBufferPointer(rebasing: record[0..<plaintextLength]))
                }
                offset = start + length
                if let error = rekeySchedule.countRecord(rekeying: cipher) { return (offset, error) }
            }
            return (offset, nil)
        }
        if let error {
            failure = error
            secureZero(&pending)
            pending = []
            throw error
        }
        pending.removeFirst(consumed)
    }

    /// ``read(_:deliver:)`` for an array, appending each record's plaintext to `plaintext`. What was appended
    /// before a failure stays.
    ///
    /// - Throws: As ``read(_:deliver:)``.
    public func read(_ bytes: [UInt8], into plaintext: inout [UInt8]) throws(LinkError) {
        let error = bytes.withUnsafeBytes { piece -> LinkError? in
            do throws(LinkError) {
                try read(piece) { plaintext.append(contentsOf: $0) }
                return nil
            } catch {
                return error
            }
        }
        if let error { throw error }
    }

    /// Says the connection has ended; checks it ended between records. Noise does not detect a cut at a record
    /// boundary (the inner stream's `bye` frame does); this detects a cut inside one.
    ///
    /// - Throws: ``LinkError/truncatedRecord(buffered:)`` if part of a record was held; the reader's failure, if it
    ///   had failed.
    public func finish() throws(LinkError) {
        if let failure { throw failure }
        guard pending.isEmpty else {
            let error = LinkError.truncatedRecord(buffered: pending.count)
            failure = error
            pending = []
            throw error
        }
    }
}

@available(*, unavailable, message: "A LinkRecordReader belongs to one connection's thread.")
extension LinkRecordReader: Sendable {}
