/// A stable colour for each member name: the same name gets the same colour in every client and
/// every run (an FNV-1a hash of its UTF-8 bytes, not Swift's per-process seeded `hashValue`).
enum NameColor {
    /// Readable foreground colours of the 16-colour set (no black, white, or dark blue).
    static let basicPalette = [31, 32, 33, 35, 36, 91, 92, 93, 94, 95, 96]
    /// Readable, distinct colours of the 256-colour palette, on dark and light backgrounds.
    static let extendedPalette = [
        33, 39, 41, 43, 69, 75, 99, 105, 113, 135, 141, 163, 166, 169, 172, 178, 197, 203, 208, 214, 37, 71, 131, 176,
    ]

    /// The 32-bit FNV-1a hash of the name's UTF-8 bytes.
    static func hash(_ name: String) -> UInt32 {
        var value: UInt32 = 0x811C_9DC5
        for byte in name.utf8 {
            value ^= UInt32(byte)
            value = value &* 0x0100_0193
        }
        return value
    }

    /// The palette index for a name.
    static func index(of name: String, count: Int) -> Int {
        Int(hash(name) % UInt32(count))
    }
}
