/// What a registered descriptor is waiting for.
struct Interest: OptionSet, Sendable {
    let rawValue: UInt8
    static let read = Interest(rawValue: 1)
    static let write = Interest(rawValue: 2)
}

/// Readiness reported for one descriptor.
struct Readiness {
    var descriptor: Int32
    var readable: Bool
    var writable: Bool
    /// Error or hang-up: the owner reads or writes to learn which.
    var failed: Bool
}

/// The checklist every readiness backend of ``PosixEventLoop`` follows (as NIO's
/// `_SelectorBackendProtocol` is for its selectors), so that the loop and the transport tests can
/// run on any of them:
/// - registration is by descriptor number, level-triggered, for read, write, both or neither;
/// - a descriptor registered with no interest still reports errors and hang-ups (`failed`);
/// - ``deregister(_:)`` is called before the descriptor is closed, and does nothing for a
///   descriptor that is not registered;
/// - ``wait(timeoutMilliseconds:_:)`` returns without reporting anything when a signal interrupts
///   it, and reports each ready descriptor once per call. The body may register, modify and
///   deregister descriptors (its own or others') while it runs: a report for a descriptor
///   deregistered earlier in the same call may still arrive, which the loop drops, and a number
///   closed and reused within one call may be reported for its new owner (see ``PosixEventLoop``).
///
/// One per event loop; loop thread only.
protocol SelectorBackend: AnyObject {
    init() throws(TransportError)
    func register(_ descriptor: Int32, interest: Interest) throws(TransportError)
    func modify(_ descriptor: Int32, interest: Interest) throws(TransportError)
    func deregister(_ descriptor: Int32)
    /// Waits up to `timeoutMilliseconds` (-1: forever) and reports each ready descriptor.
    func wait(timeoutMilliseconds: Int32, _ body: (Readiness) -> Void) throws(TransportError)
}

/// The readiness backends this system has.
public enum SelectorKind: Sendable, CaseIterable, CustomStringConvertible {
    #if os(Linux)
        /// epoll(7): the production backend on Linux.
        case epoll
    #endif
    /// poll(2): the portable backend (production where there is no epoll; tested on Linux too).
    case poll

    /// The backend a loop uses unless told otherwise: epoll on Linux, poll elsewhere.
    public static var standard: SelectorKind {
        #if os(Linux)
            .epoll
        #else
            .poll
        #endif
    }

    public var description: String {
        switch self {
        #if os(Linux)
            case .epoll: "epoll"
        #endif
        case .poll: "poll"
        }
    }

    func make() throws(TransportError) -> any SelectorBackend {
        switch self {
        #if os(Linux)
            case .epoll: try EpollSelector()
        #endif
        case .poll: try PollSelector()
        }
    }
}
