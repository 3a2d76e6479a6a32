#if os(Linux)
    import Foundation

    /// Several ``LoadEngine``s, one per thread, over disjoint ranges of the members, so the generator
    /// can use more than one core. Engine 0 holds members 0…, and so every sender.
    final class EngineGroup: @unchecked Sendable {
        // Guard: an engine is used by one thread at a time. `run` hands engine k to thread k (engine 0
        // to the calling thread) and returns only after every thread is done with its engine.
        let engines: [LoadEngine]

        init(configuration: LoadEngine.Configuration, threads: Int) throws(LoadError) {
            let total = configuration.members
            // With a join storm and two threads or more, the last engine holds the storm and none of the chatting
            // members: while it reads the storm's 1,000 message 2s (an X25519 each), no chat delivery waits behind it,
            // so the latencies measured during the storm are the relay's.
            let stormAlone = configuration.stormCount > 0 && threads >= 2
            let sharing = stormAlone ? threads - 1 : threads
            var engines: [LoadEngine] = []
            for k in 0..<threads {
                var part = configuration
                part.first = k < sharing ? total * k / sharing : total
                part.count = k < sharing ? total * (k + 1) / sharing - part.first : 0
                // The join concurrency is the whole generator's (docs/BENCHMARKS.md: up to 1,000 waiting
                // for their welcome at once), shared between the engines.
                part.joinConcurrency = max(1, configuration.joinConcurrency / threads)
                // The handshake probes are shared out; the join storm belongs to the last engine.
                part.probeCount = configuration.probeCount * (k + 1) / threads - configuration.probeCount * k / threads
                part.probeConcurrency = max(1, configuration.probeConcurrency / threads)
                part.stormCount = k == threads - 1 ? configuration.stormCount : 0
                engines.append(try LoadEngine(part))
            }
            self.engines = engines
        }

        /// Runs `body` for every engine at once, each on its own thread.
        /// - Returns: the results, by engine.
        func run<T>(_ body: @escaping @Sendable (Int, LoadEngine) throws(LoadError) -> T) throws(LoadError) -> [T] {
            let box = ResultBox<T>(count: engines.count)
            let done = DispatchSemaphore(value: 0)
            for k in 1..<max(1, engines.count) {
                let job = EngineJob(engine: engines[k])
                let thread = Thread {
                    box.set(k, Result { () throws(LoadError) -> T in try body(k, job.engine) })
                    done.signal()
                }
                thread.stackSize = 4 << 20
                thread.start()
            }
            box.set(0, Result { () throws(LoadError) -> T in try body(0, engines[0]) })
            for _ in 1..<max(1, engines.count) { done.wait() }
            return try box.values()
        }
    }

    /// An engine handed to its thread.
    private final class EngineJob: @unchecked Sendable {
        // Guard: only the thread it is handed to uses the engine until `EngineGroup.run` returns.
        let engine: LoadEngine
        init(engine: LoadEngine) { self.engine = engine }
    }

    /// Results handed back from the engine threads.
    private final class ResultBox<T>: @unchecked Sendable {
        // Guard: `lock` protects `results`.
        private let lock = NSLock()
        private var results: [Result<T, LoadError>?]

        init(count: Int) { results = Array(repeating: nil, count: count) }

        func set(_ index: Int, _ result: Result<T, LoadError>) {
            lock.lock()
            results[index] = result
            lock.unlock()
        }

        func values() throws(LoadError) -> [T] {
            lock.lock()
            defer { lock.unlock() }
            var values: [T] = []
            var failures: [LoadError] = []
            for result in results {
                switch result {
                case .success(let value)?: values.append(value)
                case .failure(let error)?: failures.append(error)
                case nil: failures.append(.system("an engine thread"))
                }
            }
            // Every engine's failure is reported: each says what its own members were waiting for.
            if failures.count == 1 { throw failures[0] }
            if failures.count > 1 { throw .several(failures.map(\.description).joined(separator: " | ")) }
            return values
        }
    }
#endif
