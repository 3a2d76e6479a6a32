import AESChatCrypto
import Foundation

/// What the responder's side of one encrypted-link handshake needs: the relay key the client named, the prologue
/// (label ‖ the client's preamble) and message 1 without its length prefix. All `Sendable`, so a job can go to
/// another thread.
public struct HandshakeJob: Sendable {
    /// The relay's static key the preamble named (the current one, or the previous one during a rotation).
    let staticKey: X25519PrivateKey
    /// ``LinkPreamble/prologue`` of the client's preamble.
    let prologue: [UInt8]
    /// Message 1: the client's ephemeral key and the tag, 48 bytes.
    let message1: [UInt8]
}

/// The outcome of one handshake job: message 2 (without its length prefix) and the transport keys, or why message
/// 1 was refused.
///
/// `@unchecked Sendable` guard: the keys are made on the thread that ran the handshake and handed over once, to the
/// loop thread; the maker keeps no reference to them, and the hand-over goes through ``LoopInbox``, whose lock orders
/// the two threads' accesses.
public struct HandshakeResult: @unchecked Sendable {
    let outcome: Result<(message2: [UInt8], keys: NoiseTransportKeys), LinkError>

    /// Runs the responder for `job`: reads message 1, writes message 2 with `ephemeralKey` (a fresh key from
    /// `GCRY_STRONG_RANDOM` when nil, made only once message 1 has authenticated), and splits.
    static func respond(to job: HandshakeJob, ephemeralKey: X25519PrivateKey?) -> HandshakeResult {
        let handshake = NoiseHandshake.responder(
            staticKey: job.staticKey, prologue: job.prologue, ephemeralKey: ephemeralKey)
        do throws(LinkError) {
            _ = try handshake.readMessage(job.message1)
            let message2 = try handshake.writeMessage()
            return HandshakeResult(outcome: .success((message2, try handshake.finish())))
        } catch {
            return HandshakeResult(outcome: .failure(error))
        }
    }
}

/// Where the relay runs the responder's side of its handshakes (an X25519 for the ephemeral key unless one was made
/// ahead, then two for `es` and `ee`: about 0.7 ms). The relay hands a job over on the loop thread and gets the result
/// back on the loop thread, at once or later; it counts the jobs in progress itself.
public protocol HandshakeExecutor: AnyObject {
    /// Runs `job` and calls `completion` with its result on the loop thread: during this call or later, exactly
    /// once, unless the executor is stopped first.
    func respond(to job: HandshakeJob, completion: @escaping (HandshakeResult) -> Void)
}

/// Runs each handshake at once on the loop thread: deterministic, for ``MemoryEventLoop`` tests. Each costs the loop
/// about 0.7 ms.
public final class InlineHandshakes: HandshakeExecutor {
    /// Creates the executor.
    public init() {}

    public func respond(to job: HandshakeJob, completion: @escaping (HandshakeResult) -> Void) {
        completion(HandshakeResult.respond(to: job, ephemeralKey: nil))
    }
}

/// Runs handshakes on a worker thread of its own, so that the loop keeps serving chat during a join storm; the
/// results come back through a ``LoopInbox`` of the loop. While no job waits, the worker makes ephemeral keys ahead
/// of time (from `GCRY_STRONG_RANDOM`, each used once), up to a small stock, so that a handshake costs two X25519
/// on the worker instead of three.
///
/// How many jobs may wait is the relay's business (``RelayLimits/maximumHandshakesInProgress``). Call ``stop()``
/// when the loop is done; a job still waiting is then dropped without its completion.
///
/// Threading: ``respond(to:completion:)`` and ``stop()`` on the loop thread; `@unchecked Sendable` guard:
/// `condition` protects `jobs` and `isStopped`, `stock` is touched only by the worker thread, `completions` and
/// `nextJob` only by the loop thread.
public final class WorkerHandshakes: HandshakeExecutor, @unchecked Sendable {
    private let condition = NSCondition()
    private var jobs: [(id: UInt64, job: HandshakeJob)] = []
    private var isStopped = false
    private var stock: [X25519PrivateKey] = []
    private let stockSize: Int
    private let inbox: LoopInbox<Completed>
    private var completions: [UInt64: (HandshakeResult) -> Void] = [:]
    private var nextJob: UInt64 = 0

    private struct Completed: Sendable {
        let id: UInt64
        let result: HandshakeResult
    }

    /// Starts the worker thread.
    /// - Parameters:
    ///   - loop: the loop whose thread gets the results.
    ///   - stockSize: ephemeral keys the worker keeps made ahead.
    public init(loop: PosixEventLoop, stockSize: Int = 32) {
        self.stockSize = stockSize
        inbox = LoopInbox(loop: loop, capacity: 1024)
        inbox.setHandler { [weak self] completed in
            self?.completions.removeValue(forKey: completed.id)?(completed.result)
        }
        let thread = Thread { [self] in work() }
        thread.name = "aeschat handshakes"
        thread.start()
    }

    /// Jobs handed over whose results have not come back to the loop yet.
    public var pendingCount: Int { completions.count }

    public func respond(to job: HandshakeJob, completion: @escaping (HandshakeResult) -> Void) {
        nextJob &+= 1
        completions[nextJob] = completion
        condition.lock()
        jobs.append((nextJob, job))
        condition.signal()
        condition.unlock()
    }

    /// Stops the worker thread after the job it is running; waiting jobs are dropped.
    public func stop() {
        condition.lock()
        isStopped = true
        jobs.removeAll()
        condition.signal()
        condition.unlock()
        completions.removeAll()
    }

    /// The worker thread: runs jobs in order, and makes ephemeral keys while none waits.
    private func work() {
        while true {
            condition.lock()
            while jobs.isEmpty && !isStopped && stock.count >= stockSize {
                condition.wait()
            }
            if isStopped {
                condition.unlock()
                return
            }
            let next = jobs.isEmpty ? nil : jobs.removeFirst()
            condition.unlock()
            if let next {
                let result = HandshakeResult.respond(to: next.job, ephemeralKey: stock.popLast())
                inbox.post(Completed(id: next.id, result: result))
            } else if let key = try? X25519PrivateKey(ephemeral: ()) {
                stock.append(key)
            }
        }
    }
}
