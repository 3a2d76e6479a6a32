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
    /// A new connection of the same claim key took this client's name over (`name-reclaimed`): its owner is
    /// there now, so this client stops and does not reconnect.
    case displaced(String)
}
