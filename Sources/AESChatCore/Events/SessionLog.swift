#if canImport(Glibc)
    import Glibc
#elseif canImport(Darwin)
    import Darwin
#endif

/// Why `--log FILE` cannot be used.
public struct SessionLogError: Error, CustomStringConvertible, Equatable, Sendable {
    /// One line naming the file and what to do.
    public var description: String
}

/// `join --log FILE`: the session appended to a file as plain text, one line per event with the local date and
/// time (`2026-12-03 14:02:05 <bob> hi`), never an escape code (network text is escaped as on the terminal).
///
/// The file is opened once, for appending, created with mode 0600; an existing file is used only if it is a
/// regular file (not a symbolic link) owned by the user that nobody else may read or write: a log holds private
/// messages in clear, so a wider one is refused rather than warned about. A write that fails stops the logging
/// and is reported once (as a warning event, by the caller). Not thread-safe: the event loop's thread makes every
/// call.
public final class SessionLog {
    private let file: Descriptor
    /// The path, for messages.
    public let path: String
    private let now: () -> String
    private var failed = false

    /// Opens (or creates) the log.
    /// - Parameters:
    ///   - path: The file.
    ///   - now: The local date and time as the lines start with (a seam for tests).
    /// - Throws: ``SessionLogError`` when the file cannot be opened, is not a regular file or a link, belongs to
    ///   someone else, or may be read or written by group or others.
    public init(path: String, now: @escaping () -> String = SessionLog.localDateAndTime) throws(SessionLogError) {
        self.path = path
        self.now = now
        let flags = O_WRONLY | O_APPEND | O_CREAT | O_NOFOLLOW | O_CLOEXEC | O_NONBLOCK
        guard let file = Descriptor(returned: open(path, flags, 0o600)) else {
            let reason = errno == ELOOP ? "it is a symbolic link" : System.lastError
            throw SessionLogError(description: "cannot open the log file '\(path)': \(reason)")
        }
        var status = stat()
        guard fstat(file.rawValue, &status) == 0 else {
            throw SessionLogError(description: "cannot open the log file '\(path)': \(System.lastError)")
        }
        guard (status.st_mode & S_IFMT) == S_IFREG else {
            throw SessionLogError(description: "the log file '\(path)' is not a regular file")
        }
        guard status.st_uid == geteuid() else {
            throw SessionLogError(description: "the log file '\(path)' belongs to another user")
        }
        let mode = status.st_mode & 0o777
        guard mode & 0o077 == 0 else {
            throw SessionLogError(
                description: "the log file '\(path)' can be read or written by other users (mode "
                    + String(mode, radix: 8) + "); restrict it with 'chmod 600 \(path)' or choose another file")
        }
        self.file = file
    }

    /// Appends one line: the date and time, a space, the text (which must hold no line break or escape code).
    /// - Returns: false when the write failed, the first time only (later lines are dropped).
    @discardableResult
    public func write(_ text: String) -> Bool {
        guard !failed else { return true }
        var bytes = Array((now() + " " + text).utf8)
        bytes.append(0x0A)
        if System.writeAll(file.rawValue, bytes) != nil {
            failed = true
            return false
        }
        return true
    }

    /// The local date and time, `2026-12-03 14:02:05`.
    public static func localDateAndTime() -> String {
        var seconds = time(nil)
        var parts = tm()
        localtime_r(&seconds, &parts)
        func digits(_ value: Int32, _ count: Int) -> String {
            let text = String(value)
            return String(repeating: "0", count: max(0, count - text.count)) + text
        }
        return digits(parts.tm_year + 1900, 4) + "-" + digits(parts.tm_mon + 1, 2) + "-" + digits(parts.tm_mday, 2)
            + " " + digits(parts.tm_hour, 2) + ":" + digits(parts.tm_min, 2) + ":" + digits(parts.tm_sec, 2)
    }
}

/// A ``ClientOutput`` that shows each event on another output and appends it to a ``SessionLog``: its
/// ``ClientEvent/humanText`` (escaped), except the progress of file transfers, which would fill the log.
public final class LoggingOutput: ClientOutput {
    private let shown: any ClientOutput
    private let log: SessionLog

    /// Wraps an output.
    /// - Parameters:
    ///   - output: Where events are shown.
    ///   - log: Where they are written too.
    public init(_ output: any ClientOutput, log: SessionLog) {
        shown = output
        self.log = log
    }

    public func emit(_ event: ClientEvent) {
        shown.emit(event)
        if case .fileProgress = event { return }
        for line in event.humanText.split(separator: "\n", omittingEmptySubsequences: false) {
            record(String(line))
        }
    }

    /// Passed on: the status row's transfer readout is not logged (each transfer has its own events).
    public func transfersChanged(_ totals: TransferTotals) {
        shown.transfersChanged(totals)
    }

    /// Appends a line the client made itself (the user's own messages, the start and end of the session); a
    /// failed write is shown once as a warning.
    public func record(_ text: String) {
        if !log.write(text) {
            shown.emit(
                .warning(
                    kind: "log", name: "", message: "cannot write to the log file '\(log.path)'; logging stopped"))
        }
    }
}
