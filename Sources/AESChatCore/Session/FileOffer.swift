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

    /// Creates an offer.
    public init(fileID: [UInt8], size: UInt64, chunkSize: UInt32, key: [UInt8], name: String) {
        self.fileID = fileID
        self.size = size
        self.chunkSize = chunkSize
        self.key = key
        self.name = name
    }

    /// The largest size a transfer may declare: 2^53 bytes (8 PiB). Every offset, chunk count
    /// and byte count of a transfer then fits a file offset (`off_t`) and is exact as a JSON
    /// number; a receiver declines larger offers (docs/PROTOCOL.md, file transfer).
    public static let maximumSize: UInt64 = 1 << 53

    /// Number of chunks: at least one, so that an empty file still has a final chunk. Computed
    /// without overflow for any size and chunk size (the chunk size is at least 1 KiB once decoded;
    /// 0 counts as 1 byte so that nothing here can trap).
    public var chunkCount: UInt64 {
        let chunk = UInt64(max(chunkSize, 1))
        let (whole, rest) = size.quotientAndRemainder(dividingBy: chunk)
        return max(1, whole + (rest == 0 ? 0 : 1))
    }
}
