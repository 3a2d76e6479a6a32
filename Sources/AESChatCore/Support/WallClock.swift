#if canImport(Glibc)
    import Glibc
#elseif canImport(Darwin)
    import Darwin
#endif

/// The wall clock, for the few dates that cross the wire (pre-shared-key envelopes carry their
/// sending time). Durations and timeouts use the monotonic clock instead.
public enum WallClock {
    /// Milliseconds since 1970-01-01 00:00 UTC.
    public static func milliseconds() -> UInt64 {
        var now = timespec()
        clock_gettime(CLOCK_REALTIME, &now)
        return UInt64(max(0, now.tv_sec)) * 1000 + UInt64(max(0, now.tv_nsec)) / 1_000_000
    }

    /// A time of day as `HH:MM`, for the timestamps of line mode and the interactive terminal.
    /// - Parameters:
    ///   - hour: 0 to 23.
    ///   - minute: 0 to 59.
    /// - Returns: both with two digits, such as `09:05`.
    public static func hoursAndMinutes(hour: Int, minute: Int) -> String {
        (hour < 10 ? "0" : "") + String(hour) + ":" + (minute < 10 ? "0" : "") + String(minute)
    }

    /// A moment as ISO 8601 in UTC with milliseconds, the form of the `time` field of `--json` events.
    /// - Parameter milliseconds: milliseconds since 1970-01-01 00:00 UTC.
    /// - Returns: such as `2026-12-03T14:02:05.123Z`; always 24 characters (years 1970 to 9999).
    public static func iso8601(milliseconds: UInt64) -> String {
        var seconds = time_t(clamping: milliseconds / 1000)
        var parts = tm()
        gmtime_r(&seconds, &parts)
        func digits(_ value: Int32, _ count: Int) -> String {
            let text = String(value)
            return String(repeating: "0", count: max(0, count - text.count)) + text
        }
        return digits(parts.tm_year + 1900, 4) + "-" + digits(parts.tm_mon + 1, 2) + "-" + digits(parts.tm_mday, 2)
            + "T" + digits(parts.tm_hour, 2) + ":" + digits(parts.tm_min, 2) + ":" + digits(parts.tm_sec, 2) + "."
            + digits(Int32(milliseconds % 1000), 3) + "Z"
    }
}
