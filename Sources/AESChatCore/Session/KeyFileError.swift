/// Problems with a long-term key file (a room key or an identity), each naming the path and what to do.
public enum KeyFileError: Error, Equatable, Sendable, CustomStringConvertible {
    /// Which kind of key file a problem is about; it decides the wording.
    public enum File: Equatable, Sendable {
        /// A room key (`--key`, `aeschat keygen`).
        case roomKey
        /// An identity (`--identity`, made on first use).
        case identity
        /// The relay's key (`serve --relay-key`, made on first start).
        case relayKey
    }

    case unreadable(File, path: String, reason: String)
    case malformed(File, path: String, reason: String)
    case alreadyExists(File, path: String)
    case unwritable(File, path: String, reason: String)

    public var description: String {
        switch self {
        case .unreadable(.roomKey, let path, let reason):
            "cannot read key file '\(path)': \(reason)"
        case .unreadable(.identity, let path, let reason):
            "cannot read identity file '\(path)': \(reason)"
        case .malformed(.roomKey, let path, let reason):
            "key file '\(path)' is not a room key: \(reason); make one with 'aeschat keygen --out \(path)'"
        case .malformed(.identity, let path, let reason):
            "identity file '\(path)' is not an aeschat identity: \(reason)"
        case .alreadyExists(.roomKey, let path):
            "'\(path)' already exists; aeschat never overwrites a key file: choose another path or remove it first"
        case .alreadyExists(.identity, let path):
            "'\(path)' already exists; aeschat never overwrites an identity file: choose another path or remove it first"
        case .unwritable(.roomKey, let path, let reason):
            "cannot write key file '\(path)': \(reason)"
        case .unwritable(.identity, let path, let reason):
            "cannot write '\(path)': \(reason)"
        case .unreadable(.relayKey, let path, let reason):
            "cannot read the relay key file '\(path)': \(reason); the relay does not start without the key its "
                + "members pinned: repair the file or give the right path"
        case .malformed(.relayKey, let path, let reason):
            "relay key file '\(path)' is not an aeschat relay key: \(reason); the relay does not start with a "
                + "new key in its place, since members pinned the old one"
        case .alreadyExists(.relayKey, let path):
            "'\(path)' already exists; aeschat never overwrites a relay key file"
        case .unwritable(.relayKey, let path, let reason):
            "cannot write the relay key file '\(path)': \(reason)"
        }
    }
}
