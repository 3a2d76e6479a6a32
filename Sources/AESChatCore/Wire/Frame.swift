/// Errors in bytes received from the network. Each closes the offending connection only.
public enum WireError: Error, Equatable, Sendable, CustomStringConvertible {
    /// A length prefix announced more than the configured maximum.
    case frameTooLarge(length: UInt64, maximum: Int)
    /// A frame whose length prefix is zero (it must hold at least the type byte).
    case emptyFrame
    /// A frame type this side does not know.
    case unknownFrameType(UInt8)
    /// A field is missing, too short, too long or not valid UTF-8.
    case malformed(String)

    public var description: String {
        switch self {
        case .frameTooLarge(let length, let maximum):
            "frame of \(length) bytes exceeds the limit of \(maximum) bytes"
        case .emptyFrame:
            "frame with a zero length prefix"
        case .unknownFrameType(let type):
            "unknown frame type 0x\(String(type, radix: 16, uppercase: true))"
        case .malformed(let detail):
            "malformed frame: \(detail)"
        }
    }
}

/// One frame on the wire: `length (u32, big-endian) | type (u8) | body`, where `length` counts
/// the type byte and the body.
public struct Frame: Equatable, Sendable {
    /// The frame type; see ``FrameType``.
    public var type: UInt8
    /// The bytes after the type.
    public var body: ArraySlice<UInt8>

    /// Creates a frame.
    public init(type: UInt8, body: ArraySlice<UInt8>) {
        self.type = type
        self.body = body
    }

    /// Size of the length prefix.
    public static let headerSize = 4

    /// The default largest frame (type byte plus body) either side accepts: 16 MiB.
    public static let defaultMaximumLength = 16 * 1024 * 1024

    /// Encodes a frame: writes the prefix, lets `body` append the body, then patches the length.
    /// - Parameters:
    ///   - type: the frame type byte.
    ///   - capacity: expected body size, to reserve storage once.
    ///   - body: appends the body.
    /// - Returns: the complete frame bytes.
    public static func encode(type: UInt8, capacity: Int = 64, _ body: (inout ByteWriter) -> Void) -> [UInt8] {
        var writer = ByteWriter(capacity: headerSize + 1 + capacity)
        writer.write(UInt32(0))
        writer.write(type)
        body(&writer)
        let length = writer.bytes.count - headerSize
        writer.patch(UInt32(length), at: 0)
        return writer.bytes
    }
}

/// Splits a byte stream into frames.
///
/// Pure and incremental: feed it whatever arrived, in chunks of any size, then take frames until it
/// returns nil. A length prefix above `maximumLength` is reported as soon as its four bytes are in,
/// before anything is buffered for it, so a hostile prefix never drives an allocation.
/// Not thread-safe; one decoder per connection.
public struct FrameDecoder: Sendable {
    /// The largest length prefix accepted.
    public let maximumLength: Int
    private var buffer: [UInt8] = []
    private var start = 0

    /// Creates a decoder.
    /// - Parameter maximumLength: the largest frame (type byte plus body) accepted.
    public init(maximumLength: Int = Frame.defaultMaximumLength) {
        self.maximumLength = maximumLength
    }

    /// Bytes received but not yet returned as frames.
    public var bufferedByteCount: Int { buffer.count - start }

    /// Appends received bytes.
    public mutating func append(_ bytes: UnsafeRawBufferPointer) {
        compactIfWorthwhile()
        buffer.append(contentsOf: bytes)
    }

    /// Appends received bytes.
    public mutating func append<C: Collection<UInt8>>(contentsOf bytes: C) {
        compactIfWorthwhile()
        buffer.append(contentsOf: bytes)
    }

    /// Returns the next complete frame, or nil when more bytes are needed.
    /// - Throws: ``WireError/frameTooLarge(length:maximum:)`` or ``WireError/emptyFrame``; the stream
    ///   cannot be resynchronised after either, so the caller closes the connection.
    public mutating func nextFrame() throws(WireError) -> Frame? {
        let available = buffer.count - start
        guard available >= Frame.headerSize else { return nil }
        var length: UInt32 = 0
        for index in start..<start + Frame.headerSize { length = length << 8 | UInt32(buffer[index]) }
        guard length != 0 else { throw .emptyFrame }
        guard UInt64(length) <= UInt64(maximumLength) else {
            throw .frameTooLarge(length: UInt64(length), maximum: maximumLength)
        }
        let total = Frame.headerSize + Int(length)
        guard available >= total else {
            buffer.reserveCapacity(start + total)
            return nil
        }
        let typeIndex = start + Frame.headerSize
        let frame = Frame(type: buffer[typeIndex], body: buffer[(typeIndex + 1)..<(start + total)])
        start += total
        if start == buffer.count {
            // Keep the storage for the next frame unless it grew large for one big frame.
            buffer.removeAll(keepingCapacity: buffer.capacity <= 4 * 1024 * 1024)
            start = 0
        }
        return frame
    }

    /// Splits what is buffered plus `bytes` into whole frames and hands each to `body` as its type
    /// and body bytes, valid only during the call. Nothing is copied for a frame that arrived within
    /// one read; only an incomplete tail is kept, and the storage is released once nothing is left,
    /// so an idle connection's decoder holds no memory. `body` returns false to stop early (the
    /// rest is dropped: the caller is closing the connection).
    /// - Throws: ``WireError/frameTooLarge(length:maximum:)`` or ``WireError/emptyFrame`` as soon as
    ///   a bad length prefix is in, and whatever `body` throws; the stream is unusable after either.
    public mutating func feed(
        _ bytes: UnsafeRawBufferPointer, _ body: (UInt8, UnsafeRawBufferPointer) throws(WireError) -> Bool
    ) throws(WireError) {
        if start == buffer.count {
            let (used, stop, error) = Self.split(bytes, maximumLength: maximumLength, body)
            if let error { throw error }
            buffer = []
            start = 0
            if !stop && used < bytes.count { keepTail(UnsafeRawBufferPointer(rebasing: bytes[used...])) }
            return
        }
        buffer.append(contentsOf: bytes)
        let (used, stop, error) = buffer.withUnsafeBytes { raw in
            Self.split(UnsafeRawBufferPointer(rebasing: raw[start...]), maximumLength: maximumLength, body)
        }
        if let error { throw error }
        start += used
        if stop || start == buffer.count {
            buffer = []
            start = 0
        } else if start > 0 {
            buffer.removeSubrange(0..<start)
            start = 0
        }
    }

    /// The whole length (prefix included) of the incomplete frame that ``feed(_:_:)`` kept, once its
    /// length prefix is in; nil when nothing or less than a prefix is buffered.
    public var incompleteFrameLength: Int? {
        guard buffer.count - start >= Frame.headerSize else { return nil }
        var length = 0
        for index in start..<start + Frame.headerSize { length = length << 8 | Int(buffer[index]) }
        return Frame.headerSize + length
    }

    /// Hands the buffered bytes of the incomplete frame to `body` and forgets them: the caller
    /// takes over assembling that frame (in storage of its own) and feeds what follows it.
    public mutating func takeIncompleteFrame(_ body: (UnsafeRawBufferPointer) -> Void) {
        buffer.withUnsafeBytes { body(UnsafeRawBufferPointer(rebasing: $0[start...])) }
        buffer = []
        start = 0
    }

    /// Keeps an incomplete frame, reserving its whole length once the prefix is known.
    private mutating func keepTail(_ tail: UnsafeRawBufferPointer) {
        var total = tail.count
        if tail.count >= Frame.headerSize {
            var length = 0
            for index in 0..<Frame.headerSize { length = length << 8 | Int(tail[index]) }
            total = Frame.headerSize + length
        }
        buffer.reserveCapacity(total)
        buffer.append(contentsOf: tail)
    }

    /// Hands every whole frame in `bytes` to `body`; returns the bytes used, whether `body` asked
    /// to stop, and the error that ended the split, if any.
    private static func split(
        _ bytes: UnsafeRawBufferPointer, maximumLength: Int,
        _ body: (UInt8, UnsafeRawBufferPointer) throws(WireError) -> Bool
    ) -> (used: Int, stop: Bool, error: WireError?) {
        var offset = 0
        while bytes.count - offset >= Frame.headerSize {
            var length = 0
            for index in offset..<offset + Frame.headerSize { length = length << 8 | Int(bytes[index]) }
            guard length != 0 else { return (offset, true, .emptyFrame) }
            guard length <= maximumLength else {
                return (offset, true, .frameTooLarge(length: UInt64(length), maximum: maximumLength))
            }
            let total = Frame.headerSize + length
            guard bytes.count - offset >= total else { break }
            let frameBody = UnsafeRawBufferPointer(rebasing: bytes[(offset + Frame.headerSize + 1)..<(offset + total)])
            let type = bytes[offset + Frame.headerSize]
            offset += total
            do {
                guard try body(type, frameBody) else { return (offset, true, nil) }
            } catch {
                return (offset, true, error)
            }
        }
        return (offset, false, nil)
    }

    private mutating func compactIfWorthwhile() {
        if start > 0 && start >= buffer.count / 2 {
            buffer.removeSubrange(0..<start)
            start = 0
        }
    }
}
