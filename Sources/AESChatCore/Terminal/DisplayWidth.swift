/// How many terminal columns text takes: 2 for East Asian wide and full-width characters and for
/// emoji, 0 for combining marks, format characters and variation selectors, 1 for everything else.
///
/// Derived from Unicode scalar properties (general category, `Emoji_Presentation`) plus a table of
/// the East Asian Wide and Fullwidth blocks, which Swift does not expose. Terminals disagree on a
/// few exotic cases; this follows what glibc's `wcwidth` and tmux do for each scalar, and what
/// current terminals do for whole emoji sequences (flags, ZWJ sequences, VS16), which take two
/// columns. Pure functions, safe from any thread.
enum DisplayWidth {
    /// The width of a string: the sum of the widths of its characters.
    /// - Parameter text: text without control characters (escape those first).
    /// - Returns: the number of columns.
    static func of(_ text: some StringProtocol) -> Int {
        var total = 0
        for character in text { total += of(character) }
        return total
    }

    /// The width of one grapheme cluster.
    /// - Parameter character: a character as Swift segments them.
    /// - Returns: 0, 1 or 2 (more only for clusters terminals draw scalar by scalar).
    static func of(_ character: Character) -> Int {
        let scalars = character.unicodeScalars
        guard let first = scalars.first else { return 0 }
        if first.value < 0x7F, first.value >= 0x20, scalars.count == 1 { return 1 }
        if scalars.count == 1 { return of(first) }
        // Whole emoji sequences: a flag (two regional indicators), a ZWJ sequence, or an emoji
        // made graphic by VARIATION SELECTOR-16 take two columns.
        if isRegionalIndicator(first) { return 2 }
        if first.properties.isEmoji,
            scalars.contains(where: { $0.value == 0xFE0F || $0.value == 0x200D || isEmojiModifier($0) })
        {
            return 2
        }
        var total = 0
        for scalar in scalars { total += of(scalar) }
        return total
    }

    /// The width of one scalar as a terminal advances the cursor for it.
    /// - Parameter scalar: a Unicode scalar.
    /// - Returns: 0 for controls, combining marks and format characters, 2 for wide ones, else 1.
    static func of(_ scalar: Unicode.Scalar) -> Int {
        let value = scalar.value
        if value < 0x20 || (0x7F...0x9F).contains(value) { return 0 }
        if value < 0x7F { return 1 }
        if isZeroWidth(scalar) { return 0 }
        if isWide(scalar) { return 2 }
        return 1
    }

    /// Combining marks, format characters (ZWJ, bidi controls), the zero-width space and the
    /// Hangul medial vowels and final consonants that join a leading consonant.
    static func isZeroWidth(_ scalar: Unicode.Scalar) -> Bool {
        let value = scalar.value
        if (0x1160...0x11FF).contains(value) || (0xD7B0...0xD7FF).contains(value) { return true }
        if value == 0x200B { return true }
        switch scalar.properties.generalCategory {
        case .nonspacingMark, .enclosingMark, .format: return true
        default: return false
        }
    }

    /// East Asian Wide or Fullwidth, or an emoji shown as a picture by default.
    static func isWide(_ scalar: Unicode.Scalar) -> Bool {
        let value = scalar.value
        if value < 0x1100 { return false }
        if scalar.properties.isEmojiPresentation { return true }
        var low = 0
        var high = wideRanges.count - 1
        while low <= high {
            let middle = (low + high) / 2
            let range = wideRanges[middle]
            if value < range.lowerBound {
                high = middle - 1
            } else if value > range.upperBound {
                low = middle + 1
            } else {
                return true
            }
        }
        return false
    }

    private static func isRegionalIndicator(_ scalar: Unicode.Scalar) -> Bool {
        (0x1F1E6...0x1F1FF).contains(scalar.value)
    }

    private static func isEmojiModifier(_ scalar: Unicode.Scalar) -> Bool {
        (0x1F3FB...0x1F3FF).contains(scalar.value)
    }

    /// The East Asian Wide (W) and Fullwidth (F) blocks outside the emoji, sorted, from
    /// Unicode's EastAsianWidth.txt (emoji come from the `Emoji_Presentation` property instead).
    private static let wideRanges: [ClosedRange<UInt32>] = [
        0x1100...0x115F,  // Hangul Jamo initial consonants
        0x231A...0x231B, 0x2329...0x232A,  // watch, hourglass; angle brackets
        0x2E80...0x303E,  // CJK radicals, Kangxi, ideographic description, CJK symbols and punctuation
        0x3041...0x33FF,  // Hiragana, Katakana, Bopomofo, Hangul compatibility Jamo, Kanbun, CJK compatibility
        0x3400...0x4DBF,  // CJK unified ideographs extension A
        0x4E00...0x9FFF,  // CJK unified ideographs
        0xA000...0xA4CF,  // Yi
        0xA960...0xA97F,  // Hangul Jamo extended A
        0xAC00...0xD7A3,  // Hangul syllables
        0xF900...0xFAFF,  // CJK compatibility ideographs
        0xFE10...0xFE19,  // vertical forms
        0xFE30...0xFE6F,  // CJK compatibility forms, small form variants
        0xFF00...0xFF60,  // fullwidth forms
        0xFFE0...0xFFE6,  // fullwidth signs
        0x16FE0...0x16FE4, 0x16FF0...0x16FF1,  // ideographic symbols
        0x17000...0x18CFF,  // Tangut, Khitan
        0x18D00...0x18D08,
        0x1AFF0...0x1B2FF,  // Kana extended, Nushu
        0x1F200...0x1F202, 0x1F210...0x1F23B, 0x1F240...0x1F248, 0x1F250...0x1F251, 0x1F260...0x1F265,
        0x20000...0x2FFFD,  // CJK extensions B to F, compatibility supplement
        0x30000...0x3FFFD,  // CJK extensions G and H
    ]
}
