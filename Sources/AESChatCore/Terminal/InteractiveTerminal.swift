import Dispatch
import Foundation

#if canImport(Glibc)
    import Glibc
#elseif canImport(Darwin)
    import Darwin
#endif

/// The interactive terminal of `aeschat join`: line editing at the bottom of the screen while
/// messages scroll above it (see ``ChatScreen``), in raw mode on standard input and output.
///
/// Threads: the chat client calls ``emit(_:)`` on the event loop's thread; a reader thread of its
/// own blocks on standard input, decodes keys and edits the line; dispatch sources redraw on
/// SIGWINCH, and on SIGCONT put the terminal back in raw mode first (after `kill -STOP` and `fg`,
/// the shell has left it in its own modes, and has written over the screen). All three share the screen under one lock and write whole updates at once, so
/// output never interleaves. Entered lines are posted to the same ``LoopInbox`` the line-mode
/// reader uses, from the reader thread, which therefore waits (and the keyboard with it) when
/// the client applies backpressure; the loop never waits for the keyboard.
///
/// While the relay is lost, a timer ticks twice a second to keep the status row's countdown to the next attempt
/// current; it stops once the client is back.
///
/// `@unchecked Sendable`: `lock` guards `screen`, `state`, `resizeSource`, `continueSource` and `ticker`; the rest is
/// immutable.
public final class InteractiveTerminal: ClientOutput, @unchecked Sendable {
    private enum State {
        case idle
        case running
        case closed
    }

    private let lock = NSLock()
    private let screen: ChatScreen
    /// Shows events while the screen is not running (before start, after a refused start or close).
    private let fallback = LineOutput(style: .human)
    private var state = State.idle
    private var resizeSource: (any DispatchSourceSignal)?
    private var continueSource: (any DispatchSourceSignal)?
    /// Where the history and settings are kept, if anywhere.
    private let stateFiles: TerminalState?
    private var ticker: (any DispatchSourceTimer)?

    /// Whether `join` should use the interactive terminal: standard input and output are both
    /// terminals, `TERM` is set and not `dumb`, and the terminal modes can be read. (`--json`
    /// is the caller's to check.)
    /// - Parameter environment: the environment to read `TERM` from; the process's by default.
    public static func isAvailable(environment: [String: String]? = nil) -> Bool {
        let term = (environment ?? ProcessInfo.processInfo.environment)["TERM"] ?? ""
        return TerminalDevice.isTerminal(0) && TerminalDevice.isTerminal(1) && !term.isEmpty && term != "dumb"
            && TerminalModes.canEnterRawMode()
    }

    /// Creates the terminal for a session; nothing changes on screen until ``start(input:interrupt:)``.
    /// - Parameters:
    ///   - name: the user's member name.
    ///   - room: the room being joined.
    ///   - relay: the relay's address, shown while connecting.
    ///   - environment: the environment to read `NO_COLOR`, `TERM` and `COLORTERM` from; the
    ///     process's by default.
    ///   - bell: when the bell rings at first; nil: as the last session left it (saved), else mentions.
    ///   - color: whether to use colour.
    ///   - keepsState: whether to read and save the input history, the bell and the ignored names in the state
    ///     folder (``TerminalState``).
    public init(
        name: String, room: String, relay: String, environment: [String: String]? = nil, bell: BellMode? = nil,
        color: ColorChoice = .auto, keepsState: Bool = true
    ) {
        let environment = environment ?? ProcessInfo.processInfo.environment
        let colors = ColorMode.detect(environment: environment, choice: color)
        let stateFiles = keepsState ? TerminalState.folder(environment: environment).map(TerminalState.init) : nil
        let saved = stateFiles?.loadSettings() ?? TerminalState.Settings()
        screen = ChatScreen(
            ownName: name, room: room, relay: relay, colors: colors,
            size: TerminalDevice.size() ?? ChatScreen.Size(rows: 24, columns: 80), clock: LineOutput.localTime,
            bell: bell ?? saved.bell ?? .mentions)
        self.stateFiles = stateFiles
        if let stateFiles {
            screen.restore(history: stateFiles.loadHistory(), ignored: saved.ignored)
            screen.onSettingsChanged = { bell, ignored in
                stateFiles.saveSettings(TerminalState.Settings(bell: bell, ignored: ignored))
            }
        }
    }

    /// Switches to raw mode, draws the screen, and starts reading keys and watching the window
    /// size.
    /// - Parameters:
    ///   - input: receives each entered line, and `.end` after Ctrl-D on an empty line or /quit.
    ///   - interrupt: called once on Ctrl-C, from the reader thread.
    /// - Returns: `false` if the terminal refused raw mode (then nothing changed).
    public func start(input: LoopInbox<InputEvent>, interrupt: @escaping @Sendable () -> Void) -> Bool {
        lock.lock()
        defer { lock.unlock() }
        guard state == .idle, TerminalModes.enterRawMode() else { return false }
        state = .running
        if let size = TerminalDevice.size() { screen.resize(to: size) }
        screen.start()
        flush()
        let source = DispatchSource.makeSignalSource(signal: SIGWINCH, queue: .global())
        source.setEventHandler { [weak self] in self?.windowChanged() }
        source.resume()
        resizeSource = source
        let continued = DispatchSource.makeSignalSource(signal: SIGCONT, queue: .global())
        continued.setEventHandler { [weak self] in self?.continued() }
        continued.resume()
        continueSource = continued
        let thread = Thread { [self] in readKeys(input: input, interrupt: interrupt) }
        thread.name = "aeschat-keys"
        thread.start()
        return true
    }

    /// Restores the terminal: clears the input and status rows, turns bracketed paste and the
    /// scroll region off, and puts back the modes it had before. Safe to call more than once.
    public func close() {
        lock.lock()
        defer { lock.unlock() }
        guard state == .running else {
            state = .closed
            return
        }
        state = .closed
        stateFiles?.saveHistory(screen.historyEntries)
        screen.finish()
        flush()
        TerminalModes.restore()
        resizeSource?.cancel()
        resizeSource = nil
        continueSource?.cancel()
        continueSource = nil
        ticker?.cancel()
        ticker = nil
    }

    public func emit(_ event: ClientEvent) {
        lock.lock()
        defer { lock.unlock() }
        guard state == .running else {
            fallback.emit(event)
            return
        }
        screen.show(event)
        flush()
        if screen.isOffline, ticker == nil {
            let timer = DispatchSource.makeTimerSource(queue: .global())
            timer.schedule(deadline: .now() + .milliseconds(500), repeating: .milliseconds(500))
            timer.setEventHandler { [weak self] in self?.tick() }
            timer.resume()
            ticker = timer
        }
    }

    /// Keeps the offline countdown current; stops once the client is back.
    private func tick() {
        lock.lock()
        defer { lock.unlock() }
        guard state == .running, screen.isOffline else {
            ticker?.cancel()
            ticker = nil
            return
        }
        screen.tick()
        flush()
    }

    /// Writes what the screen produced. Call with `lock` held.
    public func transfersChanged(_ totals: TransferTotals) {
        lock.lock()
        defer { lock.unlock() }
        guard state == .running else { return }
        screen.transfersChanged(totals)
        flush()
    }

    private func flush() {
        TerminalDevice.write(screen.takeOutput())
    }

    private func windowChanged() {
        lock.lock()
        defer { lock.unlock() }
        guard state == .running, let size = TerminalDevice.size(), size != screen.size else { return }
        screen.resize(to: size)
        flush()
    }

    /// The process was continued after a stop: raw mode again, bracketed paste on again (the shell
    /// turns it off), and the whole screen repainted over what the shell wrote meanwhile.
    private func continued() {
        lock.lock()
        defer { lock.unlock() }
        guard state == .running, TerminalModes.reenterRawMode() else { return }
        TerminalDevice.write("\u{1B}[?2004h")
        screen.resize(to: TerminalDevice.size() ?? screen.size)
        flush()
    }

    /// The reader thread: reads keys until the session ends, input ends or Ctrl-C.
    private func readKeys(input: LoopInbox<InputEvent>, interrupt: @Sendable () -> Void) {
        var buffer = [UInt8](repeating: 0, count: 4096)
        while true {
            let wait = locked { screen.inputWaitMilliseconds }
            var actions: [TerminalAction]
            if let wait, !TerminalDevice.waitForInput(milliseconds: wait) {
                actions = locked { state == .running ? screen.inputPaused() : [] }
            } else {
                let count = TerminalDevice.read(into: &buffer)
                if count <= 0 {
                    // End of input or a hang-up: leave, as at the end of piped input.
                    locked { if state == .running { screen.closeInput() } }
                    input.post(.end)
                    return
                }
                actions = locked { state == .running ? screen.receive(buffer[0..<count]) : [] }
            }
            for action in actions {
                switch action {
                case .send(let line): input.post(.line(line))
                case .end: input.post(.end)
                case .interrupt:
                    interrupt()
                    return
                }
            }
            if locked({ state == .closed }) { return }
        }
    }

    /// Runs `body` with `lock` held and writes what the screen produced.
    private func locked<T>(_ body: () -> T) -> T {
        lock.lock()
        defer { lock.unlock() }
        let result = body()
        if state == .running { flush() }
        return result
    }
}
