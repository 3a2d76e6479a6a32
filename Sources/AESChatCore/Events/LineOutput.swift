#if canImport(Glibc)
    import Glibc
#elseif canImport(Darwin)
    import Darwin
#endif

/// Writes events as lines to a file descriptor (standard output by default): JSON objects with
/// `--json`, each ending with a `time` field (ISO 8601, UTC, milliseconds), otherwise readable lines such as
/// `[14:02] <alice> hello`. Human lines say a lost relay once: the attempts after the first `reconnecting` of an outage
/// are not written (JSON writes every one).
public final class LineOutput: ClientOutput {
    /// How events are written.
    public enum Style: Sendable {
        case human
        case json
    }

    private let style: Style
    private let descriptor: Int32
    private let clock: () -> (hour: Int, minute: Int)
    private let now: () -> UInt64
    /// Human lines: a `reconnecting` line was written since the last registration.
    private var saidReconnecting = false

    /// Creates an output.
    /// - Parameters:
    ///   - style: human lines or JSON.
    ///   - descriptor: where to write; standard output by default.
    ///   - clock: the local time for the human lines' timestamps (a seam for tests).
    ///   - now: milliseconds since 1970 for the JSON `time` field (a seam for tests).
    public init(
        style: Style, descriptor: Int32 = 1, clock: @escaping () -> (hour: Int, minute: Int) = LineOutput.localTime,
        now: @escaping () -> UInt64 = WallClock.milliseconds
    ) {
        self.style = style
        self.descriptor = descriptor
        self.clock = clock
        self.now = now
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
            // Every event's JSON is one object; the time goes last, after the fields documented for the event,
            // so that adding it kept every earlier key where it was.
            return String(event.json.dropLast()) + ",\"time\":\"" + WallClock.iso8601(milliseconds: now()) + "\"}"
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
        if style == .human {
            switch event {
            case .reconnecting:
                if saidReconnecting { return }
                saidReconnecting = true
            case .ready, .reconnected: saidReconnecting = false
            default: break
            }
        }
        var bytes = Array(line(for: event).utf8)
        bytes.append(0x0A)
        _ = System.writeAll(descriptor, bytes)
    }
}
