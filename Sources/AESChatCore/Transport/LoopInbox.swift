import Foundation

/// The loop side of an inbox, drained when the loop wakes.
protocol InboxDraining: AnyObject {
    func drain()
}

/// Carries values from other threads (a blocking standard-input reader, a signal source) to the
/// event loop thread, where `handler` receives them in order.
///
/// Bounded: `post` blocks the posting thread while `capacity` values wait, so a fast producer
/// cannot grow memory without limit. The loop can pause delivery (backpressure) and resume it.
public final class LoopInbox<Message: Sendable>: InboxDraining, @unchecked Sendable {
    // Guard: `condition` protects `queue`. `handler` and `isPaused` are touched only on the loop
    // thread (set up before any posting thread starts).
    private let condition = NSCondition()
    private var queue: [Message] = []
    private let capacity: Int
    private let wake: @Sendable () -> Void
    private var handler: (Message) -> Void = { _ in }
    private var isPaused = false

    /// Creates an inbox attached to a POSIX loop.
    /// - Parameters:
    ///   - loop: the loop whose thread receives the values.
    ///   - capacity: values held before `post` blocks.
    public init(loop: PosixEventLoop, capacity: Int = 256) {
        self.capacity = capacity
        let waker = loop.wakeHandle
        wake = { waker.wake() }
        loop.add(inbox: self)
    }

    /// Creates an inbox drained by hand (for in-memory tests).
    public init(capacity: Int = 256, wake: @escaping @Sendable () -> Void) {
        self.capacity = capacity
        self.wake = wake
    }

    /// Sets the receiver. Loop thread only.
    public func setHandler(_ handler: @escaping (Message) -> Void) {
        self.handler = handler
    }

    /// Hands a value to the loop. Any thread; blocks while the inbox is full.
    public func post(_ message: Message) {
        condition.lock()
        while queue.count >= capacity { condition.wait() }
        queue.append(message)
        condition.unlock()
        wake()
    }

    /// Stops handing values to the handler until ``resume()``. Loop thread only.
    public func pause() {
        isPaused = true
    }

    /// Resumes delivery, handing over anything that waited. Loop thread only.
    public func resume() {
        isPaused = false
        drain()
    }

    /// Delivers waiting values to the handler. Loop thread only.
    public func drain() {
        while !isPaused {
            condition.lock()
            guard !queue.isEmpty else {
                condition.unlock()
                return
            }
            let message = queue.removeFirst()
            condition.broadcast()
            condition.unlock()
            handler(message)
        }
    }
}
