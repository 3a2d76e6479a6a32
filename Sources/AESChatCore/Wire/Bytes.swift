/// Somewhere the Wire encoders write bytes to, in network byte order (big-endian): a growing
/// array (``ByteWriter``) or a fixed buffer shared by many connections (``SharedBuffer``), so that
/// one encoder writes a frame straight into a room's batch or a file chunk's frame.
public protocol ByteSink {
    /// Appends one byte.
    mutating func write(_ value: UInt8)
    /// Appends raw bytes with no length prefix.
    mutating func write(bytes: UnsafeRawBufferPointer)
    /// Appends a 32-bit big-endian integer (a length prefix, mostly). A default writes its bytes;
    /// a sink may store it at once.
    mutating func write(_ value: UInt32)
}

extension ByteSink {
    /// Appends a 16-bit big-endian integer.
    @inlinable
    public mutating func write(_ value: UInt16) { withUnsafeBytes(of: value.bigEndian) { write(bytes: $0) } }

    /// Appends a 32-bit big-endian integer.
    @inlinable
    public mutating func write(_ value: UInt32) { withUnsafeBytes(of: value.bigEndian) { write(bytes: $0) } }

    /// Appends a 64-bit big-endian integer.
    @inlinable
    public mutating func write(_ value: UInt64) { withUnsafeBytes(of: value.bigEndian) { write(bytes: $0) } }

    /// Appends a string as a one-byte length followed by its UTF-8 bytes (`str8`).
    /// - Precondition: the UTF-8 form is at most 255 bytes (callers validate names before encoding).
    @inlinable
    public mutating func writeShortString(_ text: String) {
        var text = text
        text.withUTF8 { utf8 in
            precondition(utf8.count <= 255, "short string longer than 255 bytes")
            write(UInt8(utf8.count))
            write(bytes: UnsafeRawBufferPointer(utf8))
        }
    }

    /// Appends bytes as a two-byte length followed by the bytes (`bytes16`).
    /// - Precondition: at most 65,535 bytes (profiles are far smaller).
    @inlinable
    public mutating func writeBytes16(_ data: [UInt8]) {
        precondition(data.count <= 65_535, "bytes16 field longer than 65,535 bytes")
        write(UInt16(data.count))
        data.withUnsafeBytes { write(bytes: $0) }
    }

    /// Appends raw bytes with no length prefix.
    @inlinable
    public mutating func write(bytes: [UInt8]) { bytes.withUnsafeBytes { write(bytes: $0) } }
}

/// A byte array as a sink: encoders append to it (the load generator builds its frames this way).
extension Array: ByteSink where Element == UInt8 {
    /// Appends one byte.
    @inlinable
    public mutating func write(_ value: UInt8) { append(value) }

    /// Appends raw bytes with no length prefix.
    @inlinable
    public mutating func write(bytes: UnsafeRawBufferPointer) { append(contentsOf: bytes) }
}

/// Builds a byte array in network byte order (big-endian).
///
/// A plain value type: each writer owns its array; `bytes` hands it over without copying.
public struct ByteWriter: ByteSink, Sendable {
    /// The bytes written so far.
    public private(set) var bytes: [UInt8]

    /// Creates an empty writer.
    /// - Parameter capacity: bytes to reserve up front, to avoid regrowth.
    public init(capacity: Int = 64) {
        bytes = []
        bytes.reserveCapacity(capacity)
    }

    /// Appends one byte.
    public mutating func write(_ value: UInt8) { bytes.append(value) }

    /// Appends raw bytes with no length prefix.
    public mutating func write<C: Collection<UInt8>>(contentsOf data: C) { bytes.append(contentsOf: data) }

    /// Appends raw bytes with no length prefix.
    public mutating func write(bytes data: UnsafeRawBufferPointer) { bytes.append(contentsOf: data) }

    /// Appends a string as a two-byte length followed by its UTF-8 bytes, cut at a character boundary
    /// so that it fits in 65,535 bytes.
    public mutating func writeLongString(_ text: String) {
        var utf8 = Array(text.utf8)
        if utf8.count > 65_535 {
            var cut = 65_535
            while cut > 0 && (utf8[cut] & 0xC0) == 0x80 { cut -= 1 }
            utf8 = Array(utf8[..<cut])
        }
        write(UInt16(utf8.count))
        bytes.append(contentsOf: utf8)
    }

    /// Overwrites four bytes at `offset` with a big-endian integer (used to patch a length prefix).
    public mutating func patch(_ value: UInt32, at offset: Int) {
        bytes[offset] = UInt8(truncatingIfNeeded: value >> 24)
        bytes[offset + 1] = UInt8(truncatingIfNeeded: value >> 16)
        bytes[offset + 2] = UInt8(truncatingIfNeeded: value >> 8)
        bytes[offset + 3] = UInt8(truncatingIfNeeded: value)
    }
}

/// Reads big-endian fields from a slice of bytes, refusing to read past its end.
///
/// Every read checks the remaining length first, so a hostile length field can never cause an
/// allocation or a read larger than the bytes actually present.
public struct ByteReader: Sendable {
    private let bytes: ArraySlice<UInt8>
    private var position: Int

    /// Creates a reader over `bytes`.
    public init(_ bytes: ArraySlice<UInt8>) {
        self.bytes = bytes
        position = bytes.startIndex
    }

    /// Creates a reader over a whole array.
    public init(_ bytes: [UInt8]) { self.init(bytes[...]) }

    /// Bytes not yet read.
    public var remainingCount: Int { bytes.endIndex - position }

    /// Whether every byte has been read.
    public var isAtEnd: Bool { position == bytes.endIndex }

    private mutating func take(_ count: Int, _ field: String) throws(WireError) -> ArraySlice<UInt8> {
        guard count >= 0, remainingCount >= count else {
            throw .malformed("\(field) needs \(count) bytes but only \(remainingCount) remain")
        }
        defer { position += count }
        return bytes[position..<position + count]
    }

    /// Reads one byte.
    public mutating func readUInt8(_ field: String) throws(WireError) -> UInt8 {
        try take(1, field).first!
    }

    /// Reads a 16-bit big-endian integer.
    public mutating func readUInt16(_ field: String) throws(WireError) -> UInt16 {
        try take(2, field).reduce(0) { $0 << 8 | UInt16($1) }
    }

    /// Reads a 32-bit big-endian integer.
    public mutating func readUInt32(_ field: String) throws(WireError) -> UInt32 {
        try take(4, field).reduce(0) { $0 << 8 | UInt32($1) }
    }

    /// Reads a 64-bit big-endian integer.
    public mutating func readUInt64(_ field: String) throws(WireError) -> UInt64 {
        try take(8, field).reduce(0) { $0 << 8 | UInt64($1) }
    }

    /// Reads exactly `count` bytes.
    public mutating func readBytes(_ count: Int, _ field: String) throws(WireError) -> ArraySlice<UInt8> {
        try take(count, field)
    }

    /// Reads everything that is left.
    public mutating func readRemaining() -> ArraySlice<UInt8> {
        defer { position = bytes.endIndex }
        return bytes[position...]
    }

    /// Reads a one-byte-length-prefixed UTF-8 string; invalid UTF-8 is refused.
    public mutating func readShortString(_ field: String) throws(WireError) -> String {
        let count = Int(try readUInt8(field))
        return try decodeUTF8(try take(count, field), field)
    }

    /// Reads a two-byte-length-prefixed UTF-8 string; invalid UTF-8 is refused.
    public mutating func readLongString(_ field: String) throws(WireError) -> String {
        let count = Int(try readUInt16(field))
        return try decodeUTF8(try take(count, field), field)
    }

    /// Reads a two-byte-length-prefixed byte string of at most `maximum` bytes.
    public mutating func readBytes16(_ field: String, maximum: Int) throws(WireError) -> [UInt8] {
        let count = Int(try readUInt16(field))
        guard count <= maximum else { throw .malformed("\(field) of \(count) bytes exceeds \(maximum)") }
        return Array(try take(count, field))
    }

    /// Fails unless every byte has been consumed.
    public func expectEnd(_ what: String) throws(WireError) {
        guard isAtEnd else { throw .malformed("\(remainingCount) unexpected trailing bytes after \(what)") }
    }

    private func decodeUTF8(_ slice: ArraySlice<UInt8>, _ field: String) throws(WireError) -> String {
        guard let text = String(validating: slice, as: UTF8.self) else {
            throw .malformed("\(field) is not valid UTF-8")
        }
        return text
    }
}

/// Reads big-endian fields in place from raw memory (a frame in a read buffer or in a buffer of its
/// own), with the same checks and the same error texts as ``ByteReader``: nothing is copied except
/// the strings it returns. Valid only while the memory it reads is.
public struct RawByteReader {
    /// The bytes read from.
    public let bytes: UnsafeRawBufferPointer
    /// The offset of the next byte to read.
    public private(set) var offset = 0

    /// Creates a reader over `bytes`.
    public init(_ bytes: UnsafeRawBufferPointer) { self.bytes = bytes }

    /// Bytes not yet read.
    public var remainingCount: Int { bytes.count - offset }

    /// Whether every byte has been read.
    public var isAtEnd: Bool { offset == bytes.count }

    private mutating func take(_ count: Int, _ field: String) throws(WireError) -> UnsafeRawBufferPointer {
        guard count >= 0, remainingCount >= count else {
            throw .malformed("\(field) needs \(count) bytes but only \(remainingCount) remain")
        }
        defer { offset += count }
        return UnsafeRawBufferPointer(rebasing: bytes[offset..<offset + count])
    }

    /// Reads one byte.
    public mutating func readUInt8(_ field: String) throws(WireError) -> UInt8 {
        try take(1, field)[0]
    }

    /// Reads a 16-bit big-endian integer.
    public mutating func readUInt16(_ field: String) throws(WireError) -> UInt16 {
        try take(2, field).reduce(0) { $0 << 8 | UInt16($1) }
    }

    /// Reads a 32-bit big-endian integer.
    public mutating func readUInt32(_ field: String) throws(WireError) -> UInt32 {
        try take(4, field).reduce(0) { $0 << 8 | UInt32($1) }
    }

    /// Reads a 64-bit big-endian integer.
    public mutating func readUInt64(_ field: String) throws(WireError) -> UInt64 {
        try take(8, field).reduce(0) { $0 << 8 | UInt64($1) }
    }

    /// Reads exactly `count` bytes, in place.
    public mutating func readBytes(_ count: Int, _ field: String) throws(WireError) -> UnsafeRawBufferPointer {
        try take(count, field)
    }

    /// Reads everything that is left, in place.
    public mutating func readRemaining() -> UnsafeRawBufferPointer {
        defer { offset = bytes.count }
        return UnsafeRawBufferPointer(rebasing: bytes[offset...])
    }

    /// Reads a one-byte-length-prefixed UTF-8 string; invalid UTF-8 is refused.
    public mutating func readShortString(_ field: String) throws(WireError) -> String {
        let count = Int(try readUInt8(field))
        let utf8 = try take(count, field)
        guard let text = String(validating: utf8, as: UTF8.self) else {
            throw .malformed("\(field) is not valid UTF-8")
        }
        return text
    }

    /// Fails unless every byte has been consumed.
    public func expectEnd(_ what: String) throws(WireError) {
        guard isAtEnd else { throw .malformed("\(remainingCount) unexpected trailing bytes after \(what)") }
    }
}

/// The Wire encoders write straight into a shared buffer (a room's batch, a file chunk's frame). The conformance
/// lives here so that Transport, which owns the buffer, knows nothing of the encoders.
extension SharedBuffer: ByteSink {
    /// Appends one byte.
    /// - Precondition: it fits.
    public func write(_ value: UInt8) { append(value) }

    /// Appends bytes.
    /// - Precondition: they fit.
    public func write(bytes: UnsafeRawBufferPointer) { append(bytes) }

    /// Appends a 32-bit big-endian integer in one store.
    /// - Precondition: it fits.
    public func write(_ value: UInt32) { appendBigEndian(value) }
}
