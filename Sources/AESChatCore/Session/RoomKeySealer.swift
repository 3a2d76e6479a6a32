public import AESChatCrypto

/// Seals one sender's messages under the room key: to the room, or to one recipient. Not
/// thread-safe; one per stream.
public final class RoomKeySealer {
    private let roomKey: RoomKey
    private let room: String
    private let sender: String
    private let clock: () -> UInt64
    private var sessionID: [UInt8] = []
    private var cipher: AESGCM?
    private var counter: UInt64 = 0

    /// Starts a sender session with a fresh random session id.
    /// - Parameter clock: the wall clock in milliseconds since 1970 (tests pass their own).
    public init(
        roomKey: RoomKey, room: String, sender: String,
        clock: @escaping () -> UInt64 = WallClock.milliseconds
    ) {
        self.roomKey = roomKey
        self.room = room
        self.sender = sender
        self.clock = clock
    }

    /// Starts at a given session id and counter: only for the fixed test vectors of
    /// docs/PROTOCOL.md and for tests that play a hostile member. Real sessions always draw their
    /// id at random.
    package init(
        roomKey: RoomKey, room: String, sender: String, fixedSessionID: [UInt8], counter: UInt64,
        clock: @escaping () -> UInt64 = WallClock.milliseconds
    ) throws(CryptoError) {
        self.roomKey = roomKey
        self.room = room
        self.sender = sender
        self.clock = clock
        sessionID = fixedSessionID
        self.counter = counter
        cipher = try AESGCM(
            key: RoomKeyEnvelope.messageKey(
                roomKey: roomKey, sessionID: fixedSessionID[...], room: room, sender: sender))
    }

    /// The current session id (random; fresh for each sealer and every 2^32 messages).
    public var currentSessionID: [UInt8] { sessionID }

    /// Encrypts and authenticates one message for the room (`recipient` nil) or for one member.
    /// - Returns: the envelope to publish or send.
    /// - Throws: ``CryptoError`` if libgcrypt fails.
    public func seal(_ content: MessageContent, to recipient: String? = nil) throws(CryptoError) -> [UInt8] {
        if cipher == nil || counter >= RoomKeyEnvelope.messagesPerSession { try startSession() }
        guard let cipher else { throw .authenticationFailed }
        let header = RoomKeyEnvelope.header(sessionID: sessionID, counter: counter, sentAt: clock())
        let aad = RoomKeyEnvelope.associatedData(header: header[...], room: room, sender: sender, recipient: recipient)
        let sealed = try cipher.seal(
            content.encoded(), nonce: RoomKeyEnvelope.nonce(counter: counter), authenticating: aad)
        counter += 1
        return header + sealed
    }

    private func startSession() throws(CryptoError) {
        sessionID = SecureRandom.bytes(count: RoomKeyEnvelope.sessionIDSize)
        counter = 0
        cipher = try AESGCM(
            key: RoomKeyEnvelope.messageKey(roomKey: roomKey, sessionID: sessionID[...], room: room, sender: sender))
    }
}
