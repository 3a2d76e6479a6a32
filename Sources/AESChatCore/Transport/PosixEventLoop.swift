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
    // Touched for every connection flushed; no access to them overlaps another (see TCPConnection on
    // `@exclusivity(unchecked)`).
    @exclusivity(unchecked) private var connectionsToFlush: [TCPConnection] = []
    @exclusivity(unchecked) private var flushing: [TCPConnection] = []
    private var runningTasks: [() -> Void] = []
    private var stopped = false
    private let waker: Waker
    private var inboxes: [any InboxDraining] = []
    private var iterationEndHandlers: [() -> Void] = []

    /// One read buffer shared by every connection of the loop: reads land here and are handed to
    /// the connection's handler, which copies only what it must keep.
    let readBuffer: UnsafeMutableRawBufferPointer
    /// One buffer for sealing a record at flush time, shared by every protected connection of the
    /// loop: a record is gathered and sealed here, sent, and only the part the kernel did not take
    /// is copied into its connection. Allocated at the first use.
    @exclusivity(unchecked) private var sealScratch = UnsafeMutableRawBufferPointer(start: nil, count: 0)

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
        sealScratch.deallocate()
    }

    /// The loop's scratch buffer for sealing one record, at least `count` bytes; valid until the
    /// next call.
    func recordScratch(count: Int) -> UnsafeMutableRawBufferPointer {
        if sealScratch.count < count {
            sealScratch.deallocate()
            sealScratch = .allocate(byteCount: count, alignment: 16)
        }
        return sealScratch
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
