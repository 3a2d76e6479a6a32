public import AESChatCrypto
public import Foundation

/// A user's long-term Ed25519 identity key.
///
/// File format: one line `aeschat-identity-v1 <64 hex digits of the RFC 8032 seed>`, mode 0600.
/// Made on first use; never overwritten.
public struct Identity: Sendable {
    /// The signing key.
    public let key: Ed25519PrivateKey

    static let header = "aeschat-identity-v1"

    /// Wraps a key.
    public init(key: Ed25519PrivateKey) { self.key = key }

    /// The public key, 32 bytes.
    public var publicKey: [UInt8] { key.publicKey }

    /// The default identity file, inside the configuration folder.
    public static func defaultPath(environment: [String: String] = ProcessInfo.processInfo.environment) -> String {
        ConfigurationFolder.path(environment: environment) + "/identity"
    }

    /// Loads the identity at `path`, creating it (and its folder) if it does not exist yet.
    /// - Parameters:
    ///   - created: told when a new identity was made.
    ///   - warn: told when an existing file can be read by other users.
    public static func loadOrCreate(
        path: String, created: (String) -> Void = { _ in }, warn: (String) -> Void = { _ in }
    ) throws(KeyFileError) -> Identity {
        if FileManager.default.fileExists(atPath: path)
            || (try? FileManager.default.destinationOfSymbolicLink(atPath: path)) != nil
        {
            return try load(path: path, warn: warn)
        }
        try ConfigurationFolder.create((path as NSString).deletingLastPathComponent)
        let identity = Identity(key: Ed25519PrivateKey())
        try identity.write(toNewFile: path)
        created(path)
        return identity
    }

    /// Reads an identity file.
    /// - Parameter warn: told when the file can be read by other users (as for room key files).
    public static func load(path: String, warn: (String) -> Void = { _ in }) throws(KeyFileError) -> Identity {
        let contents: SecretFile.Contents
        do {
            contents = try SecretFile.read(path: path, limit: 4096)
        } catch {
            throw .unreadable(.identity, path: path, reason: error.reason)
        }
        if contents.isAccessibleToOthers {
            let mode = String(contents.mode, radix: 8)
            warn(
                "identity file '\(path)' can be read by other users (mode \(mode)); restrict it with 'chmod 600 \(path)'"
            )
        }
        return try parse(contents.text, path: path)
    }

    /// Parses the contents of an identity file: `aeschat-identity-v1 <64 hex digits>` and a newline.
    /// - Parameter path: names the file in errors.
    public static func parse(_ text: String, path: String) throws(KeyFileError) -> Identity {
        let fields = text.trimmingASCIIWhitespace().split(separator: " ")
        guard fields.count == 2, fields[0] == Substring(header) else {
            throw .malformed(.identity, path: path, reason: "expected '\(header)' followed by 64 hexadecimal digits")
        }
        guard let seed = Hex.decode(String(fields[1])), seed.count == Ed25519.seedSize else {
            throw .malformed(.identity, path: path, reason: "the key is not 64 hexadecimal digits")
        }
        do {
            return Identity(key: try Ed25519PrivateKey(seed: seed))
        } catch {
            throw .malformed(.identity, path: path, reason: error.description)
        }
    }

    /// Writes the identity to a new file with mode 0600; never replaces a file or follows a link.
    public func write(toNewFile path: String) throws(KeyFileError) {
        let line = key.seed.withUnsafeBytes { "\(Self.header) \(Hex.encode(Array($0)))\n" }
        do {
            try SecretFile.createExclusively(path: path, contents: Array(line.utf8))
        } catch .exists {
            throw .alreadyExists(.identity, path: path)
        } catch {
            throw .unwritable(.identity, path: path, reason: error.reason)
        }
    }

    /// A short, readable fingerprint of a public identity key: the first 16 bytes of its SHA-256
    /// as 8 groups of 4 hex digits.
    public static func fingerprint(of publicKey: [UInt8]) -> String {
        let digest = SHA256.hash(Array("aeschat/1 fingerprint".utf8) + publicKey)
        return stride(from: 0, to: 16, by: 2).map { Hex.encode(Array(digest[$0..<$0 + 2])) }.joined(separator: " ")
    }

    /// The safety number of two identity keys: the same for both people, whoever computes it;
    /// 30 digits in 6 groups of 5.
    public static func safetyNumber(_ a: [UInt8], _ b: [UInt8]) -> String {
        let (low, high) = a.lexicographicallyPrecedes(b) ? (a, b) : (b, a)
        let digest = SHA256.hash(Array("aeschat/1 safety number".utf8) + low + high)
        return (0..<6).map { group in
            let value = digest[group * 5..<group * 5 + 5].reduce(UInt64(0)) { $0 << 8 | UInt64($1) } % 100_000
            let digits = String(value)
            return String(repeating: "0", count: 5 - digits.count) + digits
        }.joined(separator: " ")
    }

    /// The room code over a room name and the identity keys of everyone present (the user
    /// included): 40 digits in 8 groups of 5 (about 132 bits, all 32 bytes of the digest). Everyone who sees the
    /// same members computes the same code.
    public static func roomCode(room: String, identityKeys: [[UInt8]]) -> String {
        var writer = ByteWriter(capacity: 64 + identityKeys.count * 32)
        writer.write(contentsOf: Array("aeschat/1 room code".utf8))
        writer.writeShortString(room)
        let sorted = identityKeys.sorted { $0.lexicographicallyPrecedes($1) }
        writer.write(UInt32(sorted.count))
        for key in sorted { writer.write(contentsOf: key) }
        let digest = SHA256.hash(writer.bytes)
        return (0..<8).map { group in
            let value = digest[group * 4..<group * 4 + 4].reduce(UInt32(0)) { $0 << 8 | UInt32($1) } % 100_000
            let digits = String(value)
            return String(repeating: "0", count: 5 - digits.count) + digits
        }.joined(separator: " ")
    }
}
