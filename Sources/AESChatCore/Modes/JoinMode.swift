public import AESChatCLI
import Foundation

/// `aeschat join`: connects to a relay, sends each line of standard input, prints what arrives.
public enum JoinMode {
    /// Runs a client session until input ends, the user interrupts or the relay goes away.
    /// - Returns: the process exit code: 0 after a clean leave, 64 without a key, 65 for a bad
    ///   key file, 69 when the relay is unreachable or refuses, 74 when the inbox cannot be made,
    ///   130 when interrupted.
    public static func run(_ options: JoinOptions) -> ExitCode {
        if options.inbox == nil, !InboxPrompt.canAsk {
            let problem =
                "missing option '--inbox <dir>': name the folder for received files (asked for only on a terminal)"
            StandardError.write(UsageError(problem, mode: .join).description)
            return .usage
        }
        guard let keyPath = options.keyFile else {
            StandardError.write(
                "Error: a room key is required: make one with 'aeschat keygen --out room.key', share it with the room, and pass --key room.key"
            )
            StandardError.write("Usage: \(HelpText.usage(for: .join))")
            return .usage
        }
        guard let inbox = options.inbox ?? InboxPrompt.ask(writingTo: options.json ? 2 : 1) else {
            StandardError.write("Error: no inbox folder given")
            return .usage
        }
        let roomKey: RoomKey
        do {
            roomKey = try RoomKey.load(path: keyPath) { StandardError.write("warning: \($0)") }
        } catch {
            StandardError.write("Error: \(error.description)")
            return .dataError
        }
        do {
            try FileManager.default.createDirectory(atPath: inbox, withIntermediateDirectories: true)
        } catch {
            StandardError.write("Error: cannot create inbox folder '\(inbox)': \(error.localizedDescription)")
            return .ioError
        }
        let style: LineOutput.Style = options.json ? .json : .human
        // On a terminal (and without --json), the interactive terminal replaces line mode.
        let terminal =
            !options.json && InteractiveTerminal.isAvailable()
            ? InteractiveTerminal(name: options.name, room: options.room, relay: "\(options.host):\(options.port)")
            : nil
        defer { terminal?.close() }
        let output: any ClientOutput = terminal ?? LineOutput(style: style)
        do {
            let loop = try PosixEventLoop()
            let connection = try TCPConnection.connect(host: options.host, port: options.port, loop: loop)
            var outcome = ClientOutcome.finished
            let client = ChatClient(
                name: options.name, room: options.room, roomKey: roomKey, connection: connection, output: output,
                loop: loop
            ) { ended in
                outcome = ended
                loop.stop()
            }
            let input = LoopInbox<InputEvent>(loop: loop, capacity: 64)
            input.setHandler { event in
                switch event {
                case .line(let text): client.submit(line: text)
                case .end: client.endOfInput()
                }
            }
            client.onBackpressure = { paused in paused ? input.pause() : input.resume() }
            let signals = LoopInbox<Int32>(loop: loop, capacity: 8)
            signals.setHandler { _ in client.interrupt() }
            let watcher = SignalWatcher(signals: SignalWatcher.terminating, inbox: signals)
            client.start()
            if terminal?.start(input: input, interrupt: { signals.post(SIGINT) }) != true {
                StandardInputReader.start(posting: input)
            }
            try loop.run()
            withExtendedLifetime(watcher) {}
            return exitCode(for: outcome)
        } catch {
            terminal?.close()
            if options.json { output.emit(.error(message: error.description)) }
            StandardError.write("Error: \(error.description)")
            return .unavailable
        }
    }

    static func exitCode(for outcome: ClientOutcome) -> ExitCode {
        switch outcome {
        case .finished: .success
        case .interrupted: .interrupted
        case .refused, .relayLost: .unavailable
        case .protocolViolation: .dataError
        }
    }
}

/// A line of input, or its end.
public enum InputEvent: Sendable {
    case line(String)
    case end
}

/// Reads standard input on a thread of its own (a blocking read has no place on the loop) and
/// posts each line to the loop.
enum StandardInputReader {
    static func start(posting inbox: LoopInbox<InputEvent>) {
        let thread = Thread {
            while let line = readLine(strippingNewline: true) {
                inbox.post(.line(line.hasSuffix("\r") ? String(line.dropLast()) : line))
            }
            inbox.post(.end)
        }
        thread.name = "aeschat-stdin"
        thread.start()
    }
}
