public import AESChatCrypto

/// Automatic end-to-end keys: a long-term Ed25519 identity, a fresh X25519 session key per
/// connection (signed by the identity), pairwise channels to every member, and a per-sender chain
/// key distributed over them, ratcheted per message and replaced whenever someone leaves, every
/// 100 messages and every 24 hours. Names are pinned to identities on first use.
/// See docs/PROTOCOL.md section 6 and docs/SECURITY.md. Loop thread only.
public final class AutomaticKeySecurity: MessageSecurity {
    /// Messages sent on one chain before it is replaced.
    public static let messagesPerChain: UInt32 = 100
    /// Age after which a chain is replaced.
    public static let chainLifetime: Duration = .seconds(24 * 60 * 60)
    /// Retired chain ids remembered per member, to call replays by their name.
    static let retiredChainLimit = 64

    private final class Peer {
        let name: String
        var identityKey: [UInt8]?
        var trust: MemberTrust
        var channel: PairwiseChannel?
        var chain: IncomingChain?
        var retiredChains: [[UInt8]] = []
        var undecryptable = 0
        /// A verified member whose key changed: nothing is sent to the room until `/trust`.
        var blocksSending = false

        init(name: String, trust: MemberTrust) {
            self.name = name
            self.trust = trust
        }

        var canReceiveKeys: Bool { channel != nil && !blocksSending && trust != .invalid }
    }

    private let identity: Ed25519PrivateKey
    private let session: X25519PrivateKey
    private let name: String
    private let room: String
    private let relay: String
    private let knownPeers: KnownPeers
    private let now: () -> ContinuousClock.Instant
    public let profile: [UInt8]
    private var peers: [String: Peer] = [:]
    private var chain: OutgoingChain
    private var heldMessages: [MessageContent] = []
    private var lastRoomCode: String?
    /// Every session key presented to this session (its own included): a relay that replays an
    /// earlier profile would restart a pairwise channel at counter 0 and have old traffic accepted.
    private var seenSessionKeys = SeenSessionKeys(capacity: SeenSessionKeys.defaultCapacity)

    /// Creates the mode for one connection.
    /// - Parameters:
    ///   - identity: the user's long-term key.
    ///   - name: the registered name.
    ///   - room: the room.
    ///   - relay: the relay identity, for pinning (``KnownPeers/relayIdentity(connectedTo:)``).
    ///   - knownPeers: the trust-on-first-use store.
    ///   - sessionKey: a fixed session key (test vectors only); fresh and random otherwise.
    ///   - now: the clock for chain lifetimes.
    public init(
        identity: Ed25519PrivateKey, name: String, room: String, relay: String, knownPeers: KnownPeers,
        sessionKey: X25519PrivateKey = X25519PrivateKey(), now: @escaping () -> ContinuousClock.Instant = { .now }
    ) throws(CryptoError) {
        self.identity = identity
        self.session = sessionKey
        self.name = name
        self.room = room
        self.relay = relay
        self.knownPeers = knownPeers
        self.now = now
        profile = try AutomaticKeys.makeProfile(
            identity: identity, sessionKey: sessionKey.publicKey, room: room, name: name)
        chain = OutgoingChain(now: now())
        seenSessionKeys.insert(sessionKey.publicKey)
    }

    public var ownFingerprint: String? { Identity.fingerprint(of: identity.publicKey) }

    // MARK: Membership

    public func didRegister(members: [MemberEntry], outbox: any SecurityOutbox) {
        // One append to known_peers for the whole welcome, however many names are new.
        knownPeers.batch { for member in members { admit(member, outbox: outbox) } }
        announceRoomCode(outbox: outbox)
    }

    public func refusesJoining(_ member: MemberEntry, outbox: any SecurityOutbox) -> Bool {
        guard peers[member.name] == nil, let sessionKey = AutomaticKeys.sessionKey(inProfile: member.profile),
            seenSessionKeys.contains(sessionKey)
        else { return false }
        outbox.emit(
            .warning(
                kind: "replay", name: member.name,
                message:
                    "the relay announced \(member.name) with a session key already seen in this session "
                    + "(a recording played back); refused, and \(member.name) is not shown as present"))
        return true
    }

    public func memberJoined(_ member: MemberEntry, outbox: any SecurityOutbox) {
        if peers[member.name] != nil {
            outbox.emit(
                .warning(
                    kind: "tampered", name: member.name, message: "the relay announced \(member.name) twice; ignored"))
            return
        }
        admit(member, outbox: outbox)
        announceRoomCode(outbox: outbox)
    }

    public func memberLeft(_ name: String, outbox: any SecurityOutbox) {
        guard peers.removeValue(forKey: name) != nil else { return }
        // The leaver knows our chain key: move everyone still here to a fresh one.
        rotate(outbox: outbox)
        announceRoomCode(outbox: outbox)
        releaseHeldMessages(outbox: outbox)
    }

    /// Checks a member's profile, pins or compares its identity, announces it, and — unless it
    /// must wait for `/trust` — opens a channel and sends it our chain.
    private func admit(_ member: MemberEntry, outbox: any SecurityOutbox) {
        switch AutomaticKeys.checkProfile(member.profile, room: room, name: member.name) {
        case .missing:
            peers[member.name] = Peer(name: member.name, trust: .invalid)
            outbox.emit(
                .warning(
                    kind: "tampered", name: member.name,
                    message:
                        "\(member.name) presented no session key (a room-key client?); nothing can be exchanged with them"
                ))
        case .invalid(let reason):
            peers[member.name] = Peer(name: member.name, trust: .invalid)
            outbox.emit(
                .warning(
                    kind: "tampered", name: member.name,
                    message: "\(member.name) refused: \(reason); no keys are sent to them"))
        case .valid(let identityKey, let sessionKey):
            guard seenSessionKeys.insert(sessionKey) else {
                peers[member.name] = Peer(name: member.name, trust: .invalid)
                outbox.emit(
                    .warning(
                        kind: "replay", name: member.name,
                        message:
                            "\(member.name) presented a session key already seen in this session; refused, no keys are sent to them"
                    ))
                return
            }
            let peer = Peer(name: member.name, trust: .new)
            peer.identityKey = identityKey
            peers[member.name] = peer
            let fingerprint = Identity.fingerprint(of: identityKey)
            if let pin = knownPeers.pin(relay: relay, name: member.name) {
                if constantTimeEquals(pin.identityKey, identityKey) {
                    peer.trust = pin.isVerified ? .verified : .known
                } else {
                    peer.trust = .changed
                    peer.blocksSending = pin.holdsMessagesOnChange
                    let consequence =
                        pin.holdsMessagesOnChange
                        ? "you had \(pin.isVerified ? "verified" : "sent private messages to") the old key, so your "
                            + "messages are held until you run /trust \(member.name)"
                        : "treat them as unverified until you compare safety numbers (/verify \(member.name)) and run /trust \(member.name)"
                    outbox.emit(
                        .warning(
                            kind: "key-changed", name: member.name,
                            message: "\(member.name)'s identity key CHANGED (now \(fingerprint)); \(consequence)"))
                }
            } else if case .notPinned(let notice?) = knownPeers.pinFirstSeen(
                identityKey, relay: relay, name: member.name)
            {
                outbox.emit(.info(notice))
            }
            outbox.emit(.member(MemberStatus(name: member.name, fingerprint: fingerprint, trust: peer.trust)))
            do {
                let shared = try session.sharedSecret(with: sessionKey)
                let keys = try AutomaticKeys.channelKeys(
                    sharedSecret: shared, room: room, me: (name, session.publicKey), peer: (member.name, sessionKey))
                peer.channel = try PairwiseChannel(sendKey: keys.send, receiveKey: keys.receive)
            } catch {
                peer.trust = .invalid
                outbox.emit(
                    .warning(
                        kind: "tampered", name: member.name,
                        message: "no channel to \(member.name): \(error.description)"))
                return
            }
            if peer.canReceiveKeys { sendChain(to: peer, outbox: outbox) }
        }
    }

    private func sendChain(to peer: Peer, outbox: any SecurityOutbox) {
        sendOverChannel(chain.distribution, to: peer, outbox: outbox)
    }

    private func sendOverChannel(_ plaintext: [UInt8], to peer: Peer, outbox: any SecurityOutbox) {
        guard let channel = peer.channel else { return }
        do {
            outbox.direct(try channel.seal(plaintext, room: room, from: name, to: peer.name), to: peer.name)
        } catch {
            outbox.emit(.error(message: "cannot send to \(peer.name): \(error.description)"))
        }
    }

    private func rotate(outbox: any SecurityOutbox) {
        chain = OutgoingChain(now: now())
        for peer in peers.values.sorted(by: { $0.name < $1.name }) where peer.canReceiveKeys {
            sendChain(to: peer, outbox: outbox)
        }
    }

    private func announceRoomCode(outbox: any SecurityOutbox) {
        let keys = [identity.publicKey] + peers.values.compactMap(\.identityKey)
        let code = Identity.roomCode(room: room, identityKeys: keys)
        guard code != lastRoomCode else { return }
        lastRoomCode = code
        outbox.emit(.roomCode(code: code, members: keys.count))
    }

    // MARK: Sending

    public func sendToRoom(_ content: MessageContent, outbox: any SecurityOutbox) {
        if let blocker = peers.values.first(where: \.blocksSending) {
            heldMessages.append(content)
            outbox.emit(
                .info(
                    "message held: \(blocker.name)'s identity key changed since you verified or messaged them; "
                        + "/trust \(blocker.name) to send it (\(heldMessages.count) held)"))
            return
        }
        if chain.index >= Self.messagesPerChain || now() - chain.createdAt >= Self.chainLifetime {
            rotate(outbox: outbox)
        }
        let (index, messageKey) = chain.nextMessageKey()
        do {
            outbox.publish(
                try AutomaticKeys.sealGroupMessage(
                    content.encoded(), chainID: chain.chainID, index: index, messageKey: messageKey, room: room,
                    sender: name, identity: identity))
        } catch {
            outbox.emit(.error(message: "message not sent: \(error.description)"))
        }
    }

    public func sendPrivately(_ content: MessageContent, to recipient: String, outbox: any SecurityOutbox) {
        guard let peer = peers[recipient] else {
            outbox.emit(.error(message: "no member named '\(recipient)' here; /who lists the members"))
            return
        }
        guard peer.channel != nil, peer.trust != .invalid else {
            outbox.emit(.error(message: "cannot send privately to \(recipient): they have no valid session key"))
            return
        }
        guard !peer.blocksSending else {
            outbox.emit(
                .error(
                    message:
                        "\(recipient)'s identity key changed since you verified or messaged them; /trust \(recipient) first"
                ))
            return
        }
        sendOverChannel(content.encoded(), to: peer, outbox: outbox)
        if !content.isFileControl, let key = peer.identityKey {
            knownPeers.noteMessaged(key, relay: relay, name: recipient)
        }
    }

    private func releaseHeldMessages(outbox: any SecurityOutbox) {
        guard !heldMessages.isEmpty, !peers.values.contains(where: \.blocksSending) else { return }
        let held = heldMessages
        heldMessages.removeAll()
        for content in held { sendToRoom(content, outbox: outbox) }
    }

    // MARK: Receiving

    public func receive(_ payload: ArraySlice<UInt8>, from sender: String, isDirect: Bool, outbox: any SecurityOutbox) {
        guard let peer = peers[sender] else {
            outbox.emit(
                .warning(
                    kind: "tampered", name: sender, message: "message from \(sender), who is not in the room, refused"))
            return
        }
        guard peer.trust != .invalid, let identityKey = peer.identityKey else {
            outbox.emit(
                .warning(
                    kind: "tampered", name: sender, message: "message from \(sender) refused: they have no valid keys"))
            return
        }
        switch (EnvelopeKind(of: payload), isDirect) {
        case (.channel?, true):
            receiveOverChannel(payload, from: peer, outbox: outbox)
        case (.group?, false):
            receiveGroupMessage(payload, from: peer, identityKey: identityKey, outbox: outbox)
        default:
            outbox.emit(
                .warning(
                    kind: "tampered", name: sender, message: "message from \(sender) of an unexpected kind refused"))
        }
    }

    private func receiveOverChannel(_ payload: ArraySlice<UInt8>, from peer: Peer, outbox: any SecurityOutbox) {
        guard let channel = peer.channel else { return }
        switch channel.open(payload, room: room, from: peer.name, to: name) {
        case .tampered:
            outbox.emit(
                .warning(
                    kind: "tampered", name: peer.name, message: "private data from \(peer.name) failed authentication"))
        case .replayed(let counter):
            outbox.emit(
                .warning(
                    kind: "replay", name: peer.name,
                    message: "private message \(counter) from \(peer.name) was already received"))
        case .plaintext(let plaintext, let missing):
            if missing > 0 {
                outbox.emit(
                    .warning(
                        kind: "missing", name: peer.name,
                        message: "\(missing) private messages from \(peer.name) missing"))
            }
            if plaintext.first == AutomaticKeys.senderKeyKind {
                adoptChain(plaintext, from: peer, outbox: outbox)
            } else {
                do {
                    outbox.deliver(try MessageContent(decoding: plaintext), from: peer.name, isPrivate: true)
                } catch {
                    outbox.emit(
                        .warning(
                            kind: "tampered", name: peer.name,
                            message: "unreadable private message: \(error.description)"))
                }
            }
        }
    }

    private func adoptChain(_ plaintext: [UInt8], from peer: Peer, outbox: any SecurityOutbox) {
        var reader = ByteReader(plaintext)
        guard (try? reader.readUInt8("kind")) != nil,
            let chainID = try? reader.readBytes(AutomaticKeys.chainIDSize, "chain id"),
            let index = try? reader.readUInt32("index"), let key = try? reader.readBytes(32, "chain key"),
            reader.isAtEnd
        else {
            outbox.emit(.warning(kind: "tampered", name: peer.name, message: "malformed sender key from \(peer.name)"))
            return
        }
        // The index comes from a peer: one at the very end of the range would leave no next index.
        guard index < AutomaticKeys.indexLimit else {
            outbox.emit(
                .warning(
                    kind: "tampered", name: peer.name,
                    message: "sender key from \(peer.name) starts at index \(index), past the last usable one; refused")
            )
            return
        }
        if let old = peer.chain {
            guard !constantTimeEquals(old.chainID, Array(chainID)) else {
                outbox.emit(
                    .warning(
                        kind: "replay", name: peer.name, message: "sender key from \(peer.name) sent again; ignored"))
                return
            }
            peer.retiredChains = (peer.retiredChains + [old.chainID]).suffix(Self.retiredChainLimit)
        }
        peer.chain = IncomingChain(chainID: Array(chainID), nextIndex: index, chainKey: SecretBytes(Array(key)))
    }

    private func receiveGroupMessage(
        _ payload: ArraySlice<UInt8>, from peer: Peer, identityKey: [UInt8], outbox: any SecurityOutbox
    ) {
        let minimum = AutomaticKeys.groupHeaderSize + 1 + AESGCM.tagSize + Ed25519.signatureSize
        guard payload.count >= minimum else {
            outbox.emit(
                .warning(
                    kind: "tampered", name: peer.name, message: "message from \(peer.name) is too short to be genuine"))
            return
        }
        // 1. The sender's signature, before anything else is used.
        let body = payload.dropLast(Ed25519.signatureSize)
        let signature = Array(payload.suffix(Ed25519.signatureSize))
        let signed = AutomaticKeys.groupSignedBytes(room: room, sender: peer.name, headerAndSealed: body)
        guard Ed25519.isValidSignature(signature, for: signed, publicKey: identityKey) else {
            outbox.emit(
                .warning(
                    kind: "tampered", name: peer.name,
                    message: "message signed by someone other than \(peer.name) refused"))
            return
        }
        var reader = ByteReader(body)
        _ = try? reader.readUInt8("kind")
        guard let chainID = try? reader.readBytes(AutomaticKeys.chainIDSize, "chain id").map({ $0 }),
            let index = try? reader.readUInt32("index")
        else { return }
        let sealed = Array(reader.readRemaining())
        // 2. The chain and the index.
        guard var incoming = peer.chain, constantTimeEquals(incoming.chainID, chainID) else {
            if peer.retiredChains.contains(where: { constantTimeEquals($0, chainID) }) {
                outbox.emit(
                    .warning(
                        kind: "replay", name: peer.name, message: "message from a replaced key of \(peer.name) refused")
                )
            } else {
                peer.undecryptable += 1
                outbox.emit(
                    .warning(
                        kind: "undecryptable", name: peer.name,
                        message:
                            "message from \(peer.name) cannot be decrypted: its key never arrived (\(peer.undecryptable) so far)"
                    ))
            }
            return
        }
        guard index < AutomaticKeys.indexLimit else {
            outbox.emit(
                .warning(
                    kind: "tampered", name: peer.name,
                    message: "message \(index) from \(peer.name) is past the last usable index; refused"))
            return
        }
        guard index >= incoming.nextIndex else {
            outbox.emit(
                .warning(
                    kind: "replay", name: peer.name, message: "message \(index) from \(peer.name) was already received")
            )
            return
        }
        guard index - incoming.nextIndex <= AutomaticKeys.maximumSkip else {
            outbox.emit(
                .warning(
                    kind: "tampered", name: peer.name,
                    message: "message \(index) from \(peer.name) is too far ahead of \(incoming.nextIndex); refused"))
            return
        }
        // 3. Ratchet to the index (tentatively: only an authentic message moves the chain).
        var chainKey = incoming.chainKey.withUnsafeBytes { Array($0) }
        for _ in incoming.nextIndex..<index { chainKey = AutomaticKeys.ratchet(chainKey).next }
        let (messageKey, next) = AutomaticKeys.ratchet(chainKey)
        let plaintext: [UInt8]
        do {
            let (key, nonce) = try AutomaticKeys.groupCipherInputs(messageKey: messageKey)
            let aad = AutomaticKeys.groupAssociatedData(
                header: body.prefix(AutomaticKeys.groupHeaderSize), room: room, sender: peer.name)
            plaintext = try AESGCM(key: key).open(sealed, nonce: nonce, authenticating: aad)
        } catch {
            outbox.emit(
                .warning(kind: "tampered", name: peer.name, message: "message from \(peer.name) failed authentication"))
            return
        }
        let missing = index - incoming.nextIndex
        incoming.nextIndex = index + 1
        incoming.chainKey = SecretBytes(next)
        peer.chain = incoming
        if missing > 0 {
            outbox.emit(
                .warning(kind: "missing", name: peer.name, message: "\(missing) messages from \(peer.name) missing"))
        }
        do {
            outbox.deliver(try MessageContent(decoding: plaintext), from: peer.name, isPrivate: false)
        } catch {
            outbox.emit(
                .warning(kind: "tampered", name: peer.name, message: "unreadable message: \(error.description)"))
        }
    }

    // MARK: Commands

    public func handle(_ command: SecurityCommand, outbox: any SecurityOutbox) {
        switch command {
        case .who:
            outbox.emit(
                .who(
                    members: peers.values.sorted { $0.name < $1.name }.map {
                        MemberStatus(
                            name: $0.name, fingerprint: $0.identityKey.map(Identity.fingerprint), trust: $0.trust)
                    }))
        case .verifyRoom:
            let keys = [identity.publicKey] + peers.values.compactMap(\.identityKey)
            outbox.emit(.roomCode(code: Identity.roomCode(room: room, identityKeys: keys), members: keys.count))
        case .verifyMember(let target):
            guard let peer = peers[target], let key = peer.identityKey else {
                outbox.emit(
                    .error(message: "no member named '\(target)' with a valid identity here; /who lists the members"))
                return
            }
            outbox.emit(
                .verify(
                    name: target, fingerprint: Identity.fingerprint(of: key),
                    safetyNumber: Identity.safetyNumber(identity.publicKey, key)))
        case .trust(let target):
            guard let peer = peers[target], let key = peer.identityKey, peer.channel != nil else {
                outbox.emit(
                    .error(message: "no member named '\(target)' with a valid identity here; /who lists the members"))
                return
            }
            knownPeers.trust(key, relay: relay, name: target)
            let wasBlocking = peer.blocksSending
            peer.trust = .verified
            peer.blocksSending = false
            outbox.emit(.trusted(name: target, fingerprint: Identity.fingerprint(of: key)))
            if wasBlocking { sendChain(to: peer, outbox: outbox) }
            releaseHeldMessages(outbox: outbox)
        }
    }
}

/// The session keys a session has seen, in the order first seen: at most `capacity`, the oldest
/// forgotten first. Only a replay of a key older than the last `capacity` keys goes unnoticed;
/// at the default of 65,536 that is four full welcomes of the largest room back.
struct SeenSessionKeys {
    static let defaultCapacity = 65_536
    private let capacity: Int
    private var keys: Set<[UInt8]> = []
    private var order: [[UInt8]] = []
    private var oldest = 0

    init(capacity: Int) { self.capacity = max(1, capacity) }

    func contains(_ key: [UInt8]) -> Bool { keys.contains(key) }

    /// Remembers `key`; false if it was already known.
    @discardableResult
    mutating func insert(_ key: [UInt8]) -> Bool {
        guard keys.insert(key).inserted else { return false }
        if order.count < capacity {
            order.append(key)
        } else {
            keys.remove(order[oldest])
            order[oldest] = key
            oldest = (oldest + 1) % capacity
        }
        return true
    }
}
