public import AESChatCore

/// A client's side of the encrypted link to a relay, for tests and the fuzzer: over any raw ``Connection`` it sends
/// the preamble and handshake message 1 (``NoiseHandshake`` as initiator, with the relay key the test pins), reads
/// message 2 or the relay's answer, and then carries the frame stream in records it seals and opens itself
/// (``LinkRecordWriter``, ``LinkRecordReader``), independently of the transport's own record protection.
///
/// It is itself a ``Connection``: a raw protocol peer, a ``HostileMember`` or a client session uses it as its
/// connection and sees plaintext frames. What the upper side writes before the link is up waits, and goes out sealed
/// once message 2 has authenticated. What the relay sent in the clear instead of message 2 is kept in
/// ``clearBytes`` (and parsed into ``answer`` when it is one of the link's answers).
///
/// Ownership: holds the raw connection strongly and is its handler. Loop thread only.
public final class LinkTestClient: Connection, OutputDrainObserver {
    /// Where the link is.
    public enum State: Equatable, Sendable {
        /// Waiting for message 2 (or an answer).
        case handshaking
        /// Message 2 authenticated; frames flow in records.
        case linked
        /// The handshake or a record failed; `reason` says how.
        case failed(String)
        /// The raw connection closed before the link was up.
        case closed
    }

    /// The raw connection to the relay.
    public let raw: any Connection
    public var handler: (any ConnectionHandler)?
    /// Where the link is.
    public private(set) var state = State.handshaking
    /// The bytes the relay sent in the clear when they were not message 2 (an answer, or a protocol-1 error frame).
    public private(set) var clearBytes: [UInt8] = []
    /// The relay's answer, when ``clearBytes`` hold one.
    public var answer: LinkAnswer? { (try? LinkAnswer.parse(clearBytes))?.answer }
    /// The handshake hash, once linked.
    public private(set) var handshakeHash: [UInt8] = []

    private let handshake: NoiseHandshake?
    private var received: [UInt8] = []
    private var queued: [[UInt8]] = []
    private var writer: LinkRecordWriter?
    private var reader: LinkRecordReader?
    private var hasReportedClose = false

    /// Starts the link: sends the preamble for `relayKey` and message 1 over `raw`, and becomes its handler.
    /// - Parameters:
    ///   - raw: a connection to the relay, unprotected.
    ///   - relayKey: the relay key the client pins; a key the relay does not hold gets its keys answer.
    ///   - preamble: other preamble bytes to send instead (a key request, another version, garbage); no message 1
    ///     follows them unless `sendsMessage1` says so.
    ///   - sendsMessage1: whether message 1 follows a preamble given in `preamble`.
    public init(
        over raw: any Connection, relayKey: RelayPublicKey, preamble: [UInt8]? = nil, sendsMessage1: Bool = false
    )
        throws
    {
        self.raw = raw
        let standard = try LinkPreamble(relayFingerprint: relayKey.fingerprintHash)
        let bytes = preamble ?? standard.bytes
        let prologue = LinkPreamble.prologueLabel + bytes
        var first = bytes
        if preamble == nil || sendsMessage1 {
            let handshake = try NoiseHandshake.initiator(responderStaticKey: relayKey.bytes, prologue: prologue)
            first += Self.messagePrefix + (try handshake.writeMessage())
            self.handshake = handshake
        } else {
            handshake = nil
        }
        raw.handler = self
        raw.write(first)
    }

    /// Asks `raw`'s relay for its keys (preamble with key id 00000000): the answer lands in ``answer``.
    public static func keyRequest(over raw: any Connection) throws -> LinkTestClient {
        let anyKey = try RelayPublicKey(bytes: [UInt8](repeating: 9, count: RelayPublicKey.length))
        return try LinkTestClient(
            over: raw, relayKey: anyKey,
            preamble: LinkPreamble.magic + [LinkPreamble.version] + RelayPublicKey.keyRequestID)
    }

    /// The length prefix of a handshake message: 48.
    public static let messagePrefix: [UInt8] = [0x00, UInt8(NoiseHandshake.emptyMessageLength)]

    // MARK: Connection (the upper side)

    public var peerDescription: String { raw.peerDescription }
    public var pendingOutputByteCount: Int { raw.pendingOutputByteCount + queued.reduce(0) { $0 + $1.count } }
    public var sentByteCount: Int { raw.sentByteCount }
    public var isOpen: Bool { raw.isOpen }

    public func write(_ bytes: [UInt8]) {
        guard raw.isOpen, !bytes.isEmpty else { return }
        guard let writer else {
            queued.append(bytes)
            return
        }
        do {
            raw.write(try writer.seal(bytes))
        } catch {
            fail("cannot seal: \(error)")
        }
    }

    /// The test link seals and opens its records itself; protecting it again would be a test's mistake.
    public func protect(with protection: any RecordProtection) {
        preconditionFailure("a LinkTestClient is already the encrypted link")
    }

    public func closeAfterFlushing(timeout: Duration) { raw.closeAfterFlushing(timeout: timeout) }

    public func close() { raw.close() }

    // MARK: For tests that misbehave

    /// Writes `bytes` on the raw connection as they are, bypassing the records (to send garbage or altered records).
    public func writeRaw(_ bytes: [UInt8]) { raw.write(bytes) }

    /// Seals `plaintext` as the next records, without sending them (a test alters and sends them with
    /// ``writeRaw(_:)``). Only once linked.
    public func seal(_ plaintext: [UInt8]) throws -> [UInt8] {
        guard let writer else { throw LinkError.outOfOrder(operation: "seal a record", state: "the link is not up") }
        return try writer.seal(plaintext)
    }

    // MARK: ConnectionHandler (the raw side)

    public func connection(_ connection: any Connection, didRead bytes: UnsafeRawBufferPointer) {
        switch state {
        case .linked:
            open(bytes)
        case .handshaking:
            received.append(contentsOf: bytes)
            readHandshake()
        case .failed, .closed:
            return
        }
    }

    public func connectionDidDrainOutput(_ connection: any Connection) {
        (handler as? any OutputDrainObserver)?.connectionDidDrainOutput(self)
    }

    public func connection(_ connection: any Connection, didCloseWith error: TransportError?) {
        if state == .handshaking { state = .closed }
        if state == .linked, let reader {
            do { try reader.finish() } catch { state = .failed("\(error)") }
        }
        reportClose(error)
    }

    private func reportClose(_ error: TransportError?) {
        guard !hasReportedClose else { return }
        hasReportedClose = true
        let upper = handler
        handler = nil
        upper?.connection(self, didCloseWith: error)
    }

    private func readHandshake() {
        guard let first = received.first else { return }
        guard first == Self.messagePrefix[0], let handshake else {
            clearBytes = received
            return
        }
        let length = Self.messagePrefix.count + NoiseHandshake.emptyMessageLength
        guard received.count >= length else { return }
        guard received[1] == Self.messagePrefix[1] else {
            fail("message 2 has the wrong length prefix")
            return
        }
        do {
            _ = try handshake.readMessage(Array(received[Self.messagePrefix.count..<length]))
            let keys = try handshake.finish()
            handshakeHash = keys.handshakeHash
            writer = LinkRecordWriter(cipher: keys.sending)
            reader = LinkRecordReader(cipher: keys.receiving)
        } catch {
            fail("\(error)")
            return
        }
        state = .linked
        let rest = Array(received[length...])
        received = []
        for bytes in queued { write(bytes) }
        queued = []
        if !rest.isEmpty { rest.withUnsafeBytes { open($0) } }
    }

    private func open(_ bytes: UnsafeRawBufferPointer) {
        guard let reader else { return }
        do {
            try reader.read(bytes) { plaintext in
                handler?.connection(self, didRead: plaintext)
            }
        } catch {
            fail("\(error)")
        }
    }

    private func fail(_ reason: String) {
        state = .failed(reason)
        raw.close()
    }
}
