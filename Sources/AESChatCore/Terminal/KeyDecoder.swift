/// One thing the user did at the keyboard, decoded from the bytes a terminal sends.
enum Key: Equatable, Sendable {
    /// Printable text: one or more characters typed (or sent by an input method) at once.
    case text(String)
    /// Text pasted while bracketed paste was on; line ends are normalized to `\n`.
    case paste(String)
    case enter
    case tab
    case backTab
    case backspace
    case delete
    case left
    case right
    case up
    case down
    case home
    case end
    case pageUp
    case pageDown
    /// Alt-B, Ctrl-Left.
    case wordLeft
    /// Alt-F, Ctrl-Right.
    case wordRight
    /// Alt-Backspace.
    case deleteWordBackward
    /// Alt-D, Ctrl-Delete.
    case deleteWordForward
    /// Ctrl and a letter, `a` to `z`, for the letters no other case names (Tab is Ctrl-I, Enter
    /// Ctrl-M, Backspace Ctrl-H).
    case control(Character)
    /// The Escape key alone.
    case escape
}

/// Turns the bytes read from a terminal in raw mode into ``Key``s: UTF-8 text, control keys,
/// CSI and SS3 sequences for the cursor and editing keys (xterm, VT220 and rxvt forms), Alt as an
/// ESC prefix, and bracketed paste (`ESC [ 200 ~` … `ESC [ 201 ~`).
///
/// Bytes may arrive in any chunks: an incomplete sequence waits for the next call. A lone ESC is
/// ambiguous (the Escape key, or the start of a sequence still in flight), so the caller calls
/// ``flush()`` when no more bytes came within ``waitMilliseconds``. Unknown sequences, and strings
/// a terminal might send unasked (OSC, DCS, APC, PM, SOS), are consumed and dropped so that they
/// never become text. A value type with no I/O; not thread-safe.
struct KeyDecoder {
    /// The most bytes of one paste kept; the rest is dropped (the client refuses messages above
    /// 8 MiB anyway).
    static let maximumPasteBytes = 16 * 1024 * 1024
    /// Longest CSI, SS3 or control string accepted before it is dropped as garbage.
    static let maximumSequenceBytes = 4096

    private var pending: [UInt8] = []
    private var paste: [UInt8]?

    private static let pasteStart: [UInt8] = [0x1B, 0x5B, 0x32, 0x30, 0x30, 0x7E]
    private static let pasteEnd: [UInt8] = [0x1B, 0x5B, 0x32, 0x30, 0x31, 0x7E]

    /// Creates a decoder with nothing pending.
    init() {}

    /// How long to wait for more bytes before ``flush()``, or `nil` when nothing is pending.
    var waitMilliseconds: Int32? {
        if paste != nil { return 1000 }
        return pending.isEmpty ? nil : 40
    }

    /// Decodes bytes read from the terminal.
    /// - Parameter bytes: the next bytes, in any chunking.
    /// - Returns: the keys complete so far, in order.
    mutating func decode(_ bytes: some Sequence<UInt8>) -> [Key] {
        pending.append(contentsOf: bytes)
        var keys: [Key] = []
        decodePending(into: &keys)
        return keys
    }

    /// No more bytes came in time: a pending ESC is the Escape key, a partial UTF-8 sequence is
    /// U+FFFD, and an unfinished paste ends.
    /// - Returns: the keys the pending bytes make.
    mutating func flush() -> [Key] {
        var keys: [Key] = []
        if let collected = paste {
            paste = nil
            keys.append(.paste(Self.pastedText(collected + pending)))
            pending.removeAll()
            return keys
        }
        while !pending.isEmpty {
            if pending[0] == 0x1B {
                keys.append(.escape)
            } else {
                keys.append(.text("\u{FFFD}"))
            }
            pending.removeFirst()
            decodePending(into: &keys)
        }
        return keys
    }

    // MARK: Decoding

    private enum Step {
        /// Consumed `count` bytes, producing `key` (or nothing).
        case consumed(Int, Key?)
        /// The bytes so far are a valid prefix; wait for more.
        case incomplete
    }

    private mutating func decodePending(into keys: inout [Key]) {
        var index = 0
        var text: [UInt8] = []
        func flushText() {
            if !text.isEmpty {
                keys.append(.text(String(decoding: text, as: UTF8.self)))
                text.removeAll()
            }
        }
        while index < pending.count {
            if paste != nil {
                let used = collectPaste(from: index, into: &keys)
                index += used
                if paste != nil { break }
                continue
            }
            let byte = pending[index]
            switch byte {
            case 0x1B:
                flushText()
                switch escapeSequence(at: index) {
                case .incomplete:
                    pending.removeFirst(index)
                    return
                case .consumed(let count, let key):
                    if count == Self.pasteStart.count, pending[index..<index + count].elementsEqual(Self.pasteStart) {
                        paste = []
                    } else if let key {
                        keys.append(key)
                    }
                    index += count
                }
            case 0x0D, 0x0A:
                flushText()
                keys.append(.enter)
                index += 1
            case 0x09:
                flushText()
                keys.append(.tab)
                index += 1
            case 0x7F, 0x08:
                flushText()
                keys.append(.backspace)
                index += 1
            case 0x01...0x1A:
                flushText()
                keys.append(.control(Character(Unicode.Scalar(byte + 0x60))))
                index += 1
            case 0x00, 0x1C...0x1F:
                index += 1
            case 0x20..<0x80:
                text.append(byte)
                index += 1
            default:
                switch utf8Sequence(at: index) {
                case .incomplete:
                    flushText()
                    pending.removeFirst(index)
                    return
                case .consumed(let count, _):
                    text.append(contentsOf: pending[index..<index + count])
                    index += count
                }
            }
        }
        flushText()
        pending.removeFirst(index)
    }

    /// A UTF-8 sequence starting at a byte of 0x80 or more. Malformed bytes are consumed one at a
    /// time and become U+FFFD when the text is decoded.
    private func utf8Sequence(at index: Int) -> Step {
        let lead = pending[index]
        let length: Int
        switch lead {
        case 0xC2...0xDF: length = 2
        case 0xE0...0xEF: length = 3
        case 0xF0...0xF4: length = 4
        default: return .consumed(1, nil)
        }
        var offset = 1
        while offset < length {
            guard index + offset < pending.count else { return .incomplete }
            guard (0x80...0xBF).contains(pending[index + offset]) else { return .consumed(1, nil) }
            offset += 1
        }
        return .consumed(length, nil)
    }

    /// The sequence that starts with ESC at `index`.
    private func escapeSequence(at index: Int) -> Step {
        guard index + 1 < pending.count else { return .incomplete }
        let next = pending[index + 1]
        switch next {
        case UInt8(ascii: "["):
            return controlSequence(at: index)
        case UInt8(ascii: "O"):
            guard index + 2 < pending.count else { return .incomplete }
            let key: Key? =
                switch pending[index + 2] {
                case UInt8(ascii: "A"): .up
                case UInt8(ascii: "B"): .down
                case UInt8(ascii: "C"): .right
                case UInt8(ascii: "D"): .left
                case UInt8(ascii: "H"): .home
                case UInt8(ascii: "F"): .end
                case UInt8(ascii: "M"): .enter
                default: nil
                }
            return .consumed(3, key)
        case UInt8(ascii: "]"), UInt8(ascii: "P"), UInt8(ascii: "_"), UInt8(ascii: "^"), UInt8(ascii: "X"):
            return controlString(at: index)
        case 0x1B:
            return .consumed(1, .escape)
        case 0x7F, 0x08:
            return .consumed(2, .deleteWordBackward)
        case UInt8(ascii: "b"):
            return .consumed(2, .wordLeft)
        case UInt8(ascii: "f"):
            return .consumed(2, .wordRight)
        case UInt8(ascii: "d"):
            return .consumed(2, .deleteWordForward)
        default:
            // Escape followed by something else: the Escape key, then that byte on its own.
            return .consumed(1, .escape)
        }
    }

    /// `ESC [` parameters, intermediates and a final byte.
    private func controlSequence(at index: Int) -> Step {
        var cursor = index + 2
        while cursor < pending.count {
            let byte = pending[cursor]
            if (0x40...0x7E).contains(byte) {
                let parameters = String(decoding: pending[(index + 2)..<cursor], as: UTF8.self)
                return .consumed(cursor - index + 1, Self.key(parameters: parameters, final: byte))
            }
            guard (0x20...0x3F).contains(byte) else {
                // Not a well-formed sequence: drop what was read of it.
                return .consumed(cursor - index, nil)
            }
            cursor += 1
            if cursor - index > Self.maximumSequenceBytes { return .consumed(cursor - index, nil) }
        }
        return .incomplete
    }

    /// OSC, DCS, APC, PM or SOS: up to BEL or ST (`ESC \`), dropped whole.
    private func controlString(at index: Int) -> Step {
        var cursor = index + 2
        while cursor < pending.count {
            let byte = pending[cursor]
            if byte == 0x07 { return .consumed(cursor - index + 1, nil) }
            if byte == 0x1B {
                guard cursor + 1 < pending.count else { return .incomplete }
                return .consumed(cursor - index + (pending[cursor + 1] == UInt8(ascii: "\\") ? 2 : 1), nil)
            }
            cursor += 1
            if cursor - index > Self.maximumSequenceBytes { return .consumed(cursor - index, nil) }
        }
        return .incomplete
    }

    private static func key(parameters: String, final: UInt8) -> Key? {
        let fields = parameters.split(separator: ";", omittingEmptySubsequences: false)
        let modifier = fields.count > 1 ? Int(fields[1]) ?? 1 : 1
        // xterm modifiers: 1 + (shift 1, alt 2, ctrl 4); Alt or Ctrl make the arrows move by word.
        let byWord = modifier > 1 && (modifier - 1) & 0b110 != 0
        switch final {
        case UInt8(ascii: "A"): return .up
        case UInt8(ascii: "B"): return .down
        case UInt8(ascii: "C"): return byWord ? .wordRight : .right
        case UInt8(ascii: "D"): return byWord ? .wordLeft : .left
        case UInt8(ascii: "H"): return .home
        case UInt8(ascii: "F"): return .end
        case UInt8(ascii: "Z"): return .backTab
        case UInt8(ascii: "~"):
            switch fields.first.flatMap({ Int($0) }) {
            case 1, 7: return .home
            case 4, 8: return .end
            case 3: return byWord ? .deleteWordForward : .delete
            case 5: return .pageUp
            case 6: return .pageDown
            default: return nil
            }
        default:
            return nil
        }
    }

    /// Adds paste bytes from `index` on; returns how many were used. Leaves `paste` set while the
    /// end marker has not arrived (keeping a possible partial marker pending).
    private mutating func collectPaste(from index: Int, into keys: inout [Key]) -> Int {
        let marker = Self.pasteEnd
        var cursor = index
        while cursor + marker.count <= pending.count {
            if pending[cursor] == 0x1B, pending[cursor..<cursor + marker.count].elementsEqual(marker) {
                appendToPaste(pending[index..<cursor])
                keys.append(.paste(Self.pastedText(paste ?? [])))
                paste = nil
                return cursor - index + marker.count
            }
            cursor += 1
        }
        // Keep a tail that could be the start of the end marker.
        var keep = 0
        for length in stride(from: min(marker.count - 1, pending.count - index), to: 0, by: -1)
        where pending[(pending.count - length)...].elementsEqual(marker[0..<length]) {
            keep = length
            break
        }
        appendToPaste(pending[index..<(pending.count - keep)])
        return pending.count - keep - index
    }

    private mutating func appendToPaste(_ bytes: ArraySlice<UInt8>) {
        guard var collected = paste else { return }
        paste = nil
        let room = Self.maximumPasteBytes - collected.count
        collected.append(contentsOf: bytes.prefix(max(0, room)))
        paste = collected
    }

    /// Pasted bytes as text: CRLF and CR become LF.
    private static func pastedText(_ bytes: [UInt8]) -> String {
        var normalized: [UInt8] = []
        normalized.reserveCapacity(bytes.count)
        var index = 0
        while index < bytes.count {
            let byte = bytes[index]
            if byte == 0x0D {
                normalized.append(0x0A)
                if index + 1 < bytes.count, bytes[index + 1] == 0x0A { index += 1 }
            } else {
                normalized.append(byte)
            }
            index += 1
        }
        return String(decoding: normalized, as: UTF8.self)
    }
}
