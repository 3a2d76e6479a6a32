import AESChatCrypto

/// Why a received envelope was not accepted, or what it revealed about the stream.
public enum OpenedMessage: Equatable, Sendable {
    /// Authentic and new. `missing` counts messages of this session skipped since the last one
    /// (or, for a session that must have started in the receiver's presence, before the first).
    case content(MessageContent, missing: UInt64)
    /// Failed authentication (or was malformed): never shown as text.
    case tampered(String)
    /// Failed authentication in a session of the sender that never opened here: what a sender holding a different
    /// room key produces (a message altered on the way looks the same). Never shown as text.
    case differentKey(String)
    /// Authentic but already seen, from a session this sender has left behind, or sent too long
    /// ago (or too far ahead) to be told apart from a replay.
    case replayed(String)

    /// Whether the envelope was refused (tampered, another key or a replay).
    public var isRefused: Bool {
        if case .content = self { return false }
        return true
    }
}

/// Opens messages from every sender of one stream kind (room messages, or private messages to
/// this member). Keeps, per sender, the current session and the next counter expected, so replays
/// and gaps are seen. Not thread-safe; one per client and stream kind.
public final class RoomKeyOpener {
    private struct SenderState {
        var sessionID: [UInt8]
        var cipher: AESGCM
        var nextCounter: UInt64
        var retiredSessions: [[UInt8]]
    }

    private let roomKey: RoomKey
    private let room: String
    private let clock: () -> UInt64
    private var senders: [String: SenderState] = [:]
    /// Retired session ids remembered per sender.
    static let retiredSessionLimit = 64

    /// Creates an opener for `room`.
    /// - Parameter clock: the wall clock in milliseconds since 1970 (tests pass their own).
    public init(roomKey: RoomKey, room: String, clock: @escaping () -> UInt64 = WallClock.milliseconds) {
        self.roomKey = roomKey
        self.room = room
        self.clock = clock
    }

    /// Authenticates and decrypts one envelope from `sender` (the name the relay reports).
    /// Nothing of the plaintext is used unless the tag verifies.
    /// - Parameters:
    ///   - recipient: this member's name for a private message; nil for a room message.
    ///   - sessionMayBeUnderway: whether `sender`'s first session seen here may have started
    ///     before this member could see it (the sender was in the room before this member joined).
    ///     When false, or for any later session, a first counter above 0 is reported as missing.
    public func open(
        _ envelope: ArraySlice<UInt8>, from sender: String, to recipient: String? = nil,
        sessionMayBeUnderway: Bool = true
    ) -> OpenedMessage {
        guard
            envelope.count >= RoomKeyEnvelope.minimumSize || envelope.first == EnvelopeKind.roomKeyFirstVersion.rawValue
        else {
            return .tampered("message of \(envelope.count) bytes is too short to be genuine")
        }
        var reader = ByteReader(envelope)
        do {
            let kind = try reader.readUInt8("kind")
            guard kind == EnvelopeKind.roomKey.rawValue else {
                if kind == EnvelopeKind.roomKeyFirstVersion.rawValue {
                    return .tampered(
                        "message in the first room-key format, which this version no longer accepts "
                            + "(\(sender) runs an older aeschat?)")
                }
                return .tampered(
                    "unknown envelope kind 0x\(String(kind, radix: 16)) (is the sender using a different key mode?)")
            }
            let sessionID = Array(try reader.readBytes(RoomKeyEnvelope.sessionIDSize, "session id"))
            let counter = try reader.readUInt64("counter")
            let sentAt = try reader.readUInt64("sent at")
            let sealed = Array(reader.readRemaining())
            let header = envelope.prefix(RoomKeyEnvelope.headerSize)
            let aad = RoomKeyEnvelope.associatedData(header: header, room: room, sender: sender, recipient: recipient)
            let known = senders[sender]
            if let known, known.retiredSessions.contains(where: { constantTimeEquals($0, sessionID) }) {
                return .replayed("message from an earlier session of \(sender) refused")
            }
            let isCurrentSession = known.map { constantTimeEquals($0.sessionID, sessionID) } ?? false
            if isCurrentSession, let known, counter < known.nextCounter {
                return .replayed("message \(counter) from \(sender) was already received")
            }
            // The last counter would leave no next one: a wrapped next counter would accept replays.
            guard counter < UInt64.max else { return .tampered("message from \(sender) at the last counter refused") }
            let cipher: AESGCM
            if isCurrentSession, let known {
                cipher = known.cipher
            } else {
                cipher = try AESGCM(
                    key: RoomKeyEnvelope.messageKey(
                        roomKey: roomKey, sessionID: sessionID[...], room: room, sender: sender))
            }
            // Authenticate before anything else: forged ids cannot evict the real session, and
            // a forged time cannot raise a false alarm.
            let plaintext: [UInt8]
            do {
                plaintext = try cipher.open(sealed, nonce: RoomKeyEnvelope.nonce(counter: counter), authenticating: aad)
            } catch {
                // Within a session that opened before, only an altered message fails; a session never opened here is
                // most likely sealed under another room key.
                return isCurrentSession
                    ? .tampered("message from \(sender) failed authentication")
                    : .differentKey(
                        "cannot open \(sender)'s message: different room key? (\(sender) may have joined with "
                            + "another key file than yours; or the message was altered on the way)")
            }
            if let stale = staleness(sentAt: sentAt, from: sender) { return .replayed(stale) }
            let missing: UInt64
            if isCurrentSession, var state = known {
                missing = counter - state.nextCounter
                state.nextCounter = counter + 1
                senders[sender] = state
            } else {
                // A new session: it starts at counter 0 unless it may have been under way before
                // this member could see it.
                missing = known == nil && sessionMayBeUnderway ? 0 : counter
                var adopted = SenderState(
                    sessionID: sessionID, cipher: cipher, nextCounter: counter + 1, retiredSessions: [])
                if let known {
                    adopted.retiredSessions = (known.retiredSessions + [known.sessionID]).suffix(
                        Self.retiredSessionLimit)
                }
                senders[sender] = adopted
            }
            return decode(plaintext, missing: missing)
        } catch {
            return .tampered("\(error)")
        }
    }

    /// Why an authentic message's sending time makes it unacceptable, if it does.
    private func staleness(sentAt: UInt64, from sender: String) -> String? {
        let now = clock()
        let window = RoomKeyEnvelope.freshnessWindowMilliseconds
        if now > sentAt, now - sentAt > window {
            return "message from \(sender) sent \(RoomKeyEnvelope.describeAge(milliseconds: now - sentAt)) ago "
                + "refused: older than the 10-minute window (a replay, or a clock that is far off)"
        }
        if sentAt > now, sentAt - now > window {
            return "message from \(sender) dated \(RoomKeyEnvelope.describeAge(milliseconds: sentAt - now)) ahead "
                + "refused: beyond the 10-minute window (a clock that is far off, here or there)"
        }
        return nil
    }

    private func decode(_ plaintext: [UInt8], missing: UInt64) -> OpenedMessage {
        do {
            return .content(try MessageContent(decoding: plaintext), missing: missing)
        } catch {
            return .tampered("authentic message with unreadable content: \(error.description)")
        }
    }
}
