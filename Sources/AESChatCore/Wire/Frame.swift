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

    private mutating func compactIfWorthwhile() {
        if start > 0 && start >= buffer.count / 2 {
            buffer.removeSubrange(0..<start)
            start = 0
        }
    }
}
