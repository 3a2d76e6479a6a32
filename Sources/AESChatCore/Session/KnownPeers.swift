import AESChatCrypto

/// What the known-peers file says about one name.
public struct PeerPin: Equatable, Sendable {
    public var identityKey: [UInt8]
    public var isVerified: Bool
}

/// Trust on first use, like SSH's known_hosts: the identity key first seen for each name, per relay
/// and room, and whether the user verified it.
///
/// File format (`known_peers` in the configuration folder, mode 0600), one pin per line:
/// `<relay> <room> <name> <identity key, 64 hex digits> verified|unverified`. Lines that do not
/// parse are kept as they are and otherwise ignored. Loop thread only.
public final class KnownPeers {
    struct Entry: Equatable {
        var relay: String
        var room: String
        var name: String
        var pin: PeerPin
    }

    private let path: String?
    private var entries: [Entry] = []
    private var foreignLines: [String] = []
    private let warn: (String) -> Void

    /// Loads the store at `path` (nil keeps pins in memory only, for tests).
    /// - Parameter warn: told when the file cannot be read or written; the session goes on.
    public init(path: String?, warn: @escaping (String) -> Void = { _ in }) {
        self.path = path
        self.warn = warn
        guard let path, let contents = try? SecretFile.read(path: path, limit: 16 * 1024 * 1024) else { return }
        (entries, foreignLines) = Self.parse(contents.text)
    }

    /// Splits the file's text into pins and the lines that are not pins (kept as they are).
    static func parse(_ text: String) -> (entries: [Entry], foreignLines: [String]) {
        var entries: [Entry] = []
        var foreignLines: [String] = []
        for line in text.split(separator: "\n", omittingEmptySubsequences: true) {
            let fields = line.split(separator: " ")
            if fields.count == 5, let key = Hex.decode(String(fields[3])), key.count == 32,
                fields[4] == "verified" || fields[4] == "unverified"
            {
                entries.append(
                    Entry(
                        relay: String(fields[0]), room: String(fields[1]), name: String(fields[2]),
                        pin: PeerPin(identityKey: key, isVerified: fields[4] == "verified")))
            } else {
                foreignLines.append(String(line))
            }
        }
        return (entries, foreignLines)
    }

    /// The file's text for `entries`, after the `foreignLines` kept from the file.
    static func render(entries: [Entry], foreignLines: [String]) -> String {
        var text = foreignLines.map { $0 + "\n" }.joined()
        for entry in entries {
            text +=
                "\(entry.relay) \(entry.room) \(entry.name) \(Hex.encode(entry.pin.identityKey)) "
                + "\(entry.pin.isVerified ? "verified" : "unverified")\n"
        }
        return text
    }

    /// The default path, beside the default identity.
    public static func defaultPath(configurationFolder: String) -> String {
        configurationFolder + "/known_peers"
    }

    /// The pin for a name, if any.
    public func pin(relay: String, room: String, name: String) -> PeerPin? {
        entries.first { $0.relay == relay && $0.room == room && $0.name == name }?.pin
    }

    /// Records (or replaces) the pin for a name and saves the file.
    public func setPin(_ pin: PeerPin, relay: String, room: String, name: String) {
        if let index = entries.firstIndex(where: { $0.relay == relay && $0.room == room && $0.name == name }) {
            entries[index].pin = pin
        } else {
            entries.append(Entry(relay: relay, room: room, name: name, pin: pin))
        }
        save()
    }

    private func save() {
        guard let path else { return }
        let text = Self.render(entries: entries, foreignLines: foreignLines)
        do {
            let folder = String(path[..<(path.lastIndex(of: "/") ?? path.startIndex)])
            if !folder.isEmpty { try ConfigurationFolder.create(folder) }
            try SecretFile.replace(path: path, contents: Array(text.utf8))
        } catch let error as SecretFile.Failure {
            warn("cannot save known peers to '\(path)': \(error.reason)")
        } catch {
            warn("cannot save known peers to '\(path)': \(error)")
        }
    }
}
