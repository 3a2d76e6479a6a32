/// What a connection applies to its byte stream once an endpoint has finished a key exchange over it (the
/// encrypted link to the relay, `Link/`): outgoing bytes are sealed into records, incoming records are checked and
/// opened, and the handler sees only plaintext. Transport knows nothing of the cipher; it only cuts its output into
/// records of at most ``maximumRecordPlaintext`` bytes and hands incoming bytes over as they arrive
/// (``Connection/protect(with:)``).
///
/// A record on the wire is ``recordHeaderLength`` bytes, the plaintext's sealed form, then ``recordTrailerLength``
/// bytes. Records must be sealed and sent in order, and none may be dropped once sealed: the peer counts them.
///
/// Threading: confined to the connection's thread (sealing and opening may use a cipher workspace of that thread).
public protocol RecordProtection: AnyObject {
    /// The most plaintext one record carries.
    var maximumRecordPlaintext: Int { get }
    /// The bytes before a record's sealed plaintext (its length prefix).
    var recordHeaderLength: Int { get }
    /// The bytes after a record's sealed plaintext (its tag).
    var recordTrailerLength: Int { get }
    /// Seals one record whose plaintext is the concatenation of `pieces` (the output queued on a connection, read
    /// where it waits: no copy is made first): `record` holds ``recordHeaderLength`` bytes of room, then room for the
    /// plaintext (the pieces' total length, 0 to ``maximumRecordPlaintext`` bytes), then ``recordTrailerLength``
    /// bytes of room; on return it is the record as it goes on the wire. A piece is either exactly the plaintext's
    /// room in `record` (sealing in place: see ``sealRecord(_:)``) or outside `record`.
    ///
    /// - Throws: ``TransportError/linkFailed(reason:)`` when no record can be sealed any more (the nonce space
    ///   is used up, or the cipher failed); the connection then closes with it.
    func sealRecord(
        _ record: UnsafeMutableRawBufferPointer, gathering pieces: UnsafeBufferPointer<UnsafeRawBufferPointer>)
        throws(TransportError)
    /// Takes the next bytes received, in whatever pieces they arrived, and opens each authentic record's plaintext,
    /// in order: straight into storage the receiver lends when `destination` (asked before each record that carries
    /// plaintext) gives some, as many bytes as fit, reported through `filled` once the record has authenticated;
    /// the rest (all of it when there is no such storage) to `deliver`, after `filled`. The pointer `deliver` gets is
    /// valid only during the call. Records that arrived whole are opened in place, so `bytes` is overwritten; only
    /// the start of a record cut by the end of `bytes` is copied and kept until the rest arrives.
    ///
    /// - Throws: ``TransportError/linkFailed(reason:)`` at the first record that is malformed or fails
    ///   authentication; nothing from it or after it is delivered or reported (room it was given is left zeroed),
    ///   and the connection closes with it.
    func openRecords(
        _ bytes: UnsafeMutableRawBufferPointer, into destination: () -> UnsafeMutableRawBufferPointer?,
        filled: (Int) -> Void, deliver: (UnsafeRawBufferPointer) -> Void
    ) throws(TransportError)
    /// The peer ended the stream; throws ``TransportError/linkFailed(reason:)`` if it ended inside a record.
    func finishOpening() throws(TransportError)
    /// How many bytes the next read should take, 1 to `limit`: as many as end where a record ends if the peer
    /// sends records of the largest size (bulk data), after the rest of a record held from the last read. Reads of
    /// that length cut no record, so none has its start copied and kept until the rest arrives.
    func preferredReadLength(limit: Int) -> Int
}

extension RecordProtection {
    /// Seals one record in place: `record` holds ``recordHeaderLength`` bytes of room, then the plaintext (0 to
    /// ``maximumRecordPlaintext`` bytes), then ``recordTrailerLength`` bytes of room; on return it is the record as
    /// it goes on the wire.
    ///
    /// - Throws: As ``sealRecord(_:gathering:)``.
    public func sealRecord(_ record: UnsafeMutableRawBufferPointer) throws(TransportError) {
        let plaintext = UnsafeRawBufferPointer(
            rebasing: record[min(recordHeaderLength, record.count)..<max(0, record.count - recordTrailerLength)])
        try withUnsafeTemporaryAllocation(of: UnsafeRawBufferPointer.self, capacity: 1) {
            (pieces) throws(TransportError) in
            pieces.initialize(repeating: plaintext)
            try sealRecord(record, gathering: UnsafeBufferPointer(pieces))
        }
    }

    /// Opens records as ``openRecords(_:into:filled:deliver:)`` does, handing every record's plaintext to
    /// `deliver` where it was opened (in `bytes`).
    ///
    /// - Throws: As ``openRecords(_:into:filled:deliver:)``.
    public func openRecords(_ bytes: UnsafeMutableRawBufferPointer, deliver: (UnsafeRawBufferPointer) -> Void)
        throws(TransportError)
    {
        try openRecords(bytes, into: { nil }, filled: { _ in }, deliver: deliver)
    }
}
