#if canImport(Glibc)
    import Glibc
#endif
import Testing

@testable import AESChatCore

extension TCPConnection {
    /// Connects and runs `loop` until the connect has completed (for tests that set up a few
    /// connections before their own run of the loop).
    /// - Throws: the error the connect completed with.
    static func connectNow(host: String, port: UInt16, loop: PosixEventLoop) throws -> TCPConnection {
        var result: Result<TCPConnection, TransportError>?
        TCPConnection.connect(host: host, port: port, loop: loop) { completed in
            result = completed
            loop.stop()
        }
        while result == nil { try loop.run() }
        return try result!.get()
    }
}

/// A loopback listening socket that never accepts, its backlog filled by a few connections: a
/// further connect gets no answer and stays in progress (on Linux, a full accept queue drops new
/// SYNs).
final class FullBacklogListener {
    let port: UInt16
    private let listening: Int32
    private var fillers: [Int32] = []

    init() throws {
        let listening = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        self.listening = listening
        try #require(listening >= 0)
        var address = sockaddr_in()
        address.sin_family = sa_family_t(AF_INET)
        address.sin_addr.s_addr = inet_addr("127.0.0.1")
        var length = socklen_t(MemoryLayout<sockaddr_in>.size)
        let bound = withUnsafeMutablePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) {
                bind(listening, $0, length) == 0 && listen(listening, 0) == 0
                    && getsockname(listening, $0, &length) == 0
            }
        }
        try #require(bound)
        port = UInt16(bigEndian: address.sin_port)
        for _ in 0..<4 {
            let filler = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
            _ = fcntl(filler, F_SETFL, O_NONBLOCK)
            _ = withUnsafePointer(to: &address) {
                $0.withMemoryRebound(to: sockaddr.self, capacity: 1) {
                    connect(filler, $0, socklen_t(MemoryLayout<sockaddr_in>.size))
                }
            }
            fillers.append(filler)
        }
        usleep(100_000)
    }

    deinit {
        for filler in fillers { close(filler) }
        close(listening)
    }
}
