#if canImport(Glibc)
    import Glibc
#elseif canImport(Darwin)
    import Darwin
#endif

/// Reads and writes the small secret files of the configuration folder and the room key:
/// exclusive creation with mode 0600, no link following, a size limit on reading, and the read
/// buffer wiped afterwards.
enum SecretFile {
    /// Why a secret file could not be read or written.
    enum Failure: Error, Equatable {
        /// A system call failed; the text is the system's reason.
        case system(String)
        case notARegularFile
        case tooLarge(size: Int64, limit: Int)
        case notText
        /// Exclusive creation found something under the path.
        case exists
        /// The path is a symbolic link, and the caller does not follow links.
        case symbolicLink

        /// The reason, for a message that names the file.
        var reason: String {
            switch self {
            case .system(let reason): reason
            case .notARegularFile: "not a regular file"
            case .tooLarge(_, let limit): "larger than \(limit) bytes"
            case .notText: "not text"
            case .exists: "it already exists"
            case .symbolicLink: "it is a symbolic link, which aeschat does not follow for this file"
            }
        }
    }

    /// What a read found: the text, and whether users other than the owner may access the file.
    struct Contents {
        var text: String
        /// The permission bits (`st_mode & 0o777`).
        var mode: UInt32
        var isAccessibleToOthers: Bool { mode & 0o077 != 0 }
    }

    /// Reads a regular file of at most `limit` bytes of UTF-8.
    /// - Parameter followingLinks: false to refuse a symbolic link as the last part of the path (`O_NOFOLLOW`):
    ///   ``Failure/symbolicLink``.
    static func read(path: String, limit: Int, followingLinks: Bool = true) throws(Failure) -> Contents {
        let flags = O_RDONLY | O_CLOEXEC | O_NONBLOCK | (followingLinks ? 0 : O_NOFOLLOW)
        guard let file = Descriptor(returned: open(path, flags)) else {
            throw !followingLinks && errno == ELOOP ? .symbolicLink : .system(System.lastError)
        }
        let descriptor = file.rawValue
        var status = stat()
        guard fstat(descriptor, &status) == 0 else { throw .system(System.lastError) }
        guard (status.st_mode & S_IFMT) == S_IFREG else { throw .notARegularFile }
        guard status.st_size <= limit else { throw .tooLarge(size: Int64(status.st_size), limit: limit) }
        var bytes = [UInt8](repeating: 0, count: limit + 1)
        defer { for index in bytes.indices { bytes[index] = 0 } }
        var total = 0
        while total < bytes.count {
            let count = bytes.withUnsafeMutableBytes { raw in
                System.read(descriptor, into: UnsafeMutableRawBufferPointer(rebasing: raw[total...]))
            }
            if count < 0 { throw .system(System.lastError) }
            if count == 0 { break }
            total += count
        }
        file.close()
        guard let text = String(validating: bytes[..<total], as: UTF8.self) else { throw .notText }
        return Contents(text: text, mode: UInt32(status.st_mode & 0o777))
    }

    /// Creates a new file with mode 0600 holding `contents`; never replaces anything or follows a
    /// link. A file left half-written is removed.
    static func createExclusively(path: String, contents: [UInt8]) throws(Failure) {
        guard let file = Descriptor(returned: open(path, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0o600))
        else { throw errno == EEXIST ? .exists : .system(System.lastError) }
        _ = fchmod(file.rawValue, 0o600)
        try writeAll(file.rawValue, contents, path: path)
        file.close()
    }

    /// Replaces a file atomically: writes a temporary file (0600) beside it, then renames it.
    static func replace(path: String, contents: [UInt8]) throws(Failure) {
        let temporary = path + ".tmp-\(getpid())"
        unlink(temporary)
        guard
            let file = Descriptor(
                returned: open(temporary, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0o600))
        else { throw .system(System.lastError) }
        try writeAll(file.rawValue, contents, path: temporary)
        file.close()
        guard rename(temporary, path) == 0 else {
            let reason = System.lastError
            unlink(temporary)
            throw .system(reason)
        }
    }

    /// Appends `contents` to a file in one `write` (repeated only if the system takes less) and one
    /// `fsync`, creating the file with mode 0600 if it is missing; never follows a link and never
    /// writes to anything but a regular file. Nothing is removed on failure.
    static func append(path: String, contents: [UInt8]) throws(Failure) {
        let flags = O_WRONLY | O_APPEND | O_CREAT | O_NOFOLLOW | O_CLOEXEC | O_NONBLOCK
        guard let file = Descriptor(returned: open(path, flags, 0o600)) else { throw .system(System.lastError) }
        var status = stat()
        guard fstat(file.rawValue, &status) == 0 else { throw .system(System.lastError) }
        guard (status.st_mode & S_IFMT) == S_IFREG else { throw .notARegularFile }
        if let code = System.writeAll(file.rawValue, contents) { throw .system(System.describe(errno: code)) }
        guard fsync(file.rawValue) == 0 else { throw .system(System.lastError) }
        file.close()
    }

    private static func writeAll(_ descriptor: Int32, _ contents: [UInt8], path: String) throws(Failure) {
        if let code = System.writeAll(descriptor, contents) {
            unlink(path)
            throw .system(System.describe(errno: code))
        }
        guard fsync(descriptor) == 0 else {
            let reason = System.lastError
            unlink(path)
            throw .system(reason)
        }
    }
}
