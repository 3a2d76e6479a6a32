/// The line being typed: its characters (grapheme clusters, so the cursor never lands inside an
/// accented letter or an emoji sequence), the cursor, a kill buffer, history and Tab completion.
///
/// Emacs-style editing as in readline: Ctrl-A/E move to the start and end, Ctrl-U kills to the
/// start, Ctrl-K to the end, Ctrl-W the whitespace-delimited word before the cursor, Ctrl-Y yanks
/// the last kill back. A value type with no I/O; not thread-safe.
struct LineEditor {
    /// The most history entries kept.
    static let historyLimit = 500

    /// The line, one element per grapheme cluster.
    private(set) var characters: [Character] = []
    /// The cursor, as an index into ``characters`` (0 … count).
    private(set) var cursor = 0
    private var killBuffer: [Character] = []
    private var history: [String] = []
    private var historyIndex = 0
    private var draft: [Character] = []
    private var completion: CompletionState?

    /// What Tab cycles through after an ambiguous completion.
    private struct CompletionState {
        var start: Int
        var end: Int
        var candidates: [String]
        var suffix: String
        var index: Int
    }

    /// Creates an empty editor.
    init() {}

    /// The line as text.
    var text: String { String(characters) }

    /// Whether the line is empty.
    var isEmpty: Bool { characters.isEmpty }

    /// The entries recorded by ``submit()``, oldest first.
    var historyEntries: [String] { history }

    // MARK: Inserting and deleting

    /// Inserts text at the cursor and moves the cursor after it. Characters that combine with
    /// their neighbours (a combining accent typed after its letter, the second half of a flag)
    /// merge into one cluster.
    mutating func insert(_ text: String) {
        guard !text.isEmpty else { return }
        completion = nil
        let hasBefore = cursor > 0
        let hasAfter = cursor < characters.count
        let head = (hasBefore ? String(characters[cursor - 1]) : "") + text
        let merged = Array(head + (hasAfter ? String(characters[cursor]) : ""))
        let headCount = Array(head).count
        let lower = cursor - (hasBefore ? 1 : 0)
        let upper = cursor + (hasAfter ? 1 : 0)
        characters.replaceSubrange(lower..<upper, with: merged)
        cursor = lower + min(headCount, merged.count)
    }

    /// Replaces the whole line and puts the cursor at its end.
    mutating func replaceAll(with text: String) {
        completion = nil
        characters = Array(text)
        cursor = characters.count
    }

    /// Backspace: deletes the character before the cursor.
    mutating func deleteBackward() {
        guard cursor > 0 else { return }
        remove(cursor - 1..<cursor, keep: false)
    }

    /// Delete: deletes the character under the cursor.
    mutating func deleteForward() {
        guard cursor < characters.count else { return }
        remove(cursor..<cursor + 1, keep: false)
    }

    /// Ctrl-U: kills from the start of the line to the cursor.
    mutating func killToStart() {
        remove(0..<cursor, keep: true)
    }

    /// Ctrl-C on a line being typed: kills the whole line, wherever the cursor is.
    mutating func killAll() {
        remove(0..<characters.count, keep: true)
    }

    /// Ctrl-K: kills from the cursor to the end of the line.
    mutating func killToEnd() {
        remove(cursor..<characters.count, keep: true)
    }

    /// Ctrl-W: kills the whitespace-delimited word before the cursor (and the spaces after it).
    mutating func killWhitespaceWordBackward() {
        var start = cursor
        while start > 0, characters[start - 1].isWhitespace { start -= 1 }
        while start > 0, !characters[start - 1].isWhitespace { start -= 1 }
        remove(start..<cursor, keep: true)
    }

    /// Alt-Backspace: kills the word (letters and digits) before the cursor.
    mutating func killWordBackward() {
        remove(wordStart(before: cursor)..<cursor, keep: true)
    }

    /// Alt-D: kills the word (letters and digits) after the cursor.
    mutating func killWordForward() {
        remove(cursor..<wordEnd(after: cursor), keep: true)
    }

    /// Ctrl-Y: inserts the last killed text.
    mutating func yank() {
        insert(String(killBuffer))
    }

    /// Ctrl-T: swaps the characters before and under the cursor (the last two at the end).
    mutating func transpose() {
        guard characters.count >= 2, cursor > 0 else { return }
        completion = nil
        let right = min(cursor, characters.count - 1)
        characters.swapAt(right - 1, right)
        cursor = right + 1
        normalize(around: right - 1)
        normalize(around: right + 1)
    }

    private mutating func remove(_ range: Range<Int>, keep: Bool) {
        guard !range.isEmpty else { return }
        completion = nil
        if keep { killBuffer = Array(characters[range]) }
        characters.removeSubrange(range)
        cursor = range.lowerBound
        normalize(around: cursor)
    }

    /// Merges the characters on either side of `index` if they now form one cluster (after a
    /// deletion brought a combining mark next to a letter, say).
    private mutating func normalize(around index: Int) {
        guard index > 0, index < characters.count else { return }
        let joined = Array(String(characters[index - 1]) + String(characters[index]))
        guard joined.count == 1 else { return }
        characters.replaceSubrange(index - 1...index, with: joined)
        if cursor > index { cursor -= 1 }
    }

    // MARK: Moving

    /// Left, Ctrl-B.
    mutating func moveLeft() {
        completion = nil
        if cursor > 0 { cursor -= 1 }
    }

    /// Right, Ctrl-F.
    mutating func moveRight() {
        completion = nil
        if cursor < characters.count { cursor += 1 }
    }

    /// Home, Ctrl-A.
    mutating func moveHome() {
        completion = nil
        cursor = 0
    }

    /// End, Ctrl-E.
    mutating func moveEnd() {
        completion = nil
        cursor = characters.count
    }

    /// Alt-B, Ctrl-Left: to the start of the word before the cursor.
    mutating func moveWordLeft() {
        completion = nil
        cursor = wordStart(before: cursor)
    }

    /// Alt-F, Ctrl-Right: to the end of the word after the cursor.
    mutating func moveWordRight() {
        completion = nil
        cursor = wordEnd(after: cursor)
    }

    private static func isWordCharacter(_ character: Character) -> Bool {
        character.isLetter || character.isNumber
    }

    private func wordStart(before index: Int) -> Int {
        var start = index
        while start > 0, !Self.isWordCharacter(characters[start - 1]) { start -= 1 }
        while start > 0, Self.isWordCharacter(characters[start - 1]) { start -= 1 }
        return start
    }

    private func wordEnd(after index: Int) -> Int {
        var end = index
        while end < characters.count, !Self.isWordCharacter(characters[end]) { end += 1 }
        while end < characters.count, Self.isWordCharacter(characters[end]) { end += 1 }
        return end
    }

    // MARK: History

    /// Replaces the history with entries saved by an earlier session (the last ``historyLimit``), oldest first.
    mutating func loadHistory(_ entries: [String]) {
        history = Array(entries.filter { !$0.isEmpty }.suffix(Self.historyLimit))
        historyIndex = history.count
    }

    /// Takes the line: records it in the history (unless empty or the same as the last entry)
    /// and leaves the editor empty.
    /// - Returns: the line's text.
    mutating func submit() -> String {
        let line = text
        if !line.isEmpty, history.last != line {
            history.append(line)
            if history.count > Self.historyLimit { history.removeFirst(history.count - Self.historyLimit) }
        }
        historyIndex = history.count
        draft = []
        characters = []
        cursor = 0
        completion = nil
        return line
    }

    /// Up, Ctrl-P: shows the previous history entry; the line being typed is kept as a draft.
    mutating func historyPrevious() {
        guard historyIndex > 0 else { return }
        if historyIndex == history.count { draft = characters }
        historyIndex -= 1
        replaceAll(with: history[historyIndex])
    }

    /// Down, Ctrl-N: shows the next history entry, and after the last one the draft.
    mutating func historyNext() {
        guard historyIndex < history.count else { return }
        historyIndex += 1
        if historyIndex == history.count {
            completion = nil
            characters = draft
            cursor = characters.count
        } else {
            replaceAll(with: history[historyIndex])
        }
    }

    // MARK: Completion

    /// What the completion source is asked: the words before the one being completed, and that
    /// word's beginning.
    struct CompletionRequest: Equatable {
        /// The whitespace-separated words before the word at the cursor.
        var previousWords: [String]
        /// The part of the word before the cursor.
        var prefix: String
    }

    /// What a completion source answers.
    struct CompletionOffer: Equatable {
        /// Every possible word; those starting with the prefix (ignoring case) are used.
        var candidates: [String]
        /// Added after a complete word, such as `": "` after a name at the start of the line.
        var suffix: String
    }

    /// Tab: completes the word before the cursor. One match is inserted whole (with the offer's
    /// suffix); several extend the word to their longest common beginning and are returned to be
    /// shown; pressing Tab again then cycles through them.
    /// - Parameter source: gives the candidates for a request.
    /// - Returns: the matches when there are several and this Tab did not pick one, else empty.
    mutating func complete(using source: (CompletionRequest) -> CompletionOffer) -> [String] {
        if var state = completion, state.end == cursor, state.candidates.count > 1 {
            state.index = (state.index + 1) % state.candidates.count
            let replacement = Array(state.candidates[state.index] + state.suffix)
            characters.replaceSubrange(state.start..<state.end, with: replacement)
            cursor = state.start + replacement.count
            state.end = cursor
            completion = state
            return []
        }
        var start = cursor
        while start > 0, !characters[start - 1].isWhitespace { start -= 1 }
        let prefix = String(characters[start..<cursor])
        let previousWords = String(characters[0..<start]).split(whereSeparator: \.isWhitespace).map(String.init)
        let offer = source(CompletionRequest(previousWords: previousWords, prefix: prefix))
        let lowered = prefix.lowercased()
        var seen: Set<String> = []
        let matches = offer.candidates.filter { $0.lowercased().hasPrefix(lowered) && seen.insert($0).inserted }
            .sorted { $0.lowercased() < $1.lowercased() }
        completion = nil
        guard let first = matches.first else { return [] }
        if matches.count == 1 {
            let replacement = Array(first + offer.suffix)
            characters.replaceSubrange(start..<cursor, with: replacement)
            cursor = start + replacement.count
            return []
        }
        var common = Array(first)
        for match in matches.dropFirst() {
            let other = Array(match)
            var length = 0
            while length < common.count, length < other.count,
                String(common[length]).lowercased() == String(other[length]).lowercased()
            {
                length += 1
            }
            common.removeSubrange(length...)
        }
        if common.count < Array(prefix).count { common = Array(prefix) }
        characters.replaceSubrange(start..<cursor, with: common)
        cursor = start + common.count
        completion = CompletionState(start: start, end: cursor, candidates: matches, suffix: offer.suffix, index: -1)
        return matches
    }
}
