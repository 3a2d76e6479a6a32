public import AESChatCore
public import AESChatCrypto

/// A member of a room that holds genuine keys and uses them to send whatever it likes: sender keys
/// at any index, group messages at any index of any chain, pairwise-channel messages at any
/// counter, room-key envelopes at any counter and time, file control with any field values and
/// chunks at any index. Everything it sends authenticates, so it reaches the code that runs after
/// authentication, which parser fuzzing never does. Used by the unit tests and by the libFuzzer
/// target of `scripts/fuzz`; never by the `aeschat` command. Loop thread only.
public final class HostileMember: ConnectionHandler {
    /// The keys it holds: an identity of its own (automatic keys) or the room key.
    public enum Keys {
        case automatic(identity: Ed25519PrivateKey)
        case roomKey(RoomKey)
    }

    /// A file offer this member made, so that chunks can follow it.
    public struct OfferMade {
        public var fileID: [UInt8]
        public var key: [UInt8]
        public var chunkSize: UInt32
        public var size: UInt64
    }

    private struct Channel {
        let cipher: AESGCM
        var counter: UInt64
    }

    private struct Chain {
        let start: UInt32
        let key: [UInt8]
    }

    public let name: String
    public let room: String
    public let keys: Keys
    public let connection: any Connection
    private let session = X25519PrivateKey()
    private var decoder = FrameDecoder()
    private var channels: [String: Channel] = [:]
    /// The identity key of each other member whose profile verified: its honest view of the room.
    private var memberKeys: [String: [UInt8]] = [:]
    private var chains: [[UInt8]: Chain] = [:]
    private var roomSealers: [String: RoomKeySealer] = [:]
    /// What this member hears, opened by a genuine security layer of its own (its sends dropped).
    private let listener: any MessageSecurity
    private let heard = HeardContent()
    /// The others in the room, as the relay announced them.
    public private(set) var members: [String] = []
    /// Whether the relay has welcomed it.
    public private(set) var isRegistered = false
    /// File offers the others made to it, as `(sender, offer)`.
    public var offersHeard: [(sender: String, offer: FileOffer)] { heard.offers }
    /// Everything the others sent it that it could open (the first 1,024), in order.
    public var contentsHeard: [(sender: String, content: MessageContent)] { heard.contents }
    /// File offers it made.
    public private(set) var offersMade: [OfferMade] = []
    /// Where each chain it sent starts, by chain id.
    public var chainStarts: [[UInt8]: UInt32] { chains.mapValues(\.start) }
    /// Relay errors it received.
    public private(set) var relayErrors: [UInt16] = []

    /// Creates the member on `connection`; ``start()`` registers it.
    public init(name: String, room: String, keys: Keys, connection: any Connection) throws {
        self.name = name
        self.room = room
        self.keys = keys
        self.connection = connection
        switch keys {
        case .automatic(let identity):
            listener = try AutomaticKeySecurity(
                identity: identity, name: name, room: room, relay: "hostile", knownPeers: KnownPeers(),
                sessionKey: session)
        case .roomKey(let roomKey):
            listener = RoomKeySecurity(roomKey: roomKey, room: room, name: name)
        }
    }

    /// Sends hello.
    public func start() {
        connection.handler = self
        connection.write(
            ClientFrame.hello(version: relayProtocolVersion, name: name, room: room, profile: listener.profile)
                .encoded())
    }

    /// Sends bye and closes.
    public func leave() {
        connection.write(ClientFrame.bye.encoded())
        connection.closeAfterFlushing(timeout: .seconds(1))
    }

    // MARK: Automatic keys

    /// Sends a sender key (channel plaintext kind 0x10) for `chainID` starting at `index` to one
    /// member, and remembers the chain so that group messages on it authenticate.
    public func sendSenderKey(chainID: [UInt8], index: UInt32, chainKey: [UInt8], to member: String) {
        chains[chainID] = Chain(start: index, key: chainKey)
        var plaintext = [AutomaticKeys.senderKeyKind] + chainID
        plaintext += withUnsafeBytes(of: index.bigEndian, Array.init)
        plaintext += chainKey
        sendOverChannel(plaintext, to: member)
    }

    /// Sends `plaintext` over the pairwise channel to `member`, at `counter` (the next one when nil).
    /// Does nothing in room-key mode or before the member's session key is known.
    public func sendOverChannel(_ plaintext: [UInt8], to member: String, counter: UInt64? = nil) {
        guard var channel = channels[member] else { return }
        let used = counter ?? channel.counter
        channel.counter = max(channel.counter, used &+ 1)
        channels[member] = channel
        var envelope = [EnvelopeKind.channel.rawValue] + withUnsafeBytes(of: used.bigEndian, Array.init)
        let aad = AutomaticKeys.channelAssociatedData(counter: used, room: room, from: name, to: member)
        guard
            let sealed = try? channel.cipher.seal(
                plaintext, nonce: AutomaticKeys.counterNonce(used), authenticating: aad)
        else { return }
        envelope += sealed
        connection.write(ClientFrame.direct(to: member, payload: envelope[...]).encoded())
    }

    /// Publishes a signed group message at `index` of `chainID`: sealed with the right message key
    /// when the chain was sent with ``sendSenderKey(chainID:index:chainKey:to:)`` and the index is
    /// at most a few thousand past its start, with an arbitrary key otherwise (the signature is
    /// genuine either way). It carries `view`, or when nil this member's honest view of the room (itself and every
    /// member whose profile verified). Does nothing in room-key mode.
    package func sendGroupMessage(
        _ plaintext: [UInt8], chainID: [UInt8], index: UInt32, view: AutomaticKeys.RoomView? = nil
    ) {
        guard case .automatic(let identity) = keys else { return }
        let honest = AutomaticKeys.roomView(
            room: room, members: [(name, identity.publicKey)] + memberKeys.map { ($0.key, $0.value) })
        var messageKey = SecretBytes([UInt8](repeating: 0x5A, count: 32))
        if let chain = chains[chainID], index >= chain.start, index - chain.start <= 2_100 {
            var chainKey = SecretBytes(chain.key)
            for _ in chain.start..<index { chainKey = AutomaticKeys.ratchet(chainKey).next }
            messageKey = AutomaticKeys.ratchet(chainKey).messageKey
        }
        guard
            let envelope = try? AutomaticKeys.sealGroupMessage(
                plaintext, chainID: chainID, index: index, messageKey: messageKey, view: view ?? honest, room: room,
                sender: name, identity: identity)
        else { return }
        connection.write(ClientFrame.publish(payload: envelope[...]).encoded())
    }

    // MARK: Room key

    /// Sends a room-key envelope to the room (`recipient` nil) or one member, in the stream's
    /// current session at its next counter, or in a session of its own at `counter` and `sentAt`.
    /// Does nothing in automatic-key mode.
    public func sendRoomKeyEnvelope(
        _ content: MessageContent, to recipient: String?, counter: UInt64? = nil, sentAt: UInt64? = nil
    ) {
        guard case .roomKey(let roomKey) = keys else { return }
        let stream = recipient ?? ""
        let sealer: RoomKeySealer
        if counter != nil || sentAt != nil {
            let clock: () -> UInt64 = sentAt.map { time in { time } } ?? WallClock.milliseconds
            guard
                let made = try? RoomKeySealer(
                    roomKey: roomKey, room: room, sender: name,
                    fixedSessionID: SecureRandom.bytes(count: RoomKeyEnvelope.sessionIDSize), counter: counter ?? 0,
                    clock: clock)
            else { return }
            sealer = made
        } else {
            sealer = roomSealers[stream] ?? RoomKeySealer(roomKey: roomKey, room: room, sender: name)
            roomSealers[stream] = sealer
        }
        guard let envelope = try? sealer.seal(content, to: recipient) else { return }
        if let recipient {
            connection.write(ClientFrame.direct(to: recipient, payload: envelope[...]).encoded())
        } else {
            connection.write(ClientFrame.publish(payload: envelope[...]).encoded())
        }
    }

    // MARK: Either mode

    /// Sends content privately to one member the way its key mode does.
    public func sendPrivately(_ content: MessageContent, to member: String) {
        noteOffer(content)
        switch keys {
        case .automatic: sendOverChannel(content.encoded(), to: member)
        case .roomKey: sendRoomKeyEnvelope(content, to: member)
        }
    }

    /// Sends content to the room the way its key mode does (automatic keys: on a chain of its own,
    /// sent to every member first).
    public func sendToRoom(_ content: MessageContent) {
        noteOffer(content)
        switch keys {
        case .automatic:
            let chainID = [UInt8](repeating: 0xC1, count: AutomaticKeys.chainIDSize)
            if chains[chainID] == nil {
                for member in members {
                    sendSenderKey(chainID: chainID, index: 0, chainKey: Array(repeating: 0xC2, count: 32), to: member)
                }
                roomChainIndex = 0
            }
            sendGroupMessage(content.encoded(), chainID: chainID, index: roomChainIndex)
            roomChainIndex &+= 1
        case .roomKey:
            sendRoomKeyEnvelope(content, to: nil)
        }
    }

    private var roomChainIndex: UInt32 = 0

    private func noteOffer(_ content: MessageContent) {
        if case .fileOffer(let offer) = content {
            offersMade.append(
                OfferMade(fileID: offer.fileID, key: offer.key, chunkSize: offer.chunkSize, size: offer.size))
        }
    }

    /// Sends a chunk envelope (kind 0x04) sealed with `key`, to one member (direct) or several
    /// (multicast).
    public func sendChunk(
        fileID: [UInt8], index: UInt64, flags: UInt8, plaintext: [UInt8], key: [UInt8], to recipients: [String]
    ) {
        guard !recipients.isEmpty, recipients.count <= 255, let cipher = try? AESGCM(key: key) else { return }
        let aad = FileChunk.associatedData(fileID: fileID[...], index: index, flags: flags, sender: name)
        guard let sealed = try? cipher.seal(plaintext, nonce: FileChunk.nonce(index), authenticating: aad) else {
            return
        }
        var envelope =
            [EnvelopeKind.fileChunk.rawValue] + fileID + withUnsafeBytes(of: index.bigEndian, Array.init) + [flags]
        envelope += sealed
        if recipients.count == 1 {
            connection.write(ClientFrame.direct(to: recipients[0], payload: envelope[...]).encoded())
        } else {
            connection.write(ClientFrame.multicast(to: recipients, payload: envelope[...]).encoded())
        }
    }

    /// Sends any frame as it is.
    public func send(_ frame: ClientFrame) {
        connection.write(frame.encoded())
    }

    // MARK: ConnectionHandler

    public func connection(_ connection: any Connection, didRead bytes: UnsafeRawBufferPointer) {
        for frame in decoder.frames(after: bytes).frames {
            guard let decoded = try? RelayFrame(frame) else { break }
            handle(decoded)
        }
    }

    public func connection(_ connection: any Connection, didCloseWith error: TransportError?) {}

    private func handle(_ frame: RelayFrame) {
        switch frame {
        case .welcome(_, _, _, let entries):
            isRegistered = true
            members = entries.map(\.name)
            for entry in entries { openChannel(to: entry) }
            heard.record(listener.didRegister(members: entries))
        case .joined(let entry):
            members.append(entry.name)
            openChannel(to: entry)
            heard.record(listener.memberJoined(entry))
        case .left(let name):
            members.removeAll { $0 == name }
            channels[name] = nil
            memberKeys[name] = nil
            heard.record(listener.memberLeft(name))
        case .deliver(let from, let isDirect, let payload):
            if payload.first != EnvelopeKind.fileChunk.rawValue {
                heard.record(listener.receive(payload, from: from, isDirect: isDirect))
            }
        case .ping(let token):
            connection.write(ClientFrame.pong(token: token).encoded())
        case .error(let code, _):
            relayErrors.append(code)
        case .pong, .relayKeys:
            break
        }
    }

    private func openChannel(to entry: MemberEntry) {
        guard case .automatic = keys,
            case .valid(let identityKey, let sessionKey, _) = AutomaticKeys.checkProfile(
                entry.profile, room: room, name: entry.name),
            let shared = try? session.sharedSecret(with: sessionKey),
            let channelKeys = try? AutomaticKeys.channelKeys(
                sharedSecret: shared, room: room, me: (name, session.publicKey), peer: (entry.name, sessionKey)),
            let cipher = try? AESGCM(key: channelKeys.send)
        else { return }
        channels[entry.name] = Channel(cipher: cipher, counter: 0)
        memberKeys[entry.name] = identityKey
    }
}

/// Keeps what a hostile member's own security layer opened; drops what that layer would send.
private final class HeardContent {
    var offers: [(sender: String, offer: FileOffer)] = []
    var contents: [(sender: String, content: MessageContent)] = []
    func record(_ actions: [SecurityAction]) {
        for case .deliver(let content, let sender, _) in actions {
            if case .fileOffer(let offer) = content, offers.count < 64 { offers.append((sender, offer)) }
            if contents.count < 1024 { contents.append((sender, content)) }
        }
    }
}
