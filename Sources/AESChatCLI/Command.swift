/// What a command line asks `aeschat` to do: the result of ``CommandLineParser/parse(_:)``.
public enum Command: Equatable, Sendable {
    /// `aeschat serve …`: run the relay with these options.
    case serve(ServeOptions)
    /// `aeschat join …`: join a room with these options.
    case join(JoinOptions)
    /// `aeschat keygen …`: generate a key file with these options.
    case keygen(KeygenOptions)
    /// `aeschat selftest …`: check this installation with these options.
    case selftest(SelfTestOptions)
    /// Print ``HelpText/help(for:)`` for the mode, or ``HelpText/general()`` for `nil`, to standard output and exit 0.
    case help(Mode?)
    /// Print ``aeschatVersion`` to standard output and exit 0.
    case version
}
