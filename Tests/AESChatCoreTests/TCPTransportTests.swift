#if canImport(Glibc)
    import Glibc
#endif
import AESChatTesting
import Foundation
import Testing

@testable import AESChatCore

/// Collects what a TCP connection reads, decoding frames, and stops the loop when told.
final class FrameSink: ConnectionHandler {
    var decoder = FrameDecoder(maximumLength: 64 * 1024 * 1024)
    var frames: [Frame] = []
    var reads = 0
    var closedWith: TransportError?? = .none
    var onFrame: (Frame) -> Void = { _ in }

    func connection(_ connection: any Connection, didRead bytes: UnsafeRawBufferPointer) {
        reads += 1
        for frame in decoder.frames(after: bytes).frames {
            frames.append(frame)
            onFrame(frame)
        }
    }

    func connection(_ connection: any Connection, didCloseWith error: TransportError?) { closedWith = .some(error) }
}

@Suite(.serialized) struct TCPTransportTests {
    /// Runs `loop` with a watchdog so a broken test cannot hang the suite.
    func run(_ loop: PosixEventLoop, seconds: Int = 20) throws {
        var timedOut = false
        loop.schedule(after: .seconds(seconds)) {
            timedOut = true
            loop.stop()
        }
        try loop.run()
        #expect(!timedOut, "event loop watchdog fired")
    }

    @Test(arguments: SelectorKind.allCases)
    func loop_runsTimersInOrder_andWakesForAMessageFromAnotherThread(selector: SelectorKind) throws {
        let loop = try PosixEventLoop(selector: selector)
        var fired: [Int] = []
        loop.schedule(after: .milliseconds(30)) { fired.append(3) }
        loop.schedule(after: .milliseconds(10)) { fired.append(1) }
        let cancelled = loop.schedule(after: .milliseconds(20)) { fired.append(2) }
        loop.cancel(cancelled)
        let inbox = LoopInbox<Int>(loop: loop)
        inbox.setHandler { message in
            fired.append(message)
            loop.stop()
        }
        loop.schedule(after: .milliseconds(40)) {
            let thread = Thread { inbox.post(4) }
            thread.start()
        }
        try run(loop)
        #expect(fired == [1, 3, 4])
    }

    @Test(arguments: ["127.0.0.1", "::1"], SelectorKind.allCases)
    func tcp_carriesLargeFramesWhole_inBothDirections(host: String, selector: SelectorKind) throws {
        let loop = try PosixEventLoop(selector: selector)
        let listener = try TCPListener(host: host, port: 0, loop: loop)
        #expect(listener.localPort != 0)
        let serverSink = FrameSink()
        var serverConnection: (any Connection)?
        listener.acceptHandler = { connection in
            connection.handler = serverSink
            serverConnection = connection
        }
        let client = try TCPConnection.connectNow(host: host, port: listener.localPort, loop: loop)
        let clientSink = FrameSink()
        client.handler = clientSink
        let big = (0..<(3 << 20)).map { UInt8(truncatingIfNeeded: $0 &* 7 &+ ($0 >> 12)) }
        let frames = [
            ClientFrame.publish(payload: big[...]).encoded(), ClientFrame.ping(token: 1).encoded(),
            ClientFrame.publish(payload: big[..<(1 << 20)]).encoded(),
        ]
        for frame in frames { client.write(frame) }
        serverSink.onFrame = { frame in
            // Echo every frame back; the client stops the loop after the third.
            serverConnection?.write(
                Frame.encode(type: frame.type, capacity: frame.body.count) { $0.write(contentsOf: frame.body) })
        }
        clientSink.onFrame = { _ in if clientSink.frames.count == 3 { loop.stop() } }
        try run(loop)
        #expect(serverSink.frames.count == 3)
        #expect(Array(serverSink.frames[0].body) == big)
        #expect(Array(clientSink.frames[2].body) == Array(big[..<(1 << 20)]))
        #expect(serverSink.reads > 3, "a 3 MiB frame must have arrived in several reads")
        #expect(client.pendingOutputByteCount == 0)
        client.close()
        listener.close()
    }

    /// A paused connection hands nothing to its handler, and the sender's output backs up (TCP flow control); once
    /// resumed, everything arrives in order.
    @Test(arguments: SelectorKind.allCases)
    func tcp_pausedReading_holdsTheSenderBack_andResumingDeliversEverything(selector: SelectorKind) throws {
        let loop = try PosixEventLoop(selector: selector)
        let listener = try TCPListener(host: "127.0.0.1", port: 0, loop: loop)
        let serverSink = FrameSink()
        var serverConnection: (any Connection)?
        listener.acceptHandler = { connection in
            connection.handler = serverSink
            connection.pauseReading()
            serverConnection = connection
        }
        let client = try TCPConnection.connectNow(host: "127.0.0.1", port: listener.localPort, loop: loop)
        client.handler = FrameSink()
        let chunk = [UInt8](repeating: 7, count: 1 << 20)
        for index in 0..<32 {
            client.write(ClientFrame.publish(payload: [UInt8(index)] + chunk[...]).encoded())
        }
        loop.schedule(after: .milliseconds(400)) { loop.stop() }
        try run(loop)
        #expect(serverConnection != nil)
        #expect(serverSink.reads == 0)
        let held = client.pendingOutputByteCount
        #expect(held > 8 << 20, "the kernel took \(32 << 20 - held) bytes of 32 MiB")
        serverConnection?.resumeReading()
        serverSink.onFrame = { _ in if serverSink.frames.count == 32 { loop.stop() } }
        try run(loop)
        #expect(serverSink.frames.map { $0.body.first } == (0..<32).map { UInt8($0) })
        client.close()
        listener.close()
    }

    @Test(arguments: SelectorKind.allCases)
    func tcp_closingConnection_stopsReadingAPeerThatKeepsSending(selector: SelectorKind) throws {
        let loop = try PosixEventLoop(selector: selector)
        let listener = try TCPListener(host: "127.0.0.1", port: 0, loop: loop)
        listener.acceptHandler = { connection in
            connection.handler = FrameSink()
            connection.closeAfterFlushing(timeout: .seconds(5))
        }
        // A bare socket that sends 64 MiB the closing side never asked for, as fast as it takes it.
        let peer = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        #expect(peer >= 0)
        defer { close(peer) }
        var address = sockaddr_in()
        address.sin_family = sa_family_t(AF_INET)
        address.sin_port = listener.localPort.bigEndian
        address.sin_addr.s_addr = inet_addr("127.0.0.1")
        let connected = withUnsafePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) {
                connect(peer, $0, socklen_t(MemoryLayout<sockaddr_in>.size))
            }
        }
        #expect(connected == 0)
        _ = fcntl(peer, F_SETFL, O_NONBLOCK)
        let chunk = [UInt8](repeating: 0x5A, count: 1 << 20)
        var accepted = 0
        func pump() {
            while accepted < 64 << 20 {
                let count = send(peer, chunk, chunk.count, Int32(MSG_NOSIGNAL))
                if count <= 0 { break }
                accepted += count
            }
            loop.schedule(after: .milliseconds(5), pump)
        }
        pump()
        loop.schedule(after: .seconds(1)) { loop.stop() }
        try run(loop)
        // The closing side reads 256 KiB (and one read more at most), then nothing: what the peer
        // got rid of is that and the two sockets' buffers, far from all 64 MiB.
        #expect(accepted < 32 << 20, "the closing side kept reading and dropping: \(accepted) bytes taken")
        listener.close()
    }

    @Test(arguments: SelectorKind.allCases)
    func tcp_peerClosing_isReportedOnce_andWritesAfterCloseAreIgnored(selector: SelectorKind) throws {
        let loop = try PosixEventLoop(selector: selector)
        let listener = try TCPListener(host: "127.0.0.1", port: 0, loop: loop)
        let serverSink = FrameSink()
        listener.acceptHandler = { connection in
            connection.handler = serverSink
            connection.write(ClientFrame.bye.encoded())
            connection.closeAfterFlushing(timeout: .seconds(5))
        }
        let client = try TCPConnection.connectNow(host: "127.0.0.1", port: listener.localPort, loop: loop)
        let clientSink = FrameSink()
        client.handler = clientSink
        var closes = 0
        final class CloseCounter: ConnectionHandler {
            let inner: FrameSink
            let onClose: () -> Void
            init(inner: FrameSink, onClose: @escaping () -> Void) {
                self.inner = inner
                self.onClose = onClose
            }
            func connection(_ connection: any Connection, didRead bytes: UnsafeRawBufferPointer) {
                inner.connection(connection, didRead: bytes)
            }
            func connection(_ connection: any Connection, didCloseWith error: TransportError?) { onClose() }
        }
        client.handler = CloseCounter(inner: clientSink) {
            closes += 1
            client.write([1, 2, 3])
            loop.schedule(after: .milliseconds(50)) { loop.stop() }
        }
        try run(loop)
        #expect(closes == 1)
        #expect(clientSink.frames.map(\.type) == [FrameType.bye])
        #expect(!client.isOpen)
        listener.close()
    }

    @Test(arguments: SelectorKind.allCases)
    func tcp_connectToAClosedPort_failsWithAClearError(selector: SelectorKind) throws {
        let loop = try PosixEventLoop(selector: selector)
        let listener = try TCPListener(host: "127.0.0.1", port: 0, loop: loop)
        let port = listener.localPort
        listener.close()
        #expect(throws: TransportError.connectFailed(address: "127.0.0.1:\(port)", reason: "Connection refused")) {
            try TCPConnection.connectNow(host: "127.0.0.1", port: port, loop: loop)
        }
    }

    @Test(arguments: SelectorKind.allCases)
    func tcp_pendingConnect_letsTheLoopRun_andTimesOutWithAClearError(selector: SelectorKind) throws {
        let loop = try PosixEventLoop(selector: selector)
        let listener = try FullBacklogListener()
        let port = listener.port
        var events: [String] = []
        loop.schedule(after: .milliseconds(50)) { events.append("timer") }
        var outcome: Result<TCPConnection, TransportError>?
        let started = ContinuousClock.now
        let attempt = TCPConnection.connect(host: "127.0.0.1", port: port, loop: loop, timeout: .milliseconds(600)) {
            events.append("connect")
            outcome = $0
            loop.stop()
        }
        #expect(attempt.isPending, "the connect must not complete from inside the call")
        try run(loop)
        #expect(events == ["timer", "connect"], "the loop must run timers while a connect is in progress")
        #expect(ContinuousClock.now - started >= .milliseconds(600))
        #expect(throws: TransportError.connectFailed(address: "127.0.0.1:\(port)", reason: "connection timed out")) {
            try outcome?.get()
        }
        #expect(!attempt.isPending)
    }

    @Test(arguments: SelectorKind.allCases)
    func tcp_cancelledConnect_neverCompletes(selector: SelectorKind) throws {
        let loop = try PosixEventLoop(selector: selector)
        let listener = try FullBacklogListener()
        var completions = 0
        let attempt = TCPConnection.connect(
            host: "127.0.0.1", port: listener.port, loop: loop, timeout: .milliseconds(100)
        ) { _ in completions += 1 }
        loop.schedule(after: .milliseconds(20)) { attempt.cancel() }
        // Well past the timeout, which would have completed the attempt had it still run.
        loop.schedule(after: .milliseconds(400)) { loop.stop() }
        try run(loop)
        #expect(completions == 0)
        #expect(!attempt.isPending)
    }

    @Test(arguments: SelectorKind.allCases)
    func tcp_listeningTwiceOnOnePort_failsWithAClearError(selector: SelectorKind) throws {
        let loop = try PosixEventLoop(selector: selector)
        let listener = try TCPListener(host: "127.0.0.1", port: 0, loop: loop)
        #expect(
            throws: TransportError.listenFailed(
                address: "127.0.0.1:\(listener.localPort)", reason: "Address already in use")
        ) {
            try TCPListener(host: "127.0.0.1", port: listener.localPort, loop: loop)
        }
        listener.close()
    }

    @Test(arguments: SelectorKind.allCases)
    func relayAndClients_overRealSockets_deliverInOrder(selector: SelectorKind) throws {
        let loop = try PosixEventLoop(selector: selector)
        let listener = try TCPListener(host: "127.0.0.1", port: 0, loop: loop)
        let relay = Relay(loop: loop) { _ in }
        relay.attach(to: listener)
        let key = RoomKey.generate()
        let outputs = [EventCollector(), EventCollector()]
        var finished = 0
        // Each client opens the encrypted link as a session does (RelayLinkStarter over the TCP connection,
        // which then seals at flush time), pinning the relay's key.
        var clients: [String: ChatRoom] = [:]
        for (index, name) in ["alice", "bob"].enumerated() {
            let connection = try TCPConnection.connectNow(host: "127.0.0.1", port: listener.localPort, loop: loop)
            let link = RelayLinkConfiguration(relayKey: relay.publicKey, relay: "127.0.0.1:\(listener.localPort)")
            RelayLinkStarter.start(on: connection, configuration: link, loop: loop) { result in
                guard case .success(let connection) = result else {
                    Issue.record("the link did not start: \(result)")
                    loop.stop()
                    return
                }
                let client = ChatRoom(
                    name: name, room: "lobby", roomKey: key, connection: connection, output: outputs[index], loop: loop
                ) { _ in
                    finished += 1
                    if finished == 2 { loop.schedule(after: .milliseconds(200)) { loop.stop() } }
                }
                client.start()
                clients[name] = client
                guard let alice = clients["alice"], let bob = clients["bob"] else { return }
                loop.schedule(after: .milliseconds(100)) {
                    for n in 0..<300 { alice.submit(line: "line \(n) " + String(repeating: "x", count: n * 10)) }
                    alice.endOfInput()
                }
                loop.schedule(after: .milliseconds(1500)) { bob.endOfInput() }
            }
        }
        try run(loop)
        #expect(outputs[1].messages == (0..<300).map { "alice: line \($0) " + String(repeating: "x", count: $0 * 10) })
        #expect(relay.connectionCount == 0)
        listener.close()
    }
}
