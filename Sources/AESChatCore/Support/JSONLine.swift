/// A JSON value for the client's one-object-per-line output.
public enum JSONValue: Equatable, Sendable {
    case string(String)
    case integer(Int64)
    case bool(Bool)
    case strings([String])
    /// An array of objects, each with its keys in order.
    case objects([[(String, JSONValue)]])

    public static func == (lhs: JSONValue, rhs: JSONValue) -> Bool {
        JSONLine.encode([("v", lhs)]) == JSONLine.encode([("v", rhs)])
    }
}

/// Writes one JSON object per line with its keys in the order given, so that output is stable and
/// `event` always comes first.
public enum JSONLine {
    /// Encodes an object.
    /// - Parameter fields: keys and values, in output order.
    /// - Returns: the object on one line, without the trailing newline.
    public static func encode(_ fields: [(String, JSONValue)]) -> String {
        var out = "{"
        for (index, (key, value)) in fields.enumerated() {
            if index > 0 { out += "," }
            appendString(key, to: &out)
            out += ":"
            switch value {
            case .string(let text): appendString(text, to: &out)
            case .integer(let number): out += String(number)
            case .bool(let flag): out += flag ? "true" : "false"
            case .strings(let list):
                out += "["
                for (position, item) in list.enumerated() {
                    if position > 0 { out += "," }
                    appendString(item, to: &out)
                }
                out += "]"
            case .objects(let list):
                out += "["
                for (position, object) in list.enumerated() {
                    if position > 0 { out += "," }
                    out += encode(object)
                }
                out += "]"
            }
        }
        return out + "}"
    }

    /// Appends a JSON string literal: quotes, backslashes and every control character escaped,
    /// DEL, C1 controls and U+2028/U+2029 too, so that a line never breaks or carries a raw
    /// escape sequence.
    static func appendString(_ text: String, to out: inout String) {
        out += "\""
        for scalar in text.unicodeScalars {
            switch scalar {
            case "\"": out += "\\\""
            case "\\": out += "\\\\"
            case "\n": out += "\\n"
            case "\r": out += "\\r"
            case "\t": out += "\\t"
            case "\u{08}": out += "\\b"
            case "\u{0C}": out += "\\f"
            default:
                let value = scalar.value
                if value < 0x20 || (0x7F...0x9F).contains(value) || value == 0x2028 || value == 0x2029 {
                    out += hexEscape(value, prefix: "\\u", minimumDigits: 4, uppercase: false)
                } else {
                    out.unicodeScalars.append(scalar)
                }
            }
        }
        out += "\""
    }
}
