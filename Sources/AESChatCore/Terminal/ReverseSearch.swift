/// Ctrl-R on the input line, as in a shell: each character typed narrows the search to the latest line of the
/// input history containing the query (case-insensitive); Ctrl-R again goes to an older one. The line being typed
/// stays as it was until the user accepts a match (Enter), and comes back on a cancel (Esc, Ctrl-G). Pure; owned
/// by ``ChatScreen``.
struct ReverseSearch: Equatable {
    /// The history, oldest first, as it was when the search started.
    let entries: [String]
    /// What was typed so far.
    private(set) var query = ""
    /// The index in ``entries`` of the line shown, if any matches.
    private(set) var matchIndex: Int?
    /// Whether the last step found nothing (the query matches no line, or no older one).
    private(set) var failed = false

    /// Starts a search through `entries` (oldest first); with an empty query, the latest entry is shown.
    init(entries: [String]) {
        self.entries = entries
        matchIndex = entries.indices.last
    }

    /// The history line found, if any.
    var match: String? { matchIndex.map { entries[$0] } }

    /// A typed (or pasted) text joins the query; the search starts again from the latest line.
    mutating func type(_ text: String) {
        query += text
        find(before: entries.count)
    }

    /// Backspace: the query loses its last character; the search starts again from the latest line.
    mutating func deleteBackward() {
        guard !query.isEmpty else { return }
        query.removeLast()
        find(before: entries.count)
    }

    /// Ctrl-R again: the next older line containing the query; the current one stays when there is none.
    mutating func older() {
        find(before: matchIndex ?? entries.count)
    }

    /// Finds the latest entry before `end` that contains the query; keeps the current match when none does.
    private mutating func find(before end: Int) {
        let needle = query.lowercased()
        var index = min(end, entries.count) - 1
        while index >= 0, !(needle.isEmpty || entries[index].lowercased().contains(needle)) { index -= 1 }
        failed = index < 0
        if index >= 0 {
            matchIndex = index
        } else if let current = matchIndex, !needle.isEmpty, !entries[current].lowercased().contains(needle) {
            matchIndex = nil
        }
    }

    /// What the input row shows: the query and the line found.
    var prompt: String {
        "(\(failed ? "failing " : "")search history)'\(query)': "
    }
}
