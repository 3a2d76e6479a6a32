/// Turns a file name offered over the network into a safe base name for the inbox.
public enum SafeFileName {
    /// The longest name kept, in UTF-8 bytes (the usual file system limit).
    public static let maximumBytes = 255

    /// Reduces `offered` to a base name that cannot leave the inbox or disturb a terminal: only
    /// the part after the last `/` or `\`; control, escape, separator and Unicode format
    /// characters (bidi overrides, zero-width characters) removed; leading dots and spaces
    /// removed (no hidden files, no `.` or `..`); at most 255 UTF-8 bytes, cut at a character
    /// boundary and keeping a short extension. Returns `file` when nothing usable is left.
    /// - Parameter offered: the name as the sender gave it (already valid UTF-8).
    /// - Returns: a non-empty name that is safe to create relative to the inbox.
    public static func sanitize(_ offered: String) -> String {
        let lastComponent =
            offered.split(omittingEmptySubsequences: false) { $0 == "/" || $0 == "\\" }.last.map(String.init) ?? ""
        var kept = String.UnicodeScalarView()
        for scalar in lastComponent.unicodeScalars where !TerminalText.needsEscape(scalar) {
            kept.append(scalar)
        }
        var name = String(kept)
        while let first = name.first, first == "." || first == " " { name.removeFirst() }
        while let last = name.last, last == " " { name.removeLast() }
        if name.isEmpty { return "file" }
        if name.utf8.count > maximumBytes { name = truncate(name) }
        return name
    }

    /// The deepest folder path kept for a file sent with its folder (`/send DIR`), in components.
    public static let maximumFolderDepth = 16
    /// The longest relative path kept, in UTF-8 bytes (the usual path limit).
    public static let maximumPathBytes = 4096

    /// Reduces `offered` to a safe path relative to the inbox: the folders it names, each checked,
    /// and the file's base name from ``sanitize(_:)``. A folder is kept only when every one of them
    /// is a plain name that ``sanitize(_:)`` leaves unchanged: not empty, not `.` or `..`, no
    /// leading dot or space, no control, escape, separator or Unicode format character, no `\`,
    /// at most 255 bytes; the whole path at most ``maximumFolderDepth`` folders deep and
    /// ``maximumPathBytes`` bytes long. An absolute path or one with any other folder keeps only its
    /// base name (as ``sanitize(_:)`` does), so that nothing can climb out of the inbox.
    /// - Parameter offered: the name as the sender gave it (already valid UTF-8).
    /// - Returns: the folders, outermost first (empty for a plain name), and the file's base name.
    public static func relativePath(_ offered: String) -> (folders: [String], name: String) {
        let name = sanitize(offered)
        guard !offered.hasPrefix("/"), offered.utf8.count <= maximumPathBytes else { return ([], name) }
        let components = offered.split(separator: "/", omittingEmptySubsequences: false).map(String.init)
        let folders = components.dropLast()
        guard !folders.isEmpty, folders.count <= maximumFolderDepth, let last = components.last, !last.isEmpty
        else { return ([], name) }
        for folder in folders {
            guard !folder.isEmpty, !folder.contains("\\"), folder.utf8.count <= maximumBytes, sanitize(folder) == folder
            else { return ([], name) }
        }
        return (Array(folders), name)
    }

    /// Cuts a long name to 255 bytes, keeping an extension of up to 16 bytes.
    static func truncate(_ name: String) -> String {
        var stem = name
        var suffix = ""
        if let dot = name.lastIndex(of: "."), name.utf8.distance(from: dot, to: name.endIndex) <= 16 {
            stem = String(name[..<dot])
            suffix = String(name[dot...])
        }
        let budget = maximumBytes - suffix.utf8.count
        var cut = ""
        for character in stem {
            if cut.utf8.count + String(character).utf8.count > budget { break }
            cut.append(character)
        }
        return cut + suffix
    }

    /// The n-th alternative to a taken name: `report (1).pdf`, `report (2).pdf`, …
    public static func alternative(_ name: String, number: Int) -> String {
        guard number > 0 else { return name }
        var stem = name
        var suffix = ""
        if let dot = name.lastIndex(of: "."), dot != name.startIndex {
            stem = String(name[..<dot])
            suffix = String(name[dot...])
        }
        let marker = " (\(number))"
        while (stem + marker + suffix).utf8.count > maximumBytes, !stem.isEmpty { stem.removeLast() }
        return stem + marker + suffix
    }
}
