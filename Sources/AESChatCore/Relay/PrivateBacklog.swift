/// The direct and multicast frames queued for one member and not yet taken by the kernel, by
/// sender: what ``Relay`` checks a sender's share of the member's output cap against. Runs of
/// frames from one sender are kept as one entry (its bytes, and where in the member's output
/// stream its last frame ends), so a run costs one entry however many frames it has; entries
/// are forgotten once the stream has been sent past them. The publish fan-out never touches it.
struct PrivateBacklog {
    private var runs: [(sender: UInt64, end: Int, bytes: Int)] = []
    private var firstRun = 0
    private var bytesBySender: [UInt64: Int] = [:]

    /// Bytes of `sender`'s frames still queued (an upper bound while a run is partly sent).
    func bytes(from sender: UInt64) -> Int { bytesBySender[sender] ?? 0 }

    /// Counts a frame of `bytes` bytes from `sender` that ends at `end` in the output stream.
    mutating func add(_ bytes: Int, from sender: UInt64, endingAt end: Int) {
        if firstRun < runs.count && runs[runs.count - 1].sender == sender {
            runs[runs.count - 1].end = end
            runs[runs.count - 1].bytes += bytes
        } else {
            runs.append((sender, end, bytes))
        }
        bytesBySender[sender, default: 0] += bytes
    }

    /// Forgets what the connection has sent: everything before `sent` in its output stream.
    mutating func forget(upTo sent: Int) {
        while firstRun < runs.count && runs[firstRun].end <= sent {
            reduce(runs[firstRun].sender, by: runs[firstRun].bytes)
            firstRun += 1
        }
        if firstRun == runs.count {
            if !runs.isEmpty {
                runs = []
                bytesBySender = [:]
                firstRun = 0
            }
            return
        }
        // A run partly sent has at most the bytes before its end still queued.
        let unsent = runs[firstRun].end - sent
        if unsent < runs[firstRun].bytes {
            reduce(runs[firstRun].sender, by: runs[firstRun].bytes - unsent)
            runs[firstRun].bytes = unsent
        }
        if firstRun > 32 && firstRun * 2 > runs.count {
            runs.removeSubrange(0..<firstRun)
            firstRun = 0
        }
    }

    private mutating func reduce(_ sender: UInt64, by bytes: Int) {
        let left = bytesBySender[sender, default: 0] - bytes
        bytesBySender[sender] = left > 0 ? left : nil
    }
}
