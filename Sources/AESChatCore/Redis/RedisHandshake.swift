/// What a new Redis connection sends before it is used: AUTH (when a password is given), SELECT (when the database
/// is not 0) and CLIENT SETNAME (when a name is given), pipelined.
public struct RedisHandshake: Sendable {
    /// The ACL user, or nil for the default user.
    public var user: String?
    /// The password, or nil for none. Taken from the environment by the caller (never from the command line, which
    /// other users can read); never logged or put in an error.
    public var password: String?
    /// The database number.
    public var database: Int
    /// The connection's name in `CLIENT LIST` (no spaces), or nil.
    public var clientName: String?

    public init(user: String? = nil, password: String? = nil, database: Int = 0, clientName: String? = nil) {
        self.user = user
        self.password = password
        self.database = database
        self.clientName = clientName
    }

    /// The environment variable holding the password of a cluster's Redis.
    public static let passwordVariable = "AESCHAT_CLUSTER_PASSWORD"
}

extension RedisConnection {
    /// Sends `handshake`'s commands on a new connection; `completion` gets the connection once Redis accepted
    /// them all, or the first failure (the connection is then closed). A server that wants a password and got none,
    /// or refused the one given, fails with ``RedisError/authenticationFailed(_:)``.
    public func start(
        _ handshake: RedisHandshake, _ completion: @escaping (Result<RedisConnection, RedisError>) -> Void
    ) {
        var steps: [(name: String, arguments: [String])] = []
        if let password = handshake.password {
            steps.append(("AUTH", ["AUTH"] + (handshake.user.map { [$0] } ?? []) + [password]))
        }
        if handshake.database != 0 { steps.append(("SELECT", ["SELECT", String(handshake.database)])) }
        if let name = handshake.clientName { steps.append(("CLIENT SETNAME", ["CLIENT", "SETNAME", name])) }
        // A PING last: it proves the server answers, and a server wanting a password refuses it with NOAUTH.
        steps.append(("PING", ["PING"]))
        var finished = false
        for (index, step) in steps.enumerated() {
            send(step.arguments) { [self] result in
                guard !finished else { return }
                switch result {
                case .success:
                    guard index == steps.count - 1 else { return }
                    finished = true
                    completion(.success(self))
                case .failure(let error):
                    finished = true
                    close()
                    completion(.failure(Self.handshakeFailure(error, step: step.name, handshake: handshake)))
                }
            }
        }
    }

    /// The failure a handshake step's error reply stands for.
    private static func handshakeFailure(_ error: RedisError, step: String, handshake: RedisHandshake) -> RedisError {
        guard case .server(let message) = error else { return error }
        let code = error.serverCode ?? ""
        if step == "AUTH" || code == "NOAUTH" || code == "WRONGPASS" {
            if code == "NOAUTH" && handshake.password == nil {
                return .authenticationFailed(
                    "\(message) (set the password in \(RedisHandshake.passwordVariable))")
            }
            return .authenticationFailed(message)
        }
        return .setupFailed(command: step, message: message)
    }

    /// Connects to `endpoint` without blocking the loop and runs `handshake`; `completion` gets the ready
    /// connection or the failure: ``RedisError/connectFailed(address:reason:)``, a handshake failure, or
    /// ``RedisError/timedOut(_:)`` when the whole took longer than `timeout`.
    @discardableResult
    public static func connect(
        to endpoint: RedisEndpoint, loop: PosixEventLoop, handshake: RedisHandshake,
        timeout: Duration = .seconds(10), limits: Limits = Limits(),
        _ completion: @escaping (Result<RedisConnection, RedisError>) -> Void
    ) -> RedisConnectAttempt {
        let attempt = RedisConnectAttempt(completion: completion)
        let connected: (Result<TCPConnection, TransportError>) -> Void = { result in
            guard attempt.isPending else {
                if case .success(let connection) = result { connection.close() }
                return
            }
            switch result {
            case .failure(let error):
                attempt.finish(.failure(.connectFailed(address: endpoint.description, reason: Self.reason(error))))
            case .success(let connection):
                let redis = RedisConnection(connection: connection, loop: loop, limits: limits)
                attempt.redis = redis
                redis.start(handshake) { attempt.finish($0) }
            }
        }
        switch endpoint {
        case .tcp(let host, let port):
            attempt.transport = TCPConnection.connect(
                host: host, port: port, loop: loop, timeout: timeout, connected)
        case .unix(let path):
            attempt.transport = TCPConnection.connect(unixPath: path, loop: loop, timeout: timeout, connected)
        }
        attempt.timer = loop.schedule(after: timeout) {
            attempt.timer = nil
            attempt.finish(.failure(.timedOut("connecting to Redis at \(endpoint)")))
        }
        attempt.loop = loop
        return attempt
    }

    /// The reason in a transport failure, without the transport's own wording about relays.
    private static func reason(_ error: TransportError) -> String {
        switch error {
        case .resolveFailed(let host, let reason): "cannot resolve host '\(host)': \(reason)"
        case .connectFailed(_, let reason), .readFailed(let reason), .writeFailed(let reason),
            .systemCall(_, let reason), .listenFailed(_, let reason), .linkFailed(let reason):
            reason.text
        case .timedOut(let what): "\(what) timed out"
        }
    }
}

/// A Redis connection being made (``RedisConnection/connect(to:loop:handshake:timeout:limits:_:)``). Loop thread
/// only.
public final class RedisConnectAttempt {
    fileprivate var completion: ((Result<RedisConnection, RedisError>) -> Void)?
    fileprivate var transport: PendingConnect?
    fileprivate var redis: RedisConnection?
    fileprivate var timer: TimerID?
    fileprivate weak var loop: PosixEventLoop?

    fileprivate init(completion: @escaping (Result<RedisConnection, RedisError>) -> Void) {
        self.completion = completion
    }

    /// Whether the attempt has neither finished nor been cancelled.
    public var isPending: Bool { completion != nil }

    /// Abandons the attempt: the completion is never called and anything opened is closed.
    public func cancel() {
        completion = nil
        cleanUp(closing: true)
    }

    fileprivate func finish(_ result: Result<RedisConnection, RedisError>) {
        guard let completion else { return }
        self.completion = nil
        if case .failure = result {
            cleanUp(closing: true)
        } else {
            cleanUp(closing: false)
        }
        completion(result)
    }

    private func cleanUp(closing: Bool) {
        if let timer { loop?.cancel(timer) }
        timer = nil
        transport?.cancel()
        transport = nil
        if closing { redis?.close() }
        redis = nil
    }
}
