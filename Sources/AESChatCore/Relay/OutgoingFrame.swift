/// A frame for one or a few members: its own array, or a range of a shared buffer.
enum OutgoingFrame {
    case array([UInt8])
    case shared(SharedBuffer, Range<Int>)

    /// Its length on the wire, prefix included.
    var byteCount: Int {
        switch self {
        case .array(let bytes): bytes.count
        case .shared(_, let range): range.count
        }
    }
}
