/// What a client needs to open the encrypted link to a relay: the relay's pinned key and how to name the relay.
///
/// Ownership and threading: a value type; `Sendable`.
public struct RelayLinkConfiguration: Equatable, Sendable {
    /// How long the relay may take to answer handshake message 1 before the attempt counts as lost.
    public static let defaultTimeout: Duration = .seconds(15)

    /// The relay's static public key, as pinned: the handshake succeeds only with the relay that holds it.
    public var relayKey: RelayPublicKey
    /// The relay as the user named it, `host:port`, for messages.
    public var relay: String
    /// How long the relay may take to answer.
    public var timeout: Duration

    /// A configuration for the relay `relay` pinned to `relayKey`.
    public init(relayKey: RelayPublicKey, relay: String, timeout: Duration = Self.defaultTimeout) {
        self.relayKey = relayKey
        self.relay = relay
        self.timeout = timeout
    }
}

/// A connection whose encrypted link is up, with the link's handshake hash (the same at the relay, and unique to
/// this connection), which hello's name claim signs (docs/PROTOCOL.md section 3.1).
public struct LinkedRelayConnection {
    /// The protected connection: it reads and writes plaintext frames.
    public let connection: any Connection
    /// The Noise handshake hash `h` of its link, 32 bytes.
    public let handshakeHash: [UInt8]
}

/// The client's side of the encrypted link's start (docs/PROTOCOL.md; design: encrypted-link.md §3): on a fresh
/// connection it sends the preamble (with the pinned key's id) and handshake message 1 in one write, reads the
/// relay's answer, and on an authentic message 2 protects the connection with the transport keys and hands it on.
/// Whatever handler comes next (a ``RelaySession``, a test peer) then reads and writes plaintext frames.
///
/// On any other answer it closes the connection and reports a ``RelayLinkFailure``; nothing is sent after message
/// 1 in that case. Bytes after message 2 (the relay must wait for the hello) fail the link too.
///
/// Ownership: holds the connection (as its handler) and the handshake until the completion is called. Threading:
/// confined to the event loop's thread.
public final class RelayLinkStarter: ConnectionHandler {
    private let connection: any Connection
    private let configuration: RelayLinkConfiguration
    private let loop: any EventLoop
    private var completion: ((Result<LinkedRelayConnection, RelayLinkFailure>) -> Void)?
    private var handshake: NoiseHandshake?
    private var received: [UInt8] = []
    private var timer: TimerID?

    private init(
        connection: any Connection, configuration: RelayLinkConfiguration, loop: any EventLoop,
        completion: @escaping (Result<LinkedRelayConnection, RelayLinkFailure>) -> Void
    ) {
        self.connection = connection
        self.configuration = configuration
        self.loop = loop
        self.completion = completion
    }

    /// Starts the link on `connection`, which must be fresh (nothing sent or read yet).
    ///
    /// - Parameters:
    ///   - connection: A connection to the relay; this stage is its handler until the completion.
    ///   - configuration: The pinned key and the relay's name.
    ///   - loop: The loop driving `connection` (for the timeout).
    ///   - completion: Called once, never from inside this call: with the protected connection (its handler
    ///     still this stage: set the next one at once), or with the failure (the connection is closed).
    public static func start(
        on connection: any Connection, configuration: RelayLinkConfiguration, loop: any EventLoop,
        completion: @escaping (Result<any Connection, RelayLinkFailure>) -> Void
    ) {
        start(on: connection, configuration: configuration, loop: loop) {
            (linked: Result<LinkedRelayConnection, RelayLinkFailure>) in
            completion(linked.map(\.connection))
        }
    }

    /// Starts the link on `connection`, like ``start(on:configuration:loop:completion:)``, and hands over the link's
    /// handshake hash with the protected connection.
    public static func start(
        on connection: any Connection, configuration: RelayLinkConfiguration, loop: any EventLoop,
        linked completion: @escaping (Result<LinkedRelayConnection, RelayLinkFailure>) -> Void
    ) {
        let starter = RelayLinkStarter(
            connection: connection, configuration: configuration, loop: loop, completion: completion)
        connection.handler = starter
        starter.begin()
    }

    private func begin() {
        let key = configuration.relayKey
        let preamble: LinkPreamble
        let message1: [UInt8]
        do {
            preamble = try LinkPreamble(relayFingerprint: key.fingerprintHash)
            let handshake = try NoiseHandshake.initiator(responderStaticKey: key.bytes, prologue: preamble.prologue)
            message1 = try handshake.writeMessage()
            self.handshake = handshake
        } catch {
            let reason = "cannot start the encrypted link to \(configuration.relay): \(error.description)"
            loop.schedule(after: .zero) { [self] in fail(.connectionLost(reason: reason)) }
            return
        }
        connection.write(preamble.bytes + RelayAnswer.message2Prefix + message1)
        let seconds = configuration.timeout.wholeSeconds
        timer = loop.schedule(after: configuration.timeout) { [weak self] in
            guard let self else { return }
            self.timer = nil
            let reason =
                "the relay at \(self.configuration.relay) did not answer the encrypted link's handshake within "
                + "\(seconds) seconds"
            self.fail(self.received.isEmpty ? .silent(reason: reason) : .connectionLost(reason: reason))
        }
    }

    public func connection(_ connection: any Connection, didRead bytes: UnsafeRawBufferPointer) {
        guard completion != nil else { return }
        // One byte more than the longest answer shows whether anything followed it.
        received.append(contentsOf: bytes.prefix(max(0, RelayAnswer.maximumLength + 1 - received.count)))
        guard let (answer, length) = RelayAnswer.parse(received) else { return }
        switch answer {
        case .message2(let message):
            guard received.count == length else {
                fail(.notAESChat)
                return
            }
            establish(with: message)
        case .keys(let presented):
            fail(.keyMismatch(pinned: configuration.relayKey, presented: presented))
        case .version(let version):
            fail(.versionMismatch(relayVersion: version))
        case .busy:
            fail(.busy)
        case .olderRelay:
            fail(.olderRelay)
        case .notAESChat:
            fail(.notAESChat)
        }
    }

    public func connection(_ connection: any Connection, didCloseWith error: TransportError?) {
        let reason =
            error.map { "the relay at \(configuration.relay) closed the encrypted link's handshake: \($0)" }
            ?? "the relay at \(configuration.relay) closed the connection during the encrypted link's handshake"
        fail(.connectionLost(reason: reason))
    }

    /// Reads message 2, protects the connection with the transport keys and hands it on.
    private func establish(with message: [UInt8]) {
        guard let handshake else { return }
        self.handshake = nil
        let keys: NoiseTransportKeys
        do {
            _ = try handshake.readMessage(message)
            keys = try handshake.finish()
        } catch .handshakeAuthenticationFailed, .lowOrderKey {
            fail(.handshakeFailed(pinned: configuration.relayKey))
            return
        } catch {
            fail(.connectionLost(reason: "the encrypted link to \(configuration.relay) failed: \(error.description)"))
            return
        }
        // One connection that sends and receives in turn: a handle per direction spares a key setup per record.
        connection.protect(with: LinkRecordLayer(keys: keys, handles: .owned))
        complete(.success(LinkedRelayConnection(connection: connection, handshakeHash: keys.handshakeHash)))
    }

    private func fail(_ kind: RelayLinkFailure.Kind) {
        guard completion != nil else { return }
        handshake = nil
        connection.close()
        complete(.failure(RelayLinkFailure(relay: configuration.relay, kind: kind)))
    }

    private func complete(_ result: Result<LinkedRelayConnection, RelayLinkFailure>) {
        guard let completion else { return }
        self.completion = nil
        if let timer { loop.cancel(timer) }
        timer = nil
        completion(result)
    }
}
