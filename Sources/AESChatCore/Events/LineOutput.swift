#if canImport(Glibc)
    import Glibc
#elseif canImport(Darwin)
    import Darwin
#endif

/// Writes events as lines to a file descriptor (standard output by default): JSON objects with
/// `--json`, otherwise readable lines such as `[14:02] <alice> hello`.
public final class LineOutput: ClientOutput {
    /// How events are written.
    public enum Style: Sendable {
        case human
        case json
    }

    private let style: Style
    private let descriptor: Int32
    private let clock: () -> (hour: Int, minute: Int)

    /// Creates an output.
    /// - Parameters:
    ///   - style: human lines or JSON.
    ///   - descriptor: where to write; standard output by default.
    ///   - clock: the local time for timestamps (a seam for tests).
    public init(
        style: Style, descriptor: Int32 = 1, clock: @escaping () -> (hour: Int, minute: Int) = LineOutput.localTime
    ) {
        self.style = style
        self.descriptor = descriptor
        self.clock = clock
    }

    /// The current local hour and minute.
    public static func localTime() -> (hour: Int, minute: Int) {
        var now = time(nil)
        var parts = tm()
        localtime_r(&now, &parts)
        return (Int(parts.tm_hour), Int(parts.tm_min))
    }

    /// Formats an event as the line this output writes (without the newline).
    public func line(for event: ClientEvent) -> String {
        switch style {
        case .json:
            return event.json
        case .human:
            switch event {
            case .message, .action:
                let (hour, minute) = clock()
                return "[\(WallClock.hoursAndMinutes(hour: hour, minute: minute))] " + event.humanText
            default:
                return event.humanText
            }
        }
    }

    public func emit(_ event: ClientEvent) {
        var bytes = Array(line(for: event).utf8)
        bytes.append(0x0A)
        _ = System.writeAll(descriptor, bytes)
    }
}
