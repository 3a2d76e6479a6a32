#if canImport(Glibc)
    import Glibc
#elseif canImport(Darwin)
    import Darwin
#endif
import AESChatCrypto

/// A known-peers file that exists but cannot be used. aeschat then refuses to start (exit 74)
/// rather than run without the pins, and never writes to the file.
public enum KnownPeersError: Error, Equatable, Sendable, CustomStringConvertible {
    case unreadable(path: String, reason: String)
    case malformed(path: String, line: Int, reason: String)

    public var description: String {
        switch self {
        case .unreadable(let path, let reason):
            "cannot read the known peers file '\(path)' (\(reason)); aeschat will not run without its pins: "
                + "repair it, or move it aside to start again with no pins"
        case .malformed(let path, let line, let reason):
            "known peers file '\(path)' line \(line) is not a pin (\(reason)); "
                + "correct or delete that line, or move the file aside to start again with no pins"
        }
    }
}

/// Trust on first use, like SSH's known_hosts: the identity key first seen for each name on a
/// relay (in every room of it), and how far the user has gone with it (``PinState``).
///
/// The relay is named by its relay identity, ``relayIdentity(of:)``: its key's fingerprint, so that
/// pins follow the relay's key rather than the address it was reached at. File format
/// (`known_peers` in the configuration folder, mode 0600), one pin per line:
/// `<relay identity> <name> <identity key, 64 hex digits> unverified|messaged|verified`; a later line
/// for the same relay and name replaces an earlier one. Lines are only ever appended, all of one
/// batch (a welcome) in one write and one `fsync`. Lines written before relays had keys name the
/// relay by the numeric address connected to (``relayIdentity(connectedTo:)``); lines of the first
/// format, `<relay host:port as typed> <room> <name> <key> verified|unverified`, are read as pins
/// for the name at that relay in every room. Both are found through ``legacyRelayNames``. `#`
/// comments and blank lines are skipped. Any other line, or a file that cannot be read, is an error
/// (``KnownPeersError``): the store never treats a damaged file as empty. Loop thread only.
public final class KnownPeers {
    struct PinKey: Hashable {
        var relay: String
        var name: String
    }

    /// New names pinned per session (one run of `join`) by default; beyond it they are shown as
    /// new but not pinned.
    public static let defaultNewPinLimit = 1_000
    /// The most pins the file holds; beyond it new names are shown as new but not pinned.
    public static let maximumPins = 50_000
    /// The largest file read (beyond it the store refuses to start).
    public static let maximumFileSize = 16 * 1024 * 1024

    private let file: PinFile?
    private let newPinLimit: Int
    private let warn: (String) -> Void
    private var pins: [PinKey: PeerPin] = [:]
    private var legacyPins: [PinKey: PeerPin] = [:]
    private var pending: [UInt8] = []
    private var batchDepth = 0
    private var hasToldAboutLimit = false

    /// Other names of the relay under which earlier lines may have pinned names: the identities of
    /// keys pinned for it before (a rotation), the numeric address connected to, and the relay as
    /// the user typed it (`host:port`, first-format lines). Looked up in this order, after the relay
    /// identity itself.
    public var legacyRelayNames: [String] = []
    /// New names pinned so far in this session.
    public private(set) var newPinCount = 0
    /// Appends made to the file (each one `write` and one `fsync`), and the bytes they carried.
    public private(set) var appendCount = 0
    public private(set) var appendedByteCount = 0

    /// A store in memory only (tests, load generation).
    /// - Parameter newPinLimit: new names pinned per session.
    public init(newPinLimit: Int = KnownPeers.defaultNewPinLimit) {
        file = nil
        self.newPinLimit = newPinLimit
        warn = { _ in }
    }

    /// Loads the store at `path`; a missing file is an empty store, made at the first pin.
    /// - Parameters:
    ///   - newPinLimit: new names pinned per session.
    ///   - warn: told when an append fails; the session goes on with the pins in memory.
    /// - Throws: ``KnownPeersError`` when the file exists but cannot be read or parsed.
    public init(
        path: String, newPinLimit: Int = KnownPeers.defaultNewPinLimit, warn: @escaping (String) -> Void = { _ in }
    ) throws(KnownPeersError) {
        let file = PinFile(path: path)
        self.newPinLimit = newPinLimit
        self.warn = warn
        let text: String?
        do {
            text = try file.read(limit: Self.maximumFileSize)
        } catch {
            throw .unreadable(path: path, reason: error.reason)
        }
        self.file = file
        guard let text else { return }
        do {
            (pins, legacyPins) = try Self.parse(text)
        } catch {
            throw .malformed(path: path, line: error.line, reason: error.reason)
        }
    }

    /// The relay identity of a relay key: `relay-` and the 32 hex digits of its fingerprint
    /// (`relay-543bcbbf75962b435b78d432d912d096`), so that one relay reached at several addresses
    /// (`localhost`, `127.0.0.1`, a new DNS name) is one relay, and another relay at the same address is
    /// another. The one place that names a relay for pinning.
    /// - Parameter key: the relay's key (the one the connection's handshake used).
    /// - Returns: the relay identity.
    public static func relayIdentity(of key: RelayPublicKey) -> String {
        "relay-" + Hex.encode(key.fingerprintBytes)
    }

    /// The relay identity that lines written before relays had keys use: the numeric address and port
    /// actually connected to (`127.0.0.1:7777`, `[::1]:7777`; an IPv4-mapped IPv6 address as IPv4).
    /// Now one of ``legacyRelayNames``.
    public static func relayIdentity(connectedTo peerDescription: String) -> String {
        let mapped = "[::ffff:"
        if peerDescription.lowercased().hasPrefix(mapped), let close = peerDescription.firstIndex(of: "]") {
            let inner = peerDescription[
                peerDescription.index(peerDescription.startIndex, offsetBy: mapped.count)..<close]
            if inner.contains(".") {
                return String(inner) + String(peerDescription[peerDescription.index(after: close)...])
            }
        }
        return peerDescription
    }

    /// A line that is not a pin.
    struct ParseError: Error {
        var line: Int
        var reason: String
    }

    /// Reads the file's text: pins (a later line for a relay and name replaces an earlier one) and
    /// first-format pins (merged over rooms: a verified one wins, else the last).
    static func parse(_ text: String) throws(ParseError) -> (
        pins: [PinKey: PeerPin], legacyPins: [PinKey: PeerPin]
    ) {
        var pins: [PinKey: PeerPin] = [:]
        var legacyPins: [PinKey: PeerPin] = [:]
        var number = 0
        for line in text.split(omittingEmptySubsequences: false, whereSeparator: { $0 == "\n" || $0 == "\r\n" }) {
            number += 1
            let trimmed = String(line).trimmingASCIIWhitespace()
            if trimmed.isEmpty || trimmed.hasPrefix("#") { continue }
            let fields = trimmed.split(separator: " ")
            switch fields.count {
            case 4:
                guard let state = PinState(rawValue: String(fields[3])) else {
                    throw ParseError(
                        line: number,
                        reason: "unknown state '\(TerminalText.escapeControls(String(fields[3].prefix(32))))'")
                }
                let key = try identityKey(fields[2], line: number)
                pins[PinKey(relay: String(fields[0]), name: String(fields[1]))] = PeerPin(
                    identityKey: key, state: state)
            case 5:
                guard fields[4] == "verified" || fields[4] == "unverified" else {
                    throw ParseError(
                        line: number,
                        reason: "unknown state '\(TerminalText.escapeControls(String(fields[4].prefix(32))))'")
                }
                let pin = PeerPin(
                    identityKey: try identityKey(fields[3], line: number),
                    state: fields[4] == "verified" ? .verified : .unverified)
                let key = PinKey(relay: String(fields[0]), name: String(fields[2]))
                if let earlier = legacyPins[key], earlier.isVerified, !pin.isVerified { continue }
                legacyPins[key] = pin
            default:
                throw ParseError(line: number, reason: "expected 4 fields separated by spaces, found \(fields.count)")
            }
        }
        return (pins, legacyPins)
    }

    private static func identityKey(_ field: Substring, line: Int) throws(ParseError) -> [UInt8] {
        guard let key = Hex.decode(String(field)), key.count == 32 else {
            throw ParseError(line: line, reason: "the identity key is not 64 hexadecimal digits")
        }
        return key
    }

    /// One line of the file.
    static func line(relay: String, name: String, pin: PeerPin) -> String {
        "\(relay) \(name) \(Hex.encode(pin.identityKey)) \(pin.state.rawValue)\n"
    }

    /// The default path, beside the default identity.
    public static func defaultPath(configurationFolder: String) -> String {
        configurationFolder + "/known_peers"
    }

    /// The pin for a name at a relay, in any room: this format's under the relay identity, else under
    /// one of ``legacyRelayNames``, else a first-format line's for the relay or one of them.
    public func pin(relay: String, name: String) -> PeerPin? {
        if let pin = pins[PinKey(relay: relay, name: name)] { return pin }
        for alias in legacyRelayNames {
            if let pin = pins[PinKey(relay: alias, name: name)] { return pin }
        }
        for alias in [relay] + legacyRelayNames {
            if let pin = legacyPins[PinKey(relay: alias, name: name)] { return pin }
        }
        return nil
    }

    /// Whether a first sight was pinned.
    public enum FirstSight: Equatable {
        case pinned
        /// Not pinned (the session's or the file's limit is reached); `notice` is set the first time,
        /// to tell the user.
        case notPinned(notice: String?)
    }

    /// Pins a name seen for the first time as unverified, within the limits.
    public func pinFirstSeen(_ identityKey: [UInt8], relay: String, name: String) -> FirstSight {
        let full = pins.count + legacyPins.count >= Self.maximumPins
        guard newPinCount < newPinLimit, !full else {
            guard !hasToldAboutLimit else { return .notPinned(notice: nil) }
            hasToldAboutLimit = true
            return .notPinned(
                notice: full
                    ? "known_peers holds \(Self.maximumPins) pins, its limit: names seen for the first time are "
                        + "shown as new but no longer pinned"
                    : "\(newPinLimit) new names pinned in this session, the limit: names seen for the first time "
                        + "are still shown as new but no longer pinned")
        }
        newPinCount += 1
        record(PeerPin(identityKey: identityKey, state: .unverified), relay: relay, name: name)
        return .pinned
    }

    /// The user sent `name` a private message under `identityKey`: raises its pin to messaged (or
    /// pins it so, whatever the limits). Writes only when that changes the pin.
    public func noteMessaged(_ identityKey: [UInt8], relay: String, name: String) {
        if let existing = pin(relay: relay, name: name) {
            guard constantTimeEquals(existing.identityKey, identityKey), existing.state == .unverified else { return }
        }
        record(PeerPin(identityKey: identityKey, state: .messaged), relay: relay, name: name)
    }

    /// The user ran `/trust`: pins `identityKey` as verified. Writes only when that changes the pin.
    public func trust(_ identityKey: [UInt8], relay: String, name: String) {
        if let existing = pins[PinKey(relay: relay, name: name)], existing.isVerified,
            constantTimeEquals(existing.identityKey, identityKey)
        {
            return
        }
        record(PeerPin(identityKey: identityKey, state: .verified), relay: relay, name: name)
    }

    /// Runs `body`, writing the pins it records in one append at the end.
    public func batch(_ body: () -> Void) {
        batchDepth += 1
        body()
        batchDepth -= 1
        if batchDepth == 0 { flush() }
    }

    private func record(_ pin: PeerPin, relay: String, name: String) {
        pins[PinKey(relay: relay, name: name)] = pin
        guard file != nil else { return }
        pending.append(contentsOf: Self.line(relay: relay, name: name, pin: pin).utf8)
        if batchDepth == 0 { flush() }
    }

    private func flush() {
        guard let file, !pending.isEmpty else { return }
        let lines = pending
        pending.removeAll()
        do {
            appendedByteCount += try file.append(lines)
            appendCount += 1
        } catch {
            warn("cannot save known peers to '\(file.path)': \(error.reason)")
        }
    }
}
