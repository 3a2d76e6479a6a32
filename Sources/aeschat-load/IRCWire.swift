#if canImport(Glibc)
    import Glibc
#endif

/// The few IRC lines the load tool writes and reads when it drives an IRC server (`--protocol irc`) with the
/// same workloads as the relay (docs/BENCHMARKS.md, *InspIRCd and ngircd*): registration (`NICK`/`USER`),
/// `JOIN`, `PRIVMSG` to the channel and `PONG`; and, from the server, what the join and delivery accounting
/// needs. Lines are parsed in place, without allocating.
enum IRCWire {
    /// What one line from the server means to the load tool.
    enum Event: Equatable {
        /// `001`: registration is complete.
        case registered
        /// `353`: one line of the channel's names (the member's own name included), with this many names.
        case names(Int)
        /// `366`: the end of the names: the member is in the channel.
        case endOfNames
        /// `JOIN`: the member itself (before `366`) or another member joined.
        case joined
        /// `PART` or `QUIT`: another member left.
        case left
        /// `PING`: the server wants a `PONG` with the same parameters (`bytes[parameters]`).
        case ping(parameters: Range<Int>)
        /// `PRIVMSG` whose text is a load payload (``appendPrivmsg(_:channel:sender:sequence:sentAt:payloadBytes:)``).
        case message(sender: Int, sequence: UInt32, sentAt: UInt64)
        /// A `PRIVMSG` whose text is not a load payload.
        case foreignMessage
        /// An error numeric (400–599): the server refused something.
        case failure(code: UInt16)
        /// `ERROR`: the server is closing the connection.
        case closing
        /// Anything else (the MOTD, `005` and the like).
        case other
    }

    /// The fixed part of a payload: the sequence number (8 hex digits), the send time (16) and the sender (4).
    static let payloadHeader = 28

    /// `NICK` and `USER` for a member named `name`.
    static func registration(name: String) -> [UInt8] {
        Array("NICK \(name)\r\nUSER \(name) 0 * :\(name)\r\n".utf8)
    }

    static func join(channel: String) -> [UInt8] { Array("JOIN \(channel)\r\n".utf8) }

    /// Appends `PRIVMSG channel :payload` whose payload is `payloadBytes` long (at least ``payloadHeader``): the
    /// sequence number, the send time and the sender's number in lowercase hexadecimal, then letters.
    static func appendPrivmsg(
        _ line: inout [UInt8], channel: [UInt8], sender: Int, sequence: UInt32, sentAt: UInt64, payloadBytes: Int
    ) {
        line.append(contentsOf: "PRIVMSG ".utf8)
        line.append(contentsOf: channel)
        line.append(contentsOf: " :".utf8)
        appendHex(&line, UInt64(sequence), digits: 8)
        appendHex(&line, sentAt, digits: 16)
        appendHex(&line, UInt64(truncatingIfNeeded: sender) & 0xFFFF, digits: 4)
        for i in payloadHeader..<max(payloadBytes, payloadHeader) { line.append(UInt8(ascii: "a") &+ UInt8(i % 26)) }
        line.append(contentsOf: "\r\n".utf8)
    }

    /// `PONG` answering the `PING` in `line`, whose parameters are `line[parameters]`.
    static func pong(_ line: UnsafeRawBufferPointer, parameters: Range<Int>) -> [UInt8] {
        Array("PONG ".utf8) + line[parameters] + Array("\r\n".utf8)
    }

    /// What `line` (one line from the server, without its CR LF) says.
    static func parse(_ line: UnsafeRawBufferPointer) -> Event {
        var offset = 0
        let count = line.count
        if count > 0 && line[0] == UInt8(ascii: ":") {
            // The prefix (who sent it), up to the first space.
            while offset < count && line[offset] != UInt8(ascii: " ") { offset += 1 }
            while offset < count && line[offset] == UInt8(ascii: " ") { offset += 1 }
        }
        let commandStart = offset
        while offset < count && line[offset] != UInt8(ascii: " ") { offset += 1 }
        let command = UnsafeRawBufferPointer(rebasing: line[commandStart..<offset])
        let parameters = min(offset + 1, count)..<count
        if command.count == 3, let code = numeric(command) {
            switch code {
            case 1: return .registered
            case 353: return .names(countWords(trailing(line, from: offset)))
            case 366: return .endOfNames
            case 400..<600: return .failure(code: code)
            default: return .other
            }
        }
        if equals(command, "PRIVMSG") { return payload(trailing(line, from: offset)) }
        if equals(command, "JOIN") { return .joined }
        if equals(command, "PART") || equals(command, "QUIT") { return .left }
        if equals(command, "PING") { return .ping(parameters: parameters) }
        if equals(command, "ERROR") { return .closing }
        return .other
    }

    /// The trailing parameter (after the first ` :` at or after `from`), or an empty buffer.
    static func trailing(_ line: UnsafeRawBufferPointer, from: Int) -> UnsafeRawBufferPointer {
        var offset = from
        while offset + 1 < line.count {
            if line[offset] == UInt8(ascii: " ") && line[offset + 1] == UInt8(ascii: ":") {
                return UnsafeRawBufferPointer(rebasing: line[(offset + 2)...])
            }
            offset += 1
        }
        return UnsafeRawBufferPointer(rebasing: line[line.count...])
    }

    private static func payload(_ text: UnsafeRawBufferPointer) -> Event {
        guard text.count >= payloadHeader, let sequence = hex(text, 0, 8), let sentAt = hex(text, 8, 16),
            let sender = hex(text, 24, 4)
        else { return .foreignMessage }
        return .message(sender: Int(sender), sequence: UInt32(sequence), sentAt: sentAt)
    }

    private static func numeric(_ command: UnsafeRawBufferPointer) -> UInt16? {
        var value: UInt16 = 0
        for byte in command {
            guard byte >= UInt8(ascii: "0") && byte <= UInt8(ascii: "9") else { return nil }
            value = value * 10 + UInt16(byte - UInt8(ascii: "0"))
        }
        return value
    }

    private static func countWords(_ text: UnsafeRawBufferPointer) -> Int {
        var words = 0
        var inWord = false
        for byte in text {
            let space = byte == UInt8(ascii: " ")
            if !space && !inWord { words += 1 }
            inWord = !space
        }
        return words
    }

    private static func equals(_ bytes: UnsafeRawBufferPointer, _ word: StaticString) -> Bool {
        guard bytes.count == word.utf8CodeUnitCount else { return false }
        let expected = UnsafeRawBufferPointer(start: word.utf8Start, count: word.utf8CodeUnitCount)
        for index in 0..<bytes.count where bytes[index] != expected[index] { return false }
        return true
    }

    private static func hex(_ text: UnsafeRawBufferPointer, _ start: Int, _ digits: Int) -> UInt64? {
        var value: UInt64 = 0
        for index in start..<(start + digits) {
            let byte = text[index]
            let digit: UInt8
            switch byte {
            case UInt8(ascii: "0")...UInt8(ascii: "9"): digit = byte - UInt8(ascii: "0")
            case UInt8(ascii: "a")...UInt8(ascii: "f"): digit = byte - UInt8(ascii: "a") + 10
            default: return nil
            }
            value = value << 4 | UInt64(digit)
        }
        return value
    }

    private static func appendHex(_ line: inout [UInt8], _ value: UInt64, digits: Int) {
        let alphabet: StaticString = "0123456789abcdef"
        for shift in stride(from: (digits - 1) * 4, through: 0, by: -4) {
            line.append(alphabet.utf8Start[Int((value >> UInt64(shift)) & 0xF)])
        }
    }
}
