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

    /// Counts one record sealed or opened with `cipher`, and rekeys it after every ``interval``.
    ///
    /// - Throws: The rekey's failure.
    mutating func countRecord<Cipher: LinkCipher>(rekeying cipher: inout Cipher) throws(LinkError) {
        recordsUnderKey += 1
        guard recordsUnderKey == interval else { return }
        recordsUnderKey = 0
        try cipher.rekey()
    }
}

/// Runs `body` and returns its failure, for calls through rethrowing functions (`withUnsafeBytes`), which would
/// widen a typed error to `any Error`.
func linkFailure(_ body: () throws(LinkError) -> Void) -> LinkError? {
    do {
        try body()
        return nil
    } catch {
        return error
    }
}

/// The error that ended a sealer or opener, kept by reference: one that has not failed (every idle connection's)
/// then spends 8 bytes on it rather than an inline `LinkError?`'s 41.
final class LinkFailure {
    let error: LinkError

    init(_ error: LinkError) {
        self.error = error
    }
}

/// One direction's sealing: the cipher state, its rekey schedule and the first failure. The one implementation
/// behind ``LinkRecordWriter`` and ``LinkRecordLayer``: it seals a record that its caller laid out, in place.
struct LinkRecordSealer<Cipher: LinkCipher> {
    private var cipher: Cipher
    private(set) var rekeySchedule: LinkRekeySchedule
    private var failure: LinkFailure?

    init(cipher: Cipher, rekeyInterval: UInt64) {
        self.cipher = cipher
        rekeySchedule = LinkRekeySchedule(interval: rekeyInterval)
    }

    /// Throws the failure that ended this sealer, if any.
    func throwIfFailed() throws(LinkError) {
        if let failure { throw failure.error }
    }

    /// Seals one record in place: `record` is the 2-byte length prefix's room, the plaintext (0 to 65,519 bytes),
    /// then 16 bytes of room for the tag; on return it is the record as it goes on the wire.
    ///
    /// - Throws: ``LinkError/nonceExhausted`` when the cipher state has no nonce left; ``LinkError/crypto(_:)`` if
    ///   libgcrypt fails; after any failure, that failure again (the record's bytes are then undefined).
    mutating func seal(record: UnsafeMutableRawBufferPointer) throws(LinkError) {
        let sealed = UnsafeMutableRawBufferPointer(rebasing: record[LinkRekey.lengthPrefixSize...])
        let plaintext = UnsafeRawBufferPointer(rebasing: sealed[0..<max(0, sealed.count - NoiseCipherState.tagLength)])
        try withUnsafeTemporaryAllocation(of: UnsafeRawBufferPointer.self, capacity: 1) {
            (pieces) throws(LinkError) in
            pieces.initialize(repeating: plaintext)
            try seal(record: record, gathering: UnsafeBufferPointer(pieces))
        }
    }

    /// Seals one record whose plaintext is the concatenation of `pieces`, reading each piece once: `record` is the
    /// 2-byte length prefix's room, room for the plaintext (the pieces' total length, at most 65,519 bytes), then 16
    /// bytes of room for the tag; on return it is the record as it goes on the wire. A piece is either exactly the
    /// plaintext's room (sealing in place) or outside `record`.
    ///
    /// - Throws: As ``seal(record:)``.
    mutating func seal(
        record: UnsafeMutableRawBufferPointer, gathering pieces: UnsafeBufferPointer<UnsafeRawBufferPointer>
    ) throws(LinkError) {
        try throwIfFailed()
        let sealedLength = record.count - LinkRekey.lengthPrefixSize
        precondition(
            sealedLength >= NoiseCipherState.tagLength && sealedLength <= NoiseCipherState.maximumMessageLength,
            "a record laid out with room for \(sealedLength) sealed bytes")
        record[0] = UInt8(truncatingIfNeeded: sealedLength >> 8)
        record[1] = UInt8(truncatingIfNeeded: sealedLength)
        do {
            try cipher.encrypt(
                gathering: pieces,
                into: UnsafeMutableRawBufferPointer(rebasing: record[LinkRekey.lengthPrefixSize...]))
        } catch {
            failure = LinkFailure(error)
            throw error
        }
        do {
            try rekeySchedule.countRecord(rekeying: &cipher)
        } catch {
            failure = LinkFailure(error)
            throw error
        }
    }
}

/// One direction's opening: the cipher state, its rekey schedule, the first failure, and the start of a record cut
/// by the end of a read. The one implementation behind ``LinkRecordReader`` and ``LinkRecordLayer``.
///
/// Records that arrive whole in one piece are opened in place in that piece; only a record cut by the piece's end is
/// copied (into ``pending``, which holds no storage between records).
struct LinkRecordOpener<Cipher: LinkCipher> {
    private var cipher: Cipher
    private(set) var rekeySchedule: LinkRekeySchedule
    private var failure: LinkFailure?
    /// Whether the opener has failed; it then delivers nothing more.
    var hasFailed: Bool { failure != nil }
    /// The start of a record whose end has not arrived yet (its length prefix included); empty between records.
    private(set) var pending: [UInt8] = []

    init(cipher: Cipher, rekeyInterval: UInt64) {
        self.cipher = cipher
        rekeySchedule = LinkRekeySchedule(interval: rekeyInterval)
    }

    /// Opens the records in `bytes` (the next piece of the stream, overwritten by the plaintext) and hands each
    /// authentic record's plaintext, in order, to `deliver` (records with no plaintext are not delivered).
    ///
    /// - Throws: ``LinkError/ciphertextTooShort(actual:)`` for a `len` below 16; ``LinkError/authenticationFailed``
    ///   for a record whose tag does not match; ``LinkError/nonceExhausted``; ``LinkError/crypto(_:)``; after any
    ///   failure, that failure again. Nothing from the failed record or after it is delivered.
    mutating func open(
        _ bytes: UnsafeMutableRawBufferPointer, deliver: (UnsafeRawBufferPointer) -> Void
    ) throws(LinkError) {
        try open(bytes, into: { nil }, filled: { _ in }, deliver: deliver)
    }

    /// ``open(_:deliver:)`` that puts plaintext straight into storage the receiver lends, when it has some: before
    /// each record that carries plaintext, `destination` is asked for room; if it gives some, the record's first
    /// plaintext bytes (as many as fit) are decrypted into it rather than in place, and once the record has
    /// authenticated, `filled` is told how many, before `deliver` gets the rest of that record's plaintext, if any.
    /// A record that fails to authenticate leaves zeros in the room it was given, and `filled` is not called.
    ///
    /// - Throws: As ``open(_:deliver:)``.
    mutating func open(
        _ bytes: UnsafeMutableRawBufferPointer, into destination: () -> UnsafeMutableRawBufferPointer?,
        filled: (Int) -> Void, deliver: (UnsafeRawBufferPointer) -> Void
    ) throws(LinkError) {
        if let failure { throw failure.error }
        do {
            try openRecords(bytes, destination, filled, deliver)
        } catch {
            failure = LinkFailure(error)
            secureZero(&pending)
            pending = []
            throw error
        }
    }

    private mutating func openRecords(
        _ bytes: UnsafeMutableRawBufferPointer, _ destination: () -> UnsafeMutableRawBufferPointer?,
        _ filled: (Int) -> Void, _ deliver: (UnsafeRawBufferPointer) -> Void
    ) throws(LinkError) {
        var offset = 0
        if !pending.isEmpty {
            // Complete the record held from the last piece, copying only what it lacks.
            if pending.count < LinkRekey.lengthPrefixSize {
                let take = min(LinkRekey.lengthPrefixSize - pending.count, bytes.count)
                pending.append(contentsOf: UnsafeRawBufferPointer(rebasing: bytes[0..<take]))
                offset = take
                guard pending.count == LinkRekey.lengthPrefixSize else { return }
            }
            let length = try Self.checkedLength(pending[0], pending[1])
            let wanted = LinkRekey.lengthPrefixSize + length - pending.count
            let take = min(wanted, bytes.count - offset)
            pending.reserveCapacity(LinkRekey.lengthPrefixSize + length)
            pending.append(contentsOf: UnsafeRawBufferPointer(rebasing: bytes[offset..<(offset + take)]))
            offset += take
            guard take == wanted else { return }
            var record = pending
            pending = []
            defer { secureZero(&record) }
            let failure = record.withUnsafeMutableBytes { buffer in
                linkFailure {
                    () throws(LinkError) in
                    try openOne(
                        UnsafeMutableRawBufferPointer(rebasing: buffer[LinkRekey.lengthPrefixSize...]), destination,
                        filled, deliver)
                }
            }
            if let failure { throw failure }
        }
        while bytes.count - offset >= LinkRekey.lengthPrefixSize {
            let length = try Self.checkedLength(bytes[offset], bytes[offset + 1])
            let start = offset + LinkRekey.lengthPrefixSize
            guard bytes.count - start >= length else { break }
            try openOne(
                UnsafeMutableRawBufferPointer(rebasing: bytes[start..<(start + length)]), destination, filled, deliver)
            offset = start + length
        }
        if offset < bytes.count {
            pending = Array(UnsafeRawBufferPointer(rebasing: bytes[offset...]))
        }
    }

    /// The `len` of a record from its two prefix bytes, refused below the tag's 16 bytes.
    private static func checkedLength(_ high: UInt8, _ low: UInt8) throws(LinkError) -> Int {
        let length = Int(high) << 8 | Int(low)
        guard length >= NoiseCipherState.tagLength else { throw .ciphertextTooShort(actual: length) }
        return length
    }

    /// Opens one record's sealed bytes (into the receiver's room, as far as it has some, and otherwise in place),
    /// hands its plaintext over, and counts it for rekeying.
    private mutating func openOne(
        _ sealed: UnsafeMutableRawBufferPointer, _ destination: () -> UnsafeMutableRawBufferPointer?,
        _ filled: (Int) -> Void, _ deliver: (UnsafeRawBufferPointer) -> Void
    ) throws(LinkError) {
        let plaintextLength = sealed.count - NoiseCipherState.tagLength
        var diverted = 0
        if plaintextLength > 0, let room = destination(), room.count > 0 {
            diverted = min(room.count, plaintextLength)
            _ = try cipher.decryptInPlace(
                sealed, divertingPrefixTo: UnsafeMutableRawBufferPointer(rebasing: room[0..<diverted]))
            filled(diverted)
        } else {
            _ = try cipher.decryptInPlace(sealed)
        }
        if plaintextLength > diverted {
            deliver(UnsafeRawBufferPointer(rebasing: sealed[diverted..<plaintextLength]))
        }
        try rekeySchedule.countRecord(rekeying: &cipher)
    }

    /// How many bytes the next piece should have, 1 to `limit`: the rest of the record held (if its length is
    /// known), then as many records of the largest size (65,537 bytes on the wire) as fit; `limit` when that comes
    /// to nothing. Pieces of that length cut no record while the peer sends full records, so none is copied into
    /// ``pending``.
    func preferredReadLength(limit: Int) -> Int {
        let fullRecord = LinkRekey.lengthPrefixSize + NoiseCipherState.maximumMessageLength
        var rest = 0
        if !pending.isEmpty {
            guard pending.count >= LinkRekey.lengthPrefixSize else { return limit }
            rest = LinkRekey.lengthPrefixSize + (Int(pending[0]) << 8 | Int(pending[1])) - pending.count
        }
        guard rest < limit else { return limit }
        let length = rest + (limit - rest) / fullRecord * fullRecord
        return length > 0 ? length : limit
    }

    /// Checks the stream ended between records.
    ///
    /// - Throws: ``LinkError/truncatedRecord(buffered:)`` if part of a record was held; the failure, if any.
    mutating func finish() throws(LinkError) {
        if let failure { throw failure.error }
        guard pending.isEmpty else {
            let error = LinkError.truncatedRecord(buffered: pending.count)
            failure = LinkFailure(error)
            secureZero(&pending)
            pending = []
            throw error
        }
    }
}

/// Seals this side's outgoing byte stream into records, under the sending cipher state of a finished handshake
/// (for tests and the fuzzer; connections use ``LinkRecordLayer``, which shares its implementation,
/// ``LinkRecordSealer``).
///
/// Ownership: owns its use of the cipher state (nothing else may encrypt with it). Any failure ends the writer: every
/// later call throws the same error, and the connection must close.
///
/// Threading: not thread-safe; confined to the connection's thread. Deliberately not `Sendable`.
public final class LinkRecordWriter {
    /// The most plaintext one record carries: 65,519 bytes.
    public static let maximumChunk = NoiseCipherState.maximumPlaintextLength

    private var sealer: LinkRecordSealer<NoiseCipherState>
    /// After how many records the key is replaced.
    public var rekeyInterval: UInt64 { sealer.rekeySchedule.interval }

    /// A writer over `cipher`, which must be fresh from the handshake (`n` = 0) or only ever used by writers.
    ///
    /// - Parameters:
    ///   - cipher: The sending cipher state (``NoiseTransportKeys/sending``).
    ///   - rekeyInterval: Records per key; the protocol's is ``LinkRekey/defaultInterval``, smaller ones are for
    ///     tests. Must be at least 1.
    public init(cipher: NoiseCipherState, rekeyInterval: UInt64 = LinkRekey.defaultInterval) {
        sealer = LinkRecordSealer(cipher: cipher, rekeyInterval: rekeyInterval)
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
        let start = output.count
        var offset = 0
        do throws(LinkError) {
            while offset < plaintext.count {
                let chunk = min(Self.maximumChunk, plaintext.count - offset)
                let recordStart = output.count
                let recordLength = LinkRekey.lengthPrefixSize + chunk + NoiseCipherState.tagLength
                output.append(contentsOf: repeatElement(0, count: LinkRekey.lengthPrefixSize))
                output.append(contentsOf: UnsafeRawBufferPointer(rebasing: plaintext[offset..<(offset + chunk)]))
                output.append(contentsOf: repeatElement(0, count: NoiseCipherState.tagLength))
                let failure = output.withUnsafeMutableBytes { bytes in
                    linkFailure { () throws(LinkError) in
                        try sealer.seal(
                            record: UnsafeMutableRawBufferPointer(
                                rebasing: bytes[recordStart..<(recordStart + recordLength)]))
                    }
                }
                if let failure { throw failure }
                offset += chunk
            }
            // No plaintext makes no record, but a failed writer still says so.
            try sealer.throwIfFailed()
        } catch {
            output.removeSubrange(start...)
            throw error
        }
    }

    /// ``seal(_:into:)`` for an array: the records for `plaintext`.
    ///
    /// - Throws: As ``seal(_:into:)``.
    public func seal(_ plaintext: [UInt8]) throws(LinkError) -> [UInt8] {
        var output: [UInt8] = []
        output.reserveCapacity(Self.recordsLength(forPlaintext: plaintext.count))
        let failure = plaintext.withUnsafeBytes { bytes in
            linkFailure { () throws(LinkError) in try seal(bytes, into: &output) }
        }
        if let failure { throw failure }
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
/// in whatever pieces it arrives: a piece may end inside a length prefix or a record, or hold many records (for
/// tests and the fuzzer; connections use ``LinkRecordLayer``, which shares its implementation,
/// ``LinkRecordOpener``).
///
/// Every length is checked before it is used: a `len` below 16 (no room for the tag) is refused with
/// ``LinkError/ciphertextTooShort(actual:)``; a `len` above 65,535 cannot be written in 16 bits. A record is
/// delivered only once its tag has been checked. The first failure ends the reader (fail closed): nothing from that
/// record or anything after it is delivered, every later call throws the same error, and the connection must close.
/// Records before it in the same piece have been delivered.
///
/// Ownership: owns its use of the cipher state and a buffer of at most one incomplete record (65,537 bytes) between
/// calls.
///
/// Threading: not thread-safe; confined to the connection's thread. Deliberately not `Sendable`.
public final class LinkRecordReader {
    private var opener: LinkRecordOpener<NoiseCipherState>
    /// After how many records the key is replaced; must match the writer's.
    public var rekeyInterval: UInt64 { opener.rekeySchedule.interval }

    /// A reader over `cipher`, which must be fresh from the handshake (`n` = 0) or only ever used by readers.
    ///
    /// - Parameters:
    ///   - cipher: The receiving cipher state (``NoiseTransportKeys/receiving``).
    ///   - rekeyInterval: Records per key; the protocol's is ``LinkRekey/defaultInterval``, smaller ones are for
    ///     tests. Must be at least 1.
    public init(cipher: NoiseCipherState, rekeyInterval: UInt64 = LinkRekey.defaultInterval) {
        opener = LinkRecordOpener(cipher: cipher, rekeyInterval: rekeyInterval)
    }

    /// The bytes of an incomplete record held until the rest arrives.
    public var bufferedByteCount: Int { opener.pending.count }

    /// Whether the reader has failed; it then delivers nothing more.
    public var hasFailed: Bool { opener.hasFailed }

    /// Reads the next piece of the stream and hands each authentic record's plaintext, in order, to `deliver`.
    /// The piece is copied once (the caller's bytes are not changed), and opened in the copy.
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
        var piece = Array(bytes)
        defer { secureZero(&piece) }
        let failure = piece.withUnsafeMutableBytes { buffer in
            linkFailure { () throws(LinkError) in try opener.open(buffer, deliver: deliver) }
        }
        if let failure { throw failure }
    }

    /// ``read(_:deliver:)`` for an array, appending each record's plaintext to `plaintext`. What was appended
    /// before a failure stays.
    ///
    /// - Throws: As ``read(_:deliver:)``.
    public func read(_ bytes: [UInt8], into plaintext: inout [UInt8]) throws(LinkError) {
        let failure = bytes.withUnsafeBytes { piece in
            linkFailure { () throws(LinkError) in try read(piece) { plaintext.append(contentsOf: $0) } }
        }
        if let failure { throw failure }
    }

    /// Says the connection has ended; checks it ended between records. Noise does not detect a cut at a record
    /// boundary (the inner stream's `bye` frame does); this detects a cut inside one.
    ///
    /// - Throws: ``LinkError/truncatedRecord(buffered:)`` if part of a record was held; the reader's failure, if it
    ///   had failed.
    public func finish() throws(LinkError) {
        try opener.finish()
    }
}

@available(*, unavailable, message: "A LinkRecordReader belongs to one connection's thread.")
extension LinkRecordReader: Sendable {}
