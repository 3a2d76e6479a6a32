/// What a ``FrameReader`` reads for: a protocol endpoint (the relay's side of a connection, or a
/// client) that handles whole frames and lends the reader buffers for large ones. Loop thread only.
protocol FrameReaderDelegate: AnyObject {
    /// Whether frames are still wanted: false once the endpoint is closing or finished, which
    /// stops the reader at the next frame boundary.
    var isReadingFrames: Bool { get }

    /// Handles one whole frame.
    /// - Parameters:
    ///   - type: the frame type byte.
    ///   - body: the bytes after the type, valid only during the call.
    ///   - storage: for a frame assembled in a buffer of its own, that buffer and the body's offset
    ///     in it (the body may then be forwarded from there, or changed in place); nil for a frame
    ///     split from bytes read into the loop's buffer.
    /// - Throws: ``WireError`` for a frame that breaks the protocol; the reader stops and reports it.
    func handleFrame(
        type: UInt8, body: UnsafeRawBufferPointer, storage: (buffer: SharedBuffer, offset: Int)?
    ) throws(WireError)

    /// An empty buffer to assemble a large frame of `frameLength` bytes (prefix included) in: its
    /// capacity at least `frameLength` past its count (any room before the count is headroom for
    /// the endpoint's use), plus ``FrameReader/largeFrameSlack`` to spare. Nil when the endpoint
    /// will not hold one now; for ``LargeFrameRequest/frame`` it has then refused the connection.
    func largeFrameBuffer(frameLength: Int, for request: LargeFrameRequest) -> SharedBuffer?

    /// The reader is done with a buffer from ``largeFrameBuffer(frameLength:for:)``, for reuse once
    /// nothing else holds it.
    func recycleLargeFrameBuffer(_ buffer: SharedBuffer)

    /// The reader is about to keep a small frame in progress of `length` bytes (prefix included)
    /// in its decoder, in place of ``FrameReader/smallFrameBytes``; false when the endpoint will
    /// not let it (it has then refused the connection).
    func mayHoldSmallFrame(length: Int) -> Bool

    /// The bytes the reader holds for a frame in progress changed by `delta`: in a large-frame
    /// buffer (its capacity), or in its decoder.
    func frameBytesHeldChanged(by delta: Int, isLarge: Bool)

    /// The stream broke: a bad length prefix, or a frame ``handleFrame(type:body:storage:)``
    /// refused. Nothing more is read.
    func frameReaderFailed(_ error: WireError)
}

extension FrameReaderDelegate {
    func recycleLargeFrameBuffer(_ buffer: SharedBuffer) {}
    func mayHoldSmallFrame(length: Int) -> Bool { true }
    func frameBytesHeldChanged(by delta: Int, isLarge: Bool) {}
}

/// Why a ``FrameReader`` asks for a large-frame buffer.
enum LargeFrameRequest {
    /// A guess: the previous frame was large and ended a read, so the next one probably is too.
    /// Nil reads into the loop's buffer as usual.
    case guess
    /// A large frame has started (or outgrew a guessed buffer) and needs one. Nil refuses it.
    case frame
    /// What followed a large frame in its buffer (the start of the next, most likely) would move
    /// there. Nil splits it as usual.
    case next
}

/// The frame layer between a connection and a protocol endpoint: splits the bytes read into
/// frames with its ``FrameDecoder`` and hands each to the endpoint as `(type, body, storage)`.
///
/// Large frames (at least ``largeFrameThreshold`` bytes, file chunks) are not copied: once one's
/// length prefix is in, the rest of it is read straight into a buffer the endpoint lends
/// (``readDestination(for:)``), and the frame is handed over where it lies. After a large frame
/// that ended a read, the next read goes into a buffer of the same size, since the next frame
/// probably is large too. One reader per connection; loop thread only.
final class FrameReader {
    /// Frames at least this long (prefix included) are read into a buffer of their own.
    static let largeFrameThreshold = 64 * 1024
    /// This reader's threshold: ``largeFrameThreshold`` but in the fuzzer, which uses a small one
    /// to reach the assembly of large frames with small inputs.
    private let threshold: Int
    /// Room after a large frame for the start of the next one, read together with its end.
    static let largeFrameSlack = 4 * 1024

    private var decoder: FrameDecoder
    /// The buffer a large frame is being assembled in; the frame starts at ``largeFrameStart``.
    private var largeFrame: SharedBuffer?
    private var largeFrameStart = 0
    /// The length of the large frame that ended the last read, as a guess for the next one's
    /// buffer (0: the last frame was small, or more bytes followed it).
    private var expectedLargeFrameLength = 0
    /// The bytes the decoder reserves for a small frame in progress (its whole length).
    private(set) var smallFrameBytes = 0

    /// Creates a reader.
    /// - Parameters:
    ///   - maximumLength: the largest frame (type byte plus body) accepted.
    ///   - largeFrameThreshold: frames at least this long are assembled in buffers of their own.
    init(maximumLength: Int = Frame.defaultMaximumLength, largeFrameThreshold: Int = FrameReader.largeFrameThreshold) {
        decoder = FrameDecoder(maximumLength: maximumLength)
        threshold = largeFrameThreshold
    }

    /// The largest frame (type byte plus body) accepted.
    var maximumLength: Int { decoder.maximumLength }

    /// The capacity of the large-frame buffer held now (0 when none).
    var largeFrameCapacity: Int { largeFrame?.capacity ?? 0 }

    /// The whole length (prefix included) of the frame whose first bytes arrived and whose last
    /// have not: 0 while its length prefix is incomplete; nil when no frame is in progress.
    var frameInProgressLength: Int? {
        if let frame = largeFrame {
            let received = frame.count - largeFrameStart
            guard received > 0 else { return nil }
            guard received >= Frame.headerSize else { return 0 }
            return Frame.headerSize + Self.lengthPrefix(in: frame, at: largeFrameStart)
        }
        guard decoder.bufferedByteCount > 0 else { return nil }
        return decoder.incompleteFrameLength ?? 0
    }

    /// Handles bytes read into the loop's buffer (or handed over by an in-memory connection).
    func read<Delegate: FrameReaderDelegate>(_ bytes: UnsafeRawBufferPointer, for delegate: Delegate) {
        var rest = bytes
        while rest.count > 0 && delegate.isReadingFrames {
            guard let frame = largeFrame else {
                feed(rest, delegate)
                return
            }
            // Only an in-memory connection gets here with a large frame under way: copy.
            let taken = min(rest.count, frame.remainingCapacity)
            guard taken > 0 else { return }
            frame.append(UnsafeRawBufferPointer(rebasing: rest[0..<taken]))
            rest = UnsafeRawBufferPointer(rebasing: rest[taken...])
            assembleLargeFrame(delegate)
        }
    }

    /// Storage of the reader's own that the next read should land in instead of the loop's
    /// buffer: the rest of a large frame, or a guessed buffer for the next one. Nil for the loop's
    /// buffer.
    func readDestination<Delegate: FrameReaderDelegate>(for delegate: Delegate) -> UnsafeMutableRawBufferPointer? {
        guard delegate.isReadingFrames else { return nil }
        if largeFrame == nil, expectedLargeFrameLength > 0,
            let frame = delegate.largeFrameBuffer(frameLength: expectedLargeFrameLength, for: .guess)
        {
            setLargeFrame(frame, delegate, start: frame.count)
        }
        return largeFrame?.unusedSpace
    }

    /// `count` bytes (at least one) were read into the start of what ``readDestination(for:)``
    /// just returned.
    func didReadIntoDestination<Delegate: FrameReaderDelegate>(_ count: Int, for delegate: Delegate) {
        largeFrame?.commit(count)
        guard delegate.isReadingFrames else { return }
        assembleLargeFrame(delegate)
    }

    /// Lets go of everything held for a frame in progress (the connection is closed).
    func releaseFrameInProgress<Delegate: FrameReaderDelegate>(for delegate: Delegate) {
        setLargeFrame(nil, delegate)
        setSmallFrameBytes(0, delegate)
    }

    /// Splits bytes read into the loop's buffer into frames; an incomplete large frame left at the
    /// end moves to a buffer of its own, where the rest of it is read.
    private func feed<Delegate: FrameReaderDelegate>(_ bytes: UnsafeRawBufferPointer, _ delegate: Delegate) {
        expectedLargeFrameLength = 0
        do {
            try decoder.feed(bytes) { (type: UInt8, body: UnsafeRawBufferPointer) throws(WireError) -> Bool in
                guard delegate.isReadingFrames else { return false }
                try delegate.handleFrame(type: type, body: body, storage: nil)
                return delegate.isReadingFrames
            }
        } catch {
            delegate.frameReaderFailed(error)
            return
        }
        guard delegate.isReadingFrames else { return }
        let length = decoder.bufferedByteCount > 0 ? decoder.incompleteFrameLength ?? Frame.headerSize : 0
        guard length >= threshold else {
            // A small frame in progress stays in the decoder, which reserves its whole length.
            if length > smallFrameBytes && !delegate.mayHoldSmallFrame(length: length) { return }
            setSmallFrameBytes(length, delegate)
            return
        }
        guard let frame = delegate.largeFrameBuffer(frameLength: length, for: .frame) else { return }
        let start = frame.count
        decoder.takeIncompleteFrame { frame.append($0) }
        setSmallFrameBytes(0, delegate)
        setLargeFrame(frame, delegate, start: start)
    }

    /// Handles the frame in the large-frame buffer once it is complete, then what was read after it.
    private func assembleLargeFrame<Delegate: FrameReaderDelegate>(_ delegate: Delegate) {
        while let frame = largeFrame {
            let start = largeFrameStart
            guard frame.count - start >= Frame.headerSize else { return }
            let length = Self.lengthPrefix(in: frame, at: start)
            guard length != 0, length <= decoder.maximumLength else {
                setLargeFrame(nil, delegate)
                delegate.frameReaderFailed(
                    length == 0 ? .emptyFrame : .frameTooLarge(length: UInt64(length), maximum: decoder.maximumLength))
                return
            }
            let frameLength = Frame.headerSize + length
            let end = start + frameLength
            if end > frame.capacity {
                // A guess that was too small: move what is in to a buffer of the right size.
                guard let bigger = delegate.largeFrameBuffer(frameLength: frameLength, for: .frame) else {
                    setLargeFrame(nil, delegate)
                    return
                }
                let biggerStart = bigger.count
                frame.withUnsafeBytes(in: start..<frame.count) { bigger.append($0) }
                setLargeFrame(bigger, delegate, start: biggerStart)
                continue
            }
            guard frame.count >= end else { return }
            setLargeFrame(nil, delegate)
            let bodyStart = start + Frame.headerSize + 1
            let type = frame.storage.load(fromByteOffset: bodyStart - 1, as: UInt8.self)
            do {
                // `frame` holds the buffer for the whole call.
                let body = UnsafeRawBufferPointer(start: frame.storage + bodyStart, count: end - bodyStart)
                try delegate.handleFrame(type: type, body: body, storage: (frame, bodyStart))
            } catch {
                delegate.frameReaderFailed(error)
                return
            }
            delegate.recycleLargeFrameBuffer(frame)
            guard delegate.isReadingFrames else { return }
            let isLarge = frameLength >= threshold
            if frame.count == end {
                expectedLargeFrameLength = isLarge ? frameLength : 0
                return
            }
            if isLarge && frame.count - end <= Self.largeFrameSlack,
                let next = delegate.largeFrameBuffer(frameLength: frameLength, for: .next)
            {
                // What follows a large frame (the start of the next one, most likely) goes to a new
                // buffer straight away; the rest of it is read there. More than that (a guess that
                // was too large) is split as usual, so that nothing is copied more than twice.
                let nextStart = next.count
                frame.withUnsafeBytes(in: end..<frame.count) { next.append($0) }
                setLargeFrame(next, delegate, start: nextStart)
            } else {
                frame.withUnsafeBytes(in: end..<frame.count) { feed($0, delegate) }
            }
        }
    }

    private func setLargeFrame<Delegate: FrameReaderDelegate>(
        _ frame: SharedBuffer?, _ delegate: Delegate, start: Int = 0
    ) {
        let delta = (frame?.capacity ?? 0) - (largeFrame?.capacity ?? 0)
        largeFrame = frame
        largeFrameStart = start
        if delta != 0 { delegate.frameBytesHeldChanged(by: delta, isLarge: true) }
    }

    private func setSmallFrameBytes<Delegate: FrameReaderDelegate>(_ bytes: Int, _ delegate: Delegate) {
        let delta = bytes - smallFrameBytes
        smallFrameBytes = bytes
        if delta != 0 { delegate.frameBytesHeldChanged(by: delta, isLarge: false) }
    }

    /// The length prefix at `offset` in `buffer`.
    private static func lengthPrefix(in buffer: SharedBuffer, at offset: Int) -> Int {
        buffer.withUnsafeBytes(in: offset..<offset + Frame.headerSize) { $0.reduce(0) { $0 << 8 | Int($1) } }
    }
}
