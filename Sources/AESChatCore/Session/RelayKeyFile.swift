public import AESChatCrypto
public import Foundation

#if canImport(Glibc)
    import Glibc
#elseif canImport(Darwin)
    import Darwin
#endif

/// The relay's long-term X25519 key file, the key whose public half members pin (``RelayPublicKey``).
///
/// File format: one line `aeschat-relay-key-v1 <64 hex digits of the 32-byte X25519 scalar>` and a newline, mode
/// 0600, in a folder made with mode 0700 (the identity file's layout, with its own header; hex, so that the secret
/// never looks like the public key's base32 text). Made at the first `aeschat serve` from libgcrypt's very strong
/// random level (once), redrawn while its key id would be 00000000 (reserved for key requests). Never overwritten;
/// never read or written through a symbolic link. A file that exists but cannot be read or parsed is an error, never
/// a reason to make a new key: members have pinned the old one.
///
/// Stateless; safe from any thread.
public enum RelayKeyFile {
    static let header = "aeschat-relay-key-v1"
    /// The largest file read.
    static let maximumFileSize = 4096

    /// The default relay key file, inside the configuration folder: `$XDG_CONFIG_HOME/aeschat/relay-key`, else
    /// `~/.config/aeschat/relay-key`.
    /// - Parameter environment: the process environment.
    /// - Returns: the path.
    public static func defaultPath(environment: [String: String] = ProcessInfo.processInfo.environment) -> String {
        ConfigurationFolder.path(environment: environment) + "/relay-key"
    }

    /// Loads the key at `path`, making it (and its folder, mode 0700) if nothing is there yet.
    /// - Parameters:
    ///   - path: the key file.
    ///   - created: told the path when a new key was made.
    ///   - warn: told when an existing file can be read by other users.
    ///   - generate: draws a new key (tests inject their own).
    /// - Returns: the key.
    /// - Throws: ``KeyFileError`` (`.relayKey`) when the file exists but cannot be read or parsed (a symbolic link
    ///   included), or when a new one cannot be written.
    public static func loadOrCreate(
        path: String, created: (String) -> Void = { _ in }, warn: (String) -> Void = { _ in },
        generate: () -> X25519PrivateKey = RelayKeyFile.generate
    ) throws(KeyFileError) -> X25519PrivateKey {
        var status = stat()
        if lstat(path, &status) == 0 {
            return try load(path: path, warn: warn)
        }
        guard errno == ENOENT else { throw .unreadable(.relayKey, path: path, reason: System.lastError) }
        let folder = (path as NSString).deletingLastPathComponent
        if !folder.isEmpty { try ConfigurationFolder.create(folder) }
        let key = generate()
        do {
            try write(key, toNewFile: path)
        } catch .alreadyExists {
            // Another relay made it meanwhile: use that one.
            return try load(path: path, warn: warn)
        }
        created(path)
        return key
    }

    /// Reads a relay key file; never makes one (`serve --previous-relay-key`).
    /// - Parameters:
    ///   - path: the key file.
    ///   - warn: told when the file can be read by other users.
    /// - Returns: the key.
    /// - Throws: ``KeyFileError`` (`.relayKey`) when the file is missing, a symbolic link, unreadable or malformed.
    public static func load(path: String, warn: (String) -> Void = { _ in }) throws(KeyFileError) -> X25519PrivateKey {
        let contents: SecretFile.Contents
        do {
            contents = try SecretFile.read(path: path, limit: maximumFileSize, followingLinks: false)
        } catch {
            throw .unreadable(.relayKey, path: path, reason: error.reason)
        }
        if contents.isAccessibleToOthers {
            let mode = String(contents.mode, radix: 8)
            warn(
                "relay key file '\(path)' can be read by other users (mode \(mode)); restrict it with 'chmod 600 \(path)'"
            )
        }
        return try parse(contents.text, path: path)
    }

    /// Reads the file's text.
    /// - Parameters:
    ///   - text: the file's contents.
    ///   - path: names the file in errors.
    /// - Returns: the key.
    /// - Throws: ``KeyFileError/malformed(_:path:reason:)`` unless it is the header and 64 hex digits of a key whose
    ///   key id is not 00000000.
    static func parse(_ text: String, path: String) throws(KeyFileError) -> X25519PrivateKey {
        let fields = text.trimmingASCIIWhitespace().split(separator: " ")
        guard fields.count == 2, fields[0] == Substring(header) else {
            throw .malformed(.relayKey, path: path, reason: "expected '\(header)' followed by 64 hexadecimal digits")
        }
        guard var scalar = Hex.decode(String(fields[1])), scalar.count == RelayPublicKey.length else {
            throw .malformed(.relayKey, path: path, reason: "the key is not 64 hexadecimal digits")
        }
        defer { for index in scalar.indices { scalar[index] = 0 } }
        let key: X25519PrivateKey
        do {
            key = try X25519PrivateKey(rawRepresentation: scalar)
        } catch {
            throw .malformed(.relayKey, path: path, reason: error.description)
        }
        guard !hasReservedKeyID(key) else {
            throw .malformed(.relayKey, path: path, reason: "its key id is 00000000, which is reserved")
        }
        return key
    }

    /// Writes the key to a new file with mode 0600; never replaces a file or follows a link.
    /// - Parameters:
    ///   - key: the relay's key.
    ///   - path: the new file.
    /// - Throws: ``KeyFileError/alreadyExists(_:path:)`` when something is at `path`,
    ///   ``KeyFileError/unwritable(_:path:reason:)`` when it cannot be written.
    public static func write(_ key: X25519PrivateKey, toNewFile path: String) throws(KeyFileError) {
        var line = key.rawRepresentation.withUnsafeBytes { Array("\(header) \(Hex.encode(Array($0)))\n".utf8) }
        defer { for index in line.indices { line[index] = 0 } }
        do {
            try SecretFile.createExclusively(path: path, contents: line)
        } catch .exists {
            throw .alreadyExists(.relayKey, path: path)
        } catch {
            throw .unwritable(.relayKey, path: path, reason: error.reason)
        }
    }

    /// Draws a new relay key from libgcrypt's very strong random level, again while its key id is 00000000.
    /// - Returns: the key.
    public static func generate() -> X25519PrivateKey {
        generate(drawing: { X25519PrivateKey() })
    }

    /// Draws keys until one is not reserved (its key id is not 00000000).
    static func generate(
        drawing draw: () -> X25519PrivateKey, isReserved: (X25519PrivateKey) -> Bool = hasReservedKeyID
    ) -> X25519PrivateKey {
        while true {
            let key = draw()
            if !isReserved(key) { return key }
        }
    }

    /// Whether the key's public half has the key id 00000000, which clients send to ask for the relay's key.
    static func hasReservedKeyID(_ key: X25519PrivateKey) -> Bool {
        guard let publicKey = try? RelayPublicKey(bytes: key.publicKey) else { return true }
        return publicKey.keyID == RelayPublicKey.keyRequestID
    }
}
