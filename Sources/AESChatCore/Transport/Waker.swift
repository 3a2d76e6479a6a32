/// A pipe whose write end any thread may poke to wake the loop. Owns both ends, which close with it.
final class Waker: Sendable {
    private let pipe: System.Pipe

    init() throws(TransportError) {
        pipe = try System.makeNonBlockingPipe()
    }

    var readDescriptor: Int32 { pipe.read.rawValue }

    /// Wakes the loop. Safe from any thread; a full pipe means a wake-up is already pending.
    func wake() {
        var byte: UInt8 = 1
        _ = withUnsafeBytes(of: &byte) { System.write(pipe.write.rawValue, from: $0) }
    }

    func drain() {
        withUnsafeTemporaryAllocation(byteCount: 256, alignment: 1) { scratch in
            while System.read(pipe.read.rawValue, into: scratch) > 0 {}
        }
    }
}
