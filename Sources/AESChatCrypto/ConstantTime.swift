/// Compares two byte arrays in time that depends only on their lengths, not on their contents.
///
/// Use it for tags, MACs and other secrets, where an early exit would tell an attacker how many leading bytes match.
///
/// - Parameters:
///   - a: The first bytes.
///   - b: The second bytes.
/// - Returns: `true` when both have the same length and the same bytes.
public func constantTimeEquals(_ a: [UInt8], _ b: [UInt8]) -> Bool {
    a.withUnsafeBytes { first in
        b.withUnsafeBytes { second in
            constantTimeEquals(first, second)
        }
    }
}

/// Compares two buffers in time that depends only on their lengths, not on their contents.
///
/// - Parameters:
///   - a: The first bytes.
///   - b: The second bytes.
/// - Returns: `true` when both have the same length and the same bytes.
public func constantTimeEquals(_ a: UnsafeRawBufferPointer, _ b: UnsafeRawBufferPointer) -> Bool {
    guard a.count == b.count else { return false }
    var difference: UInt8 = 0
    for index in 0..<a.count {
        difference |= a[index] ^ b[index]
    }
    return difference == 0
}
