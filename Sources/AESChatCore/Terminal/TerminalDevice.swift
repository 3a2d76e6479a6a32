#if canImport(Glibc)
    import Glibc
#elseif canImport(Darwin)
    import Darwin
#endif

/// The few system calls the interactive terminal makes on standard input and output: its size,
/// blocking reads with an optional wait, and complete writes.
enum TerminalDevice {
    /// Whether a descriptor is a terminal.
    static func isTerminal(_ descriptor: Int32) -> Bool {
        isatty(descriptor) == 1
    }

    /// The size of the terminal on standard output (`TIOCGWINSZ`), or `nil` if unknown.
    static func size() -> ChatScreen.Size? {
        var size = winsize()
        let result = withUnsafeMutablePointer(to: &size) { ioctl(1, UInt(TIOCGWINSZ), $0) }
        guard result == 0, size.ws_row > 0, size.ws_col > 0 else { return nil }
        return ChatScreen.Size(rows: Int(size.ws_row), columns: Int(size.ws_col))
    }

    /// Waits until standard input has bytes to read.
    /// - Parameter milliseconds: the longest wait.
    /// - Returns: whether input is ready (or the terminal hung up) within the time.
    static func waitForInput(milliseconds: Int32) -> Bool {
        var descriptor = pollfd(fd: 0, events: Int16(POLLIN), revents: 0)
        return System.retryingInterrupts { poll(&descriptor, 1, milliseconds) } > 0
    }

    /// Reads what standard input has, blocking until something arrives (also when another
    /// program left the terminal non-blocking).
    /// - Returns: the byte count; 0 at end of input or on an error (a hang-up, say).
    static func read(into buffer: inout [UInt8]) -> Int {
        let capacity = buffer.count
        while true {
            let count = buffer.withUnsafeMutableBytes { raw in
                System.read(0, into: UnsafeMutableRawBufferPointer(rebasing: raw[0..<capacity]))
            }
            if count >= 0 { return count }
            guard errno == EAGAIN || errno == EWOULDBLOCK else { return 0 }
            _ = waitForInput(milliseconds: -1)
        }
    }

    /// Writes all of `text` to standard output; gives up quietly if the terminal is gone.
    static func write(_ text: String) {
        guard !text.isEmpty else { return }
        _ = System.writeAll(1, Array(text.utf8))
    }
}
