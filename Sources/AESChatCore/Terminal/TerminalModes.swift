#if canImport(Glibc)
    import Glibc
#elseif canImport(Darwin)
    import Darwin
#endif

/// Raw mode for the terminal on standard input, and the guarantee that it is undone.
///
/// ``enterRawMode()`` saves the terminal's modes and switches to raw input (no echo, no line
/// buffering, no signals from Ctrl-C or Ctrl-Z, no flow control) while keeping output processing.
/// ``restore()`` puts the saved modes back; the orderly path calls it when the session ends. Two
/// safety nets call it too: an `atexit` handler, and handlers for the fatal signals (SIGSEGV,
/// SIGBUS, SIGILL, SIGTRAP, SIGFPE, SIGABRT, SIGQUIT) that restore the terminal and then hand
/// the signal to whatever handled it before (the default action, or Swift's backtracer).
/// SIGINT, SIGTERM and SIGHUP are not caught here: ``SignalWatcher`` turns them into an orderly
/// shutdown, which ends in ``restore()``.
enum TerminalModes {
    /// Whether standard input is a terminal whose modes can be read.
    static func canEnterRawMode() -> Bool {
        var modes = termios()
        return tcgetattr(0, &modes) == 0
    }

    /// Saves the current modes and switches standard input to raw mode.
    /// - Returns: `false` if the modes cannot be read or set (nothing changed then).
    static func enterRawMode() -> Bool {
        guard rawModeActive == 0, tcgetattr(0, savedModes) == 0 else { return false }
        var raw = rawModes()
        installSafetyNets()
        guard System.retryingInterrupts({ tcsetattr(0, TCSADRAIN, &raw) }) == 0 else { return false }
        rawModeActive = 1
        return true
    }

    /// Raw mode again after the process was stopped and continued (SIGCONT): the shell that ran
    /// the stopped job put the terminal back in its own modes. Does nothing unless raw mode is on
    /// and the process is in the terminal's foreground (a job continued in the background would be
    /// stopped again by SIGTTOU; it gets another SIGCONT when brought to the foreground).
    /// - Returns: whether raw mode was set again.
    static func reenterRawMode() -> Bool {
        guard rawModeActive != 0, tcgetpgrp(0) == getpgrp() else { return false }
        var raw = rawModes()
        return System.retryingInterrupts({ tcsetattr(0, TCSADRAIN, &raw) }) == 0
    }

    /// The saved modes made raw: no echo, no line buffering, no signals from Ctrl-C or Ctrl-Z, no
    /// flow control, output processing kept, reads return each byte.
    private static func rawModes() -> termios {
        var raw = savedModes.pointee
        cfmakeraw(&raw)
        raw.c_oflag |= tcflag_t(OPOST) | tcflag_t(ONLCR)
        withUnsafeMutableBytes(of: &raw.c_cc) { characters in
            characters[Int(VMIN)] = 1
            characters[Int(VTIME)] = 0
        }
        return raw
    }

    /// Puts back the modes saved by ``enterRawMode()``. Does nothing if raw mode is not on.
    static func restore() {
        guard rawModeActive != 0 else { return }
        rawModeActive = 0
        _ = System.retryingInterrupts { tcsetattr(0, TCSADRAIN, savedModes) }
    }

    private static func installSafetyNets() {
        guard !safetyNetsInstalled else { return }
        safetyNetsInstalled = true
        atexit { restoreFromHandler() }
        for signal in [SIGSEGV, SIGBUS, SIGILL, SIGTRAP, SIGFPE, SIGABRT, SIGQUIT] {
            System.setSignalHandler(signal, fatalSignalHandler, flags: 0, previous: previousActions + Int(signal))
        }
    }
}

// Guard: these are written only by `TerminalModes` on the thread that starts or ends the
// session, before (`savedModes`) and after (`rawModeActive`) the terminal changes, and read by
// the `atexit` and fatal-signal handlers, which may run on any thread at any time. They are plain
// C storage, allocated before any handler is installed, so the handlers need no Swift runtime.
private nonisolated(unsafe) let savedModes = UnsafeMutablePointer<termios>.allocate(capacity: 1)
private nonisolated(unsafe) let previousActions = UnsafeMutablePointer<sigaction>.allocate(capacity: 65)
private nonisolated(unsafe) var rawModeActive: Int32 = 0
private nonisolated(unsafe) var safetyNetsInstalled = false

/// Undoes raw mode and the screen's changes using only async-signal-safe calls.
private func restoreFromHandler() {
    guard rawModeActive != 0 else { return }
    rawModeActive = 0
    let reset: StaticString = "\u{1B}[?2004l\u{1B}[0m\u{1B}[r\u{1B}[999;1H\u{1B}[2K\u{1B}[?25h"
    _ = write(1, reset.utf8Start, reset.utf8CodeUnitCount)
    _ = tcsetattr(0, TCSANOW, savedModes)
}

private func fatalSignalHandler(_ signal: Int32) {
    restoreFromHandler()
    _ = sigaction(signal, previousActions + Int(signal), nil)
    _ = raise(signal)
}
