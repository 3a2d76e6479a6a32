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
}
