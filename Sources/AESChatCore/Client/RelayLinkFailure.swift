/// Why the encrypted link to a relay could not be set up (design: encrypted-link.md §4; docs/PROTOCOL.md).
///
/// Made by ``RelayLinkStarter`` and ``RelayKeyProbe`` from the relay's first answer. Nothing but the preamble and
/// handshake message 1 has been sent when one of these is reported: no hello, no name, no room.
///
/// Ownership and threading: a value type; `Sendable`.
public struct RelayLinkFailure: Error, Equatable, Sendable, CustomStringConvertible {
    /// What went wrong.
    public enum Kind: Equatable, Sendable {
        /// The relay answered with its keys instead of handshake message 2: it does not hold the pinned key.
        /// `presented` lists its current key first, then its previous one during a rotation.
        case keyMismatch(pinned: RelayPublicKey, presented: [RelayPublicKey])
        /// Handshake message 2 did not authenticate: a machine in the path poses as the relay, or the relay's key
        /// changed under the same key id.
        case handshakeFailed(pinned: RelayPublicKey)
        /// The relay answered with a protocol 1 error frame: it runs an aeschat release without the encrypted link.
        case olderRelay
        /// The relay speaks aeschat protocol `relayVersion`, not this build's.
        case versionMismatch(relayVersion: Int)
        /// The peer's answer is neither an aeschat relay's nor an older aeschat relay's.
        case notAESChat
        /// The relay refused the handshake for now (too many handshakes from this address or in all).
        case busy
        /// The connection failed, closed or timed out before the relay answered; `reason` says which.
        case connectionLost(reason: String)
        /// The peer took the connection but sent nothing at all before the timeout (`reason` says which): an aeschat
        /// relay answers at once, so it is probably not one (an HTTP server waiting for a request line, say). A
        /// session's first connection ends on it; once registered, it is retried as a lost connection (a relay
        /// that hangs).
        case silent(reason: String)
    }

    /// Added to a timeout's reason when the peer sent nothing at all: an aeschat relay answers at once, while an HTTP
    /// server (for one) waits in silence for a request line that never comes.
    static let silentPeerHint =
        " and sent nothing at all: probably not an aeschat relay (an HTTP server waiting for a request, say)"

    /// The relay as the user named it, `host:port`.
    public var relay: String
    /// What went wrong.
    public var kind: Kind

    /// A failure of the link to `relay`.
    public init(relay: String, kind: Kind) {
        self.relay = relay
        self.kind = kind
    }

    /// Whether the pinned key is in question (``Kind/keyMismatch(pinned:presented:)`` or
    /// ``Kind/handshakeFailed(pinned:)``): never retried, and the user must check the relay's key.
    public var isPinFailure: Bool {
        switch kind {
        case .keyMismatch, .handshakeFailed: true
        default: false
        }
    }

    /// Whether trying again later may succeed, as after a lost connection (``Kind/busy`` and
    /// ``Kind/connectionLost(reason:)``); every other kind ends the session.
    public var isRetryable: Bool {
        switch kind {
        case .busy, .connectionLost, .silent: true
        default: false
        }
    }

    public var description: String {
        switch kind {
        case .keyMismatch(let pinned, let presented):
            let shown = presented.map(\.fingerprint).joined(separator: " and ")
            return "the relay at \(relay) does not hold the pinned key (\(pinned.fingerprint)); it presents "
                + "\(shown); nothing was sent: check the new key with the relay's operator before trusting it"
        case .handshakeFailed(let pinned):
            return "the relay at \(relay) did not prove that it holds the pinned key (\(pinned.fingerprint)): "
                + "a machine in the path may pose as the relay, or its key changed; nothing was sent"
        case .olderRelay:
            return "the relay at \(relay) runs an older aeschat (protocol 1) without the encrypted link; "
                + "ask its operator to upgrade"
        case .versionMismatch(let version):
            return "the relay at \(relay) speaks aeschat protocol \(version), this build speaks "
                + "\(LinkPreamble.version); update the older side"
        case .notAESChat:
            return "\(relay) is not an aeschat relay"
        case .busy:
            return "the relay at \(relay) is busy with other connections"
        case .connectionLost(let reason):
            return reason
        case .silent(let reason):
            return reason + Self.silentPeerHint
        }
    }
}
