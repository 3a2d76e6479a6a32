/// How a client session ended.
public enum ClientOutcome: Equatable, Sendable {
    /// Input ended and everything read was handed to the relay.
    case finished
    /// The user interrupted (Ctrl-C, SIGTERM).
    case interrupted
    /// The relay refused registration (name taken, invalid name, …).
    case refused(String)
    /// The relay went away or shut down.
    case relayLost(String)
    /// The relay sent bytes that break the protocol.
    case protocolViolation(String)
}

/// The client side of a chat session in pre-shared-key mode: registers, seals each line of
/// input, publishes it, and opens what the relay delivers.
///
/// Works on any ``Connection``; confined to the event loop's thread. Lines submitted before
/// registration completes are held and sent right after it, in order.
public final class ChatClient: ConnectionHandler {
    private enum State {
        case registering
        case ready
        case leaving
        case finished
    }

    /// The longest message text sent, in UTF-8 bytes; longer lines are refused with an error.
    public static let maximumMessageBytes = 8 * 1024 * 1024
    /// Queued output above which input is paused until the connection drains.
    public static let outputHighWater = 1024 * 1024

    private let name: String
    private let room: String
    private let connection: any Connection
    private let output: any ClientOutput
    private let loop: any EventLoop
    private let sealer: RoomKeySealer
    private let opener: RoomKeyOpener
    private var decoder = FrameDecoder()
    private var state = State.registering
    private var heldLines: [String] = []
    private var inputEnded = false
    private var pendingOutcome: ClientOutcome = .finished
    private let onFinish: (ClientOutcome) -> Void

    /// Called with `true` when input should pause (too much queued) and `false` to resume.
    public var onBackpressure: ((Bool) -> Void)?

    /// Creates a client; call ``start()`` to register.
    /// - Parameters:
    ///   - name: the member name to register.
    ///   - room: the room to join.
    ///   - roomKey: the pre-shared room key.
    ///   - connection: a connection to the relay.
    ///   - output: receives events.
    ///   - loop: the loop driving `connection` (for the leave timeout).
    ///   - onFinish: called once when the session is over.
    public init(
        name: String, room: String, roomKey: RoomKey, connection: any Connection, output: any ClientOutput,
        loop: any EventLoop, onFinish: @escaping (ClientOutcome) -> Void
    ) {
        self.name = name
        self.room = room
        self.connection = connection
        self.output = output
        self.loop = loop
        self.onFinish = onFinish
        sealer = RoomKeySealer(roomKey: roomKey, room: room, sender: name)
        opener = RoomKeyOpener(roomKey: roomKey, room: room)
    }

    /// Sends the registration.
    public func start() {
        connection.handler = self
        connection.write(ClientFrame.hello(version: relayProtocolVersion, name: name, room: room).encoded())
    }

    /// Sends one line of input as a message (held until registration completes). Empty lines are
    /// skipped.
    public func submit(line: String) {
        guard !line.isEmpty, state == .registering || state == .ready else { return }
        guard line.utf8.count <= Self.maximumMessageBytes else {
            output.emit(
                .error(
                    message:
                        "message of \(line.utf8.count) bytes not sent: the limit is \(Self.maximumMessageBytes) bytes"))
            return
        }
        if state == .registering {
            heldLines.append(line)
        } else {
            send(line)
        }
    }

    /// Input has ended: leave once everything read has been handed to the relay.
    public func endOfInput() {
        inputEnded = true
        if state == .ready { leave(outcome: .finished) }
    }

    /// The user asked to quit: leave at once.
    public func interrupt() {
        switch state {
        case .registering:
            finish(.interrupted)
        case .ready:
            leave(outcome: .interrupted)
        case .leaving:
            pendingOutcome = .interrupted
        case .finished:
            break
        }
    }

    private func send(_ line: String) {
        do {
            let envelope = try sealer.seal(.text(line))
            connection.write(ClientFrame.publish(payload: envelope[...]).encoded())
            if connection.pendingOutputByteCount > Self.outputHighWater { onBackpressure?(true) }
        } catch {
            output.emit(.error(message: "message not sent: \(error)"))
        }
    }

    /// Says goodbye; the relay handles everything sent before it, then closes, which ends the
    /// session. Gives up after a few seconds if the relay does not answer.
    private func leave(outcome: ClientOutcome) {
        guard state == .ready else { return }
        state = .leaving
        pendingOutcome = outcome
        connection.write(ClientFrame.bye.encoded())
        loop.schedule(after: .seconds(5)) { [weak self] in
            guard let self, self.state == .leaving else { return }
            self.connection.close()
        }
    }

    private func finish(_ outcome: ClientOutcome) {
        guard state != .finished else { return }
        state = .finished
        connection.close()
        onFinish(outcome)
    }

    // MARK: ConnectionHandler

    public func connection(_ connection: any Connection, didRead bytes: UnsafeRawBufferPointer) {
        decoder.append(bytes)
        do {
            while state != .finished, let frame = try decoder.nextFrame() {
                try handle(RelayFrame(frame))
            }
        } catch {
            output.emit(.error(message: "the relay sent invalid data: \(error.description)"))
            finish(.protocolViolation(error.description))
        }
    }

    public func connectionDidDrainOutput(_ connection: any Connection) {
        onBackpressure?(false)
    }

    public func connection(_ connection: any Connection, didCloseWith error: TransportError?) {
        switch state {
        case .leaving:
            finish(pendingOutcome)
        case .registering, .ready:
            let reason = error?.description ?? "the relay closed the connection"
            output.emit(.error(message: reason))
            finish(.relayLost(reason))
        case .finished:
            break
        }
    }

    private func handle(_ frame: RelayFrame) throws(WireError) {
        switch frame {
        case .welcome(_, let name, let room, let members):
            guard state == .registering else { throw .malformed("second welcome") }
            guard name == self.name, room == self.room else {
                throw .malformed("welcome names '\(name)' in '\(room)', not the registration sent")
            }
            state = .ready
            output.emit(.ready(name: name, room: room, members: members))
            let held = heldLines
            heldLines.removeAll()
            for line in held { send(line) }
            if inputEnded { leave(outcome: .finished) }
        case .joined(let name):
            output.emit(.joined(name: name))
        case .left(let name):
            output.emit(.left(name: name))
        case .deliver(let from, let isDirect, let payload):
            guard state == .ready || state == .leaving else { throw .malformed("message before welcome") }
            receive(payload, from: from, isDirect: isDirect)
        case .error(let code, let message):
            let known = RelayErrorCode(rawValue: code) ?? .unknown
            output.emit(.error(message: message))
            if state == .registering {
                finish(.refused(message))
            } else if known.isFatal {
                finish(.relayLost(message))
            }
        case .ping(let token):
            connection.write(ClientFrame.pong(token: token).encoded())
        case .pong:
            break
        }
    }

    private func receive(_ payload: ArraySlice<UInt8>, from sender: String, isDirect: Bool) {
        switch opener.open(payload, from: sender) {
        case .content(.text(let text), let missing):
            if missing > 0 {
                output.emit(
                    .warning(kind: "missing", name: sender, message: "\(missing) messages from \(sender) missing"))
            }
            output.emit(.message(from: sender, text: text, isPrivate: isDirect))
        case .tampered(let reason):
            output.emit(.warning(kind: "tampered", name: sender, message: "tampered message refused: \(reason)"))
        case .replayed(let reason):
            output.emit(.warning(kind: "replay", name: sender, message: "replayed message refused: \(reason)"))
        }
    }
}
