/// An event loop for unit tests: tasks run when the test calls ``runUntilIdle()``, and time moves
/// only when the test calls ``advance(by:)``. Deterministic; single-threaded.
public final class MemoryEventLoop: EventLoop {
    private var tasks: [() -> Void] = []
    private var iterationEndHandlers: [() -> Void] = []
    private var timers: [(deadline: Duration, id: UInt64, body: () -> Void)] = []
    private var nextTimerID: UInt64 = 0
    /// Virtual time since the loop was created.
    public private(set) var now: Duration = .zero
    /// Whether ``stop()`` was called.
    public private(set) var isStopped = false

    /// Creates a loop at virtual time zero.
    public init() {}

    /// Queues a task for the next ``runUntilIdle()``.
    public func enqueue(_ task: @escaping () -> Void) {
        tasks.append(task)
    }

    /// Runs queued tasks, and the tasks they queue, until none is left.
    public func runUntilIdle() {
        var rounds = 0
        while true {
            for handler in iterationEndHandlers { handler() }
            guard !tasks.isEmpty else { return }
            rounds += 1
            precondition(rounds < 1_000_000, "memory loop did not settle")
            let batch = tasks
            tasks.removeAll()
            for task in batch { task() }
        }
    }

    public func addIterationEndHandler(_ handler: @escaping () -> Void) {
        iterationEndHandlers.append(handler)
    }

    /// Moves virtual time forward, firing due timers in order, and runs until idle.
    public func advance(by delay: Duration) {
        let target = now + delay
        runUntilIdle()
        while let next = timers.min(by: { ($0.deadline, $0.id) < ($1.deadline, $1.id) }), next.deadline <= target {
            timers.removeAll { $0.id == next.id }
            now = next.deadline
            next.body()
            runUntilIdle()
        }
        now = target
    }

    @discardableResult
    public func schedule(after delay: Duration, _ body: @escaping () -> Void) -> TimerID {
        nextTimerID += 1
        timers.append((now + delay, nextTimerID, body))
        return TimerID(value: nextTimerID)
    }

    public func cancel(_ timer: TimerID) {
        timers.removeAll { $0.id == timer.value }
    }

    public func stop() {
        isStopped = true
    }
}
