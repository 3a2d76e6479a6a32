public import AESChatCLI

/// Which relay key `join` connects with, and what it must do first to know it: the pure decisions of pinning
/// (design note §4), without sockets or a terminal, so that every case is unit tested.
///
/// - `--relay-key <key>` pins the whole key as given (a join line), replacing an older pin: it is the documented way
///   to re-pin after checking.
/// - `--relay-key <fingerprint>` uses the pin if it has that fingerprint; otherwise the relay's keys are fetched and
///   the one with that fingerprint is pinned, or `join` refuses.
/// - Without `--relay-key`, a pinned key is used; a relay new to this computer has its key fetched and then shown
///   for a yes, a no or a pasted fingerprint on a terminal, pinned as first use with `--accept-new-relay-key`, and
///   refused otherwise.
///
/// Stateless; safe from any thread.
public enum RelayTrust {
    /// What `join --relay-key` gave.
    public enum Given: Equatable, Sendable {
        /// Nothing.
        case none
        /// The whole key.
        case key(RelayPublicKey)
        /// A fingerprint: 16 bytes.
        case fingerprint([UInt8])

        /// The key or fingerprint of a parsed `--relay-key` (whose syntax the parser checked).
        /// - Parameter argument: the option's value, if it was given.
        public init(_ argument: RelayKeyArgument?) {
            switch argument {
            case .key(let text): self = RelayPublicKey(text: text).map(Given.key) ?? .none
            case .fingerprint(let hex):
                self = RelayPublicKey.parseFingerprint(hex).map(Given.fingerprint) ?? .none
            case nil: self = .none
            }
        }
    }

    /// What to do before connecting.
    public enum Decision: Equatable, Sendable {
        /// Connect with this key, pinned already.
        case use(RelayPublicKey)
        /// Pin this key (given whole) for the address, then connect with it.
        case pin(RelayPublicKey, RelayPinSource)
        /// Fetch the relay's keys, pin the one with this fingerprint (``RelayPinSource/typedFingerprint``), else
        /// refuse.
        case fetchAndCompare(fingerprint: [UInt8])
        /// Fetch the relay's key and ask on the terminal.
        case fetchAndAsk
        /// Fetch the relay's key and pin it (``RelayPinSource/firstUse``): `--accept-new-relay-key`.
        case fetchAndAccept
        /// Connect to nothing: print this one line and exit with this code.
        case refuse(String, ExitCode)
    }

    /// Decides how to come by the relay's key.
    /// - Parameters:
    ///   - address: the relay as ``KnownRelays/address(host:port:)`` spells it.
    ///   - given: what `--relay-key` gave.
    ///   - known: the current pin of the address, if any.
    ///   - canAsk: whether a person can be asked (standard input and output are a terminal, no `--json`).
    ///   - acceptNew: `--accept-new-relay-key`.
    /// - Returns: the decision.
    public static func decide(
        address: String, given: Given, known: KnownRelay?, canAsk: Bool, acceptNew: Bool
    ) -> Decision {
        switch given {
        case .key(let key):
            if let known, known.key == key { return .use(key) }
            return .pin(key, .joinLine)
        case .fingerprint(let fingerprint):
            if let known, known.key.fingerprintBytes == fingerprint { return .use(known.key) }
            return .fetchAndCompare(fingerprint: fingerprint)
        case .none:
            if let known { return .use(known.key) }
            if acceptNew { return .fetchAndAccept }
            if canAsk { return .fetchAndAsk }
            return .refuse(RelayTrustText.noTerminal(address: address), .notPermitted)
        }
    }

    /// What to do once the relay's keys are fetched.
    public enum AfterFetch: Equatable, Sendable {
        /// Pin this key, then connect with it.
        case pin(RelayPublicKey, RelayPinSource)
        /// Show this key's fingerprint and ask.
        case ask(RelayPublicKey)
        /// Print this one line and exit with this code.
        case refuse(String, ExitCode)
    }

    /// Goes on from a `fetch…` decision with the keys the relay presented (current first).
    /// - Parameters:
    ///   - decision: the decision that fetched them.
    ///   - address: the relay, for messages.
    ///   - presented: the keys the relay presented.
    /// - Returns: what to do.
    public static func afterFetch(_ decision: Decision, address: String, presented: [RelayPublicKey]) -> AfterFetch {
        guard let current = presented.first else {
            return .refuse("the relay at \(address) presented no key: nothing was pinned or sent", .notPermitted)
        }
        switch decision {
        case .fetchAndCompare(let fingerprint):
            if let match = presented.first(where: { $0.fingerprintBytes == fingerprint }) {
                return .pin(match, .typedFingerprint)
            }
            return .refuse(
                RelayTrustText.fingerprintMismatch(address: address, given: fingerprint, presented: presented),
                .notPermitted)
        case .fetchAndAccept: return .pin(current, .firstUse)
        case .fetchAndAsk: return .ask(current)
        case .use(let key), .pin(let key, _): return .pin(key, .joinLine)
        case .refuse(let message, let code): return .refuse(message, code)
        }
    }

    /// What an answer at the prompt means.
    public enum Answer: Equatable, Sendable {
        /// `yes` or `y`: pin as first use.
        case yes
        /// `no`, `n`, or the end of input: store nothing, stop.
        case no
        /// A fingerprint (or the whole key) that matches the key presented: pin as typed-fingerprint.
        case matches
        /// A fingerprint (or a key) that does not match: store nothing, stop.
        case differs
        /// Anything else: ask again.
        case unclear
    }

    /// Reads an answer to ``RelayTrustText/prompt(address:presented:)``.
    /// - Parameters:
    ///   - text: the line typed, without its end; nil at the end of input.
    ///   - presented: the key shown.
    /// - Returns: what it means.
    public static func answer(_ text: String?, presented: RelayPublicKey) -> Answer {
        guard let text else { return .no }
        let trimmed = text.trimmingASCIIWhitespace()
        switch trimmed.lowercased() {
        case "yes", "y": return .yes
        case "no", "n": return .no
        default: break
        }
        if let fingerprint = RelayPublicKey.parseFingerprint(trimmed) {
            return fingerprint == presented.fingerprintBytes ? .matches : .differs
        }
        if let key = RelayPublicKey(text: trimmed) {
            return key == presented ? .matches : .differs
        }
        return .unclear
    }

    /// The key a relay announced in a `relay-keys` frame to pin in place of `pinned`, if any: the first (current)
    /// one, unless it is the pinned key already.
    /// - Parameters:
    ///   - announced: the keys of the frame, current first.
    ///   - pinned: the key the connection's handshake used.
    /// - Returns: the key to pin and how, or nil.
    public static func announcement(_ announced: [RelayPublicKey], pinned: RelayPublicKey) -> (
        key: RelayPublicKey, source: RelayPinSource
    )? {
        guard let current = announced.first, current != pinned else { return nil }
        let prefix = pinned.fingerprint.dropFirst("relay ".count).filter { $0 != " " }.prefix(8)
        return (current, .announcedBy(String(prefix)))
    }
}

/// The texts of relay pinning: the prompt, the one-line refusals and info lines, and the mismatch screen. Kept
/// together so that tests (and the end-to-end tests) match them. Pure; safe from any thread.
public enum RelayTrustText {
    /// The question asked on a terminal for a relay new to this computer (no newline at the end). The fingerprint
    /// has a line of its own, so that a narrow terminal never splits it.
    public static func prompt(address: String, presented: RelayPublicKey) -> String {
        "\(address) is new to this computer. Its relay key fingerprint is\n  \(presented.fingerprint)\n"
            + "Compare it with the one the relay's operator published. Trust it? [yes / no / paste the fingerprint] "
    }

    /// Asked again after an answer that is none of those.
    public static let promptAgain = "Please answer yes or no, or paste the fingerprint: "

    /// The refusal for a new relay without a terminal, `--relay-key` or `--accept-new-relay-key`.
    public static func noTerminal(address: String) -> String {
        "\(address) is new to this computer and there is no terminal to confirm its relay key: give "
            + "--relay-key <key or fingerprint> from the relay's join line, or --accept-new-relay-key to trust the key "
            + "it presents"
    }

    /// The refusal when the relay presents no key with the fingerprint given with `--relay-key`.
    public static func fingerprintMismatch(address: String, given: [UInt8], presented: [RelayPublicKey]) -> String {
        "the relay at \(address) presents \(list(presented)), not the fingerprint given with --relay-key "
            + "(\(fingerprintText(given))): nothing was pinned or sent"
    }

    /// The refusal after `no` (or the end of input) at the prompt.
    public static func declined(address: String) -> String {
        "the relay key of \(address) was not trusted: nothing was pinned or sent"
    }

    /// The refusal after a pasted fingerprint that does not match.
    public static func pastedMismatch(address: String, presented: RelayPublicKey) -> String {
        "the fingerprint pasted is not that of the key \(address) presents (\(presented.fingerprint)): "
            + "nothing was pinned or sent"
    }

    /// The info line after pinning.
    public static func pinned(address: String, key: RelayPublicKey, source: RelayPinSource, replacing: KnownRelay?)
        -> String
    {
        let how =
            switch source {
            case .joinLine: "as given with --relay-key"
            case .typedFingerprint: "after its fingerprint was checked"
            case .firstUse: "without a check (first use)"
            case .announcedBy: "as announced by its previous key"
            }
        let replaced = replacing.map { "; it replaces \($0.key.fingerprint), pinned \($0.firstSeen)" } ?? ""
        return "pinned the relay key of \(address), \(key.fingerprint), \(how)\(replaced)"
    }

    /// The info line after a relay announced its new key (rotation).
    public static func rotated(address: String, from old: RelayPublicKey, to new: RelayPublicKey) -> String {
        "the relay at \(address) announced its new key, \(new.fingerprint), over the link its pinned key "
            + "\(old.fingerprint) authenticated: the new key is pinned"
    }

    /// What the relay presented when the pinned key did not complete the handshake.
    public enum Presented: Equatable, Sendable {
        /// The keys it listed (current first).
        case keys([RelayPublicKey])
        /// Its keys could not be fetched; the reason.
        case unknown(String)
    }

    /// The screen shown when the pinned key does not complete the handshake: what was pinned, when and how, what
    /// the relay presents now, that nothing was sent, what is at stake, and the one command that re-pins after
    /// checking. No way to continue: `join` then exits with ``ExitCode/notPermitted``.
    /// - Parameters:
    ///   - host: the relay's host as given to `join`.
    ///   - port: its port.
    ///   - name: the member name, for the command.
    ///   - pinned: the pin that failed.
    ///   - presented: what the relay presents now.
    /// - Returns: the screen, lines separated by newlines, without a newline at the end.
    public static func mismatchScreen(
        host: String, port: UInt16, name: String, pinned: KnownRelay, presented: Presented
    ) -> String {
        let address = KnownRelays.address(host: host, port: port)
        let now: String
        switch presented {
        case .keys(let keys) where keys.contains(pinned.key):
            now =
                "\(list(keys)): the pinned key, yet the handshake with it failed, so something in the path may be "
                + "answering for the relay"
        case .keys(let keys): now = list(keys)
        case .unknown(let reason): now = "unknown (\(reason))"
        }
        return [
            "The relay at \(address) did not prove that it holds the key pinned for it.",
            "",
            "  pinned:     \(pinned.key.fingerprint), on \(pinned.firstSeen), \(pinned.source.explanation)",
            "  presented:  \(now)",
            "",
            "Nothing was sent: not your name, not the room, not a message.",
            "Message contents stay end-to-end encrypted either way, but whoever answered may be posing as the relay",
            "(to learn who talks with whom, or to drop messages and inject relay notices); or the relay's operator",
            "replaced its key.",
            "",
            "Ask the relay's operator for its fingerprint, through a channel you trust. If it is the one presented",
            "now, pin it and join with (adding your other options):",
            "",
            "  aeschat join --host \(host) --port \(port) --relay-key '<the fingerprint the operator published>' "
                + "--name \(name)",
        ].joined(separator: "\n")
    }

    /// One line for the mismatch, for `--json` output and logs.
    public static func mismatchLine(host: String, port: UInt16, pinned: KnownRelay, presented: Presented) -> String {
        let now: String
        switch presented {
        case .keys(let keys): now = list(keys)
        case .unknown(let reason): now = "unknown (\(reason))"
        }
        return "the relay at \(KnownRelays.address(host: host, port: port)) did not prove the pinned key "
            + "\(pinned.key.fingerprint) (presented: \(now)); nothing was sent; re-pin only after checking, with "
            + "--relay-key <the fingerprint the operator published>"
    }

    /// `relay 4f1c …` for one key, `relay 4f1c … and relay 8a2b …` for two.
    static func list(_ keys: [RelayPublicKey]) -> String {
        keys.map(\.fingerprint).joined(separator: " and ")
    }

    /// A fingerprint's 16 bytes as `relay 4f1c 93a0 …`.
    static func fingerprintText(_ bytes: [UInt8]) -> String {
        let hex = bytes.map { byte in String(byte >> 4, radix: 16) + String(byte & 0x0f, radix: 16) }
        return "relay " + stride(from: 0, to: hex.count - 1, by: 2).map { hex[$0] + hex[$0 + 1] }.joined(separator: " ")
    }
}
