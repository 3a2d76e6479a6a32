/// The version that `aeschat --version` prints.
public let aeschatVersion = "0.1.0"

/// The process exit codes of `aeschat`, following the BSD `sysexits.h` convention where one applies.
///
/// `main.swift` maps every outcome to one of these; see `docs/CLI.md` for the table.
public enum ExitCode: Int32, Sendable {
    /// The command did what was asked (also after printing help or the version).
    case success = 0
    /// An unexpected failure that no other code describes.
    case failure = 1
    /// The command line was wrong (`EX_USAGE`): a ``UsageError``.
    case usage = 64
    /// Input data or a key file was malformed (`EX_DATAERR`).
    case dataError = 65
    /// The relay was unreachable or refused the registration (`EX_UNAVAILABLE`).
    case unavailable = 69
    /// Reading or writing a file or socket failed (`EX_IOERR`).
    case ioError = 74
    /// The relay's key could not be confirmed (`EX_NOPERM`): the pinned key did not complete the handshake, a new
    /// relay's key was not accepted, or the fingerprint given did not match. Nothing was sent to the relay.
    case notPermitted = 77
    /// The user interrupted the program (128 + `SIGINT`).
    case interrupted = 130
}

/// The modes of the one `aeschat` executable, spelled as on the command line.
public enum Mode: String, CaseIterable, Sendable {
    /// `aeschat serve`: run the relay.
    case serve
    /// `aeschat join`: join a room on a relay as a member.
    case join
    /// `aeschat keygen`: generate a key file.
    case keygen
    /// `aeschat selftest`: check this installation.
    case selftest
}
