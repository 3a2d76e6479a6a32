#if canImport(Glibc)
    import Glibc
#endif
import Testing

@testable import AESChatCore

@Suite struct SystemTests {
    /// Whether `number` is an open descriptor of this process.
    func isOpen(_ number: Int32) -> Bool { fcntl(number, F_GETFD) != -1 }

    /// The two ends of a new pipe, the write end non-blocking.
    func makePipe() throws -> (read: Int32, write: Int32) {
        var fds: [Int32] = [0, 0]
        try #require(pipe(&fds) == 0)
        _ = fcntl(fds[0], F_SETFL, O_NONBLOCK)
        _ = fcntl(fds[1], F_SETFL, O_NONBLOCK)
        return (fds[0], fds[1])
    }

    @Test func descriptor_closesOnce_whenClosedOrDropped() throws {
        let (readNumber, writeNumber) = try makePipe()
        let readEnd = Descriptor(readNumber)
        let writeEnd = Descriptor(writeNumber)
        #expect(isOpen(readNumber) && isOpen(writeNumber))
        readEnd.close()
        #expect(!isOpen(readNumber))
        do {
            let dropped = Descriptor(open("/dev/null", O_RDONLY | O_CLOEXEC))
            let number = dropped.rawValue
            #expect(isOpen(number))
            _ = consume dropped
            #expect(!isOpen(number))
        }
        let released = writeEnd.release()
        #expect(isOpen(released), "a released descriptor is the caller's to close")
        close(released)
    }

    @Test func descriptor_takesNothing_whenTheCallFailed() {
        var tookOwnership = false
        if let opened = Descriptor(returned: open("/nonexistent/aeschat", O_RDONLY)) {
            tookOwnership = true
            opened.close()
        }
        #expect(!tookOwnership)
        #expect(errno == ENOENT, "errno is left as the failed call set it")
    }

    @Test func writeAll_writesEverything_andReportsTheErrno() throws {
        let (readNumber, writeNumber) = try makePipe()
        let readEnd = Descriptor(readNumber)
        let writeEnd = Descriptor(writeNumber)
        let bytes = (0..<3000).map { UInt8(truncatingIfNeeded: $0) }
        #expect(System.writeAll(writeEnd.rawValue, bytes) == nil)
        var read = [UInt8](repeating: 0, count: 4096)
        let count = read.withUnsafeMutableBytes { System.read(readEnd.rawValue, into: $0) }
        #expect(Array(read[0..<count]) == bytes)
        // Nothing left: a non-blocking read says EAGAIN, a value rather than a failure.
        #expect(read.withUnsafeMutableBytes { System.read(readEnd.rawValue, into: $0) } == -1)
        #expect(errno == EAGAIN)
        readEnd.close()
        System.ignoreSIGPIPE()
        #expect(System.writeAll(writeEnd.rawValue, bytes) == EPIPE)
    }

    @Test func transportError_keepsTheErrno_andIsEqualByItsText() {
        let refused = TransportError.connectFailed(
            address: "127.0.0.1:1", reason: TransportError.Reason(errno: ECONNREFUSED))
        #expect(refused.errno == ECONNREFUSED)
        #expect(refused == .connectFailed(address: "127.0.0.1:1", reason: "Connection refused"))
        #expect(refused.description == "cannot reach relay at 127.0.0.1:1: Connection refused")
        #expect(TransportError.timedOut("join").errno == nil)
    }

    @Test func duration_convertsToWholeUnits_roundingTowardZero() {
        let duration = Duration.seconds(2) + .microseconds(1500)
        #expect(duration.wholeMilliseconds == 2001)
        #expect(duration.wholeSeconds == 2)
        #expect(duration.secondsWithFraction == 2.0015)
        #expect(Duration.milliseconds(999).wholeSeconds == 0)
    }
}
