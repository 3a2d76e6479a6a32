import AESChatCrypto
import Testing

@testable import AESChatCore

/// Both sides' transport keys after a real NK handshake whose prologue carries the preamble.
func linkHandshake() throws -> (initiator: NoiseTransportKeys, responder: NoiseTransportKeys) {
    let relayKey = try X25519PrivateKey(rawRepresentation: [UInt8](repeating: 7, count: 32))
    let preamble = try LinkPreamble(relayFingerprint: SHA256.hash(relayKey.publicKey))
    let initiator = try NoiseHandshake.initiator(responderStaticKey: relayKey.publicKey, prologue: preamble.prologue)
    let responder = NoiseHandshake.responder(staticKey: relayKey, prologue: preamble.prologue)
    _ = try responder.readMessage(try initiator.writeMessage())
    _ = try initiator.readMessage(try responder.writeMessage())
    return (try initiator.finish(), try responder.finish())
}

/// Deterministic bytes for a test.
func linkTestBytes(_ count: Int, seed: UInt64) -> [UInt8] {
    var generator = SeededGenerator(seed: seed)
    return (0..<count).map { _ in UInt8.random(in: 0...255, using: &generator) }
}

/// Collects what a connection reads and how it closed.
final class ByteSink: ConnectionHandler {
    var bytes: [UInt8] = []
    var reads = 0
    var largestRead = 0
    var closedWith: TransportError?? = .none
    var onRead: (any Connection) -> Void = { _ in }

    func connection(_ connection: any Connection, didRead bytes: UnsafeRawBufferPointer) {
        reads += 1
        largestRead = max(largestRead, bytes.count)
        self.bytes.append(contentsOf: bytes)
        onRead(connection)
    }

    func connection(_ connection: any Connection, didCloseWith error: TransportError?) { closedWith = .some(error) }
}

/// `Connection.protect(with:)` over in-memory connections with ``LinkRecordLayer``: what each side writes arrives
/// sealed and opened, split into records and gathered from them, and a record that does not open, or a stream cut
/// inside one, closes the reading side with a link failure.
@Suite struct LinkConnectionTests {
    /// A connected in-memory pair, each end with a sink, the client protected with the initiator's keys and the
    /// relay with the responder's.
    private func protectedPair(
        chunkSize: Int = 4096
    ) throws -> (
        loop: MemoryEventLoop, client: MemoryConnection, relay: MemoryConnection, clientSink: ByteSink,
        relaySink: ByteSink
    ) {
        let loop = MemoryEventLoop()
        let (client, relay) = MemoryConnection.pair(loop: loop, chunkSize: chunkSize)
        let clientSink = ByteSink()
        let relaySink = ByteSink()
        client.handler = clientSink
        relay.handler = relaySink
        let (initiator, responder) = try linkHandshake()
        client.protect(with: LinkRecordLayer(keys: initiator))
        relay.protect(with: LinkRecordLayer(keys: responder))
        return (loop, client, relay, clientSink, relaySink)
    }

    @Test func protectedMemoryPair_carriesBytesBothWays_andTheWireIsSealed() throws {
        let (loop, client, relay, clientSink, relaySink) = try protectedPair()
        relay.otherEnd?.recordsWrites = true
        let hello = linkTestBytes(300, seed: 1)
        client.write(hello)
        loop.runUntilIdle()
        #expect(relaySink.bytes.elementsEqual(hello))
        let welcome = linkTestBytes(5_000, seed: 2)
        relay.write(welcome)
        loop.runUntilIdle()
        #expect(clientSink.bytes.elementsEqual(welcome))
        // Counts are in plaintext bytes.
        #expect(client.sentByteCount == 300)
        #expect(relay.sentByteCount == 5_000)
        #expect(relaySink.closedWith == nil && clientSink.closedWith == nil)
    }

    @Test func protectedMemoryPair_frameLargerThanARecord_isSplitAndArrivesWhole() throws {
        let (loop, client, relay, _, relaySink) = try protectedPair(chunkSize: 1_000_000)
        defer { withExtendedLifetime(relay) {} }
        let frame = linkTestBytes(200_000, seed: 3)
        client.write(frame)
        loop.runUntilIdle()
        #expect(relaySink.bytes.count == frame.count)
        #expect(relaySink.bytes.elementsEqual(frame))
        // Four records (three full ones and the rest), each delivered as its own plaintext.
        #expect(relaySink.reads == 4)
        #expect(relaySink.largestRead == 65_519)
    }

    @Test func protectedMemoryPair_plaintextIsHandedOverInChunksOfAtMostChunkSize() throws {
        let (loop, client, relay, _, relaySink) = try protectedPair(chunkSize: 1_000)
        defer { withExtendedLifetime(relay) {} }
        let frame = linkTestBytes(70_000, seed: 4)
        client.write(frame)
        loop.runUntilIdle()
        #expect(relaySink.bytes.count == frame.count)
        #expect(relaySink.bytes.elementsEqual(frame))
        #expect(relaySink.largestRead <= 1_000)
    }

    @Test func protectedMemoryPair_manyFramesInOneRecord_arriveInOrder() throws {
        let (loop, client, relay, clientSink, _) = try protectedPair(chunkSize: 1_000_000)
        relay.holdsOutput = true
        var frames: [UInt8] = []
        for index in 0..<100 {
            let frame = Frame.encode(type: 0x03) { writer in
                Array("message \(index)".utf8).withUnsafeBytes { writer.write(bytes: $0) }
            }
            frames += frame
            relay.write(frame)
        }
        // One held write per frame: released, each is its own record; written as one, they share one.
        relay.releaseHeldOutput()
        loop.runUntilIdle()
        #expect(clientSink.bytes.elementsEqual(frames))
        relay.write(frames)
        loop.runUntilIdle()
        #expect(clientSink.bytes.elementsEqual(frames + frames))
        #expect(clientSink.reads == 101)
        withExtendedLifetime(client) {}
    }

    @Test func protect_bytesWrittenAndHeldBeforeTheCall_goOutAsTheyWere() throws {
        let loop = MemoryEventLoop()
        let (client, relay) = MemoryConnection.pair(loop: loop)
        let relaySink = ByteSink()
        relay.handler = relaySink
        client.handler = ByteSink()
        let (initiator, responder) = try linkHandshake()
        client.holdsOutput = true
        client.write([1, 2, 3])
        client.protect(with: LinkRecordLayer(keys: initiator))
        client.write([4, 5, 6])
        #expect(client.pendingOutputByteCount == 6)
        client.releaseHeldOutput()
        // The relay protects once it has read the raw bytes, as it would after a handshake message.
        relaySink.onRead = { connection in
            if relaySink.bytes.count == 3 { connection.protect(with: LinkRecordLayer(keys: responder)) }
        }
        loop.runUntilIdle()
        #expect(relaySink.bytes == [1, 2, 3, 4, 5, 6])
        #expect(client.sentByteCount == 6)
    }

    @Test func protectedMemoryPair_flippedBit_closesTheReaderWithALinkFailure() throws {
        let loop = MemoryEventLoop()
        let (client, relay) = MemoryConnection.pair(loop: loop)
        let relaySink = ByteSink()
        let clientSink = ByteSink()
        relay.handler = relaySink
        client.handler = clientSink
        let (initiator, responder) = try linkHandshake()
        relay.protect(with: LinkRecordLayer(keys: responder))
        // The client side seals by hand, so that the test can alter the wire.
        let writer = LinkRecordWriter(cipher: initiator.sending)
        client.write(try writer.seal([1, 2, 3]))
        var altered = try writer.seal([4, 5, 6])
        altered[3] ^= 0x10
        client.write(altered)
        client.write(try writer.seal([7, 8, 9]))
        loop.runUntilIdle()
        #expect(relaySink.bytes == [1, 2, 3])
        let expected = TransportError.linkFailed(
            reason: "a record from the peer failed authentication: altered on the way, or not from the peer")
        #expect(relaySink.closedWith == .some(expected))
        #expect(
            expected.description
                == "encrypted link failed: a record from the peer failed authentication: altered on the way, "
                + "or not from the peer")
        // The other end sees the connection end.
        #expect(clientSink.closedWith == .some(nil))
    }

    @Test func protectedMemoryPair_streamCutInsideARecord_isALinkFailure() throws {
        let loop = MemoryEventLoop()
        let (client, relay) = MemoryConnection.pair(loop: loop)
        let relaySink = ByteSink()
        relay.handler = relaySink
        client.handler = ByteSink()
        let (initiator, responder) = try linkHandshake()
        relay.protect(with: LinkRecordLayer(keys: responder))
        let writer = LinkRecordWriter(cipher: initiator.sending)
        let first = try writer.seal([1])
        let record = try writer.seal([UInt8](repeating: 9, count: 40))
        client.write(first + record[..<30])
        client.closeAfterFlushing(timeout: .seconds(1))
        loop.runUntilIdle()
        #expect(relaySink.bytes == [1])
        #expect(
            relaySink.closedWith
                == .some(
                    .linkFailed(
                        reason: .init(
                            "the connection ended inside a record (30 bytes of it had arrived): the end of the "
                                + "data was lost"))))
    }

    @Test func protectedMemoryPair_streamEndingBetweenRecords_isAnOrderlyEnd() throws {
        let (loop, client, relay, _, relaySink) = try protectedPair()
        defer { withExtendedLifetime(relay) {} }
        client.write([1, 2])
        client.closeAfterFlushing(timeout: .seconds(1))
        loop.runUntilIdle()
        #expect(relaySink.bytes == [1, 2])
        #expect(relaySink.closedWith == .some(nil))
    }

    @Test func protectedMemoryPair_lengthBelowTheTag_isALinkFailure() throws {
        let loop = MemoryEventLoop()
        let (client, relay) = MemoryConnection.pair(loop: loop)
        let relaySink = ByteSink()
        relay.handler = relaySink
        client.handler = ByteSink()
        relay.protect(with: LinkRecordLayer(keys: try linkHandshake().responder))
        client.write([0, 5, 1, 2, 3, 4, 5])
        loop.runUntilIdle()
        #expect(relaySink.bytes.isEmpty)
        #expect(
            relaySink.closedWith
                == .some(
                    .linkFailed(
                        reason: .init(
                            "a record from the peer claims 5 bytes, fewer than its 16-byte tag: the stream is "
                                + "corrupt"))))
    }

    @Test func protectedMemoryPair_nonceExhausted_closesTheWriter() throws {
        let loop = MemoryEventLoop()
        let (client, relay) = MemoryConnection.pair(loop: loop)
        let clientSink = ByteSink()
        client.handler = clientSink
        relay.handler = ByteSink()
        let (initiator, _) = try linkHandshake()
        initiator.sending.setNonce(UInt64.max)
        client.protect(with: LinkRecordLayer(keys: initiator))
        client.write([1])
        loop.runUntilIdle()
        #expect(!client.isOpen)
        #expect(
            clientSink.closedWith
                == .some(
                    .linkFailed(reason: "this direction has used every nonce of its key; connect again for fresh keys"))
        )
    }

    @Test func discardUnsentOutput_onAProtectedConnection_dropsOnlyPlaintext_andTheStreamStaysInStep() throws {
        let (loop, client, relay, _, relaySink) = try protectedPair()
        defer { withExtendedLifetime(relay) {} }
        client.write([1])
        client.holdsOutput = true
        client.write([2, 2])
        client.discardUnsentOutput { _, sent in sent }
        client.write([3])
        client.releaseHeldOutput()
        loop.runUntilIdle()
        // The dropped bytes were never sealed, so the records that follow still open.
        #expect(relaySink.bytes == [1, 3])
        #expect(relaySink.closedWith == nil)
    }
}
