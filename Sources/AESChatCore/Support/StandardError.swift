/// Writes lines to standard error.
public enum StandardError {
    /// Writes one line (a newline is added).
    public static func write(_ line: String) {
        var bytes = Array(line.utf8)
        bytes.append(0x0A)
        var written = 0
        while written < bytes.count {
            let count = bytes.withUnsafeBytes { raw in
                System.retryingInterrupts { Glibc_write(2, raw.baseAddress! + written, raw.count - written) }
            }
            if count <= 0 { return }
            written += count
        }
    }
}
