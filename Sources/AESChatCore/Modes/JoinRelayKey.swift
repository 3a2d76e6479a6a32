public import AESChatCLI

/// `join`'s side of relay pinning: choosing the key to connect with before connecting (``RelayTrust`` decides;
/// this runs the fetch and the question), pinning a key the relay announces, and the screen for a pinned key that
/// does not complete the handshake. The fetch and the terminal come in as closures, so that tests script them.
/// Main thread, before or after the session's event loop runs.
enum JoinRelayKey {
    /// Fetches the keys the relay presents (current first), or says in a few words why it could not.
    typealias Fetch = () -> Result<[RelayPublicKey], FetchFailure>
    /// Writes a question and reads one line of answer (without its end); nil at the end of input.
    typealias Ask = (_ question: String) -> String?

    /// Why the relay's keys could not be fetched: one line, for messages.
    struct FetchFailure: Error, Equatable {
        var reason: String
    }

    /// Unclear answers after which the question counts as answered `no`.
    static let maximumUnclearAnswers = 3

    /// Chooses the relay key to connect with, pinning it in `knownRelays` when it is new.
    /// - Parameters:
    ///   - options: the join options (host, port, `--relay-key`, `--accept-new-relay-key`).
    ///   - knownRelays: the pins.
    ///   - canAsk: whether a person can be asked (a terminal, no `--json`).
    ///   - fetch: fetches the relay's keys (called at most once).
    ///   - ask: asks on the terminal.
    ///   - info: told one line after a pin is made.
    ///   - now: seconds since 1970 for the pin's date; nil for now.
    /// - Returns: the key, or the failure to report (exit 77 for trust, 69 when the relay's key cannot be fetched).
    static func choose(
        options: JoinOptions, knownRelays: KnownRelays, canAsk: Bool, fetch: Fetch, ask: Ask,
        info: (String) -> Void, now: Int? = nil
    ) -> Result<RelayPublicKey, JoinMode.SetupFailure> {
        let address = KnownRelays.address(host: options.host, port: options.port)
        let known = knownRelays.pin(for: address)
        let decision = RelayTrust.decide(
            address: address, given: RelayTrust.Given(options.relayKey), known: known, canAsk: canAsk,
            acceptNew: options.acceptNewRelayKey)
        func pin(_ key: RelayPublicKey, _ source: RelayPinSource) -> RelayPublicKey {
            knownRelays.record(key, for: address, source: source, now: now)
            info(RelayTrustText.pinned(address: address, key: key, source: source, replacing: known))
            return key
        }
        switch decision {
        case .use(let key): return .success(key)
        case .pin(let key, let source): return .success(pin(key, source))
        case .refuse(let message, let code): return .failure(JoinMode.SetupFailure(message: message, code: code))
        case .fetchAndCompare, .fetchAndAsk, .fetchAndAccept: break
        }
        let presented: [RelayPublicKey]
        switch fetch() {
        case .success(let keys): presented = keys
        case .failure(let failure):
            return .failure(
                JoinMode.SetupFailure(
                    message: "cannot fetch the relay key of \(address) to confirm it: \(failure.reason)",
                    code: .unavailable))
        }
        switch RelayTrust.afterFetch(decision, address: address, presented: presented) {
        case .pin(let key, let source): return .success(pin(key, source))
        case .refuse(let message, let code): return .failure(JoinMode.SetupFailure(message: message, code: code))
        case .ask(let key):
            var question = RelayTrustText.prompt(address: address, presented: key)
            for _ in 0..<maximumUnclearAnswers {
                switch RelayTrust.answer(ask(question), presented: key) {
                case .yes: return .success(pin(key, .firstUse))
                case .matches: return .success(pin(key, .typedFingerprint))
                case .no:
                    return .failure(
                        JoinMode.SetupFailure(message: RelayTrustText.declined(address: address), code: .notPermitted))
                case .differs:
                    return .failure(
                        JoinMode.SetupFailure(
                            message: RelayTrustText.pastedMismatch(address: address, presented: key),
                            code: .notPermitted))
                case .unclear: question = RelayTrustText.promptAgain
                }
            }
            return .failure(
                JoinMode.SetupFailure(message: RelayTrustText.declined(address: address), code: .notPermitted))
        }
    }

    /// Asks on the terminal in its ordinary line mode: writes the question to standard output and reads one line
    /// from standard input, byte by byte, so that nothing typed after the answer is taken from the keyboard reader.
    /// - Parameter question: the question, without a newline at the end.
    /// - Returns: the answer without its end, or nil at the end of input.
    static func askOnTerminal(_ question: String) -> String? {
        _ = System.writeAll(1, Array(question.utf8))
        var bytes: [UInt8] = []
        var byte: UInt8 = 0
        while bytes.count < 4096 {
            let count = withUnsafeMutableBytes(of: &byte) { System.read(0, into: $0) }
            if count <= 0 { return bytes.isEmpty ? nil : String(decoding: bytes, as: UTF8.self) }
            if byte == 0x0A { break }
            bytes.append(byte)
        }
        return String(decoding: bytes, as: UTF8.self)
    }

    /// Pins the key a relay announced over a link authenticated by `vouchedBy` (a planned rotation), if it is new.
    /// - Parameters:
    ///   - announced: the keys of the `relay-keys` frame, current first.
    ///   - vouchedBy: the pinned key the link's handshake used.
    ///   - options: the join options (host and port).
    ///   - knownRelays: the pins.
    ///   - now: seconds since 1970 for the pin's date; nil for now.
    /// - Returns: the new key and the info line to show, or nil when nothing changed.
    static func pinAnnounced(
        _ announced: [RelayPublicKey], vouchedBy: RelayPublicKey, options: JoinOptions, knownRelays: KnownRelays,
        now: Int? = nil
    ) -> (key: RelayPublicKey, line: String)? {
        guard let (key, source) = RelayTrust.announcement(announced, pinned: vouchedBy) else { return nil }
        let address = KnownRelays.address(host: options.host, port: options.port)
        knownRelays.record(key, for: address, source: source, now: now)
        return (key, RelayTrustText.rotated(address: address, from: vouchedBy, to: key))
    }

    /// The mismatch screen for a pinned key that did not complete the handshake, and its one-line form.
    /// - Parameters:
    ///   - pinned: the key the failed handshake used.
    ///   - presented: the keys the relay presented in its answer, if it gave them; otherwise `fetch` is asked.
    ///   - options: the join options (host, port, name).
    ///   - knownRelays: the pins, for when and how `pinned` was pinned.
    ///   - fetch: fetches what the relay presents now.
    /// - Returns: the screen and the line.
    static func mismatch(
        pinned: RelayPublicKey, presented: [RelayPublicKey]?, options: JoinOptions, knownRelays: KnownRelays,
        fetch: Fetch
    ) -> (screen: String, line: String) {
        let address = KnownRelays.address(host: options.host, port: options.port)
        let pin =
            knownRelays.pins(for: address).last { $0.key == pinned }
            ?? KnownRelay(key: pinned, firstSeen: "an unknown date", source: .joinLine)
        let now: RelayTrustText.Presented
        if let presented {
            now = .keys(presented)
        } else {
            switch fetch() {
            case .success(let keys): now = .keys(keys)
            case .failure(let failure): now = .unknown(failure.reason)
            }
        }
        return (
            RelayTrustText.mismatchScreen(
                host: options.host, port: options.port, name: options.name, pinned: pin, presented: now),
            RelayTrustText.mismatchLine(host: options.host, port: options.port, pinned: pin, presented: now)
        )
    }

    /// The other names under which `known_peers` may hold this relay's pins: the identities of keys pinned earlier
    /// for its address (newest first), the numeric address connected to, and the address as typed.
    static func legacyRelayNames(
        current: RelayPublicKey, options: JoinOptions, knownRelays: KnownRelays, connectedTo peerDescription: String
    ) -> [String] {
        let address = KnownRelays.address(host: options.host, port: options.port)
        let earlier = knownRelays.keys(for: address).reversed().filter { $0 != current }.map {
            KnownPeers.relayIdentity(of: $0)
        }
        let typed = (options.host.contains(":") ? "[\(options.host)]" : options.host) + ":\(options.port)"
        return earlier + [KnownPeers.relayIdentity(connectedTo: peerDescription), typed]
    }
}
