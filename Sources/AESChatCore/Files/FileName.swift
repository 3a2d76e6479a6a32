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
