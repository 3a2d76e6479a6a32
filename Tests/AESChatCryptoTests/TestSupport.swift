@testable import AESChatCrypto

/// Decodes hex written in a test, trapping on a typo.
func hex(_ text: String) -> [UInt8] {
    guard let bytes = Hex.decode(text.filter { !$0.isWhitespace }) else {
        fatalError("test vector is not hex: \(text)")
    }
    return bytes
}

/// The UTF-8 bytes of `text`.
func utf8(_ text: String) -> [UInt8] {
    Array(text.utf8)
}

/// `bytes` with bit `bit` of byte `index` flipped.
func flippingBit(_ bit: Int = 0, ofByte index: Int, in bytes: [UInt8]) -> [UInt8] {
    var copy = bytes
    copy[index] ^= UInt8(1) << UInt8(bit)
    return copy
}
