import Foundation

/// Numbered pieces of work shared out over a few threads: each thread takes the next piece nobody has taken yet,
/// so a long piece (a newcomer admitting a whole room) does not hold up the short ones. The caller makes sure the
/// pieces of one batch touch disjoint state (in `room-keys`, each piece is one member's).
final class SharedWork<Result>: @unchecked Sendable {
    // Guard: `lock` protects `next` and `results`. A piece runs on the one thread that took its index, and the
    // pieces of a batch share no state (the caller's promise); `results` is read after every thread is done.
    private let lock = NSLock()
    private let pieces: [() -> Result]
    private var next = 0
    private var results: [Result?]

    init(_ pieces: [() -> Result]) {
        self.pieces = pieces
        results = Array(repeating: nil, count: pieces.count)
    }

    /// Runs every piece on `threads` threads, the calling thread one of them (no other thread for one piece or
    /// one thread), and returns when all are done.
    /// - Returns: the results, in the pieces' order.
    func run(threads: Int) -> [Result] {
        let helpers = min(threads, pieces.count) - 1
        guard helpers > 0 else { return pieces.map { $0() } }
        let done = DispatchSemaphore(value: 0)
        for _ in 0..<helpers {
            let thread = Thread { [self] in
                work()
                done.signal()
            }
            thread.stackSize = 4 << 20
            thread.start()
        }
        work()
        for _ in 0..<helpers { done.wait() }
        lock.lock()
        defer { lock.unlock() }
        return results.map { $0! }
    }

    private func work() {
        while let index = take() {
            let result = pieces[index]()
            lock.lock()
            results[index] = result
            lock.unlock()
        }
    }

    private func take() -> Int? {
        lock.lock()
        defer { lock.unlock() }
        guard next < pieces.count else { return nil }
        next += 1
        return next - 1
    }
}
