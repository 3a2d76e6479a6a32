/// Rules for member and room names: a protocol rule (docs/PROTOCOL.md), shared by the command line, the relay and
/// the client. Its own small target so that both `AESChatCLI` and `AESChatCore` can depend on it and neither on
/// the other for it.
///
/// Both alphabets are ASCII letters, digits, `-`, `_` and `.`; lengths count bytes, which equal characters for
/// this alphabet. Pure functions, safe from any thread.
public enum Names {
    /// The longest valid member name, in characters.
    package static let maxMemberNameLength = 32
    /// The longest valid room name, in characters.
    package static let maxRoomNameLength = 64

    /// Tells whether a string is a valid member name: 1 to 32 characters from ASCII letters, digits, `-`, `_`, `.`.
    ///
    /// - Parameter name: The candidate name, as typed.
    /// - Returns: `true` when the name is valid.
    public static func isValidMemberName(_ name: String) -> Bool {
        isValid(name, maxLength: maxMemberNameLength)
    }

    /// Tells whether a string is a valid room name: 1 to 64 characters from ASCII letters, digits, `-`, `_`, `.`.
    ///
    /// - Parameter name: The candidate name, as typed.
    /// - Returns: `true` when the name is valid.
    public static func isValidRoomName(_ name: String) -> Bool {
        isValid(name, maxLength: maxRoomNameLength)
    }

    private static func isValid(_ name: String, maxLength: Int) -> Bool {
        let bytes = name.utf8
        guard (1...maxLength).contains(bytes.count) else { return false }
        return bytes.allSatisfy {
            ASCII.isLetterOrDigit($0) || $0 == ASCII.hyphen || $0 == ASCII.underscore || $0 == ASCII.dot
        }
    }
}

/// ASCII byte classes used by the validators (here and in the command-line parser).
package enum ASCII {
    package static let hyphen = UInt8(ascii: "-")
    package static let underscore = UInt8(ascii: "_")
    package static let dot = UInt8(ascii: ".")
    package static let colon = UInt8(ascii: ":")

    package static func isDigit(_ byte: UInt8) -> Bool {
        (UInt8(ascii: "0")...UInt8(ascii: "9")).contains(byte)
    }

    package static func isLetter(_ byte: UInt8) -> Bool {
        (UInt8(ascii: "a")...UInt8(ascii: "z")).contains(byte) || (UInt8(ascii: "A")...UInt8(ascii: "Z")).contains(byte)
    }

    package static func isLetterOrDigit(_ byte: UInt8) -> Bool {
        isLetter(byte) || isDigit(byte)
    }

    package static func isHexDigit(_ byte: UInt8) -> Bool {
        isDigit(byte) || (UInt8(ascii: "a")...UInt8(ascii: "f")).contains(byte)
            || (UInt8(ascii: "A")...UInt8(ascii: "F")).contains(byte)
    }
}
