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

    /// The end of the frame that covers offset `position` in `bytes`, a run of whole length-prefixed
    /// frames from its start (the last possibly cut short): what a connection that drops unsent
    /// output keeps of the piece partly sent, so that the peer still sees whole frames
    /// (``Connection/discardUnsentOutput(keepingPartlySent:)``).
    public static func endOfFrame(in bytes: UnsafeRawBufferPointer, containing position: Int) -> Int {
        var frameStart = 0
        while frameStart < bytes.count {
            guard frameStart + headerSize <= bytes.count else { return bytes.count }
            var reader = RawByteReader(UnsafeRawBufferPointer(rebasing: bytes[frameStart..<frameStart + headerSize]))
            let length = Int(try! reader.readUInt32("length"))
            let frameEnd = min(frameStart + headerSize + length, bytes.count)
            if frameEnd > position { return frameEnd }
            frameStart = frameEnd
        }
        return bytes.count
    }

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
/// Pure and incremental: ``feed(_:_:)`` it whatever arrived, in chunks of any size, and it hands
/// over every whole frame in place. A length prefix above `maximumLength` is reported as soon as
/// its four bytes are in, before anything is buffered for it, so a hostile prefix never drives an
/// allocation. ``FrameReader`` adds the assembly of large frames on top. Not thread-safe; one
/// decoder per connection.
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
}
