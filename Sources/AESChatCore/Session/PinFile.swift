#if canImport(Glibc)
    import Glibc
#elseif canImport(Darwin)
    import Darwin
#endif

/// The file under a pin store (`known_peers`, `known_relays`): read whole once, then only ever appended to, each
/// append one `write` and one `fsync`, in a folder made 0700 if missing. A file that did not end with a newline gets
/// one before the first append, so an appended line never joins the last line read. Loop thread only.
final class PinFile {
    /// Why the file cannot be read or appended to; the store names it in its own error or warning.
    struct Failure: Error {
        let reason: String
    }

    let path: String
    /// The file ended without a newline: the first append starts a new line.
    private var needsLeadingNewline = false

    init(path: String) {
        self.path = path
    }

    /// Reads the whole file; nil when it does not exist.
    /// - Parameter limit: the largest file read.
    /// - Throws: ``Failure`` when it exists but cannot be read, or is larger than `limit`.
    func read(limit: Int) throws(Failure) -> String? {
        var status = stat()
        guard lstat(path, &status) == 0 else {
            if errno == ENOENT { return nil }
            throw Failure(reason: System.lastError)
        }
        let text: String
        do {
            text = try SecretFile.read(path: path, limit: limit).text
        } catch {
            throw Failure(reason: error.reason)
        }
        needsLeadingNewline = !text.isEmpty && !text.hasSuffix("\n")
        return text
    }

    /// Appends `lines` (whole lines, each ending in a newline), making the folder if missing.
    /// - Returns: the bytes written: `lines`, and the newline that ends the file's last line if it had none.
    /// - Throws: ``Failure`` when the folder cannot be made or the file cannot be appended to.
    @discardableResult
    func append(_ lines: [UInt8]) throws(Failure) -> Int {
        var bytes = needsLeadingNewline ? [UInt8(ascii: "\n")] : []
        bytes.append(contentsOf: lines)
        do {
            let folder = String(path[..<(path.lastIndex(of: "/") ?? path.startIndex)])
            if !folder.isEmpty { try ConfigurationFolder.create(folder) }
            try SecretFile.append(path: path, contents: bytes)
            needsLeadingNewline = false
            return bytes.count
        } catch let error as SecretFile.Failure {
            throw Failure(reason: error.reason)
        } catch {
            throw Failure(reason: "\(error)")
        }
    }
}
