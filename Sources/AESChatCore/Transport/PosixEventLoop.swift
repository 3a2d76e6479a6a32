#if canImport(Glibc)
    import Glibc
#elseif canImport(Darwin)
    import Darwin
#endif

/// Something the loop tells when its descriptor is ready.
protocol ReadinessHandler: AnyObject {
    func handle(_ readiness: Readiness)
}

/// A single-threaded readiness loop over POSIX descriptors: epoll on Linux, poll(2) elsewhere (or
/// poll on Linux too, when asked: the tests run on both; see ``SelectorBackend``).
///
/// Every socket, timer and deferred task of a relay or client runs on the thread that calls
/// ``run()``; no thread per client. Other threads talk to it only through ``LoopInbox``.
/// Not thread-safe otherwise.
///
/// Descriptor numbers are reused: a handler may close a descriptor and a later one (an accepted
/// connection, a file) get the same number while one wait's reports are still being handed out,
/// and a report meant for the old descriptor then reaches the new one's handler. So every
/// ``ReadinessHandler`` must tolerate a spurious readiness: a read or accept that finds nothing
/// (EAGAIN), a write that is not possible yet, a connect that has not finished. Reports for a
/// descriptor deregistered meanwhile are dropped.
public final class PosixEventLoop: EventLoop {
    private let selector: any SelectorBackend
    /// Handlers by descriptor number: descriptors are small and dense, so an array beats a
    /// dictionary in both lookup time and memory (16 bytes a slot).
    private var sources: [(any ReadinessHandler)?] = []
    private var timers = TimerQueue()
    private var deferred: [() -> Void] = []
    private var connectionsToFlush: [TCPConnection] = []
    private var flushing: [TCPConnection] = []
    private var runningTasks: [() -> Void] = []
    private var stopped = false
    private let waker: Waker
    private var inboxes: [any InboxDraining] = []
    private var iterationEndHandlers: [() -> Void] = []

    /// One read buffer shared by every connection of the loop: reads land here and are handed to
    /// the connection's handler, which copies only what it must keep.
    let readBuffer: UnsafeMutableRawBufferPointer

    /// Creates a loop.
    /// - Parameter selector: the readiness backend; the standard one (epoll on Linux) unless a test
    ///   asks for another.
    /// - Throws: ``TransportError`` if the kernel refuses an epoll instance or a pipe.
    public init(selector kind: SelectorKind = .standard) throws(TransportError) {
        selector = try kind.make()
        waker = try Waker()
        readBuffer = .allocate(byteCount: 256 * 1024, alignment: 16)
        try selector.register(waker.readDescriptor, interest: .read)
        setSource(waker.readDescriptor, WakeHandler(loop: self))
    }

    deinit {
        readBuffer.deallocate()
    }

    // MARK: Registration (used by sockets)

    func register(_ descriptor: Int32, interest: Interest, handler: any ReadinessHandler) throws(TransportError) {
        try selector.register(descriptor, interest: interest)
        setSource(descriptor, handler)
    }

    private func setSource(_ descriptor: Int32, _ handler: (any ReadinessHandler)?) {
        let index = Int(descriptor)
        if index >= sources.count {
            guard handler != nil else { return }
            sources.append(contentsOf: repeatElement(nil, count: max(index + 1 - sources.count, sources.count / 2)))
        }
        sources[index] = handler
    }

    func modify(_ descriptor: Int32, interest: Interest) {
        do {
            try selector.modify(descriptor, interest: interest)
        } catch {
            // Only possible for a descriptor we no longer own: a bug, but not worth a crash.
            assertionFailure("\(error)")
        }
    }

    func deregister(_ descriptor: Int32) {
        selector.deregister(descriptor)
        setSource(descriptor, nil)
    }

    /// Runs `task` after the current handler returns, before the loop waits again.
    func runLater(_ task: @escaping () -> Void) {
        deferred.append(task)
    }

    /// Queues a connection to have its output flushed at the end of this iteration, so that many
    /// writes to one connection go out in one system call.
    func scheduleFlush(_ connection: TCPConnection) {
        connectionsToFlush.append(connection)
    }

    /// Adds an inbox whose messages the loop hands to its handler.
    func add(inbox: any InboxDraining) {
        inboxes.append(inbox)
    }

    var wakeHandle: Waker { waker }

    // MARK: EventLoop

    @discardableResult
    public func schedule(after delay: Duration, _ body: @escaping () -> Void) -> TimerID {
        timers.schedule(at: ContinuousClock.now + delay, body)
    }

    public func cancel(_ timer: TimerID) {
        timers.cancel(timer)
    }

    public func stop() {
        stopped = true
    }

    public func addIterationEndHandler(_ handler: @escaping () -> Void) {
        iterationEndHandlers.append(handler)
    }

    /// Runs until ``stop()`` is called.
    /// - Throws: ``TransportError`` when waiting itself fails, which does not happen in practice.
    public func run() throws(TransportError) {
        stopped = false
        while !stopped {
            runDeferredAndFlush()
            if stopped { break }
            var timeout: Int32 = -1
            if let next = timers.nextDeadline {
                let remaining = next - ContinuousClock.now
                timeout = Int32(clamping: max(0, remaining.wholeMilliseconds + 1))
            }
            try selector.wait(timeoutMilliseconds: timeout) { readiness in
                let index = Int(readiness.descriptor)
                if index < sources.count { sources[index]?.handle(readiness) }
            }
            for task in timers.popDue(now: ContinuousClock.now) { task() }
        }
        runDeferredAndFlush()
    }

    private func runDeferredAndFlush() {
        while true {
            while !deferred.isEmpty {
                // Swap with a spare array rather than copy, so no iteration allocates.
                swap(&deferred, &runningTasks)
                for task in runningTasks { task() }
                runningTasks.removeAll(keepingCapacity: true)
            }
            for handler in iterationEndHandlers { handler() }
            guard !deferred.isEmpty || !connectionsToFlush.isEmpty else { return }
            if !connectionsToFlush.isEmpty {
                swap(&connectionsToFlush, &flushing)
                for connection in flushing { connection.flushScheduled() }
                flushing.removeAll(keepingCapacity: true)
            }
        }
    }

    fileprivate func drainInboxes() {
        waker.drain()
        for inbox in inboxes { inbox.drain() }
    }
}

private final class WakeHandler: ReadinessHandler {
    unowned let loop: PosixEventLoop
    init(loop: PosixEventLoop) { self.loop = loop }
    func handle(_ readiness: Readiness) { loop.drainInboxes() }
}

/// A pipe whose write end any thread may poke to wake the loop. Owns both ends, which close with it.
final class Waker: Sendable {
    private let pipe: System.Pipe

    init() throws(TransportError) {
        pipe = try System.makeNonBlockingPipe()
    }

    var readDescriptor: Int32 { pipe.read.rawValue }

    /// Wakes the loop. Safe from any thread; a full pipe means a wake-up is already pending.
    func wake() {
        var byte: UInt8 = 1
        _ = withUnsafeBytes(of: &byte) { System.write(pipe.write.rawValue, from: $0) }
    }

    func drain() {
        withUnsafeTemporaryAllocation(byteCount: 256, alignment: 1) { scratch in
            while System.read(pipe.read.rawValue, into: scratch) > 0 {}
        }
    }
}

/// Timers ordered by deadline in a binary heap; cancelled ones are dropped when they surface.
struct TimerQueue {
    private struct Entry {
        var deadline: ContinuousClock.Instant
        var id: UInt64
    }
    private var heap: [Entry] = []
    private var bodies: [UInt64: () -> Void] = [:]
    private var nextID: UInt64 = 0

    var nextDeadline: ContinuousClock.Instant? {
        mutating get {
            while let top = heap.first, bodies[top.id] == nil { removeTop() }
            return heap.first?.deadline
        }
    }

    mutating func schedule(at deadline: ContinuousClock.Instant, _ body: @escaping () -> Void) -> TimerID {
        nextID += 1
        bodies[nextID] = body
        heap.append(Entry(deadline: deadline, id: nextID))
        var child = heap.count - 1
        while child > 0 {
            let parent = (child - 1) / 2
            guard precedes(heap[child], heap[parent]) else { break }
            heap.swapAt(child, parent)
            child = parent
        }
        return TimerID(value: nextID)
    }

    mutating func cancel(_ timer: TimerID) {
        bodies[timer.value] = nil
    }

    mutating func popDue(now: ContinuousClock.Instant) -> [() -> Void] {
        var due: [() -> Void] = []
        while let top = heap.first, top.deadline <= now {
            removeTop()
            if let body = bodies.removeValue(forKey: top.id) { due.append(body) }
        }
        return due
    }

    private func precedes(_ a: Entry, _ b: Entry) -> Bool {
        a.deadline < b.deadline || (a.deadline == b.deadline && a.id < b.id)
    }

    private mutating func removeTop() {
        heap.swapAt(0, heap.count - 1)
        heap.removeLast()
        var parent = 0
        while true {
            let left = 2 * parent + 1
            let right = left + 1
            var smallest = parent
            if left < heap.count && precedes(heap[left], heap[smallest]) { smallest = left }
            if right < heap.count && precedes(heap[right], heap[smallest]) { smallest = right }
            if smallest == parent { return }
            heap.swapAt(parent, smallest)
            parent = smallest
        }
    }
}
