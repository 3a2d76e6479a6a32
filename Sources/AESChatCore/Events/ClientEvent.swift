/// Something the client shows its user. The JSON form of each is specified in docs/CLI.md and
/// kept stable: later versions add events and fields, never remove these.
public enum ClientEvent: Equatable, Sendable {
    /// Registration is done; `members` are the others already present; `fingerprint` is the
    /// user's own identity fingerprint (automatic keys only).
    case ready(name: String, room: String, members: [String], fingerprint: String?)
    case joined(name: String)
    /// A member who left (or was lost with this client's own connection) within the last few minutes arrived again
    /// with the same identity key (with a pre-shared room key, the same name; see ``RecentDepartures``). JSON: a
    /// `joined` event with `"back":true`.
    case back(name: String)
    case left(name: String)
    case message(from: String, text: String, isPrivate: Bool)
    /// A `/me` action.
    case action(from: String, text: String, isPrivate: Bool)
    /// Something the user must notice: `kind` is `tampered`, `replay`, `missing`,
    /// `undecryptable` or `key-changed`.
    case warning(kind: String, name: String, message: String)
    /// Pre-shared key: a message from `name` failed authentication in a session of theirs that never opened here,
    /// which is what a different room key looks like (or a message altered on the way). JSON: a `warning` of kind
    /// `tampered` with `"cause":"different-room-key"`.
    case differentRoomKey(name: String, message: String)
    case error(message: String)
    /// The connection to the relay was lost, or the relay ended the session, and the client will connect again on
    /// its own (``reconnecting(attempt:delayMilliseconds:reason:)`` follows unless the session ends). JSON: an
    /// `error` event, as it always was; the interactive terminal shows it in the status row rather than in red.
    case connectionLost(reason: String)
    /// A member's identity as this client sees it, announced when it arrives (automatic keys).
    case member(MemberStatus)
    /// The answer to `/who`: the others, and `you` (the user, with their own fingerprint in automatic-key mode).
    case who(members: [MemberStatus], you: MemberStatus? = nil)
    /// The answer to `/verify NAME`: what both people compare out of band; `yours` is the user's own
    /// fingerprint, which the other person sees as theirs.
    case verify(name: String, fingerprint: String, safetyNumber: String, yours: String? = nil)
    /// The room code over everyone present; sent at ready and whenever it changes (`asked` false), and as the
    /// answer to `/verify room` (`asked` true).
    case roomCode(code: String, members: Int, asked: Bool = false)
    /// The answer to `/verify` alone: the user's own name and identity fingerprint.
    case identity(name: String, fingerprint: String)
    /// The answer to `/verify relay`: the relay's address as typed, its key's fingerprint, and when and how that
    /// key was pinned (`how` is the `known_relays` field: `join-line`, `typed-fingerprint`, `first-use`,
    /// `announced-by-…`; both nil when no pin was saved).
    case relayKey(address: String, fingerprint: String, pinnedAt: String?, how: String?)
    /// The members whose identity key changed since the user verified or messaged them: the user's room
    /// messages reach everyone else but are held for them until `/trust NAME`. Sent whenever the list changes
    /// (empty once nothing is held any more). `all`: the user chose `/hold all`, so every room line is held (sent to
    /// nobody) while these keys wait.
    case holding(members: [String], all: Bool = false)
    /// `/trust NAME` took effect.
    case trusted(name: String, fingerprint: String)
    /// A notice for the user (help text, a held message, …).
    case info(String)
    /// A member offers a file and this user is asked whether to take it (`--accept-files ask`):
    /// `/accept NUMBER` or `/decline NUMBER` answers; no answer within `seconds` declines.
    case fileOffered(number: Int, name: String, from: String, bytes: UInt64, seconds: Int)
    /// `/transfers`: every transfer in both directions (empty when there is none).
    case transfers([TransferStatus])
    /// A file is coming (`resumeFrom`: bytes already held from an interrupted attempt).
    case fileIncoming(name: String, from: String, bytes: UInt64, resumeFrom: UInt64)
    /// Progress of a transfer; `peer` is the sender when receiving, the recipient when sending.
    /// `bytesPerSecond` is 0 before the end while nothing moved for a while: the transfer stalled.
    case fileProgress(name: String, peer: String, sending: Bool, bytes: UInt64, total: UInt64, bytesPerSecond: UInt64)
    /// A file was verified and saved in the inbox.
    case fileReceived(from: String, name: String, path: String, bytes: UInt64, sha256: String)
    /// A file reached these members, each of whom verified it.
    case fileSent(name: String, bytes: UInt64, to: [String])
    /// A transfer failed: `from` is the sender, `to` the receiver concerned when known.
    case fileFailed(name: String, from: String, to: String?, reason: String)
    /// The connection to the relay was lost; the next attempt follows after the delay.
    case reconnecting(attempt: Int, delayMilliseconds: Int, reason: String)
    /// Registered again after a loss, with fresh session keys; queued lines follow.
    case reconnected
    /// `from` sent an authentic content of a kind this version cannot show (a newer client's), `count` so far; it
    /// was ignored. Shown at the first one of each kind and sender, then at 10, 100, 1,000, …
    case unsupported(from: String, kind: UInt8, count: Int)

    /// The one-line JSON form.
    public var json: String {
        switch self {
        case .ready(let name, let room, let members, let fingerprint):
            var fields: [(String, JSONValue)] = [
                ("event", .string("ready")), ("name", .string(name)), ("room", .string(room)),
                ("members", .strings(members)),
            ]
            if let fingerprint { fields.append(("fingerprint", .string(fingerprint))) }
            return JSONLine.encode(fields)
        case .joined(let name):
            return JSONLine.encode([("event", .string("joined")), ("name", .string(name))])
        case .back(let name):
            return JSONLine.encode([("event", .string("joined")), ("name", .string(name)), ("back", .bool(true))])
        case .left(let name):
            return JSONLine.encode([("event", .string("left")), ("name", .string(name))])
        case .message(let from, let text, let isPrivate), .action(let from, let text, let isPrivate):
            var fields: [(String, JSONValue)] = [
                ("event", .string("message")), ("from", .string(from)), ("text", .string(text)),
            ]
            if isPrivate { fields.append(("private", .bool(true))) }
            if case .action = self { fields.append(("action", .bool(true))) }
            return JSONLine.encode(fields)
        case .warning(let kind, let name, let message):
            return JSONLine.encode([
                ("event", .string("warning")), ("kind", .string(kind)), ("name", .string(name)),
                ("message", .string(message)),
            ])
        case .differentRoomKey(let name, let message):
            return JSONLine.encode([
                ("event", .string("warning")), ("kind", .string("tampered")), ("name", .string(name)),
                ("message", .string(message)), ("cause", .string("different-room-key")),
            ])
        case .error(let message), .connectionLost(let message):
            return JSONLine.encode([("event", .string("error")), ("message", .string(message))])
        case .member(let status):
            return JSONLine.encode([("event", .string("member"))] + status.jsonFields)
        case .who(let members, let you):
            var fields: [(String, JSONValue)] = [
                ("event", .string("who")), ("members", .objects(members.map(\.jsonFields))),
            ]
            if let you {
                fields.append(("you", .string(you.name)))
                if let fingerprint = you.fingerprint { fields.append(("your-fingerprint", .string(fingerprint))) }
            }
            return JSONLine.encode(fields)
        case .verify(let name, let fingerprint, let safetyNumber, let yours):
            var fields: [(String, JSONValue)] = [
                ("event", .string("verify")), ("name", .string(name)), ("fingerprint", .string(fingerprint)),
                ("safety-number", .string(safetyNumber)),
            ]
            if let yours { fields.append(("your-fingerprint", .string(yours))) }
            return JSONLine.encode(fields)
        case .roomCode(let code, let members, _):
            return JSONLine.encode([
                ("event", .string("room-code")), ("code", .string(code)),
                ("members", .integer(Int64(clamping: members))),
            ])
        case .identity(let name, let fingerprint):
            return JSONLine.encode([
                ("event", .string("identity")), ("name", .string(name)), ("fingerprint", .string(fingerprint)),
            ])
        case .relayKey(let address, let fingerprint, let pinnedAt, let how):
            var fields: [(String, JSONValue)] = [
                ("event", .string("relay-key")), ("relay", .string(address)), ("fingerprint", .string(fingerprint)),
            ]
            if let pinnedAt { fields.append(("pinned", .string(pinnedAt))) }
            if let how { fields.append(("how", .string(how))) }
            return JSONLine.encode(fields)
        case .holding(let members, let all):
            var fields: [(String, JSONValue)] = [("event", .string("holding")), ("members", .strings(members))]
            if all { fields.append(("all", .bool(true))) }
            return JSONLine.encode(fields)
        case .unsupported(let from, let kind, let count):
            return JSONLine.encode([
                ("event", .string("unsupported")), ("from", .string(from)), ("kind", .integer(Int64(kind))),
                ("count", .integer(Int64(count))),
            ])
        case .trusted(let name, let fingerprint):
            return JSONLine.encode([
                ("event", .string("trusted")), ("name", .string(name)), ("fingerprint", .string(fingerprint)),
            ])
        case .info(let text):
            return JSONLine.encode([("event", .string("info")), ("message", .string(text))])
        case .fileOffered(let number, let name, let from, let bytes, let seconds):
            return JSONLine.encode([
                ("event", .string("file-offer")), ("id", .integer(Int64(number))), ("from", .string(from)),
                ("name", .string(name)), ("bytes", .integer(Int64(clamping: bytes))),
                ("timeout", .integer(Int64(seconds))),
            ])
        case .transfers(let list):
            return JSONLine.encode([
                ("event", .string("transfers")),
                (
                    "transfers",
                    .objects(
                        list.map { transfer in
                            [
                                ("id", .integer(Int64(transfer.number))),
                                ("direction", .string(transfer.sending ? "send" : "receive")),
                                ("name", .string(transfer.name)),
                                (transfer.sending ? "to" : "from", .string(transfer.peer)),
                                ("bytes", .integer(Int64(clamping: transfer.bytes))),
                                ("total", .integer(Int64(clamping: transfer.total))),
                                ("state", .string(transfer.state.rawValue)),
                            ]
                        })
                ),
            ])
        case .fileIncoming(let name, let from, let bytes, let resumeFrom):
            return JSONLine.encode([
                ("event", .string("file-incoming")), ("from", .string(from)), ("name", .string(name)),
                ("bytes", .integer(Int64(clamping: bytes))), ("resume-from", .integer(Int64(clamping: resumeFrom))),
            ])
        case .fileProgress(let name, let peer, let sending, let bytes, let total, let rate):
            return JSONLine.encode([
                ("event", .string("file-progress")), ("name", .string(name)), (sending ? "to" : "from", .string(peer)),
                ("direction", .string(sending ? "send" : "receive")), ("bytes", .integer(Int64(clamping: bytes))),
                ("total", .integer(Int64(clamping: total))), ("rate", .integer(Int64(clamping: rate))),
            ])
        case .fileReceived(let from, let name, let path, let bytes, let sha256):
            return JSONLine.encode([
                ("event", .string("file")), ("from", .string(from)), ("name", .string(name)), ("path", .string(path)),
                ("bytes", .integer(Int64(clamping: bytes))), ("sha256", .string(sha256)),
            ])
        case .fileSent(let name, let bytes, let to):
            return JSONLine.encode([
                ("event", .string("file-sent")), ("name", .string(name)), ("bytes", .integer(Int64(clamping: bytes))),
                ("to", .strings(to)),
            ])
        case .reconnecting(let attempt, let delay, let reason):
            return JSONLine.encode([
                ("event", .string("reconnecting")), ("attempt", .integer(Int64(clamping: attempt))),
                ("delay-ms", .integer(Int64(clamping: delay))), ("reason", .string(reason)),
            ])
        case .reconnected:
            return JSONLine.encode([("event", .string("reconnected"))])
        case .fileFailed(let name, let from, let to, let reason):
            var fields: [(String, JSONValue)] = [
                ("event", .string("file-failed")), ("name", .string(name)), ("from", .string(from)),
            ]
            if let to { fields.append(("to", .string(to))) }
            fields.append(("reason", .string(reason)))
            return JSONLine.encode(fields)
        }
    }

    /// The human form, without timestamp; every piece of network text passes through
    /// ``TerminalText/escapeControls(_:)``.
    public var humanText: String {
        let clean = TerminalText.escapeControls
        switch self {
        case .ready(let name, let room, let members, let fingerprint):
            let present =
                members.isEmpty ? "nobody else is here yet" : "here: " + members.map(clean).joined(separator: ", ")
            let identity = fingerprint.map { "; your fingerprint is \(clean($0))" } ?? ""
            return "* you are \(clean(name)) in \(clean(room)); \(present)\(identity)"
        case .joined(let name):
            return "* \(clean(name)) joined"
        case .back(let name):
            return "* \(clean(name)) is back"
        case .left(let name):
            return "* \(clean(name)) left"
        case .message(let from, let text, let isPrivate):
            return isPrivate ? "*\(clean(from))* \(clean(text))" : "<\(clean(from))> \(clean(text))"
        case .action(let from, let text, let isPrivate):
            return (isPrivate ? "(private) " : "") + "* \(clean(from)) \(clean(text))"
        case .warning("undelivered", let name, let message):
            return "! not delivered to \(clean(name)): \(clean(message))"
        case .warning("roster-mismatch", _, let message):
            // The message names the member and says what to do.
            return "! \(clean(message))"
        case .warning(let kind, let name, let message):
            return "! \(kind) from \(clean(name)): \(clean(message))"
        case .differentRoomKey(_, let message):
            return "! \(clean(message))"
        case .error(let message), .connectionLost(let message):
            return "! error: \(clean(message))"
        case .member(let status):
            switch status.trust {
            case .new:
                let name = clean(status.name)
                let fingerprint = status.fingerprint.map { " (\(clean($0)))" } ?? ""
                return "* \(name) is new to you\(fingerprint); /verify \(name) to check them"
            case .changed: return "! \(status.humanText)"
            default: return "* \(status.humanText)"
            }
        case .who(let members, let you):
            let yourself = you.map { ["you (\($0.ownHumanText))"] } ?? []
            let others = members.map(\.humanText)
            return others.isEmpty && yourself.isEmpty
                ? "* nobody else is here"
                : "* here: " + (yourself + (others.isEmpty ? ["nobody else"] : others)).joined(separator: ", ")
        case .verify(let name, let fingerprint, let safetyNumber, let yours):
            let who = clean(name)
            let fingerprints =
                yours.map { "\(who)'s fingerprint is \(clean(fingerprint)) and yours is \(clean($0))" }
                ?? "\(who)'s fingerprint is \(clean(fingerprint))"
            return "* to verify \(who), compare with them in person or on a call, not in this chat: read the safety "
                + "number \(clean(safetyNumber)) aloud (you both see the same one), or check that \(fingerprints). "
                + "If it matches, type /trust \(who); if not, do not trust: someone may be in between"
        case .roomCode(let code, let members, let asked):
            let count = "\(members) \(members == 1 ? "member" : "members"), you included"
            return asked
                ? "* room code \(clean(code)) (\(count)): everyone who sees the same members sees the same code; "
                    + "compare it with the others aloud to be sure nobody you cannot see is in the room"
                : "* room code is now \(clean(code)) (\(count)); compare it with the others: /verify room"
        case .identity(let name, let fingerprint):
            return "* your fingerprint is \(clean(fingerprint)); the others check it with /verify \(clean(name)). "
                + "/verify NAME checks someone, /verify room the room, /verify relay the relay"
        case .relayKey(let address, let fingerprint, let pinnedAt, let how):
            let pinned = pinnedAt.map { " on \(clean($0))" } ?? ""
            return "* the relay \(clean(address)) holds the key \(clean(fingerprint)), pinned\(pinned) "
                + Self.relayPinExplanation(how)
        case .holding(let members, let all):
            guard !members.isEmpty else { return "* your messages are no longer held for anyone" }
            let names = members.map(clean).joined(separator: ", ")
            let first = clean(members[0])
            if all {
                return "* your messages are held for everyone (/hold all): \(names)'s identity key changed since you "
                    + "verified or messaged them. Check with /verify \(first), then /trust \(first) to send what was "
                    + "held; /hold changed holds them for \(names) alone"
            }
            return "* your messages are held for \(names): \(members.count == 1 ? "their" : "each one's") identity key "
                + "changed since you verified or messaged them; the others still get your messages. "
                + "Check with /verify \(first), then /trust \(first) to send them what was held"
        case .unsupported(let from, let kind, let count):
            let hex = String(kind, radix: 16)
            let kindText = "content kind 0x" + (hex.count == 1 ? "0" + hex : hex)
            let times = count == 1 ? "" : " (\(count) so far)"
            return "* \(clean(from))'s client sent something this version cannot show (\(kindText))\(times); ignored. "
                + "A newer aeschat shows it"
        case .trusted(let name, let fingerprint):
            return "* \(clean(name)) is now verified \(MemberStatus.verifiedMark) (fingerprint \(clean(fingerprint)))"
        case .info(let text):
            return "* " + clean(text)
        case .fileOffered(let number, let name, let from, let bytes, let seconds):
            return "? \(clean(from)) offers \(clean(name)), \(Self.formatBytes(bytes)) — accept? [y/N] "
                + "(/accept \(number) or /decline \(number); declined in \(seconds) s without an answer)"
        case .transfers(let list):
            guard !list.isEmpty else { return "* no file transfers" }
            return "* file transfers:\n" + list.map { "  " + $0.humanText }.joined(separator: "\n")
        case .fileIncoming(let name, let from, let bytes, let resumeFrom):
            let resuming = resumeFrom > 0 ? ", resuming at \(Self.formatBytes(resumeFrom))" : ""
            return "* receiving \(clean(name)) (\(Self.formatBytes(bytes))) from \(clean(from))\(resuming)"
        case .fileProgress(let name, let peer, let sending, let bytes, let total, let rate):
            // Sizes come from a peer: computed without any arithmetic that could trap.
            let percent = total == 0 ? 100 : Int(Double(min(bytes, total)) * 100 / Double(total))
            let remaining = rate > 0 ? Int(clamping: (total - min(bytes, total)) / rate) : 0
            let eta = "\(remaining / 60):" + (remaining % 60 < 10 ? "0" : "") + "\(remaining % 60)"
            // Rate 0 before the end: nothing moved for a while (FileTransfers.stalledAfter).
            let speed = rate == 0 && bytes < total ? "stalled" : "\(Self.formatBytes(rate))/s, ETA \(eta)"
            return "~ \(clean(name)) \(sending ? "→" : "←") \(clean(peer)): \(percent)% "
                + "\(Self.formatBytes(bytes))/\(Self.formatBytes(total)), \(speed)"
        case .fileReceived(let from, let name, let path, let bytes, let sha256):
            return "* received \(clean(name)) from \(clean(from)) (\(Self.formatBytes(bytes)), sha256 "
                + "\(sha256.prefix(16))…) in \(clean(path))"
        case .fileSent(let name, let bytes, let to):
            return
                "* sent \(clean(name)) (\(Self.formatBytes(bytes))) to \(to.map(clean).joined(separator: ", "))"
        case .reconnecting(let attempt, let delay, let reason):
            return
                "! connection to the relay lost (\(clean(reason))); reconnecting in \(delay) ms (attempt \(attempt)); "
                + "/reconnect tries at once"
        case .reconnected:
            return "* reconnected to the relay"
        case .fileFailed(let name, let from, let to, let reason):
            let route = to.map { "from \(clean(from)) to \(clean($0))" } ?? "from \(clean(from))"
            return "! file \(clean(name)) \(route) failed: \(clean(reason))"
        }
    }

    /// How a relay key was pinned, in words, from the `known_relays` field.
    static func relayPinExplanation(_ how: String?) -> String {
        switch how {
        case "join-line"?: return "from its join line or --relay-key (the whole key was given: checked)"
        case "typed-fingerprint"?: return "after its fingerprint was checked"
        case "first-use"?:
            return "on first use, without a check: compare this fingerprint with the one the relay's operator published"
        case let how? where how.hasPrefix("announced-by-"):
            return "as announced by its previous key during a key change"
        default: return "for this session only (it could not be saved)"
        }
    }

    /// `12.3 MB`-style sizes for people.
    public static func formatBytes(_ bytes: UInt64) -> String {
        let units = ["B", "kB", "MB", "GB", "TB"]
        var value = Double(bytes)
        var unit = 0
        while value >= 1000 && unit < units.count - 1 {
            value /= 1000
            unit += 1
        }
        return unit == 0
            ? "\(bytes) B" : String(Int(value * 10) / 10) + "." + String(Int(value * 10) % 10) + " " + units[unit]
    }
}
