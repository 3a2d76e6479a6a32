/// "Did you mean …?" suggestions for mistyped commands and options.
///
/// Pure functions, safe from any thread.
enum Suggestion {
    /// Finds the candidate the user most likely meant.
    ///
    /// A candidate qualifies when its case-insensitive edit distance (insertions, deletions, substitutions and
    /// swaps of adjacent characters) is at most 1, or at most 2 when its name without leading dashes has five or more
    /// characters; the closest wins and ties go to the earlier candidate. Failing that, a candidate qualifies when
    /// the input (with `-x` read as `--x`) is a prefix of it and of no other candidate; a one-letter `-x`, read as a
    /// short option, suggests the first candidate it is a prefix of (`-p`: `--port` before `--previous-relay-key`).
    ///
    /// - Parameters:
    ///   - input: What the user typed.
    ///   - candidates: The valid spellings, in preference order.
    /// - Returns: The suggested spelling, or `nil` if none is close enough.
    static func closest(to input: String, among candidates: [String]) -> String? {
        let typed = Array(input.lowercased())
        var best: (candidate: String, distance: Int)?
        for candidate in candidates where candidate != input {
            let distance = editDistance(typed, Array(candidate.lowercased()))
            let allowed = candidate.drop { $0 == "-" }.count >= 5 ? 2 : 1
            if distance <= allowed, distance < (best?.distance ?? Int.max) {
                best = (candidate, distance)
            }
        }
        if let best { return best.candidate }

        var prefix = input.lowercased()
        let isShortOption = prefix.count == 2 && prefix.hasPrefix("-") && prefix != "--"
        if prefix.hasPrefix("-"), !prefix.hasPrefix("--") { prefix = "-" + prefix }
        guard prefix.contains(where: { $0 != "-" }) else { return nil }
        let matches = candidates.filter { $0 != input && $0.lowercased().hasPrefix(prefix) }
        return matches.count == 1 || (isShortOption && !matches.isEmpty) ? matches[0] : nil
    }

    /// The optimal-string-alignment distance: Levenshtein plus adjacent transpositions.
    static func editDistance(_ a: [Character], _ b: [Character]) -> Int {
        if a.isEmpty { return b.count }
        if b.isEmpty { return a.count }
        var previousPrevious = [Int](repeating: 0, count: b.count + 1)
        var previous = Array(0...b.count)
        var current = [Int](repeating: 0, count: b.count + 1)
        for i in 1...a.count {
            current[0] = i
            for j in 1...b.count {
                let cost = a[i - 1] == b[j - 1] ? 0 : 1
                current[j] = min(previous[j] + 1, current[j - 1] + 1, previous[j - 1] + cost)
                if i > 1, j > 1, a[i - 1] == b[j - 2], a[i - 2] == b[j - 1] {
                    current[j] = min(current[j], previousPrevious[j - 2] + 1)
                }
            }
            (previousPrevious, previous, current) = (previous, current, previousPrevious)
        }
        return previous[b.count]
    }
}
