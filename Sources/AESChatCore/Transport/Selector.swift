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
