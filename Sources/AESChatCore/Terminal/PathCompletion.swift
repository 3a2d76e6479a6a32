#if canImport(Glibc)
    import Glibc
#elseif canImport(Darwin)
    import Darwin
#endif

/// Tab completion of a path for `/send`: the entries of the folder the typed word names so far,
/// relative to the working folder, with `~` and `~/` standing for the home folder; folders end
/// with `/`. Hidden entries are offered only when the typed name starts with a dot.
enum PathCompletion {
    /// One entry of a folder.
    struct Entry: Equatable, Sendable {
        var name: String
        var isFolder: Bool
    }

    /// Entries listed per folder, at most.
    static let maximumEntries = 2000

    /// The complete words that `typed` may become: `typed`'s folder part, then each matching entry.
    /// - Parameters:
    ///   - typed: the word before the cursor (`rep`, `docs/`, `~/Down`).
    ///   - home: the home folder, for `~`.
    ///   - list: the entries of a folder path (`.` for the working folder); empty when it cannot be read.
    static func candidates(for typed: String, home: String?, list: (String) -> [Entry]) -> [String] {
        if typed == "~" { return home == nil ? [] : ["~/"] }
        let slash = typed.lastIndex(of: "/")
        let folderPart = slash.map { String(typed[...$0]) } ?? ""
        let namePart = slash.map { String(typed[typed.index(after: $0)...]) } ?? typed
        var folder = folderPart.isEmpty ? "." : folderPart
        if folder.hasPrefix("~/") {
            guard let home else { return [] }
            folder = home + folder.dropFirst(1)
        }
        let showHidden = namePart.hasPrefix(".")
        return list(folder)
            .filter { (showHidden || !$0.name.hasPrefix(".")) && $0.name != "." && $0.name != ".." }
            .map { folderPart + $0.name + ($0.isFolder ? "/" : "") }
    }

    /// The entries of the folder at `path`, folders marked (a link to a folder counts as one).
    static func listFolder(_ path: String) -> [Entry] {
        guard let directory = opendir(path) else { return [] }
        defer { closedir(directory) }
        var entries: [Entry] = []
        while entries.count < maximumEntries, let entry = readdir(directory) {
            let name = withUnsafeBytes(of: entry.pointee.d_name) { raw in
                String(decoding: raw.prefix { $0 != 0 }, as: UTF8.self)
            }
            guard !name.contains(where: { $0.isWhitespace || $0.asciiValue.map { $0 < 0x20 } == true }) else {
                continue
            }
            var status = stat()
            let full = path.hasSuffix("/") ? path + name : path + "/" + name
            let isFolder = stat(full, &status) == 0 && (status.st_mode & S_IFMT) == S_IFDIR
            entries.append(Entry(name: name, isFolder: isFolder))
        }
        return entries
    }
}
