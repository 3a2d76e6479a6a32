import Dispatch

#if canImport(Glibc)
    import Glibc
#elseif canImport(Darwin)
    import Darwin
#endif

/// Turns SIGINT, SIGTERM and SIGHUP into messages on the event loop, so the loop can shut down in
/// order instead of dying mid-write. Also ignores SIGPIPE for the process.
public final class SignalWatcher {
    private var sources: [any DispatchSourceSignal] = []

    /// The signals that end a relay or a client in order.
    public static var terminating: [Int32] { [SIGINT, SIGTERM, SIGHUP] }

    /// Starts watching; each signal is posted to `inbox` by its number.
    public init(signals: [Int32], inbox: LoopInbox<Int32>) {
        System.ignoreSIGPIPE()
        // A source starts watching only once Dispatch has registered it, which happens on another
        // thread after `resume`; until then the signal, ignored, would be lost. Wait for every
        // registration (bounded) so that a signal sent right after start-up is seen.
        let registered = DispatchSemaphore(value: 0)
        for number in signals {
            _ = signal(number, SIG_IGN)
            let source = DispatchSource.makeSignalSource(signal: number, queue: .global())
            source.setEventHandler { inbox.post(number) }
            source.setRegistrationHandler { registered.signal() }
            source.resume()
            sources.append(source)
        }
        for _ in signals { _ = registered.wait(timeout: .now() + .seconds(2)) }
    }

    deinit {
        for source in sources { source.cancel() }
    }
}
