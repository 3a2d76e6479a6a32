#if canImport(Glibc)
    import Glibc
#endif

/// Why an in-process measurement (`room-keys`, `member-cost`) stopped: options it cannot run with (a usage error, exit
/// status 64), or a run that came out unsound (exit status 1, as for a failed `run`).
enum CostError: Error, CustomStringConvertible {
    /// The options ask for something the measurement cannot do, such as a room of fewer than 3 members.
    case usage(String)
    /// The members disagreed, were warned, or did not read every message: the code measured, not the input, is at
    /// fault, and the figures would mean nothing.
    case unsound(String)

    var description: String {
        switch self {
        case .usage(let text), .unsound(let text): text
        }
    }
}

/// Clocks, process statistics and limits the load tool reads.
enum Measure {
    /// Nanoseconds on the monotonic clock, comparable between processes of this machine.
    static func nanoseconds() -> UInt64 {
        var spec = timespec()
        clock_gettime(CLOCK_MONOTONIC, &spec)
        return UInt64(spec.tv_sec) * 1_000_000_000 + UInt64(spec.tv_nsec)
    }

    /// CPU seconds (user plus system, all threads) that process `pid` has used, from `/proc/PID/stat`.
    static func cpuSeconds(pid: Int32) -> Double? {
        guard let text = readFile("/proc/\(pid)/stat"), let close = text.lastIndex(of: ")") else { return nil }
        // Fields after the command name: state is field 3; utime and stime are fields 14 and 15.
        let fields = text[text.index(after: close)...].split(separator: " ")
        guard fields.count > 13, let user = Double(fields[11]), let system = Double(fields[12]) else { return nil }
        return (user + system) / Double(sysconf(Int32(_SC_CLK_TCK)))
    }

    /// Resident memory of process `pid` in bytes, from `VmRSS` in `/proc/PID/status`.
    static func residentBytes(pid: Int32) -> Int? {
        guard let text = readFile("/proc/\(pid)/status") else { return nil }
        for line in text.split(separator: "\n") where line.hasPrefix("VmRSS:") {
            let digits = line.dropFirst(6).filter(\.isNumber)
            return Int(String(digits)).map { $0 * 1024 }
        }
        return nil
    }

    /// CPU time the calling thread has used, in nanoseconds.
    static func threadCPUNanoseconds() -> UInt64 {
        var spec = timespec()
        clock_gettime(CLOCK_THREAD_CPUTIME_ID, &spec)
        return UInt64(spec.tv_sec) * 1_000_000_000 + UInt64(spec.tv_nsec)
    }

    /// CPU seconds this process has used (user plus system).
    static func ownCPUSeconds() -> Double {
        var usage = rusage()
        getrusage(RUSAGE_SELF.rawValue, &usage)
        let user = Double(usage.ru_utime.tv_sec) + Double(usage.ru_utime.tv_usec) / 1e6
        let system = Double(usage.ru_stime.tv_sec) + Double(usage.ru_stime.tv_usec) / 1e6
        return user + system
    }

    /// The whole text of a small file, or nil.
    static func readFile(_ path: String) -> String? {
        let descriptor = open(path, O_RDONLY | O_CLOEXEC)
        guard descriptor >= 0 else { return nil }
        defer { close(descriptor) }
        var bytes: [UInt8] = []
        var chunk = [UInt8](repeating: 0, count: 4096)
        while true {
            let count = read(descriptor, &chunk, chunk.count)
            if count <= 0 { break }
            bytes.append(contentsOf: chunk[0..<count])
        }
        return String(decoding: bytes, as: UTF8.self)
    }
}

/// Latencies at one-microsecond resolution up to 1 s, with the exact maximum.
struct LatencyHistogram {
    private var buckets = [UInt32](repeating: 0, count: 1_000_000)
    private(set) var count = 0
    private(set) var maximum: UInt64 = 0
    private var total: UInt64 = 0

    mutating func record(nanoseconds: UInt64) {
        let micros = nanoseconds / 1000
        buckets[Int(min(micros, UInt64(buckets.count - 1)))] &+= 1
        count += 1
        total &+= nanoseconds
        if nanoseconds > maximum { maximum = nanoseconds }
    }

    /// The latency below which `fraction` of the samples fall, in milliseconds.
    func percentile(_ fraction: Double) -> Double {
        guard count > 0 else { return 0 }
        let target = Int((Double(count) * fraction).rounded(.up))
        var seen = 0
        for (micros, n) in buckets.enumerated() {
            seen += Int(n)
            if seen >= target { return Double(micros) / 1000 }
        }
        return Double(maximum) / 1e6
    }

    var maximumMilliseconds: Double { Double(maximum) / 1e6 }

    /// Adds another histogram's samples.
    mutating func merge(_ other: LatencyHistogram) {
        for index in buckets.indices where other.buckets[index] != 0 { buckets[index] &+= other.buckets[index] }
        count += other.count
        total &+= other.total
        maximum = max(maximum, other.maximum)
    }
    var meanMilliseconds: Double { count == 0 ? 0 : Double(total) / Double(count) / 1e6 }
}
