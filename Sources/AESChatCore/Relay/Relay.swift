import AESChatCLI

/// Limits and timings of a relay.
public struct RelayConfiguration: Sendable {
    /// The largest frame accepted from a client (type byte plus body).
    public var maximumFrameLength = Frame.defaultMaximumLength
    /// Output queued for one member beyond which that member is disconnected as too slow. Must
    /// exceed the largest frame so that one big message never trips it by itself.
    public var maximumPendingOutput = 64 * 1024 * 1024
    /// How long a closing connection may take to flush before it is cut.
    public var closeTimeout: Duration = .seconds(5)

    /// The defaults documented in docs/CLI.md.
    public init() {}
}

/// The relay: registers members by name into rooms, and forwards each member's opaque payloads
/// to the other members of its room, in order. It never holds a key and never looks inside a
/// payload.
///
/// Works on any ``Connection``; confined to the event loop's thread.
public final class Relay {
    public let configuration: RelayConfiguration
    private let loop: any EventLoop
    private let log: (String) -> Void
    private var clients: Set<ObjectIdentifier> = []
    private var clientObjects: [ObjectIdentifier: RelayClient] = [:]
    private var membersByName: [String: RelayClient] = [:]
    private var rooms: [String: Room] = [:]
    private var isShuttingDown = false
    private var shutdownCompletion: (() -> Void)?

    /// Creates a relay.
    /// - Parameters:
    ///   - configuration: limits.
    ///   - loop: the loop that drives its connections (for timers).
    ///   - log: receives one line per join, leave and refusal.
    public init(
        configuration: RelayConfiguration = RelayConfiguration(), loop: any EventLoop, log: @escaping (String) -> Void
    ) {
        self.configuration = configuration
        self.loop = loop
        self.log = log
    }

    /// Connections open, registered or not.
    public var connectionCount: Int { clientObjects.count }
    /// Registered members across all rooms.
    public var memberCount: Int { membersByName.count }

    /// Accepts every connection `listener` hands out.
    public func attach(to listener: any Listener) {
        listener.acceptHandler = { [unowned self] connection in self.accept(connection) }
    }

    /// Takes charge of a new connection.
    public func accept(_ connection: any Connection) {
        guard !isShuttingDown else {
            connection.write(
                RelayFrame.error(code: RelayErrorCode.shuttingDown.rawValue, message: "relay is shutting down")
                    .encoded())
            connection.closeAfterFlushing(timeout: .seconds(1))
            return
        }
        let client = RelayClient(
            relay: self, connection: connection, maximumFrameLength: configuration.maximumFrameLength)
        clientObjects[ObjectIdentifier(client)] = client
        connection.handler = client
    }

    /// Tells every client that the relay is stopping, gives them a moment to receive it, then
    /// calls `completion` once every connection is closed (or the close timeout passed).
    public func shutdown(completion: @escaping () -> Void) {
        guard !isShuttingDown else { return }
        isShuttingDown = true
        shutdownCompletion = completion
        let farewell = RelayFrame.error(code: RelayErrorCode.shuttingDown.rawValue, message: "relay is shutting down")
            .encoded()
        for client in clientObjects.values {
            client.connection.write(farewell)
            client.connection.closeAfterFlushing(timeout: .seconds(1))
        }
        loop.schedule(after: .seconds(2)) { [weak self] in self?.finishShutdown() }
        if clientObjects.isEmpty { finishShutdown() }
    }

    private func finishShutdown() {
        guard let completion = shutdownCompletion else { return }
        shutdownCompletion = nil
        completion()
    }

    // MARK: Called by RelayClient

    fileprivate func register(
        _ client: RelayClient, version: UInt16, name: String, room roomName: String, profile: [UInt8]
    ) {
        guard version == relayProtocolVersion else {
            refuse(
                client, .unsupportedVersion,
                "protocol version \(version) is not supported; this relay speaks version \(relayProtocolVersion)")
            return
        }
        guard Names.isValidMemberName(name) else {
            refuse(
                client, .invalidName,
                "invalid name '\(Self.printable(name))': use 1 to 32 letters, digits, '-', '_' or '.'")
            return
        }
        guard Names.isValidRoomName(roomName) else {
            refuse(
                client, .invalidRoom,
                "invalid room '\(Self.printable(roomName))': use 1 to 64 letters, digits, '-', '_' or '.'")
            return
        }
        guard membersByName[name] == nil else {
            refuse(client, .nameTaken, "the name '\(name)' is already in use on this relay; choose another with --name")
            return
        }
        let room = rooms[roomName] ?? Room(name: roomName)
        rooms[roomName] = room
        let present = room.members.map { MemberEntry(name: $0.name!, profile: $0.profile) }.sorted { $0.name < $1.name }
        client.name = name
        client.profile = profile
        client.room = room
        membersByName[name] = client
        let welcome = RelayFrame.welcome(
            version: relayProtocolVersion, name: name, room: roomName,
            members: Array(present.prefix(RelayFrame.maximumWelcomeMembers)))
        client.connection.write(welcome.encoded())
        broadcast(RelayFrame.joined(MemberEntry(name: name, profile: profile)).encoded(), in: room, except: nil)
        room.add(client)
        log("\(name) joined \(roomName) from \(client.connection.peerDescription) (\(room.members.count) in room)")
    }

    fileprivate func publish(_ payload: ArraySlice<UInt8>, from client: RelayClient) {
        guard let room = client.room, let name = client.name else { return }
        let frame = RelayFrame.encodeDeliver(from: name, isDirect: false, payload: payload)
        broadcast(frame, in: room, except: client)
    }

    fileprivate func direct(_ payload: ArraySlice<UInt8>, to recipientName: String, from client: RelayClient) {
        guard let room = client.room, let name = client.name else { return }
        guard let recipient = membersByName[recipientName], recipient.room === room, recipient !== client else {
            client.connection.write(
                RelayFrame.error(
                    code: RelayErrorCode.unknownRecipient.rawValue,
                    message: "no member named '\(Self.printable(recipientName))' in \(room.name)"
                ).encoded())
            return
        }
        send(RelayFrame.encodeDeliver(from: name, isDirect: true, payload: payload), to: recipient)
    }

    /// Delivers one payload to several members of the sender's room, encoded once. Names not in
    /// the room are skipped (they may have just left).
    fileprivate func multicast(_ payload: ArraySlice<UInt8>, to recipients: [String], from client: RelayClient) {
        guard let room = client.room, let name = client.name else { return }
        var frame: [UInt8]?
        for recipientName in recipients {
            guard let recipient = membersByName[recipientName], recipient.room === room, recipient !== client else {
                continue
            }
            if frame == nil { frame = Self.encodeDeliver(from: name, flags: 2, payload: payload) }
            send(frame!, to: recipient)
        }
    }

    static func encodeDeliver(from: String, flags: UInt8, payload: ArraySlice<UInt8>) -> [UInt8] {
        Frame.encode(type: FrameType.deliver, capacity: payload.count + from.utf8.count + 2) {
            $0.writeShortString(from)
            $0.write(flags)
            $0.write(contentsOf: payload)
        }
    }

    fileprivate func refuse(_ client: RelayClient, _ code: RelayErrorCode, _ message: String) {
        log("refused \(client.name ?? "unregistered client") from \(client.connection.peerDescription): \(message)")
        client.connection.write(RelayFrame.error(code: code.rawValue, message: message).encoded())
        leave(client, reason: message)
        client.connection.closeAfterFlushing(timeout: configuration.closeTimeout)
    }

    /// Takes a member out of its room and tells the others; does nothing if it is not in one.
    /// Called on bye (before the connection has finished closing) and when a connection closes.
    fileprivate func leave(_ client: RelayClient, reason: String) {
        guard let name = client.name, let room = client.room else { return }
        membersByName[name] = nil
        room.remove(client)
        client.room = nil
        if room.members.isEmpty { rooms[room.name] = nil }
        broadcast(RelayFrame.left(name: name).encoded(), in: room, except: nil)
        log("\(name) left \(room.name) (\(reason)) (\(room.members.count) in room)")
    }

    fileprivate func connectionClosed(_ client: RelayClient, reason: String) {
        leave(client, reason: reason)
        clientObjects[ObjectIdentifier(client)] = nil
        if isShuttingDown && clientObjects.isEmpty { finishShutdown() }
    }

    private func broadcast(_ frame: [UInt8], in room: Room, except sender: RelayClient?) {
        for member in room.members where member !== sender {
            send(frame, to: member)
        }
    }

    private func send(_ frame: [UInt8], to member: RelayClient) {
        let connection = member.connection
        guard connection.isOpen else { return }
        connection.write(frame)
        if connection.pendingOutputByteCount > configuration.maximumPendingOutput {
            member.closeReason = "too slow: more than \(configuration.maximumPendingOutput) bytes waiting"
            connection.close()
        }
    }

    /// Makes network text safe for a log line: control characters become `\u{…}` escapes.
    static func printable(_ text: String) -> String {
        TerminalText.escapeControls(String(text.prefix(64)))
    }
}

/// The members of one room, in join order, with O(1) removal.
final class Room {
    let name: String
    private(set) var members: [RelayClient] = []

    init(name: String) { self.name = name }

    func add(_ client: RelayClient) {
        client.roomIndex = members.count
        members.append(client)
    }

    func remove(_ client: RelayClient) {
        let index = client.roomIndex
        guard index < members.count, members[index] === client else { return }
        let last = members.removeLast()
        if last !== client {
            members[index] = last
            last.roomIndex = index
        }
    }
}

/// One connection's state at the relay: its frame decoder and, once registered, its name and room.
final class RelayClient: ConnectionHandler {
    unowned let relay: Relay
    let connection: any Connection
    var decoder: FrameDecoder
    var name: String?
    var profile: [UInt8] = []
    var room: Room?
    var roomIndex = 0
    var closeReason: String?

    init(relay: Relay, connection: any Connection, maximumFrameLength: Int) {
        self.relay = relay
        self.connection = connection
        self.decoder = FrameDecoder(maximumLength: maximumFrameLength)
    }

    func connection(_ connection: any Connection, didRead bytes: UnsafeRawBufferPointer) {
        decoder.append(bytes)
        do {
            while connection.isOpen, let frame = try decoder.nextFrame() {
                try handle(ClientFrame(frame))
            }
        } catch {
            let code: RelayErrorCode =
                switch error {
                case .frameTooLarge: .frameTooLarge
                default: .malformedFrame
                }
            closeReason = error.description
            relay.refuse(self, code, error.description)
        }
    }

    private func handle(_ frame: ClientFrame) throws(WireError) {
        switch (frame, name) {
        case (.hello(let version, let name, let room, let profile), nil):
            relay.register(self, version: version, name: name, room: room, profile: profile)
        case (.hello, _?):
            relay.refuse(self, .alreadyRegistered, "already registered; hello may be sent only once")
        case (.publish(let payload), _?):
            relay.publish(payload, from: self)
        case (.direct(let to, let payload), _?):
            relay.direct(payload, to: to, from: self)
        case (.multicast(let recipients, let payload), _?):
            relay.multicast(payload, to: recipients, from: self)
        case (.bye, _):
            relay.leave(self, reason: "said goodbye")
            connection.closeAfterFlushing(timeout: relay.configuration.closeTimeout)
        case (.ping(let token), _):
            connection.write(RelayFrame.pong(token: token).encoded())
        case (.pong, _):
            break
        case (.publish, nil), (.direct, nil), (.multicast, nil):
            relay.refuse(self, .notRegistered, "send hello before anything else")
        }
    }

    func connection(_ connection: any Connection, didCloseWith error: TransportError?) {
        relay.connectionClosed(self, reason: closeReason ?? error?.description ?? "disconnected")
    }
}
