import AESChatCrypto

#if canImport(Glibc)
    import Glibc
#elseif canImport(Darwin)
    import Darwin
#endif

/// A 256-bit room key shared out of band by everyone in a room (pre-shared-key mode).
///
/// File format: the 32 bytes as 64 hexadecimal characters on one line (upper or lower case,
/// surrounding white space ignored). The key never leaves this process; only keys derived from
/// it are used on the wire.
public struct RoomKey: Sendable {
    /// Key length in bytes.
    public static let byteCount = 32
    /// The largest key file read; anything bigger is not a key file.
    static let maximumFileSize = 4096

    let secret: SecretBytes

    /// Wraps existing key bytes.
    /// - Precondition: `bytes` holds exactly 32 bytes.
    public init(bytes: [UInt8]) {
        precondition(bytes.count == Self.byteCount, "a room key has 32 bytes")
        secret = SecretBytes(bytes)
    }

    /// Makes a new random key from libgcrypt's strong random generator.
    public static func generate() -> RoomKey {
        RoomKey(secret: SecretBytes(count: byteCount))
    }

    private init(secret: SecretBytes) { self.secret = secret }

    /// The key as 64 lower-case hexadecimal characters.
    public var hexEncoded: String {
        secret.withUnsafeBytes { Hex.encode(Array($0)) }
    }

    /// Parses the contents of a key file.
    /// - Throws: ``KeyFileError/malformed(_:path:reason:)``.
    public static func parse(_ text: String, path: String) throws(KeyFileError) -> RoomKey {
        let trimmed = text.trimmingASCIIWhitespace()
        guard trimmed.utf8.count == byteCount * 2 else {
            throw .malformed(
                .roomKey, path: path,
                reason: "expected 64 hexadecimal characters, found \(trimmed.utf8.count) characters")
        }
        guard let bytes = Hex.decode(trimmed) else {
            throw .malformed(.roomKey, path: path, reason: "it contains characters other than 0-9 and a-f")
        }
        return RoomKey(bytes: bytes)
    }

    /// Reads a key file.
    /// - Parameter warn: receives a warning when the file is readable by other users.
    /// - Throws: ``KeyFileError/unreadable(_:path:reason:)`` or ``KeyFileError/malformed(_:path:reason:)``.
    public static func load(path: String, warn: (String) -> Void = { _ in }) throws(KeyFileError) -> RoomKey {
        let contents: SecretFile.Contents
        do {
            contents = try SecretFile.read(path: path, limit: maximumFileSize)
        } catch .tooLarge(let size, _) {
            throw .malformed(.roomKey, path: path, reason: "it is \(size) bytes long; a key file holds 64 characters")
        } catch .notText {
            throw .malformed(.roomKey, path: path, reason: "it is not text")
        } catch {
            throw .unreadable(.roomKey, path: path, reason: error.reason)
        }
        if contents.isAccessibleToOthers {
            let mode = String(contents.mode, radix: 8)
            warn("key file '\(path)' can be read by other users (mode \(mode)); restrict it with 'chmod 600 \(path)'")
        }
        return try parse(contents.text, path: path)
    }

    /// Writes the key to a new file with mode 0600; never replaces an existing file or follows a
    /// symbolic link.
    /// - Throws: ``KeyFileError/alreadyExists(_:path:)`` or ``KeyFileError/unwritable(_:path:reason:)``.
    public func write(toNewFile path: String) throws(KeyFileError) {
        do {
            try SecretFile.createExclusively(path: path, contents: Array((hexEncoded + "\n").utf8))
        } catch .exists {
            throw .alreadyExists(.roomKey, path: path)
        } catch {
            throw .unwritable(.roomKey, path: path, reason: error.reason)
        }
    }
}
