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
