import AESChatCrypto

@testable import AESChatCore

/// Relay keys for tests: fixed scalars, so that no test pays for a very-strong random draw.
enum TestRelayKeys {
    /// The key test relays hold.
    static let current = key(0x11)
    /// Another relay's key (a relay that does not hold the pinned one, or a machine in the path).
    static let other = key(0x22)

    /// The public half of `key`, as clients pin it.
    static func pinned(_ key: X25519PrivateKey) -> RelayPublicKey {
        try! RelayPublicKey(bytes: key.publicKey)
    }

    /// A link configuration pinning `key`.
    static func link(_ key: X25519PrivateKey = current, relay: String = "memory:7777") -> RelayLinkConfiguration {
        RelayLinkConfiguration(relayKey: pinned(key), relay: relay)
    }

    private static func key(_ byte: UInt8) -> X25519PrivateKey {
        try! X25519PrivateKey(rawRepresentation: [UInt8](repeating: byte, count: 32))
    }
}

/// Starts a client's encrypted link on `connection` (``RelayLinkStarter``, as a session does) and runs `loop` until
/// it is up; traps if it fails.
/// - Returns: `connection`, now protected, with no handler yet.
@discardableResult
func startLink(
    on connection: MemoryConnection, pinning key: RelayPublicKey = TestRelayKeys.pinned(TestRelayKeys.current),
    loop: MemoryEventLoop
) -> MemoryConnection {
    var result: Result<any Connection, RelayLinkFailure>?
    RelayLinkStarter.start(
        on: connection, configuration: RelayLinkConfiguration(relayKey: key, relay: "memory:7777"), loop: loop
    ) { result = $0 }
    loop.runUntilIdle()
    guard case .success = result else { preconditionFailure("the link did not start: \(String(describing: result))") }
    return connection
}

/// The relay's side of the link start on an in-memory connection, scripted for tests: it records every byte it
/// gets, reads the preamble and message 1, and answers as a relay holding `key` would (its keys for another key id
/// or for a key request, message 2 otherwise), or with the bytes the test chose. On a completed handshake it
/// protects the connection and hands it to `established`, whose handler then reads plaintext.
final class TestLinkResponder: ConnectionHandler {
    /// How to answer a handshake for `key`.
    enum Script: Sendable {
        /// Message 2, as a relay does.
        case complete
        /// Message 2 with one bit flipped.
        case tamperMessage2
        /// A message 2 of its own whatever key id the client named, as a machine in the path would (it cannot read
        /// message 1 without the pinned key, so it makes up the rest).
        case impersonate
        /// Message 2 and these bytes in the same write, without waiting for the hello.
        case message2FollowedBy([UInt8])
        /// These bytes instead of message 2, then close.
        case answer([UInt8])
    }

    let connection: MemoryConnection
    private let key: X25519PrivateKey
    private let script: Script
    private let established: (MemoryConnection) -> Void
    /// Every byte received before the link was established (or refused).
    private(set) var received: [UInt8] = []
    /// Whether the connection closed while this stage was its handler.
    private(set) var closed = false
    private var answered = false

    /// Answers the link start on `connection` (a relay's end).
    @discardableResult
    init(
        _ connection: MemoryConnection, key: X25519PrivateKey = TestRelayKeys.current, script: Script = .complete,
        established: @escaping (MemoryConnection) -> Void = { _ in }
    ) {
        self.connection = connection
        self.key = key
        self.script = script
        self.established = established
        connection.handler = self
    }

    func connection(_ connection: any Connection, didRead bytes: UnsafeRawBufferPointer) {
        received.append(contentsOf: bytes)
        guard !answered, received.count >= LinkPreamble.length else { return }
        guard let preamble = try? LinkPreamble.parse(received) else {
            refuse(LinkAnswerBytes.olderRelayRefusal)
            return
        }
        let pinned = TestRelayKeys.pinned(key)
        var impersonating = false
        if case .impersonate = script { impersonating = true }
        if preamble.keyID == RelayPublicKey.keyRequestID || (preamble.keyID != pinned.keyID && !impersonating) {
            refuse(LinkAnswerBytes.keys([pinned]))
            return
        }
        let length = LinkPreamble.length + 2 + NoiseHandshake.emptyMessageLength
        guard received.count >= length else { return }
        answered = true
        var trailing: [UInt8] = []
        switch script {
        case .answer(let bytes):
            refuse(bytes)
            return
        case .impersonate:
            connection.write([0x00, 0x30] + key.publicKey + [UInt8](repeating: 0x5a, count: 16))
            return
        case .message2FollowedBy(let bytes):
            trailing = bytes
        case .complete, .tamperMessage2:
            break
        }
        let handshake = NoiseHandshake.responder(staticKey: key, prologue: preamble.prologue)
        do {
            _ = try handshake.readMessage(Array(received[(LinkPreamble.length + 2)..<length]))
            var message2 = try handshake.writeMessage()
            if case .tamperMessage2 = script { message2[40] ^= 0x01 }
            connection.write([0x00, 0x30] + message2 + trailing)
            if case .tamperMessage2 = script { return }
            self.connection.protect(with: LinkRecordLayer(keys: try handshake.finish()))
            established(self.connection)
        } catch {
            self.connection.close()
        }
    }

    func connection(_ connection: any Connection, didCloseWith error: TransportError?) { closed = true }

    private func refuse(_ bytes: [UInt8]) {
        answered = true
        connection.write(bytes)
        connection.closeAfterFlushing(timeout: .seconds(1))
    }
}

/// The relay's cleartext answers, byte for byte as docs/PROTOCOL.md gives them.
enum LinkAnswerBytes {
    static let magic = Array("AESCHAT".utf8)

    static func keys(_ keys: [RelayPublicKey]) -> [UInt8] {
        magic + [0x02, 0x01, UInt8(keys.count)] + keys.flatMap(\.bytes)
    }

    static func version(_ version: UInt8) -> [UInt8] { magic + [version, 0x02] }

    static let busy = magic + [0x02, 0x03]

    /// The protocol 1 error frame a relay sends to first bytes that are not `"AESCHAT"`.
    static let olderRelayRefusal: [UInt8] = {
        let text = Array("this relay speaks aeschat protocol 2 (encrypted link); upgrade aeschat".utf8)
        let body: [UInt8] = [0x85, 0x00, 0x05, UInt8(text.count >> 8), UInt8(text.count & 0xff)] + text
        let length = UInt32(body.count)
        return [UInt8(length >> 24), UInt8(length >> 16 & 0xff), UInt8(length >> 8 & 0xff), UInt8(length & 0xff)] + body
    }()
}

/// Collects the plaintext a protected connection delivers.
final class PlaintextCollector: ConnectionHandler {
    var bytes: [UInt8] = []
    var closed = false

    func connection(_ connection: any Connection, didRead bytes: UnsafeRawBufferPointer) {
        self.bytes.append(contentsOf: bytes)
    }

    func connection(_ connection: any Connection, didCloseWith error: TransportError?) { closed = true }
}
