/// Writes lines to standard error.
public enum StandardError {
    /// Writes one line (a newline is added).
    public static func write(_ line: String) {
        var bytes = Array(line.utf8)
        bytes.append(0x0A)
        _ = System.writeAll(2, bytes)
    }
}
