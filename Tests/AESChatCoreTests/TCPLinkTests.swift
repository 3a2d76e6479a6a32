#if canImport(Glibc)
    import Glibc
#endif
import AESChatTesting
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

    /// A blocking-free raw socket connected to `port` on 127.0.0.1, standing for a peer whose reading the test
    /// controls: it reads only when asked.
    private final class RawPeer {
        let socket: Int32

        init(port: UInt16, receiveBuffer: Int32? = nil) throws {
            socket = Glibc.socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
            try #require(socket >= 0)
            if var size = receiveBuffer {
                _ = setsockopt(socket, SOL_SOCKET, SO_RCVBUF, &size, socklen_t(MemoryLayout<Int32>.size))
            }
            var address = sockaddr_in()
            address.sin_family = sa_family_t(AF_INET)
            address.sin_port = port.bigEndian
            address.sin_addr.s_addr = inet_addr("127.0.0.1")
            let connected = withUnsafePointer(to: &address) {
                $0.withMemoryRebound(to: sockaddr.self, capacity: 1) {
                    Glibc.connect(socket, $0, socklen_t(MemoryLayout<sockaddr_in>.size))
                }
            }
            try #require(connected == 0)
            _ = fcntl(socket, F_SETFL, O_NONBLOCK)
        }

        deinit { Glibc.close(socket) }

        /// Everything readable now; `nil` at end of stream.
        func readAvailable() -> [UInt8]? {
            var result: [UInt8] = []
            var chunk = [UInt8](repeating: 0, count: 1 << 16)
            while true {
                let count = chunk.withUnsafeMutableBytes { recv(socket, $0.baseAddress, $0.count, 0) }
                if count > 0 {
                    result += chunk[..<count]
                } else if count == 0 {
                    return result.isEmpty ? nil : result
                } else {
                    return result
                }
            }
        }

        /// Sends all of `bytes` (a few KiB at most, so the socket buffer takes them).
        func send(_ bytes: [UInt8]) {
            let sent = bytes.withUnsafeBytes { Glibc.send(socket, $0.baseAddress, $0.count, Int32(MSG_NOSIGNAL)) }
            #expect(sent == bytes.count)
        }
    }

    /// A listener on `loop` and the connection it accepts from a ``RawPeer``, protected with the responder's keys;
    /// the peer gets the initiator's.
    private func serverWithRawPeer(
        loop: PosixEventLoop, peerReceiveBuffer: Int32? = nil
    ) throws -> (server: TCPConnection, sink: FrameSink, peer: RawPeer, keys: NoiseTransportKeys) {
        let listener = try TCPListener(host: "127.0.0.1", port: 0, loop: loop)
        defer { listener.close() }
        var accepted: TCPConnection?
        let sink = FrameSink()
        listener.acceptHandler = { connection in
            connection.handler = sink
            accepted = connection as? TCPConnection
            loop.stop()
        }
        let peer = try RawPeer(port: listener.localPort, receiveBuffer: peerReceiveBuffer)
        while accepted == nil { try run(loop) }
        let (initiator, responder) = try linkHandshake()
        accepted!.protect(with: LinkRecordLayer(keys: responder))
        return (accepted!, sink, peer, initiator)
    }

    /// Sets a socket's send buffer to about `bytes` (the kernel doubles it, and has a floor).
    private func setSendBuffer(_ descriptor: Int32, _ bytes: Int32) {
        var size = bytes
        _ = setsockopt(descriptor, SOL_SOCKET, SO_SNDBUF, &size, socklen_t(MemoryLayout<Int32>.size))
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
    @Test func peerStopsReadingMidRecord_thenDiscard_thePeerStillDecodesWholeFrames() throws {
        let loop = try PosixEventLoop()
        let (server, _, peer, keys) = try serverWithRawPeer(loop: loop, peerReceiveBuffer: 16 << 10)
        setSendBuffer(server.descriptor, 16 << 10)
        // 40 frames of 300 KiB: far more than the two socket buffers hold while the peer does not read.
        let frames = (0..<40).map { index in
            ClientFrame.publish(payload: Self.big[(index * 1_000)..<(index * 1_000 + 300_000)]).encoded()
        }
        for frame in frames { server.write(frame) }
        loop.schedule(after: .milliseconds(100)) { loop.stop() }
        try run(loop)
        // Stuck: the kernel took part of a record, the rest waits in the connection.
        #expect(server.unsentRecordByteCount > 0)
        let queued = server.pendingOutputByteCount
        #expect(queued > 0 && server.sentByteCount + queued == frames.count * frames[0].count)
        server.discardUnsentOutput(keepingPartlySent: Frame.endOfFrame(in:containing:))
        #expect(server.pendingOutputByteCount < queued)
        #expect(server.unsentRecordByteCount > 0, "the sealed record stays whole")
        let last = ClientFrame.ping(token: 99).encoded()
        server.write(last)

        // The peer reads again: records all open, and the plaintext is whole frames ending with the ping.
        let reader = LinkRecordReader(cipher: keys.receiving)
        var decoder = FrameDecoder(maximumLength: 1 << 20)
        var received: [Frame] = []
        var failure: (any Error)?
        func pump() {
            while let bytes = peer.readAvailable(), !bytes.isEmpty {
                do {
                    var plaintext: [UInt8] = []
                    try reader.read(bytes, into: &plaintext)
                    let decoded = plaintext.withUnsafeBytes { decoder.frames(after: $0) }
                    received += decoded.frames
                    if let error = decoded.error { throw error }
                } catch {
                    failure = error
                    loop.stop()
                    return
                }
            }
            if received.last?.type == FrameType.ping {
                loop.stop()
            } else {
                loop.schedule(after: .milliseconds(1), pump)
            }
        }
        pump()
        try run(loop)
        #expect(failure == nil)
        #expect(received.count >= 2 && received.count < frames.count)
        #expect(received.last.map { Array($0.body) } == Array(ClientFrame.ping(token: 99).encoded()[5...]))
        for (index, frame) in received.dropLast().enumerated() {
            let whole = Array(frame.body) == Array(frames[index][5...])
            #expect(whole, "frame \(index)")
        }
        #expect(decoder.bufferedByteCount == 0)
        #expect(server.pendingOutputByteCount == 0)
        server.close()
    }
    @Test(arguments: SelectorKind.allCases)
    func tinySendBuffers_partialSendsOfRecords_arriveWhole(selector: SelectorKind) throws {
        let loop = try PosixEventLoop(selector: selector)
        let (client, server, clientSink, serverSink) = try protectedPair(loop: loop)
        setSendBuffer(client.descriptor, 2_048)
        setSendBuffer((server as! TCPConnection).descriptor, 2_048)
        var expected: [[UInt8]] = []
        for index in 0..<12 {
            let size = [1, 10, 65_514, 65_515, 65_600, 200_000][index % 6]
            let frame = ClientFrame.publish(payload: Self.big[index..<(index + size)]).encoded()
            expected.append(frame)
            client.write(frame)
            server.write(frame)
        }
        var sawTail = false
        func watch() {
            sawTail = sawTail || client.unsentRecordByteCount > 0
            if clientSink.frames.count == 12 && serverSink.frames.count == 12 { loop.stop() }
            loop.schedule(after: .milliseconds(1), watch)
        }
        watch()
        try run(loop)
        #expect(sawTail, "the tiny send buffer must have cut a record")
        for sink in [clientSink, serverSink] {
            #expect(sink.frames.count == 12)
            for (index, frame) in sink.frames.enumerated() {
                let whole = Array(frame.body) == Array(expected[index][5...])
                #expect(whole, "frame \(index)")
            }
            #expect(sink.closedWith == nil)
        }
        #expect(client.pendingOutputByteCount == 0 && client.unsentRecordByteCount == 0)
        client.close()
        server.close()
    }

    @Test func closeAfterFlushing_sendsTheSealedTail_thenEndsTheStreamBetweenRecords() throws {
        let loop = try PosixEventLoop()
        let (client, server, _, serverSink) = try protectedPair(loop: loop)
        setSendBuffer(client.descriptor, 2_048)
        let frame = ClientFrame.publish(payload: Self.big[..<1_000_000]).encoded()
        client.write(frame)
        client.closeAfterFlushing(timeout: .seconds(20))
        var closed = false
        serverSink.onFrame = { _ in }
        func watch() {
            if case .some = serverSink.closedWith {
                closed = true
                loop.stop()
            }
            loop.schedule(after: .milliseconds(1), watch)
        }
        watch()
        try run(loop)
        #expect(closed)
        #expect(serverSink.frames.count == 1)
        let whole = serverSink.frames.first.map { Array($0.body) == Array(frame[5...]) } ?? false
        #expect(whole)
        // An orderly end, not a record cut short.
        #expect(serverSink.closedWith == .some(nil))
        withExtendedLifetime(server) {}
    }

    @Test func bytesQueuedBeforeProtect_goOutRawAndFirst() throws {
        let loop = try PosixEventLoop()
        let listener = try TCPListener(host: "127.0.0.1", port: 0, loop: loop)
        let peer = try RawPeer(port: listener.localPort)
        var accepted: TCPConnection?
        listener.acceptHandler = { connection in
            connection.handler = FrameSink()
            accepted = connection as? TCPConnection
            loop.stop()
        }
        while accepted == nil { try run(loop) }
        listener.close()
        let server = try #require(accepted)
        let (initiator, responder) = try linkHandshake()
        // Queued in one iteration: the raw bytes, then the protection, then a frame.
        let raw = [UInt8](repeating: 0x41, count: 1_000)
        server.write(raw)
        server.protect(with: LinkRecordLayer(keys: responder))
        let frame = ClientFrame.publish(payload: Self.big[..<100_000]).encoded()
        server.write(frame)
        #expect(server.pendingOutputByteCount == raw.count + frame.count)
        var wire: [UInt8] = []
        func pump() {
            if let bytes = peer.readAvailable() { wire += bytes }
            if wire.count >= raw.count + LinkRecordWriter.recordsLength(forPlaintext: frame.count) {
                loop.stop()
            } else {
                loop.schedule(after: .milliseconds(1), pump)
            }
        }
        pump()
        try run(loop)
        #expect(Array(wire.prefix(raw.count)) == raw)
        var plaintext: [UInt8] = []
        try LinkRecordReader(cipher: initiator.receiving).read(Array(wire.dropFirst(raw.count)), into: &plaintext)
        let same = plaintext == frame
        #expect(same)
        #expect(server.sentByteCount == raw.count + frame.count)
        server.close()
    }

    @Test func flippedBitOrStreamCutInsideARecord_closesWithALinkFailure() throws {
        for cut in [false, true] {
            let loop = try PosixEventLoop()
            let (server, sink, peer, keys) = try serverWithRawPeer(loop: loop)
            let writer = LinkRecordWriter(cipher: keys.sending)
            var stream = try writer.seal(ClientFrame.ping(token: 1).encoded())
            var second = try writer.seal(ClientFrame.ping(token: 2).encoded())
            if cut {
                second.removeLast(5)
            } else {
                second[7] ^= 0x01
            }
            stream += second
            peer.send(stream)
            if cut { shutdown(peer.socket, Int32(SHUT_WR)) }
            func watch() {
                if case .some = sink.closedWith { loop.stop() }
                loop.schedule(after: .milliseconds(1), watch)
            }
            watch()
            try run(loop)
            #expect(sink.frames.count == 1, "cut: \(cut)")
            let reason =
                cut
                ? "the connection ended inside a record (26 bytes of it had arrived): the end of the data was lost"
                : "a record from the peer failed authentication: altered on the way, or not from the peer"
            #expect(sink.closedWith == .some(.linkFailed(reason: .init(reason))), "cut: \(cut)")
            #expect(!server.isOpen)
        }
    }

    /// A handler that lends storage for whatever comes next, as a frame reader lends the buffer of a large frame in
    /// progress, and collects the stream from both paths: opened into its storage, or handed over by `didRead`.
    private final class LendingSink: ReadDestinationProvider {
        /// 100,000 bytes, filled with 0xAA; reused for each read into it.
        let storage: UnsafeMutableRawBufferPointer = {
            let storage = UnsafeMutableRawBufferPointer.allocate(byteCount: 100_000, alignment: 16)
            storage.initializeMemory(as: UInt8.self, repeating: 0xAA)
            return storage
        }()
        var received: [UInt8] = []
        var filled = 0
        var closedWith: TransportError?? = .none
        var onProgress: () -> Void = {}

        deinit { storage.deallocate() }

        func readDestination(for connection: any Connection) -> UnsafeMutableRawBufferPointer? { storage }

        func connection(_ connection: any Connection, didReadIntoDestination count: Int) {
            received += UnsafeRawBufferPointer(rebasing: storage[0..<count])
            filled += count
            onProgress()
        }

        func connection(_ connection: any Connection, didRead bytes: UnsafeRawBufferPointer) {
            received += bytes
            onProgress()
        }

        func connection(_ connection: any Connection, didCloseWith error: TransportError?) {
            closedWith = .some(error)
        }
    }

    @Test(arguments: SelectorKind.allCases)
    func protectedReceiverLendingStorage_getsRecordsOpenedStraightIntoIt_identicalBytes(selector: SelectorKind)
        throws
    {
        let loop = try PosixEventLoop(selector: selector)
        let (client, server, _, _) = try protectedPair(loop: loop)
        let lending = LendingSink()
        server.handler = lending
        // Writes of many sizes: records are full (65,519 bytes) or not, and reads cut them anywhere.
        var sent: [UInt8] = []
        for (index, size) in [1, 200_000, 70_000, 3, 65_519, 1 << 20, 17].enumerated() {
            let piece = Array(Self.big[(index * 4096)..<(index * 4096 + size)])
            client.write(piece)
            sent += piece
        }
        lending.onProgress = { if lending.received.count >= sent.count { loop.stop() } }
        try run(loop)
        #expect(lending.received.count == sent.count)
        let identical = lending.received == sent
        #expect(identical)
        // Lent storage is asked for before every record, so almost every byte was opened straight into it.
        #expect(lending.filled > sent.count * 9 / 10)
        #expect(lending.closedWith == .none)
        client.close()
        server.close()
    }

    @Test func protectedReceiverLendingStorage_tamperedRecord_failsTheConnectionAndLeavesZeros() throws {
        let loop = try PosixEventLoop()
        let (server, _, peer, keys) = try serverWithRawPeer(loop: loop)
        let lending = LendingSink()
        server.handler = lending
        let plaintext = Array(Self.big[0..<(3 * 65_519)])
        var stream = try LinkRecordWriter(cipher: keys.sending).seal(plaintext)
        stream[2 * 65_537 + 2 + 1000] ^= 0x10
        // The peer's socket takes it in pieces: its send buffer is smaller than the stream.
        var offset = 0
        func feed() {
            let sent = stream[offset...].withUnsafeBytes {
                Glibc.send(peer.socket, $0.baseAddress, $0.count, Int32(MSG_NOSIGNAL))
            }
            if sent > 0 { offset += sent }
            if case .some = lending.closedWith {
                loop.stop()
                return
            }
            loop.schedule(after: .milliseconds(1), feed)
        }
        feed()
        try run(loop)
        #expect(lending.received == Array(plaintext[0..<(2 * 65_519)]))
        #expect(lending.filled == 2 * 65_519)
        #expect(
            lending.closedWith
                == .some(
                    .linkFailed(
                        reason: .init(
                            "a record from the peer failed authentication: altered on the way, or not from the peer"))))
        // The third record was opened into the lent storage before its tag was checked; what it wrote is zeroed.
        #expect(UnsafeRawBufferPointer(rebasing: lending.storage[0..<65_519]).allSatisfy { $0 == 0 })
        #expect(!server.isOpen)
    }

    @Test func handlerClosingOnOneRecord_getsNothingFromTheRestOfTheRead() throws {
        let loop = try PosixEventLoop()
        let (server, sink, peer, keys) = try serverWithRawPeer(loop: loop)
        let writer = LinkRecordWriter(cipher: keys.sending)
        var stream: [UInt8] = []
        for token in 1...5 { stream += try writer.seal(ClientFrame.ping(token: UInt64(token)).encoded()) }
        sink.onFrame = { _ in server.close() }
        peer.send(stream)
        func watch() {
            if case .some = sink.closedWith { loop.stop() }
            loop.schedule(after: .milliseconds(1), watch)
        }
        watch()
        try run(loop)
        #expect(sink.frames.count == 1)
        #expect(sink.closedWith == .some(nil))
    }
}
