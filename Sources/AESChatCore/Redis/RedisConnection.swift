/// One connection to a Redis server on the relay's event loop: hiredis encodes the commands and parses the replies
/// (``RESPEncoder``, ``RESPReader``), our own non-blocking ``Connection`` carries the bytes (no thread, no hiredis
/// networking, cluster.md §1.2).
///
/// - **Commands** are pipelined: ``send(_:_:)`` queues a command at once and its completion is called with its reply
///   when it comes, replies being matched to commands in the order sent. An error reply fails that command only
///   (``RedisError/server(_:)``).
/// - **Subscriber mode**: after ``subscribe(_:_:)`` (or ``patternSubscribe(_:_:)``) the connection takes only
///   (un)subscribe commands and PING, and hands every `message`/`pmessage` to ``pushHandler`` in the order Redis
///   sent them, between the replies to those commands.
/// - **Bounds**: a reply larger than ``Limits/maximumReplyBytes`` before it is complete, commands queued beyond
///   ``Limits/maximumPendingOutput`` bytes not yet taken by the kernel, or more than
///   ``Limits/maximumCommandsInFlight`` commands awaiting replies end the connection with that error. A caller that
///   wants backpressure rather than an end watches ``pendingOutputByteCount``.
/// - **Ending**: when the connection ends for any reason but ``close()``, every command still awaiting its reply is
///   failed with the reason, then ``closeHandler`` is called once. After ``close()`` the pending commands fail with
///   ``RedisError/closed`` and ``closeHandler`` is not called.
///
/// Loop thread only; completions and handlers are called on it, never from inside ``send(_:_:)``.
public final class RedisConnection: ConnectionHandler {
    /// The bounds of one connection.
    public struct Limits: Sendable, Equatable {
        /// The most bytes one reply may take: a 16 MiB frame in a pub/sub message, with room for its envelope.
        public var maximumReplyBytes = 17 << 20
        /// Bytes of commands queued and not yet taken by the kernel beyond which the connection fails.
        public var maximumPendingOutput = 256 << 20
        /// Commands awaiting replies beyond which the connection fails.
        public var maximumCommandsInFlight = 1 << 20

        public init() {}
    }

    /// A message pushed to a subscriber.
    public enum Push: Equatable, Sendable {
        /// A message published on a channel this connection subscribed to.
        case message(channel: [UInt8], payload: [UInt8])
        /// A message published on a channel matching a pattern this connection subscribed to.
        case patternMessage(pattern: [UInt8], channel: [UInt8], payload: [UInt8])
    }

    /// The completion of one command.
    public typealias Completion = (Result<RedisValue, RedisError>) -> Void

    /// A command awaiting its replies (subscribe commands get one per channel).
    private struct Pending {
        var repliesLeft: Int
        var completion: Completion
        /// The first error reply among several, reported once all have come.
        var firstError: RedisError?
    }

    private let connection: any Connection
    private unowned let loop: any EventLoop
    private let reader: RESPReader
    public let limits: Limits
    private var pending: [Pending] = []
    private var pendingHead = 0
    /// Called with every `message` and `pmessage`, in order.
    public var pushHandler: ((Push) -> Void)?
    /// Called once when the connection ends other than by ``close()``.
    public var closeHandler: ((RedisError) -> Void)?
    /// Whether the connection has entered subscriber mode (it never leaves it: a subscriber stays one).
    public private(set) var isSubscriber = false
    /// Why the connection ended, once it has.
    public private(set) var failure: RedisError?

    /// Takes over `connection` (already connected; its handler becomes this object).
    public init(connection: any Connection, loop: any EventLoop, limits: Limits = Limits()) {
        self.connection = connection
        self.loop = loop
        self.limits = limits
        self.reader = RESPReader(maximumReplyBytes: limits.maximumReplyBytes)
        connection.handler = self
    }

    /// Whether commands can still be sent.
    public var isOpen: Bool { failure == nil && connection.isOpen }
    /// Commands sent whose replies have not all come.
    public var commandsInFlight: Int { pending.count - pendingHead }
    /// Bytes of commands queued and not yet taken by the kernel.
    public var pendingOutputByteCount: Int { connection.pendingOutputByteCount }
    /// The transport underneath, for tests.
    var connectionForTests: any Connection { connection }
    /// The server, as the transport describes it.
    public var peerDescription: String { connection.peerDescription }

    // MARK: Commands

    /// Sends one command; `completion` gets its reply (or its error reply, or the connection's end).
    /// - Parameter arguments: the command name and its arguments.
    public func send(_ arguments: [[UInt8]], _ completion: @escaping Completion) {
        let name = String(decoding: arguments.first ?? [], as: UTF8.self).uppercased()
        if isSubscriber && !["SUBSCRIBE", "PSUBSCRIBE", "UNSUBSCRIBE", "PUNSUBSCRIBE", "PING"].contains(name) {
            deferCompletion(completion, .failure(.notAllowedWhileSubscribed(command: name)))
            return
        }
        enqueue(arguments, replies: 1, completion)
    }

    /// ``send(_:_:)`` with arguments given as text.
    public func send(_ arguments: [String], _ completion: @escaping Completion) {
        send(arguments.map { Array($0.utf8) }, completion)
    }

    /// Subscribes to `channels` (at least one) and enters subscriber mode; `completion` is called once Redis has
    /// confirmed every channel: from then on, every message published on them reaches ``pushHandler``.
    public func subscribe(_ channels: [[UInt8]], _ completion: @escaping Completion) {
        subscription("SUBSCRIBE", channels, completion)
    }

    /// Subscribes to channel patterns, as ``subscribe(_:_:)``.
    public func patternSubscribe(_ patterns: [[UInt8]], _ completion: @escaping Completion) {
        subscription("PSUBSCRIBE", patterns, completion)
    }

    /// Unsubscribes from `channels` (at least one); `completion` is called once Redis has confirmed each.
    public func unsubscribe(_ channels: [[UInt8]], _ completion: @escaping Completion) {
        subscription("UNSUBSCRIBE", channels, completion)
    }

    private func subscription(_ command: String, _ channels: [[UInt8]], _ completion: @escaping Completion) {
        precondition(!channels.isEmpty, "name the channels: Redis's reply count depends on them")
        isSubscriber = true
        enqueue([Array(command.utf8)] + channels, replies: channels.count, completion)
    }

    private func enqueue(_ arguments: [[UInt8]], replies: Int, _ completion: @escaping Completion) {
        guard failure == nil, connection.isOpen else {
            deferCompletion(completion, .failure(failure ?? .closed))
            return
        }
        let bytes = RESPEncoder.command(arguments)
        let overflow: RedisError? =
            if connection.pendingOutputByteCount + bytes.count > limits.maximumPendingOutput {
                .outputTooLarge(limit: limits.maximumPendingOutput)
            } else if commandsInFlight >= limits.maximumCommandsInFlight {
                .tooManyCommands(limit: limits.maximumCommandsInFlight)
            } else {
                nil
            }
        if let overflow {
            pending.append(Pending(repliesLeft: 1, completion: completion))
            fail(overflow, later: true)
            return
        }
        pending.append(Pending(repliesLeft: replies, completion: completion))
        connection.write(bytes)
    }

    /// Completions are never called from inside `send`: a failure found there is handed over on the next turn of
    /// the loop.
    private func deferCompletion(_ completion: @escaping Completion, _ result: Result<RedisValue, RedisError>) {
        loop.schedule(after: .zero) { completion(result) }
    }

    /// Closes the connection; commands awaiting replies fail with ``RedisError/closed``.
    public func close() {
        guard failure == nil else { return }
        failure = .closed
        closeHandler = nil
        connection.close()
        failPending(.closed)
    }

    /// Ends the connection with `error`: pending commands fail, then ``closeHandler`` is told; at once, or on the
    /// next turn of the loop when `later` (a failure found inside ``send(_:_:)``).
    private func fail(_ error: RedisError, later: Bool = false) {
        guard failure == nil else { return }
        failure = error
        connection.close()
        let waiting = pending[pendingHead...].map(\.completion)
        pending = []
        pendingHead = 0
        let handler = closeHandler
        closeHandler = nil
        pushHandler = nil
        let notify = {
            for completion in waiting { completion(.failure(error)) }
            handler?(error)
        }
        if later { loop.schedule(after: .zero, notify) } else { notify() }
    }

    private func failPending(_ error: RedisError) {
        let waiting = pending[pendingHead...].map(\.completion)
        pending = []
        pendingHead = 0
        for completion in waiting { completion(.failure(error)) }
    }

    // MARK: ConnectionHandler

    public func connection(_ connection: any Connection, didRead bytes: UnsafeRawBufferPointer) {
        guard failure == nil else { return }
        do throws(RedisError) {
            try reader.feed(bytes) { value in
                handle(value)
                return failure == nil
            }
        } catch {
            fail(error)
        }
    }

    public func connection(_ connection: any Connection, didCloseWith error: TransportError?) {
        fail(.connectionLost(error.map { String(describing: $0) } ?? "the server closed the connection"))
    }

    /// One complete reply: a push, or the reply to the oldest command awaiting one.
    private func handle(_ value: RedisValue) {
        if isSubscriber, let push = Self.push(in: value) {
            pushHandler?(push)
            return
        }
        guard pendingHead < pending.count else {
            fail(.protocolError("a reply came for no command"))
            return
        }
        let result: Result<RedisValue, RedisError>
        if case .error(let message) = value { result = .failure(.server(message)) } else { result = .success(value) }
        pending[pendingHead].repliesLeft -= 1
        if case .failure(let error) = result, pending[pendingHead].firstError == nil {
            pending[pendingHead].firstError = error
        }
        guard pending[pendingHead].repliesLeft == 0 else { return }
        let done = pending[pendingHead]
        pending[pendingHead] = Pending(repliesLeft: 0, completion: { _ in })
        pendingHead += 1
        if pendingHead == pending.count {
            pending.removeAll(keepingCapacity: pending.capacity <= 64)
            pendingHead = 0
        } else if pendingHead > 64 && pendingHead * 2 > pending.count {
            pending.removeSubrange(0..<pendingHead)
            pendingHead = 0
        }
        done.completion(done.firstError.map { .failure($0) } ?? result)
    }

    /// The push a reply is, if it is one: `["message", channel, payload]` or `["pmessage", pattern, channel,
    /// payload]`.
    private static func push(in value: RedisValue) -> Push? {
        guard case .array(let elements) = value, let kind = elements.first?.bytes else { return nil }
        if kind == Array("message".utf8), elements.count == 3, let channel = elements[1].bytes,
            let payload = elements[2].bytes
        {
            return .message(channel: channel, payload: payload)
        }
        if kind == Array("pmessage".utf8), elements.count == 4, let pattern = elements[1].bytes,
            let channel = elements[2].bytes, let payload = elements[3].bytes
        {
            return .patternMessage(pattern: pattern, channel: channel, payload: payload)
        }
        return nil
    }
}
