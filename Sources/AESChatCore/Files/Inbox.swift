import AESChatCrypto

#if canImport(Glibc)
    import Glibc
#elseif canImport(Darwin)
    import Darwin
#endif

/// Why the inbox refused or lost a file, in words for the user and the sender.
public struct InboxError: Error, Equatable, Sendable, CustomStringConvertible {
    public var description: String
    /// Whether the failure was a full disk (the part file is then removed to give the space back).
    public var isDiskFull = false
}

/// The folder received files go to, opened once as a directory descriptor: every file is created
/// relative to it, exclusively and without following links, so nothing is ever written outside
/// it, whatever it holds or however it changes. Loop thread only.
public final class Inbox {
    /// The path as the user gave it (for messages and events).
    public let path: String
    /// The folder, open for the inbox's life (closed with it).
    private let folder: Descriptor
    /// The folder descriptor's number, for the `*at` calls.
    private var descriptor: Int32 { folder.rawValue }

    /// Part files not touched for this long are removed when the inbox is opened.
    public static let stalePartAge: Int = 24 * 60 * 60
    /// Part files kept per sender (the one being opened included); the oldest go first.
    public static let maximumPartsPerSender = 8
    /// Bytes of part files kept per sender, besides the one being opened; the oldest go first.
    public static let maximumPartBytesPerSender: Int = 8 << 30
    static let partPrefix = ".aeschat-"
    static let partSuffix = ".part"

    /// Opens (and creates, if missing) the inbox folder. A folder owned by another user, or writable
    /// by group or others, is refused: someone else could read, rename or replace what arrives.
    /// - Throws: ``InboxError`` naming the path and the reason (and, for permissions, the fix).
    public init(path: String) throws(InboxError) {
        self.path = path
        var number = open(path, O_RDONLY | O_DIRECTORY | O_CLOEXEC)
        if number < 0 && errno == ENOENT {
            try Self.makeFolders(path)
            number = open(path, O_RDONLY | O_DIRECTORY | O_CLOEXEC)
        }
        guard let folder = Descriptor(returned: number) else {
            throw InboxError(description: "cannot open inbox folder '\(path)': \(System.lastError)")
        }
        if let problem = Self.permissionProblem(descriptor: folder.rawValue, path: path) {
            throw InboxError(description: problem)
        }
        self.folder = folder
    }

    /// Why an open inbox folder must not be used, or nil: it must belong to the user and be
    /// writable by nobody else.
    static func permissionProblem(descriptor: Int32, path: String) -> String? {
        var status = stat()
        guard fstat(descriptor, &status) == 0 else { return "cannot check inbox folder '\(path)': \(System.lastError)" }
        if status.st_uid != geteuid() {
            return
                "inbox folder '\(path)' belongs to another user (uid \(status.st_uid)); use a folder of your own, "
                + "or take it with 'chown \(geteuid()) \(path)' and 'chmod 700 \(path)'"
        }
        let mode = UInt32(status.st_mode) & 0o777
        if mode & 0o022 != 0 {
            return
                "inbox folder '\(path)' can be written by other users (mode \(String(mode, radix: 8))); "
                + "restrict it with 'chmod 700 \(path)'"
        }
        return nil
    }

    private static func makeFolders(_ path: String) throws(InboxError) {
        var built = path.hasPrefix("/") ? "" : "."
        for component in path.split(separator: "/") {
            built += "/" + component
            if mkdir(built, 0o700) != 0 && errno != EEXIST {
                throw InboxError(description: "cannot create inbox folder '\(path)': \(System.lastError)")
            }
        }
    }

    /// The part file name for a transfer (hidden; never a final name).
    static func partName(for key: String) -> String { partPrefix + key + partSuffix }

    /// The group of a sender's part files: a tag derived from its name, the start of their keys.
    static func partGroup(ofSender sender: String) -> String {
        Hex.encode(Array(SHA256.hash(Array("aeschat/1 part sender".utf8) + Array(sender.utf8)).prefix(4)))
    }

    /// Opens the part file for a transfer: the existing one to resume (its whole chunks kept,
    /// any partial chunk cut off), or a new empty one. Before a new one is made, the sender's
    /// other parts (those whose key starts with `group`, except the ones in `keeping`) are cut
    /// down to ``maximumPartsPerSender`` − 1 files and ``maximumPartBytesPerSender`` bytes,
    /// the least recently written removed first.
    /// - Returns: the open part file and the number of bytes already there.
    func openPart(key: String, chunkSize: Int, group: String? = nil, keeping: Set<String> = [])
        throws(InboxError) -> PartFile
    {
        let name = Self.partName(for: key)
        if let part = Descriptor(returned: openat(descriptor, name, O_RDWR | O_NOFOLLOW | O_CLOEXEC | O_NONBLOCK)) {
            var status = stat()
            guard fstat(part.rawValue, &status) == 0, (status.st_mode & S_IFMT) == S_IFREG, status.st_nlink == 1
            else {
                throw InboxError(
                    description: "the inbox holds something other than a plain file at '\(name)'; remove it")
            }
            let kept = (Int(status.st_size) / chunkSize) * chunkSize
            guard ftruncate(part.rawValue, off_t(kept)) == 0 else {
                throw InboxError(description: "cannot resume into '\(name)': \(System.lastError)")
            }
            return PartFile(file: part, length: kept)
        }
        guard errno == ENOENT else {
            throw InboxError(description: "cannot open '\(name)' in the inbox: \(System.lastError)")
        }
        if let group { pruneParts(group: group, keeping: keeping.union([key])) }
        let flags = O_RDWR | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC
        guard let part = Descriptor(returned: openat(descriptor, name, flags, 0o600)) else {
            throw InboxError(description: "cannot create a file in inbox '\(path)': \(System.lastError)")
        }
        return PartFile(file: part, length: 0)
    }

    /// An open part file and its length.
    struct PartFile: ~Copyable {
        var file: Descriptor
        var length: Int
    }

    /// Gives a verified part file its final name: the sanitised offered name, or `name (1).ext`,
    /// `name (2).ext`, … if taken (by anything: a file, a link, a dangling link, a folder, a
    /// FIFO). Never replaces anything. The file ends with mode 0644 (no execute bits).
    /// A name with folders (a file sent with its folder) lands in those folders inside the inbox
    /// (see ``SafeFileName/relativePath(_:)``), each created (0700) or opened relative to the one
    /// before without following a link: a link, file or anything else under a folder's name
    /// fails the transfer rather than being followed.
    /// - Returns: the final path inside the inbox (folders joined with `/`).
    func finalize(key: String, partDescriptor: Int32, offeredName: String) throws(InboxError) -> String {
        _ = fchmod(partDescriptor, 0o644)
        let part = Self.partName(for: key)
        let (folders, base) = SafeFileName.relativePath(offeredName)
        let target = try openFolders(folders)
        defer { if target != descriptor { Descriptor(target).close() } }
        let prefix = folders.isEmpty ? "" : folders.joined(separator: "/") + "/"
        for number in 0..<10_000 {
            let candidate = SafeFileName.alternative(base, number: number)
            if candidate.hasPrefix(Self.partPrefix) && candidate.hasSuffix(Self.partSuffix) { continue }
            if linkat(descriptor, part, target, candidate, 0) == 0 {
                unlinkat(descriptor, part, 0)
                return prefix + candidate
            }
            guard errno == EEXIST else {
                throw InboxError(
                    description: "cannot name the received file '\(prefix + candidate)': \(System.lastError)")
            }
        }
        throw InboxError(description: "no free name for '\(prefix + base)' in the inbox")
    }

    /// Opens (making them when missing, mode 0700) the folders of a relative path inside the inbox,
    /// each relative to the one before and never through a link.
    /// - Returns: the innermost folder's descriptor (the caller closes it), or the inbox's own for none.
    func openFolders(_ folders: [String]) throws(InboxError) -> Int32 {
        var current = descriptor
        var walked = ""
        for folder in folders {
            walked += walked.isEmpty ? folder : "/" + folder
            if mkdirat(current, folder, 0o700) != 0 && errno != EEXIST {
                let problem = System.lastError
                if current != descriptor { Descriptor(current).close() }
                throw InboxError(description: "cannot create the folder '\(walked)' in the inbox: \(problem)")
            }
            let next = openat(current, folder, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC)
            let problem = errno
            if current != descriptor { Descriptor(current).close() }
            guard next >= 0 else {
                let why =
                    problem == ELOOP || problem == ENOTDIR
                    ? "something other than a folder (a link or a file) is there, and links are not followed"
                    : String(cString: strerror(problem))
                throw InboxError(description: "cannot use the folder '\(walked)' in the inbox: \(why)")
            }
            current = next
        }
        return current
    }

    /// Removes a transfer's part file (after a failure that leaves nothing worth resuming).
    func removePart(key: String) {
        unlinkat(descriptor, Self.partName(for: key), 0)
    }

    /// Removes the oldest parts of one group until the others fit the per-sender caps with room
    /// for one more.
    private func pruneParts(group: String, keeping: Set<String>) {
        let prefix = Self.partPrefix + group + "-"
        var parts: [(name: String, modified: (Int, Int), size: Int)] = []
        forEachPart { name, status in
            guard name.hasPrefix(prefix) else { return }
            let key = String(name.dropFirst(Self.partPrefix.count).dropLast(Self.partSuffix.count))
            guard !keeping.contains(key) else { return }
            let modified = System.modificationTime(status)
            parts.append((name, (modified.seconds, modified.nanoseconds), Int(status.st_size)))
        }
        parts.sort { ($0.modified.0, $0.modified.1, $0.name) < ($1.modified.0, $1.modified.1, $1.name) }
        var count = parts.count + keeping.count
        var bytes = parts.reduce(0) { $0 + $1.size }
        for part in parts {
            guard count > Self.maximumPartsPerSender || bytes > Self.maximumPartBytesPerSender else { break }
            unlinkat(descriptor, part.name, 0)
            count -= 1
            bytes -= part.size
        }
    }

    /// Calls `body` with the name and status of every plain file with the part naming.
    private func forEachPart(_ body: (String, stat) -> Void) {
        guard let listing = Descriptor(returned: dup(descriptor)) else { return }
        // fdopendir takes the descriptor over when it succeeds (closedir closes it).
        let number = listing.release()
        guard let directory = fdopendir(number) else {
            Descriptor(number).close()
            return
        }
        defer { closedir(directory) }
        rewinddir(directory)
        while let entry = readdir(directory) {
            let name = withUnsafeBytes(of: entry.pointee.d_name) { raw in
                String(decoding: raw.prefix { $0 != 0 }, as: UTF8.self)
            }
            guard name.hasPrefix(Self.partPrefix), name.hasSuffix(Self.partSuffix) else { continue }
            var status = stat()
            guard fstatat(descriptor, name, &status, AT_SYMLINK_NOFOLLOW) == 0, (status.st_mode & S_IFMT) == S_IFREG
            else { continue }
            body(name, status)
        }
    }

    /// The names of the part files in the inbox (for tests and messages).
    var partNames: [String] {
        var names: [String] = []
        forEachPart { name, _ in names.append(name) }
        return names.sorted()
    }

    /// Removes part files older than a day. Only plain files with the part naming are touched.
    /// - Parameter now: the current time in seconds since 1970; nil for the system clock.
    public func removeStaleParts(now: Int? = nil) {
        let now = now ?? Int(time(nil))
        var stale: [String] = []
        forEachPart { name, status in
            if now - System.modificationTime(status).seconds > Self.stalePartAge { stale.append(name) }
        }
        for name in stale { unlinkat(descriptor, name, 0) }
    }

    /// Writes all of `bytes` at `offset` in a part file.
    static func write(_ bytes: UnsafeRawBufferPointer, to part: Int32, at offset: Int) throws(InboxError) {
        var written = 0
        while written < bytes.count {
            let count = System.retryingInterrupts {
                pwrite(part, bytes.baseAddress! + written, bytes.count - written, off_t(offset + written))
            }
            if count < 0 {
                let full = errno == ENOSPC || errno == EDQUOT
                throw InboxError(
                    description: full
                        ? "the disk holding the inbox is full" : "cannot write to the inbox: \(System.lastError)",
                    isDiskFull: full)
            }
            written += count
        }
    }
}
