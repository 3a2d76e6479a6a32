/// Asks a relay for its public keys without starting a handshake (design: encrypted-link.md §4, first contact):
/// the client sends the preamble with key id 00000000 and nothing else, and the relay answers with its keys in the
/// clear (current first, then the previous one during a rotation) and closes. What comes back is unauthenticated:
/// the caller shows the fingerprint to a person, or compares it with one they typed, before pinning.
///
/// Threading: every function runs on the loop's thread and calls its completion there, once, never from inside
/// the call.
public enum RelayKeyProbe {
    /// How long the relay may take to answer.
    public static let defaultTimeout: Duration = .seconds(10)

    /// Connects to `host:port` over TCP and fetches the relay's keys.
    ///
    /// - Parameters:
    ///   - host: The relay's address.
    ///   - port: The relay's port.
    ///   - loop: The loop that runs the connection; it must run until the completion is called.
    ///   - timeout: How long the connect, and then the answer, may take each.
    ///   - completion: The relay's keys, current first, or why they could not be fetched (a connect failure is
    ///     ``RelayLinkFailure/Kind/connectionLost(reason:)``).
    public static func fetch(
        host: String, port: UInt16, loop: PosixEventLoop, timeout: Duration = defaultTimeout,
        completion: @escaping (Result<[RelayPublicKey], RelayLinkFailure>) -> Void
    ) {
        let relay = (host.contains(":") ? "[\(host)]" : host) + ":\(port)"
        TCPConnection.connect(host: host, port: port, loop: loop, timeout: timeout) { result in
            switch result {
            case .success(let connection):
                fetch(on: connection, relay: relay, loop: loop, timeout: timeout, completion: completion)
            case .failure(let error):
                completion(.failure(RelayLinkFailure(relay: relay, kind: .connectionLost(reason: error.description))))
            }
        }
    }

    /// Fetches the relay's keys over a fresh connection, and closes it.
    ///
    /// - Parameters:
    ///   - connection: A connection to the relay on which nothing was sent yet.
    ///   - relay: The relay as the user named it, `host:port`, for messages.
    ///   - loop: The loop driving `connection`.
    ///   - timeout: How long the answer may take.
    ///   - completion: The relay's keys, current first, or why they could not be fetched.
    public static func fetch(
        on connection: any Connection, relay: String, loop: any EventLoop, timeout: Duration = defaultTimeout,
        completion: @escaping (Result<[RelayPublicKey], RelayLinkFailure>) -> Void
    ) {
        let probe = Probe(relay: relay, loop: loop, completion: completion)
        connection.handler = probe
        probe.start(on: connection, timeout: timeout)
    }

    /// The handler of one probe's connection.
    private final class Probe: ConnectionHandler {
        private let relay: String
        private let loop: any EventLoop
        private var completion: ((Result<[RelayPublicKey], RelayLinkFailure>) -> Void)?
        private var received: [UInt8] = []
        private var timer: TimerID?
        private var connection: (any Connection)?

        init(
            relay: String, loop: any EventLoop,
            completion: @escaping (Result<[RelayPublicKey], RelayLinkFailure>) -> Void
        ) {
            self.relay = relay
            self.loop = loop
            self.completion = completion
        }

        func start(on connection: any Connection, timeout: Duration) {
            self.connection = connection
            // The key request id is 4 bytes, so this cannot throw.
            guard let preamble = try? LinkPreamble(relayFingerprint: RelayPublicKey.keyRequestID) else { return }
            connection.write(preamble.bytes)
            let seconds = timeout.wholeSeconds
            timer = loop.schedule(after: timeout) { [weak self] in
                guard let self else { return }
                self.timer = nil
                let reason = "the relay at \(self.relay) did not send its key within \(seconds) seconds"
                self.fail(self.received.isEmpty ? .silent(reason: reason) : .connectionLost(reason: reason))
            }
        }

        func connection(_ connection: any Connection, didRead bytes: UnsafeRawBufferPointer) {
            guard completion != nil else { return }
            received.append(contentsOf: bytes.prefix(max(0, RelayAnswer.maximumLength - received.count)))
            guard let (answer, _) = RelayAnswer.parse(received) else { return }
            switch answer {
            case .keys(let keys): finish(.success(keys))
            case .version(let version): fail(.versionMismatch(relayVersion: version))
            case .busy: fail(.busy)
            case .olderRelay: fail(.olderRelay)
            case .message2, .notAESChat: fail(.notAESChat)
            }
        }

        func connection(_ connection: any Connection, didCloseWith error: TransportError?) {
            let reason =
                error.map { "the relay at \(relay) closed the connection before sending its key: \($0)" }
                ?? "the relay at \(relay) closed the connection before sending its key"
            fail(.connectionLost(reason: reason))
        }

        private func fail(_ kind: RelayLinkFailure.Kind) {
            finish(.failure(RelayLinkFailure(relay: relay, kind: kind)))
        }

        private func finish(_ result: Result<[RelayPublicKey], RelayLinkFailure>) {
            guard let completion else { return }
            self.completion = nil
            if let timer { loop.cancel(timer) }
            timer = nil
            connection?.close()
            connection = nil
            completion(result)
        }
    }
}
