/// The seam between the chat logic and the bytes: a listener hands out connections, each
/// connection reads and writes byte streams, and an event loop drives them all on one thread.
///
/// Two implementations exist: POSIX sockets driven by epoll (Linux) or poll (elsewhere), and an
/// in-memory one for unit tests. Everything here is confined to the loop's thread; the only
/// thread-safe entry point is ``LoopInbox``.

/// A byte stream to one peer. Confined to its event loop's thread.
public protocol Connection: AnyObject {
    /// Receives what happens on this connection. Held strongly; cleared after close.
    var handler: (any ConnectionHandler)? { get set }
    /// A printable description of the peer, such as `127.0.0.1:53422`.
    var peerDescription: String { get }
    /// Bytes queued for sending and not yet accepted by the kernel (or the peer, in memory). On a
    /// protected connection (``protect(with:)``) these are the caller's plaintext bytes: those not yet
    /// sealed, and those of the record in progress until the whole record has been accepted.
    var pendingOutputByteCount: Int { get }
    /// Bytes accepted by the kernel (or the peer, in memory) since the connection opened: with
    /// ``pendingOutputByteCount``, it places a queued byte in the stream, so a caller can tell
    /// whether what it queued earlier has gone out. On a protected connection it counts the
    /// caller's plaintext bytes, each once the whole record carrying it has been accepted (record
    /// headers and tags are not counted).
    var sentByteCount: Int { get }
    /// Whether the connection can still send.
    var isOpen: Bool { get }
    /// Queues bytes for sending. The array is kept as it is (no copy), so one encoded frame can be
    /// queued on many connections and shared by them. Does nothing once closed.
    func write(_ bytes: [UInt8])
    /// Queues `range` of a shared buffer, keeping the buffer alive (no copy) until those bytes
    /// are sent, so one encoded frame can go to many connections. Does nothing once closed.
    func write(_ buffer: SharedBuffer, range: Range<Int>)
    /// Drops queued output that has not begun to go out. The piece partly sent, if any, is kept up
    /// to where `keepingPartlySent` says, so that the caller can finish what the peer has begun to
    /// receive (a frame: see ``Frame/endOfFrame(in:containing:)``). On a protected connection, a
    /// record already sealed is always sent whole, and "partly sent" means partly sealed.
    /// - Parameter keepingPartlySent: given the bytes of the piece being sent (from the start of one
    ///   of the caller's writes) and how many of them have gone out, returns how many to keep, at
    ///   least that many.
    func discardUnsentOutput(keepingPartlySent: (_ piece: UnsafeRawBufferPointer, _ sent: Int) -> Int)
    /// From now on, seals everything written into records and opens every byte read before the
    /// handler sees it (the encrypted link, once a key exchange over this connection has finished).
    /// Bytes queued before the call go out as they were, first. Bytes already handed to the handler
    /// are not looked at again: a handler that calls this in the middle of a read must deal with the
    /// rest of that read itself. A record that does not open, or an end of stream inside a record,
    /// closes the connection with ``TransportError/linkFailed(reason:)``; so does a record that cannot
    /// be sealed. Call it at most once.
    func protect(with protection: any RecordProtection)
    /// Sends what is queued, then closes; gives up and closes after `timeout` if the peer does
    /// not take the bytes.
    func closeAfterFlushing(timeout: Duration)
    /// Closes at once, dropping anything queued.
    func close()
    /// Stops handing read bytes to the handler until ``resumeReading()``: what the peer sends meanwhile waits in the
    /// kernel (or, in memory, in the connection), so a peer that keeps sending is held back by TCP flow control. A
    /// peer that closes or resets meanwhile is still noticed.
    func pauseReading()
    /// Hands read bytes to the handler again, those that waited first (later on the loop, never from inside the
    /// call).
    func resumeReading()
}

/// Receives a connection's events on the loop's thread.
public protocol ConnectionHandler: AnyObject {
    /// Bytes arrived. The buffer is only valid during the call.
    func connection(_ connection: any Connection, didRead bytes: UnsafeRawBufferPointer)
    /// The connection is closed: by the peer (`error` nil on an orderly end of stream), by a
    /// failure, or by this side. Called exactly once, never from inside `write` or `close`.
    func connection(_ connection: any Connection, didCloseWith error: TransportError?)
}

extension Connection {
    /// Default: copies the range into an array and queues that.
    public func write(_ buffer: SharedBuffer, range: Range<Int>) {
        guard !range.isEmpty else { return }
        write(buffer.withUnsafeBytes(in: range) { Array($0) })
    }

    /// Default: reading cannot be paused (a test double); the handler keeps getting bytes.
    public func pauseReading() {}

    /// Default: reading cannot be paused.
    public func resumeReading() {}

    /// Default: nothing is ever held back (an in-memory connection hands bytes over at once).
    public func discardUnsentOutput(keepingPartlySent: (_ piece: UnsafeRawBufferPointer, _ sent: Int) -> Int) {}
}

/// A handler that wants to know when its connection's output has drained (a client pausing its input while the
/// relay is slow to take it). Only handlers that conform are told: a connection then skips the call, and the
/// reference counting around it, after each flush of a relay member's output.
public protocol OutputDrainObserver: ConnectionHandler {
    /// Everything queued has been handed to the kernel.
    func connectionDidDrainOutput(_ connection: any Connection)
}

/// A handler that can have reads land in storage of its own instead of the loop's shared read
/// buffer: the frame layer (``FrameReader``), which reads the rest of a large frame straight into
/// the frame's buffer, so that its bytes are never copied in user space. A connection that reads
/// from a descriptor asks before each read; an in-memory one never does (it hands its bytes to
/// ``ConnectionHandler/connection(_:didRead:)``).
public protocol ReadDestinationProvider: ConnectionHandler {
    /// Storage the next read should land in; nil for the loop's shared buffer.
    func readDestination(for connection: any Connection) -> UnsafeMutableRawBufferPointer?
    /// `count` bytes (at least one) were read into the start of the storage that
    /// ``readDestination(for:)`` just returned.
    func connection(_ connection: any Connection, didReadIntoDestination count: Int)
}

/// Accepts connections. Confined to its event loop's thread.
public protocol Listener: AnyObject {
    /// Called for each accepted connection.
    var acceptHandler: ((any Connection) -> Void)? { get set }
    /// The bound address, such as `127.0.0.1:7777` or `[::]:7777`.
    var localDescription: String { get }
    /// The bound port.
    var localPort: UInt16 { get }
    /// Stops accepting and releases the socket.
    func close()
}

/// A handle for a scheduled timer, used to cancel it.
public struct TimerID: Hashable, Sendable {
    let value: UInt64
}

/// Runs timers and deferred work on the loop's thread.
public protocol EventLoop: AnyObject {
    /// Runs `body` on the loop thread after `delay`.
    @discardableResult
    func schedule(after delay: Duration, _ body: @escaping () -> Void) -> TimerID
    /// Cancels a timer that has not fired yet; does nothing otherwise.
    func cancel(_ timer: TimerID)
    /// Ends `run()` after the current iteration.
    func stop()
    /// Calls `handler` at the end of every loop iteration, after the iteration's events, timers and
    /// deferred work and before queued output is sent; it may queue more output. Used by the relay
    /// to hand a whole iteration's fan-out to each connection at once.
    func addIterationEndHandler(_ handler: @escaping () -> Void)
}

/// Transport failures, each naming the operation and the reason.
public enum TransportError: Error, Equatable, Sendable, CustomStringConvertible {
    case resolveFailed(host: String, reason: Reason)
    case listenFailed(address: String, reason: Reason)
    case connectFailed(address: String, reason: Reason)
    case readFailed(reason: Reason)
    case writeFailed(reason: Reason)
    case timedOut(String)
    case systemCall(String, reason: Reason)
    /// The encrypted link failed: a record did not authenticate, was malformed or was cut short, or no record
    /// could be sealed (see ``RecordProtection``).
    case linkFailed(reason: Reason)

    public var description: String {
        switch self {
        case .resolveFailed(let host, let reason): "cannot resolve host '\(host)': \(reason)"
        case .listenFailed(let address, let reason): "cannot listen on \(address): \(reason)"
        case .connectFailed(let address, let reason): "cannot reach relay at \(address): \(reason)"
        case .readFailed(let reason): "connection lost while reading: \(reason)"
        case .writeFailed(let reason): "connection lost while writing: \(reason)"
        case .timedOut(let what): "\(what) timed out"
        case .systemCall(let call, let reason): "\(call) failed: \(reason)"
        case .linkFailed(let reason): "encrypted link failed: \(reason)"
        }
    }

    /// Why an operation failed: the text a person reads and, when the system gave one, the errno
    /// it came from, for a program to act on.
    public struct Reason: Sendable, Equatable, CustomStringConvertible, ExpressibleByStringLiteral {
        /// The text, such as "Connection refused".
        public var text: String
        /// The errno value behind the text, when there is one (ECONNREFUSED, say).
        public var errno: Int32?

        /// A reason from the system: `strerror`'s text for `code`.
        public init(errno code: Int32) {
            self.init(System.describe(errno: code), errno: code)
        }

        /// A reason with its own text (and the errno it stands for, if any).
        public init(_ text: String, errno: Int32? = nil) {
            self.text = text
            self.errno = errno
        }

        public init(stringLiteral text: String) {
            self.init(text)
        }

        public var description: String { text }

        /// Reasons are equal when their text is: the text is what a person acts on, and the same
        /// errno always gives the same text, so a reason written as text in a test matches the
        /// system's.
        public static func == (lhs: Reason, rhs: Reason) -> Bool { lhs.text == rhs.text }
    }

    /// The errno behind the failure, when the system gave one.
    public var errno: Int32? {
        switch self {
        case .resolveFailed(_, let reason), .listenFailed(_, let reason), .connectFailed(_, let reason),
            .readFailed(let reason), .writeFailed(let reason), .systemCall(_, let reason), .linkFailed(let reason):
            reason.errno
        case .timedOut: nil
        }
    }
}
