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
    /// Seals one record in place: `record` holds ``recordHeaderLength`` bytes of room, then the plaintext (0 to
    /// ``maximumRecordPlaintext`` bytes), then ``recordTrailerLength`` bytes of room; on return it is the record as
    /// it goes on the wire.
    ///
    /// - Throws: ``TransportError/linkFailed(reason:)`` when no record can be sealed any more (the nonce space
    ///   is used up, or the cipher failed); the connection then closes with it.
    func sealRecord(_ record: UnsafeMutableRawBufferPointer) throws(TransportError)
    /// Takes the next bytes received, in whatever pieces they arrived, and hands each authentic record's plaintext
    /// to `deliver`, in order; the pointer is valid only during the call. Records that arrived whole are opened in
    /// place, so `bytes` is overwritten; only the start of a record cut by the end of `bytes` is copied and kept
    /// until the rest arrives.
    ///
    /// - Throws: ``TransportError/linkFailed(reason:)`` at the first record that is malformed or fails
    ///   authentication; nothing from it or after it is delivered, and the connection closes with it.
    func openRecords(_ bytes: UnsafeMutableRawBufferPointer, deliver: (UnsafeRawBufferPointer) -> Void)
        throws(TransportError)
    /// The peer ended the stream; throws ``TransportError/linkFailed(reason:)`` if it ended inside a record.
    func finishOpening() throws(TransportError)
}
