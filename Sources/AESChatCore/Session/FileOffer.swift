/// A file offer: what a sender announces before streaming a file.
public struct FileOffer: Equatable, Sendable {
    /// Identifies the file at its sender (stable while the file is unchanged, so a new offer of
    /// the same file can resume).
    public var fileID: [UInt8]
    /// Exact size in bytes.
    public var size: UInt64
    /// Bytes per chunk (the last chunk may be shorter).
    public var chunkSize: UInt32
    /// The fresh random AES-256 key of this transfer's chunks.
    public var key: [UInt8]
    /// The name offered (the receiver sanitises it).
    public var name: String
    /// False when the offered name was not valid UTF-8: ``name`` then holds it with U+FFFD in place of the bad bytes,
    /// for the receiver's own notice only, and the receiver declines the offer (``problem``). Not encoded.
    public var nameIsValid: Bool

    /// Creates an offer.
    public init(
        fileID: [UInt8], size: UInt64, chunkSize: UInt32, key: [UInt8], name: String, nameIsValid: Bool = true
    ) {
        self.fileID = fileID
        self.size = size
        self.chunkSize = chunkSize
        self.key = key
        self.name = name
        self.nameIsValid = nameIsValid
    }

    /// The smallest chunk size a receiver accepts: 1 KiB.
    public static let minimumChunkSize: UInt32 = 1024
    /// The largest chunk size a receiver accepts: 4 MiB.
    public static let maximumChunkSize: UInt32 = 4 * 1024 * 1024

    /// The largest size a transfer may declare: 2^53 bytes (8 PiB). Every offset, chunk count
    /// and byte count of a transfer then fits a file offset (`off_t`) and is exact as a JSON
    /// number; a receiver declines larger offers (docs/PROTOCOL.md, file transfer).
    public static let maximumSize: UInt64 = 1 << 53

    /// Why a receiver must decline this offer whatever its user wants, in words for the sender: a field out of
    /// the bounds of docs/PROTOCOL.md section 7.1 (chunk size, size, key length, a name that is not UTF-8). Nil
    /// for an offer within them. Checked before anything is computed from the offer's numbers.
    public var problem: String? {
        guard chunkSize >= Self.minimumChunkSize, chunkSize <= Self.maximumChunkSize else {
            return "chunk size \(chunkSize) out of bounds (allowed 1024 to 4194304 bytes)"
        }
        guard size <= Self.maximumSize else {
            return "the offer declares \(size) bytes, more than a transfer can carry (at most 2^53 bytes); refused"
        }
        guard fileID.count == MessageContent.fileIDSize, key.count == 32 else { return "the offer is malformed" }
        guard nameIsValid else { return "the file name is not valid UTF-8" }
        return nil
    }

    /// Number of chunks: at least one, so that an empty file still has a final chunk. Computed
    /// without overflow for any size and chunk size (the chunk size is at least 1 KiB once decoded;
    /// 0 counts as 1 byte so that nothing here can trap).
    public var chunkCount: UInt64 {
        let chunk = UInt64(max(chunkSize, 1))
        let (whole, rest) = size.quotientAndRemainder(dividingBy: chunk)
        return max(1, whole + (rest == 0 ? 0 : 1))
    }
}
