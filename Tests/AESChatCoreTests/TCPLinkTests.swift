#if canImport(Glibc)
    import Glibc
#endif
import Testing

@testable import AESChatCore

/// `TCPConnection.protect(with:)` over real loopback sockets: records sealed at flush time from the queued plaintext,
/// opened in the loop's read buffer, partial sends of a record, and what a discard keeps.
@Suite(.serialized) struct TCPLinkTests {
    /// Runs `loop` with a watchdog so a broken test cannot hang the suite.
    private func run(_ loop: PosixEventLoop, seconds: Int = 30) throws {
        var timedOut = false
        let watchdog = loop.schedule(after: .seconds(seconds)) {
            timedOut = true
            loop.stop()
        }
        try loop.run()
        loop.cancel(watchdog)
        #expect(!timedOut, "event loop watchdog fired")
    }

    /// A connected loopback pair on `loop`, each end with a frame sink, both protected with the two halves of a
    /// real handshake.
    private func protectedPair(
        loop: PosixEventLoop, host: String = "127.0.0.1"
    ) throws -> (client: TCPConnection, server: any Connection, clientSink: FrameSink, serverSink: FrameSink) {
        let listener = try TCPListener(host: host, port: 0, loop: loop)
        defer { listener.close() }
        let serverSink = FrameSink()
        var accepted: (any Connection)?
        listener.acceptHandler = { connection in
            connection.handler = serverSink
            accepted = connection
            loop.stop()
        }
        let client = try TCPConnection.connectNow(host: host, port: listener.localPort, loop: loop)
        let clientSink = FrameSink()
        client.handler = clientSink
        while accepted == nil { try run(loop) }
        let (initiator, responder) = try linkHandshake()
        client.protect(with: LinkRecordLayer(keys: initiator))
        accepted!.protect(with: LinkRecordLayer(keys: responder))
        return (client, accepted!, clientSink, serverSink)
    }

    /// 16 MiB less a little of a pattern that shifts every 4 KiB, so that a lost, repeated or reordered piece shows.
    private static let big: [UInt8] = {
        var bytes = [UInt8](repeating: 0, count: 16 << 20 - 64)
        bytes.withUnsafeMutableBytes { raw in
            let words = raw.bindMemory(to: UInt32.self)
            for index in words.indices {
                words[index] = UInt32(truncatingIfNeeded: index &* 2_654_435_761 ^ index >> 10)
            }
        }
        return bytes
    }()

    @Test(arguments: Array(zip(["127.0.0.1", "::1"], SelectorKind.allCases + SelectorKind.allCases)))
    func protectedPair_carriesFramesBothWays_upTo16MiB(host: String, selector: SelectorKind) throws {
        let loop = try PosixEventLoop(selector: selector)
        let (client, server, clientSink, serverSink) = try protectedPair(loop: loop, host: host)
        let big = Self.big
        let frames = [
            ClientFrame.ping(token: 1).encoded(), ClientFrame.publish(payload: big[...]).encoded(),
            ClientFrame.ping(token: 2).encoded(), ClientFrame.publish(payload: big[..<70_000]).encoded(),
        ]
        for frame in frames { client.write(frame) }
        serverSink.onFrame = { frame in
            server.write(
                Frame.encode(type: frame.type, capacity: frame.body.count) { $0.write(contentsOf: frame.body) })
        }
        clientSink.onFrame = { _ in if clientSink.frames.count == 4 { loop.stop() } }
        try run(loop)
        #expect(serverSink.frames.count == 4)
        #expect(clientSink.frames.count == 4)
        let (there, back) = (Array(serverSink.frames[1].body) == big, Array(clientSink.frames[1].body) == big)
        #expect(there && back)
        let small = Array(clientSink.frames[3].body) == Array(big[..<70_000])
        #expect(small)
        #expect(clientSink.closedWith == nil && serverSink.closedWith == nil)
        // Counted in plaintext bytes, all of it sent.
        let total = frames.reduce(0) { $0 + $1.count }
        #expect(client.sentByteCount == total)
        #expect(server.sentByteCount == total)
        #expect(client.pendingOutputByteCount == 0 && server.pendingOutputByteCount == 0)
        client.close()
        server.close()
    }
}
