import AESChatCrypto

#if canImport(Glibc)
    import Glibc
#elseif canImport(Darwin)
    import Darwin
#endif

/// Problems with a room key file, each naming the path and what to do.
public enum KeyFileError: Error, Equatable, Sendable, CustomStringConvertible {
    case unreadable(path: String, reason: String)
    case malformed(path: String, reason: String)
    case alreadyExists(path: String)
    case unwritable(path: String, reason: String)

    public var description: String {
        switch self {
        case .unreadable(let path, let reason):
            "cannot read key file '\(path)': \(reason)"
        case .malformed(let path, let reason):
            "key file '\(path)' is not a room key: \(reason); make one with 'aeschat keygen --out \(path)'"
        case .alreadyExists(let path):
            "'\(path)' already exists; aeschat never overwrites a key file: choose another path or remove it first"
        case .unwritable(let path, let reason):
            "cannot write key file '\(path)': \(reason)"
        }
    }
}

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
    /// - Throws: ``KeyFileError/malformed(path:reason:)``.
    public static func parse(_ text: String, path: String) throws(KeyFileError) -> RoomKey {
        let trimmed = text.trimmingASCIIWhitespace()
        guard trimmed.utf8.count == byteCount * 2 else {
            throw .malformed(
                path: path, reason: "expected 64 hexadecimal characters, found \(trimmed.utf8.count) characters")
        }
        guard let bytes = Hex.decode(trimmed) else {
            throw .malformed(path: path, reason: "it contains characters other than 0-9 and a-f")
        }
        return RoomKey(bytes: bytes)
    }

    /// Reads a key file.
    /// - Parameter warn: receives a warning when the file is readable by other users.
    /// - Throws: ``KeyFileError/unreadable(path:reason:)`` or ``KeyFileError/malformed(path:reason:)``.
    public static func load(path: String, warn: (String) -> Void = { _ in }) throws(KeyFileError) -> RoomKey {
        let descriptor = open(path, O_RDONLY | O_CLOEXEC | O_NONBLOCK)
        guard descriptor >= 0 else { throw .unreadable(path: path, reason: System.lastError) }
        defer { System.closeDescriptor(descriptor) }
        var status = stat()
        guard fstat(descriptor, &status) == 0 else { throw .unreadable(path: path, reason: System.lastError) }
        guard (status.st_mode & S_IFMT) == S_IFREG else {
            throw .unreadable(path: path, reason: "not a regular file")
        }
        guard status.st_size <= maximumFileSize else {
            throw .malformed(path: path, reason: "it is \(status.st_size) bytes long; a key file holds 64 characters")
        }
        if status.st_mode & 0o077 != 0 {
            let mode = String(status.st_mode & 0o777, radix: 8)
            warn("key file '\(path)' can be read by other users (mode \(mode)); restrict it with 'chmod 600 \(path)'")
        }
        var bytes = [UInt8](repeating: 0, count: maximumFileSize + 1)
        var total = 0
        while total < bytes.count {
            let count = bytes.withUnsafeMutableBytes { raw in
                System.retryingInterrupts { read(descriptor, raw.baseAddress! + total, raw.count - total) }
            }
            if count < 0 { throw .unreadable(path: path, reason: System.lastError) }
            if count == 0 { break }
            total += count
        }
        defer { for index in bytes.indices { bytes[index] = 0 } }
        guard let text = String(validating: bytes[..<total], as: UTF8.self) else {
            throw .malformed(path: path, reason: "it is not text")
        }
        return try parse(text, path: path)
    }

    /// Writes the key to a new file with mode 0600; never replaces an existing file or follows a
    /// symbolic link.
    /// - Throws: ``KeyFileError/alreadyExists(path:)`` or ``KeyFileError/unwritable(path:reason:)``.
    public func write(toNewFile path: String) throws(KeyFileError) {
        let descriptor = open(path, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0o600)
        guard descriptor >= 0 else {
            if errno == EEXIST { throw .alreadyExists(path: path) }
            throw .unwritable(path: path, reason: System.lastError)
        }
        defer { System.closeDescriptor(descriptor) }
        _ = fchmod(descriptor, 0o600)
        let line = Array((hexEncoded + "\n").utf8)
        var written = 0
        while written < line.count {
            let count = line.withUnsafeBytes { raw in
                System.retryingInterrupts { Glibc_write(descriptor, raw.baseAddress! + written, raw.count - written) }
            }
            guard count > 0 else {
                let reason = System.lastError
                unlink(path)
                throw .unwritable(path: path, reason: reason)
            }
            written += count
        }
        guard fsync(descriptor) == 0 else {
            let reason = System.lastError
            unlink(path)
            throw .unwritable(path: path, reason: reason)
        }
    }
}

/// Calls write(2) from inside a type that has its own `write`.
func Glibc_write(_ descriptor: Int32, _ buffer: UnsafeRawPointer, _ count: Int) -> Int {
    write(descriptor, buffer, count)
}

extension String {
    /// The string without leading and trailing spaces, tabs, CR and LF.
    func trimmingASCIIWhitespace() -> String {
        let isSpace: (Character) -> Bool = { $0 == " " || $0 == "\t" || $0 == "\n" || $0 == "\r" || $0 == "\r\n" }
        guard let first = firstIndex(where: { !isSpace($0) }), let last = lastIndex(where: { !isSpace($0) }) else {
            return ""
        }
        return String(self[first...last])
    }
}
