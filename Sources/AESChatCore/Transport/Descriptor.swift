#if canImport(Glibc)
    import Glibc
#elseif canImport(Darwin)
    import Darwin
#endif

/// An open file descriptor and the duty to close it, exactly once.
///
/// Not copyable, so there is one owner: the owner closes it with ``close()`` where the moment
/// matters (a socket that must be taken off the selector first, say), and otherwise `deinit` closes
/// it when the owner lets go of it, so no path, early return or thrown error can leak it. (Closing
/// rather than trapping in `deinit` is the safe choice here: every owner is a `let` or an optional
/// taken once, so a second close cannot happen, and a forgotten close costs nothing but a later
/// release.) ``rawValue`` is only for system calls made while the owner holds it; it must not be
/// stored anywhere that outlives the owner.
struct Descriptor: ~Copyable, Sendable {
    /// The descriptor number, for system calls.
    let rawValue: Int32

    /// Takes ownership of `rawValue`, which must be an open descriptor (not -1).
    init(_ rawValue: Int32) {
        precondition(rawValue >= 0, "not an open descriptor")
        self.rawValue = rawValue
    }

    /// Takes ownership of what `open`, `socket`, `accept` and the like returned, or nil when they
    /// failed (errno is left as the call set it).
    init?(returned rawValue: Int32) {
        guard rawValue >= 0 else { return nil }
        self.rawValue = rawValue
    }

    /// Closes the descriptor now, ignoring the result (it is gone either way, EINTR included).
    consuming func close() {
        closeNumber(rawValue)
        discard self
    }

    /// Gives up ownership without closing: the caller (such as `fdopendir`) closes it from now on.
    consuming func release() -> Int32 {
        let number = rawValue
        discard self
        return number
    }

    deinit {
        closeNumber(rawValue)
    }
}

/// close(2), outside the type whose method has the same name.
private func closeNumber(_ number: Int32) {
    _ = close(number)
}
