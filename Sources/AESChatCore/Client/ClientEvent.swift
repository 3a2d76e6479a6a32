#if canImport(Glibc)
    import Glibc
#elseif canImport(Darwin)
    import Darwin
#endif

/// Something the client shows its user. The JSON form of each is specified in docs/CLI.md and
/// kept stable: later versions add events and fields, never remove these.
public enum ClientEvent: Equatable, Sendable {
    /// Registration is done; `members` are the others already present.
    case ready(name: String, room: String, members: [String])
    case joined(name: String)
    case left(name: String)
    case message(from: String, text: String, isPrivate: Bool)
    /// Something the user must notice: `kind` is `tampered`, `replay`, `missing` or, later,
    /// `key-changed`.
    case warning(kind: String, name: String, message: String)
    case error(message: String)

    /// The one-line JSON form.
    public var json: String {
        switch self {
        case .ready(let name, let room, let members):
            JSONLine.encode([
                ("event", .string("ready")), ("name", .string(name)), ("room", .string(room)),
                ("members", .strings(members)),
            ])
        case .joined(let name):
            JSONLine.encode([("event", .string("joined")), ("name", .string(name))])
        case .left(let name):
            JSONLine.encode([("event", .string("left")), ("name", .string(name))])
        case .message(let from, let text, let isPrivate):
            isPrivate
                ? JSONLine.encode([
                    ("event", .string("message")), ("from", .string(from)), ("text", .string(text)),
                    ("private", .bool(true)),
                ])
                : JSONLine.encode([("event", .string("message")), ("from", .string(from)), ("text", .string(text))])
        case .warning(let kind, let name, let message):
            JSONLine.encode([
                ("event", .string("warning")), ("kind", .string(kind)), ("name", .string(name)),
                ("message", .string(message)),
            ])
        case .error(let message):
            JSONLine.encode([("event", .string("error")), ("message", .string(message))])
        }
    }

    /// The human form, without timestamp; every piece of network text passes through
    /// ``TerminalText/escapeControls(_:)``.
    public var humanText: String {
        let clean = TerminalText.escapeControls
        switch self {
        case .ready(let name, let room, let members):
            let present =
                members.isEmpty ? "nobody else is here yet" : "here: " + members.map(clean).joined(separator: ", ")
            return "* you are \(clean(name)) in \(clean(room)); \(present)"
        case .joined(let name):
            return "* \(clean(name)) joined"
        case .left(let name):
            return "* \(clean(name)) left"
        case .message(let from, let text, let isPrivate):
            return isPrivate ? "*\(clean(from))* \(clean(text))" : "<\(clean(from))> \(clean(text))"
        case .warning(let kind, let name, let message):
            return "! \(kind) from \(clean(name)): \(clean(message))"
        case .error(let message):
            return "! error: \(clean(message))"
        }
    }
}

/// Where the client's events go.
public protocol ClientOutput: AnyObject {
    /// Shows one event.
    func emit(_ event: ClientEvent)
}

/// Writes events as lines to a file descriptor (standard output by default): JSON objects with
/// `--json`, otherwise readable lines such as `[14:02] <alice> hello`.
public final class LineOutput: ClientOutput {
    /// How events are written.
    public enum Style: Sendable {
        case human
        case json
    }

    private let style: Style
    private let descriptor: Int32
    private let clock: () -> (hour: Int, minute: Int)

    /// Creates an output.
    /// - Parameters:
    ///   - style: human lines or JSON.
    ///   - descriptor: where to write; standard output by default.
    ///   - clock: the local time for timestamps (a seam for tests).
    public init(
        style: Style, descriptor: Int32 = 1, clock: @escaping () -> (hour: Int, minute: Int) = LineOutput.localTime
    ) {
        self.style = style
        self.descriptor = descriptor
        self.clock = clock
    }

    /// The current local hour and minute.
    public static func localTime() -> (hour: Int, minute: Int) {
        var now = time(nil)
        var parts = tm()
        localtime_r(&now, &parts)
        return (Int(parts.tm_hour), Int(parts.tm_min))
    }

    /// Formats an event as the line this output writes (without the newline).
    public func line(for event: ClientEvent) -> String {
        switch style {
        case .json:
            return event.json
        case .human:
            if case .message = event {
                let (hour, minute) = clock()
                let stamp = (hour < 10 ? "0" : "") + String(hour) + ":" + (minute < 10 ? "0" : "") + String(minute)
                return "[\(stamp)] " + event.humanText
            }
            return event.humanText
        }
    }

    public func emit(_ event: ClientEvent) {
        var bytes = Array(line(for: event).utf8)
        bytes.append(0x0A)
        var written = 0
        while written < bytes.count {
            let count = bytes.withUnsafeBytes { raw in
                System.retryingInterrupts { Glibc_write(descriptor, raw.baseAddress! + written, raw.count - written) }
            }
            if count <= 0 { return }
            written += count
        }
    }
}
