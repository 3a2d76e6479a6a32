/// A fixed-capacity byte buffer that many connections send from at once.
///
/// The relay writes each frame it fans out into one of these exactly once and queues a range of it on
/// every recipient's connection (``Connection/write(_:range:)``); the buffer lives as long as any
/// queue holds it (reference counting), so a slow recipient keeps only the bytes it still owes.
/// Bytes are appended, never changed once queued, until the owner ``reset()``s a buffer nobody
/// else holds. (The relay may overwrite bytes it has not queued yet: a frame header in front of a
/// payload it forwards from where it was read.) Loop thread only.
public final class SharedBuffer {
    /// The most bytes it holds.
    public let capacity: Int
    /// Bytes written so far.
    public private(set) var count = 0
    let storage: UnsafeMutableRawPointer

    /// Creates an empty buffer.
    /// - Parameter capacity: its fixed size in bytes.
    public init(capacity: Int) {
        precondition(capacity > 0, "a shared buffer needs a positive capacity")
        self.capacity = capacity
        storage = .allocate(byteCount: capacity, alignment: 16)
    }

    deinit {
        storage.deallocate()
    }

    /// Bytes that can still be appended.
    public var remainingCapacity: Int { capacity - count }

    /// Appends bytes.
    /// - Precondition: they fit.
    public func append(_ bytes: UnsafeRawBufferPointer) {
        precondition(bytes.count <= remainingCapacity, "shared buffer overflow")
        if let base = bytes.baseAddress, bytes.count > 0 {
            (storage + count).copyMemory(from: base, byteCount: bytes.count)
        }
        count += bytes.count
    }

    /// Appends one byte.
    /// - Precondition: it fits.
    public func append(_ byte: UInt8) {
        precondition(count < capacity, "shared buffer overflow")
        storage.storeBytes(of: byte, toByteOffset: count, as: UInt8.self)
        count += 1
    }

    /// Appends a 32-bit integer, big-endian (a length prefix, mostly), in one store.
    /// - Precondition: it fits.
    public func appendBigEndian(_ value: UInt32) {
        precondition(count + 4 <= capacity, "shared buffer overflow")
        storage.storeBytes(of: value.bigEndian, toByteOffset: count, as: UInt32.self)
        count += 4
    }

    /// The unwritten rest of the storage, to read into; ``commit(_:)`` then counts what was put
    /// there. Valid while the buffer lives and nothing else is appended.
    var unusedSpace: UnsafeMutableRawBufferPointer {
        UnsafeMutableRawBufferPointer(start: storage + count, count: capacity - count)
    }

    /// Counts `written` bytes put at the start of ``unusedSpace`` (or skipped, to leave room in
    /// front of what follows) as written.
    /// - Precondition: they fit.
    func commit(_ written: Int) {
        precondition(written >= 0 && written <= remainingCapacity, "shared buffer overflow")
        count += written
    }

    /// Empties the buffer for reuse. Call only when no connection still queues a range of it.
    public func reset() {
        count = 0
    }

    /// Calls `body` with the bytes in `range`.
    public func withUnsafeBytes<R>(in range: Range<Int>, _ body: (UnsafeRawBufferPointer) throws -> R) rethrows -> R {
        precondition(range.lowerBound >= 0 && range.upperBound <= count, "range outside the written bytes")
        return try body(UnsafeRawBufferPointer(start: storage + range.lowerBound, count: range.count))
    }
}
