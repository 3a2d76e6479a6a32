public import AESChatCrypto

/// Automatic end-to-end keys: a long-term Ed25519 identity, a fresh X25519 session key per
/// connection (signed by the identity), pairwise channels to every member, and a per-sender chain
/// key distributed over them, ratcheted per message and replaced before the first message after someone left,
/// every 100 messages and every 24 hours. Names are pinned to identities on first use.
/// See docs/PROTOCOL.md section 6 and docs/SECURITY.md. Loop thread only.
public final class AutomaticKeySecurity: MessageSecurity {
    /// Messages sent on one chain before it is replaced.
    public static let messagesPerChain: UInt32 = 100
    /// Age after which a chain is replaced.
    public static let chainLifetime: Duration = .seconds(24 * 60 * 60)
    /// Retired chain ids remembered per member, to call replays by their name.
    static let retiredChainLimit = 64
    /// How long a view of the room this client had stays acceptable in a group message after it changed: the
    /// sender may not have seen the latest joins and leaves yet (docs/PROTOCOL.md section 6.3, *Room views*).
    public static let viewWindow: Duration = .seconds(30)
    /// Changes of the room view remembered within ``viewWindow``; views before older changes are not accepted.
    static let viewChangeLimit = 1024
    /// How long group messages from a member whose chain key has not arrived yet are dropped quietly: they were
    /// sent before that member saw us join, and its key follows on the same ordered path.
    static let firstKeyGrace: Duration = .seconds(5)
    static let maximumUnreadableBeforeKey = 64

    private final class Peer {
        let name: String
        var identityKey: [UInt8]?
        /// What its profile lists (``MemberFeatures/basic`` for a version-1 profile); nil when refused.
        var features: MemberFeatures?
        var trust: MemberTrust
        var channel: PairwiseChannel?
        var chain: IncomingChain?
        var retiredChains: [[UInt8]] = []
        var undecryptable = 0
        /// Whether this member's first chain key arrived, or ``AutomaticKeySecurity/firstKeyGrace`` passed
        /// without it: from then on an unreadable message is reported at once.
        var stoppedWaitingForKey = false
        /// Group messages that came before this member's first chain key (chain id and index; at most
        /// ``AutomaticKeySecurity/maximumUnreadableBeforeKey``, the rest counted in ``unreadableOverflow``), and
        /// when the first came. The key tells which were sent before the member saw us join.
        var unreadableBeforeKey: [(chainID: [UInt8], index: UInt32)] = []
        var unreadableOverflow = 0
        var firstUnreadableBeforeKey: ContinuousClock.Instant?
        /// A verified or messaged member whose key changed: gets no keys, and the user's room lines are held
        /// for them (``AutomaticKeySecurity/held``) until `/trust`.
        var blocksSending = false
        /// The last room view this member's messages carried that matched none of ours, with ``viewGeneration``
        /// then: set while a `roster-mismatch` episode lasts (warned once), cleared by a message that matches.
        var viewMismatch: (digest: [UInt8], generation: Int)?
        /// Whether the notice that this member sends the first group message format was shown.
        var toldOlderFormat = false

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
    /// Room lines sent (published) in this session: see ``HeldLine/publishedBefore``.
    private var roomLinesSent = 0
    /// The room lines held for members whose changed key waits for `/trust` (for everyone under `/hold all`).
    private var held = HeldLines()
    /// Held lines released to one member privately ("id name"), until sent: such a line is not a private message the
    /// user wrote, so it does not pin the member as messaged.
    private var releasedPrivately: Set<String> = []
    /// `/hold all`: while any changed key waits for `/trust`, room lines go to nobody.
    public private(set) var holdsEverything = false
    /// What the last ``ClientEvent/holding(members:all:)`` announced.
    private var lastHolding: (members: [String], all: Bool) = ([], false)
    private var lastRoomCode: String?
    /// A member left since the chain was made: it is replaced before the next room message (lazy rotation).
    private var chainIsStale = false
    /// The last profile checked before its member was admitted (``identityKey(of:)``), with the result.
    private var lastCheck: (name: String, profile: [UInt8], result: AutomaticKeys.ProfileCheck)?
    /// Room lines sent since the first held one beyond which the held lines are not sent again: the others
    /// remember only the last ``RecentMessageIDs/idsPerSender`` message ids of each sender, so a line sent
    /// again later would show twice there.
    static let resendWindow = 96
    /// The changes of this client's view of the room since its welcome, oldest first (those within
    /// ``viewWindow``, at most ``viewChangeLimit``): walked back to find the views it had recently.
    private var viewChanges: [(name: String, identityKey: [UInt8], arrived: Bool, at: ContinuousClock.Instant)] = []
    /// Set while the welcome's members are admitted: they make the first view, not a change of it.
    private var isWelcoming = false
    /// Counts the changes of the view, to tell whether a mismatch seen before still stands.
    private var viewGeneration = 0
    /// The current view, computed when first needed after a change.
    private var cachedView: AutomaticKeys.RoomView?
    /// Group messages whose room view was an earlier one of this client's (the sender had not yet seen the latest
    /// joins and leaves), for the tests that make such races.
    package private(set) var earlierViewsAccepted = 0
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
    ///   - sessionKey: a fixed session key (test vectors only); otherwise a fresh one per connection, drawn at
    ///     libgcrypt's strong random level (a key for one connection; long-term keys use the very strong level).
    ///   - features: what the profile lists (section 6.5); nil sends a version-1 profile without features, as clients
    ///     before features did (tests of older peers).
    ///   - now: the clock for chain lifetimes.
    public init(
        identity: Ed25519PrivateKey, name: String, room: String, relay: String, knownPeers: KnownPeers,
        sessionKey: X25519PrivateKey? = nil, features: MemberFeatures? = MemberFeatures([MemberFeatures.files]),
        now: @escaping () -> ContinuousClock.Instant = { .now }
    ) throws(CryptoError) {
        let key: X25519PrivateKey
        if let sessionKey {
            key = sessionKey
        } else {
            key = try X25519PrivateKey(ephemeral: ())
        }
        self.identity = identity
        self.session = key
        self.name = name
        self.room = room
        self.relay = relay
        self.knownPeers = knownPeers
        self.now = now
        profile = try AutomaticKeys.makeProfile(
            identity: identity, sessionKey: key.publicKey, room: room, name: name, features: features)
        chain = OutgoingChain(now: now())
        seenSessionKeys.insert(key.publicKey)
    }

    public var ownFingerprint: String? { Identity.fingerprint(of: identity.publicKey) }

    public func features(of name: String) -> MemberFeatures? { peers[name]?.features }

    /// Runs `body`, which appends what the client is to do, and returns that.
    private func collecting(_ body: (inout [SecurityAction]) -> Void) -> [SecurityAction] {
        var actions: [SecurityAction] = []
        body(&actions)
        return actions
    }

    // MARK: Membership

    public func didRegister(members: [MemberEntry]) -> [SecurityAction] {
        collecting { didRegister(members: members, actions: &$0) }
    }

    private func didRegister(members: [MemberEntry], actions: inout [SecurityAction]) {
        // One append to known_peers for the whole welcome, however many names are new.
        // The welcome is one view, the first: the views between its members were never held, so none is logged.
        isWelcoming = true
        knownPeers.batch { for member in members { admit(member, actions: &actions) } }
        isWelcoming = false
        // Once for the whole welcome: after each member it would cost a pass over every peer (N² for a welcome).
        announceHolding(actions: &actions)
        announceRoomCode(actions: &actions)
    }

    public func refusalOfJoining(_ member: MemberEntry) -> ClientEvent? {
        guard peers[member.name] == nil, let sessionKey = AutomaticKeys.sessionKey(inProfile: member.profile),
            seenSessionKeys.contains(sessionKey)
        else { return nil }
        return .warning(
            kind: "replay", name: member.name,
            message:
                "the relay announced \(member.name) with a session key already seen in this session "
                + "(a recording played back); refused, and \(member.name) is not shown as present")
    }

    public var heldLines: [(name: String, count: Int)] { held.counts }

    public func takeHeldLines() -> HeldLines {
        defer { held = HeldLines() }
        return held.detached(linesPublished: roomLinesSent)
    }

    public func adoptHeldLines(_ lines: HeldLines) -> [SecurityAction] {
        collecting { actions in
            for var line in lines.lines {
                line.publishedBefore += roomLinesSent
                held.append(line)
            }
            for (name, count) in lines.dropped { held.dropped[name, default: 0] += count }
            release(actions: &actions)
            announceHolding(actions: &actions)
        }
    }

    public func forgetAbsentHeldLines(reason: String) -> [SecurityAction] {
        collecting { actions in
            let absent = Set(held.counts.map(\.name)).filter { peers[$0] == nil }
            for name in absent.sorted() {
                let count = held.forget(name)
                actions.warn(
                    "undelivered", about: name, "\(Self.lines(count)) held for \(name) will not reach them: \(reason)")
            }
        }
    }

    public func holdEverything(_ on: Bool) -> [SecurityAction] {
        collecting { actions in
            holdsEverything = on
            release(actions: &actions)
            announceHolding(actions: &actions)
        }
    }

    public func identityKey(of member: MemberEntry) -> [UInt8]? {
        if let peer = peers[member.name] { return peer.identityKey }
        if case .valid(let identityKey, _, _) = check(member) { return identityKey }
        return nil
    }

    /// The profile check of `member`, kept for the next call with the same profile (the member is checked before
    /// it is shown, then admitted: its signature is verified once).
    private func check(_ member: MemberEntry) -> AutomaticKeys.ProfileCheck {
        if let last = lastCheck, last.name == member.name, last.profile == member.profile { return last.result }
        let result = AutomaticKeys.checkProfile(member.profile, room: room, name: member.name)
        lastCheck = (member.name, member.profile, result)
        return result
    }

    public func memberJoined(_ member: MemberEntry) -> [SecurityAction] {
        collecting { memberJoined(member, actions: &$0) }
    }

    private func memberJoined(_ member: MemberEntry, actions: inout [SecurityAction]) {
        if peers[member.name] != nil {
            actions.warn("tampered", about: member.name, "the relay announced \(member.name) twice; ignored")
            return
        }
        admit(member, actions: &actions)
        announceRoomCode(actions: &actions)
    }

    public func memberLeft(_ name: String) -> [SecurityAction] {
        collecting { memberLeft(name, actions: &$0) }
    }

    private func memberLeft(_ name: String, actions: inout [SecurityAction]) {
        guard let peer = peers.removeValue(forKey: name) else { return }
        if let key = peer.identityKey { viewChanged(name, key, arrived: false) }
        // The leaver knows our chain key: nothing more goes out on it. The new chain is made, and sent to everyone
        // still here, just before our next room message (lazy rotation: a burst of leaves costs one rotation, and a
        // member who says nothing costs nothing).
        chainIsStale = true
        announceRoomCode(actions: &actions)
        let undelivered = held.forget(name)
        if undelivered > 0 {
            let before = peer.blocksSending ? "before you trusted their new key" : "before your held lines went out"
            actions.append(
                .show(
                    .info(
                        "\(name) left \(before): \(Self.lines(undelivered)) you sent meanwhile did not reach them")))
        }
        // Under `/hold all`, the last changed key leaving lets the held lines go to those still here.
        release(actions: &actions)
        announceHolding(actions: &actions)
    }

    /// "1 line", "3 lines".
    private static func lines(_ count: Int) -> String {
        count == 1 ? "1 line" : "\(count) lines"
    }

    /// Shows ``ClientEvent/holding(members:all:)`` when the members whose changed key holds the user's lines changed,
    /// or whether that holds every line (`/hold all`) while some do.
    private func announceHolding(actions: inout [SecurityAction]) {
        let holding = peers.values.filter(\.blocksSending).map(\.name).sorted()
        let all = holdsEverything && !holding.isEmpty
        guard holding != lastHolding.members || all != lastHolding.all else { return }
        lastHolding = (holding, all)
        actions.append(.show(.holding(members: holding, all: all)))
    }

    /// Checks a member's profile, pins or compares its identity, announces it, and — unless it
    /// must wait for `/trust` — opens a channel and sends it our chain.
    private func admit(_ member: MemberEntry, actions: inout [SecurityAction]) {
        defer { if !isWelcoming { announceHolding(actions: &actions) } }
        let checked = check(member)
        lastCheck = nil
        switch checked {
        // A refused member is announced too, as the `member` event documents (status `invalid`), after the
        // warning that says why: every member that arrives gets exactly one `member` event.
        case .missing:
            peers[member.name] = Peer(name: member.name, trust: .invalid)
            actions.warn(
                "tampered", about: member.name,
                "\(member.name) presented no session key (a room-key client?); nothing can be exchanged with them")
            actions.append(.show(.member(MemberStatus(name: member.name, fingerprint: nil, trust: .invalid))))
        case .invalid(let reason):
            peers[member.name] = Peer(name: member.name, trust: .invalid)
            actions.warn("tampered", about: member.name, "\(member.name) refused: \(reason); no keys are sent to them")
            actions.append(.show(.member(MemberStatus(name: member.name, fingerprint: nil, trust: .invalid))))
        case .valid(let identityKey, let sessionKey, let features):
            guard seenSessionKeys.insert(sessionKey) else {
                peers[member.name] = Peer(name: member.name, trust: .invalid)
                actions.warn(
                    "replay", about: member.name,
                    "\(member.name) presented a session key already seen in this session; refused, no keys are sent to them"
                )
                let fingerprint = Identity.fingerprint(of: identityKey)
                actions.append(
                    .show(.member(MemberStatus(name: member.name, fingerprint: fingerprint, trust: .invalid))))
                return
            }
            let peer = Peer(name: member.name, trust: .new)
            peer.identityKey = identityKey
            peer.features = features
            peers[member.name] = peer
            viewChanged(member.name, identityKey, arrived: true)
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
                            + "messages are held for them (the others still get them) until you check with "
                            + "/verify \(member.name) and run /trust \(member.name)"
                        : "treat them as unverified until you check with /verify \(member.name) and run /trust \(member.name)"
                    actions.warn(
                        "key-changed", about: member.name,
                        "\(member.name)'s identity key CHANGED (now \(fingerprint)); \(consequence)")
                }
            } else if case .notPinned(let notice?) = knownPeers.pinFirstSeen(
                identityKey, relay: relay, name: member.name)
            {
                actions.append(.show(.info(notice)))
            }
            actions.append(
                .show(
                    .member(
                        MemberStatus(
                            name: member.name, fingerprint: fingerprint, trust: peer.trust, features: features.names))))
            do {
                let shared = try session.sharedSecret(with: sessionKey)
                let keys = try AutomaticKeys.channelKeys(
                    sharedSecret: shared, room: room, me: (name, session.publicKey), peer: (member.name, sessionKey))
                peer.channel = try PairwiseChannel(sendKey: keys.send, receiveKey: keys.receive)
            } catch {
                peer.trust = .invalid
                actions.warn("tampered", about: member.name, "no channel to \(member.name): \(error.description)")
                return
            }
            if peer.canReceiveKeys {
                sendChain(to: peer, actions: &actions)
                // A member back after a reconnect, whom lines held before it never reached.
                release(actions: &actions)
            }
        }
    }

    private func sendChain(to peer: Peer, actions: inout [SecurityAction]) {
        // A chain a leaver knew is never handed out: the member gets the fresh one before our next message.
        guard !chainIsStale else { return }
        sendOverChannel(chain.distribution, to: peer, actions: &actions)
    }

    private func sendOverChannel(_ plaintext: [UInt8], to peer: Peer, actions: inout [SecurityAction]) {
        guard let channel = peer.channel else { return }
        do {
            actions.append(.direct(try channel.seal(plaintext, room: room, from: name, to: peer.name), to: peer.name))
        } catch {
            actions.append(.show(.error(message: "cannot send to \(peer.name): \(error.description)")))
        }
    }

    private func rotate(actions: inout [SecurityAction]) {
        chain = OutgoingChain(now: now())
        chainIsStale = false
        for peer in peers.values.sorted(by: { $0.name < $1.name }) where peer.canReceiveKeys {
            sendChain(to: peer, actions: &actions)
        }
    }

    private func announceRoomCode(actions: inout [SecurityAction]) {
        let keys = [identity.publicKey] + peers.values.compactMap(\.identityKey)
        let code = Identity.roomCode(room: room, identityKeys: keys)
        guard code != lastRoomCode else { return }
        lastRoomCode = code
        actions.append(.show(.roomCode(code: code, members: keys.count)))
    }

    // MARK: Room views

    /// The members this client counts (itself, and everyone present whose profile verified), as names and keys.
    private var viewMembers: [(name: String, identityKey: [UInt8])] {
        [(name, identity.publicKey)] + peers.values.compactMap { peer in peer.identityKey.map { (peer.name, $0) } }
    }

    private var currentView: AutomaticKeys.RoomView {
        if let cachedView { return cachedView }
        let view = AutomaticKeys.roomView(room: room, members: viewMembers)
        cachedView = view
        return view
    }

    /// Notes that a counted member arrived or left, and forgets changes beyond the window.
    private func viewChanged(_ name: String, _ identityKey: [UInt8], arrived: Bool) {
        cachedView = nil
        viewGeneration += 1
        guard !isWelcoming else { return }
        let at = now()
        let expired = viewChanges.prefix { at - $0.at >= Self.viewWindow }.count
        let beyondLimit = max(0, viewChanges.count - expired + 1 - Self.viewChangeLimit)
        viewChanges.removeFirst(expired + beyondLimit)
        viewChanges.append((name, identityKey, arrived, at))
    }

    /// Whether `digest` is this client's current view or one it had less than ``viewWindow`` ago: the changes are
    /// undone newest first, and the digest of each earlier view compared until one matches.
    private func isRecentView(_ digest: [UInt8]) -> Bool {
        if currentView.digest == digest { return true }
        var members = viewMembers
        let at = now()
        for change in viewChanges.reversed() {
            guard at - change.at < Self.viewWindow else { break }
            if change.arrived {
                guard let index = members.firstIndex(where: { $0.name == change.name }) else { return false }
                members.remove(at: index)
            } else {
                members.append((change.name, change.identityKey))
            }
            if AutomaticKeys.roomView(room: room, members: members).digest == digest {
                earlierViewsAccepted += 1
                return true
            }
        }
        return false
    }

    /// Compares the room view an authentic group message carries with this client's recent views, and warns once
    /// per episode (until a message of the same sender matches again) when it matches none.
    private func checkView(_ view: AutomaticKeys.RoomView, from peer: Peer, actions: inout [SecurityAction]) {
        // The same digest against the same views: the episode goes on, and nothing needs computing again.
        if let last = peer.viewMismatch, last.generation == viewGeneration, last.digest == view.digest { return }
        guard !isRecentView(view.digest) else {
            peer.viewMismatch = nil
            return
        }
        let ongoing = peer.viewMismatch != nil
        peer.viewMismatch = (view.digest, viewGeneration)
        guard !ongoing else { return }
        let mine = Int(currentView.count)
        let counts =
            Int(view.count) == mine
            ? "\(Self.members(mine)) in each view, not the same ones"
            : "\(Self.members(Int(view.count))) in their view, \(mine) in yours"
        actions.warn(
            "roster-mismatch", about: peer.name,
            "\(peer.name) sees a different room than you (\(counts)) — compare /verify room")
    }

    /// "1 member", "3 members".
    private static func members(_ count: Int) -> String {
        count == 1 ? "1 member" : "\(count) members"
    }

    // MARK: Sending

    public func sendToRoom(_ content: MessageContent) -> [SecurityAction] {
        collecting { sendToRoom(content, actions: &$0) }
    }

    private func sendToRoom(_ content: MessageContent, actions: inout [SecurityAction]) {
        let blockers = peers.values.filter(\.blocksSending).map(\.name).sorted()
        guard !blockers.isEmpty, case .identified = content,
            !held.lines.contains(where: { $0.content == content })
        else {
            publish(content, actions: &actions)
            return
        }
        // The members whose key changed get no chain key, so they cannot read what is published now: the line is
        // held for them, and goes out to the others unless nobody else could read it or the user chose to hold
        // everything meanwhile (`/hold all`).
        let readers = Set(peers.values.filter(\.canReceiveKeys).map(\.name))
        let meantFor = readers.union(blockers)
        let holdAll = holdsEverything || readers.isEmpty
        held.append(
            HeldLine(
                content: content, meantFor: meantFor, missing: holdAll ? meantFor : Set(blockers),
                publishedBefore: roomLinesSent))
        let count = held.lines.count
        let names = blockers.joined(separator: ", ")
        if holdsEverything {
            actions.append(
                .show(
                    .info(
                        "message held, not sent: you hold every line while \(names)'s key change waits "
                            + "(/hold all); /trust \(blockers[0]) or /hold changed sends it (\(Self.lines(count)) held)"
                    )))
        } else if readers.isEmpty {
            actions.append(
                .show(
                    .info(
                        "message held, not sent: nobody else here can read it until you /trust \(names) "
                            + "(\(Self.lines(count)) held)")))
        } else {
            publish(content, actions: &actions)
        }
    }

    /// Seals a message on the room chain (replacing the chain when due) and publishes it.
    private func publish(_ content: MessageContent, actions: inout [SecurityAction]) {
        if chainIsStale || chain.index >= Self.messagesPerChain || now() - chain.createdAt >= Self.chainLifetime {
            rotate(actions: &actions)
        }
        let (index, messageKey) = chain.nextMessageKey()
        do {
            actions.append(
                .publish(
                    try AutomaticKeys.sealGroupMessage(
                        content.encoded(), chainID: chain.chainID, index: index, messageKey: messageKey,
                        view: currentView, room: room, sender: name, identity: identity)))
            roomLinesSent += 1
        } catch {
            actions.append(.show(.error(message: "message not sent: \(error.description)")))
        }
    }

    public func sendPrivately(_ content: MessageContent, to recipient: String) -> [SecurityAction] {
        collecting { sendPrivately(content, to: recipient, actions: &$0) }
    }

    private func sendPrivately(_ content: MessageContent, to recipient: String, actions: inout [SecurityAction]) {
        guard let peer = peers[recipient] else {
            actions.append(.show(.error(message: "no member named '\(recipient)' here; /who lists the members")))
            return
        }
        guard peer.channel != nil, peer.trust != .invalid else {
            actions.append(
                .show(.error(message: "cannot send privately to \(recipient): they have no valid session key")))
            return
        }
        guard !peer.blocksSending else {
            actions.append(
                .show(
                    .error(
                        message:
                            "\(recipient)'s identity key changed since you verified or messaged them; /trust \(recipient) first"
                    )))
            return
        }
        sendOverChannel(content.encoded(), to: peer, actions: &actions)
        if case .identified(let id, _) = content, releasedPrivately.remove("\(id) \(recipient)") != nil { return }
        if !content.isFileControl, let key = peer.identityKey {
            knownPeers.noteMessaged(key, relay: relay, name: recipient)
        }
    }

    /// Hands back (``SecurityAction/release(_:)``) every held line that can now reach members it missed: those
    /// whose key is trusted, or back after a reconnect with the key they had. Nothing goes while the user holds every
    /// line (`/hold all`) and a changed key still waits. A line goes to the room when everyone else here already has
    /// it (they drop it by its message id) and they still remember that id (at most ``resendWindow`` lines ago);
    /// otherwise to each member it missed alone, as private messages, so that nobody sees a line not meant for
    /// them (someone who joined since), and the user is told.
    private func release(actions: inout [SecurityAction]) {
        guard !held.lines.isEmpty else { return }
        if holdsEverything, peers.values.contains(where: \.blocksSending) { return }
        let readers = Set(peers.values.filter(\.canReceiveKeys).map(\.name))
        var toRoom = 0
        var alone: [String: Int] = [:]
        var newcomers: Set<String> = []
        var tooOld = false
        for index in held.lines.indices {
            let line = held.lines[index]
            let targets = line.missing.intersection(readers)
            guard !targets.isEmpty else { continue }
            let others = readers.subtracting(targets)
            let strangers = others.subtracting(line.meantFor.subtracting(line.missing))
            let old = !others.isEmpty && roomLinesSent - line.publishedBefore > Self.resendWindow
            if strangers.isEmpty, !old {
                actions.append(.release(ReleasedLine(content: line.content, onlyTo: nil)))
                toRoom += 1
            } else {
                let sorted = targets.sorted()
                actions.append(.release(ReleasedLine(content: line.content, onlyTo: sorted)))
                for name in sorted {
                    alone[name, default: 0] += 1
                    if case .identified(let id, _) = line.content { releasedPrivately.insert("\(id) \(name)") }
                }
                newcomers.formUnion(strangers)
                tooOld = tooOld || (strangers.isEmpty && old)
            }
            held.lines[index].missing.subtract(targets)
        }
        held.lines.removeAll { $0.missing.isEmpty }
        if toRoom > 0 {
            actions.append(.show(.info("sending \(Self.lines(toRoom)) held until now")))
        }
        if !alone.isEmpty {
            let why =
                newcomers.isEmpty
                ? "too much was said since for the others to drop a repeat"
                : "\(newcomers.sorted().joined(separator: ", ")) joined since, and must not see them"
            let who = alone.sorted { $0.key < $1.key }.map { "\(Self.lines($0.value)) to \($0.key)" }
            actions.append(
                .show(
                    .info(
                        "sending held lines privately, to the members they missed alone (\(who.joined(separator: ", "))): "
                            + why)))
        }
    }

    // MARK: Receiving

    public func receive(_ payload: ArraySlice<UInt8>, from sender: String, isDirect: Bool) -> [SecurityAction] {
        collecting { receive(payload, from: sender, isDirect: isDirect, actions: &$0) }
    }

    private func receive(
        _ payload: ArraySlice<UInt8>, from sender: String, isDirect: Bool, actions: inout [SecurityAction]
    ) {
        guard let peer = peers[sender] else {
            actions.warn("tampered", about: sender, "message from \(sender), who is not in the room, refused")
            return
        }
        guard peer.trust != .invalid, let identityKey = peer.identityKey else {
            actions.warn("tampered", about: sender, "message from \(sender) refused: they have no valid keys")
            return
        }
        switch (EnvelopeKind(of: payload), isDirect) {
        case (.channel?, true):
            receiveOverChannel(payload, from: peer, actions: &actions)
        case (.group?, false):
            receiveGroupMessage(payload, from: peer, identityKey: identityKey, actions: &actions)
        case (.groupFirstVersion?, false):
            guard !peer.toldOlderFormat else { return }
            peer.toldOlderFormat = true
            actions.append(
                .show(
                    .info(
                        "\(sender) runs an older aeschat: its room messages do not carry the room view this version "
                            + "checks, and are not shown until \(sender) updates")))
        default:
            actions.warn("tampered", about: sender, "message from \(sender) of an unexpected kind refused")
        }
    }

    private func receiveOverChannel(_ payload: ArraySlice<UInt8>, from peer: Peer, actions: inout [SecurityAction]) {
        guard let channel = peer.channel else { return }
        switch channel.open(payload, room: room, from: peer.name, to: name) {
        case .tampered:
            actions.warn("tampered", about: peer.name, "private data from \(peer.name) failed authentication")
        case .replayed(let counter):
            actions.warn(
                "replay", about: peer.name, "private message \(counter) from \(peer.name) was already received")
        case .plaintext(let plaintext, let missing):
            if missing > 0 {
                actions.warn("missing", about: peer.name, "\(missing) private messages from \(peer.name) missing")
            }
            if plaintext.first == AutomaticKeys.senderKeyKind {
                adoptChain(plaintext, from: peer, actions: &actions)
            } else {
                do {
                    actions.append(.deliver(try MessageContent(decoding: plaintext), from: peer.name, isPrivate: true))
                } catch {
                    actions.warn("tampered", about: peer.name, "unreadable private message: \(error.description)")
                }
            }
        }
    }

    private func adoptChain(_ plaintext: [UInt8], from peer: Peer, actions: inout [SecurityAction]) {
        var reader = ByteReader(plaintext)
        guard (try? reader.readUInt8("kind")) != nil,
            let chainID = try? reader.readBytes(AutomaticKeys.chainIDSize, "chain id"),
            let index = try? reader.readUInt32("index"), let key = try? reader.readBytes(32, "chain key"),
            reader.isAtEnd
        else {
            actions.warn("tampered", about: peer.name, "malformed sender key from \(peer.name)")
            return
        }
        // The index comes from a peer: one at the very end of the range would leave no next index.
        guard index < AutomaticKeys.indexLimit else {
            actions.warn(
                "tampered", about: peer.name,
                "sender key from \(peer.name) starts at index \(index), past the last usable one; refused")
            return
        }
        if let old = peer.chain {
            guard !constantTimeEquals(old.chainID, Array(chainID)) else {
                actions.warn("replay", about: peer.name, "sender key from \(peer.name) sent again; ignored")
                return
            }
            peer.retiredChains = (peer.retiredChains + [old.chainID]).suffix(Self.retiredChainLimit)
        }
        peer.chain = IncomingChain(chainID: Array(chainID), nextIndex: index, chainKey: SecretBytes(Array(key)))
        if !peer.stoppedWaitingForKey {
            reportUnreadableBeforeKey(of: peer, explainedBy: (Array(chainID), index), actions: &actions)
        }
    }

    /// Keeps an unreadable group message of `peer` that came before its first chain key: until the key comes (or
    /// ``firstKeyGrace`` passes), it may be one `peer` sent before it saw us join, which is no alarm.
    private func awaitFirstKey(of peer: Peer, chainID: [UInt8], index: UInt32, actions: inout [SecurityAction]) {
        let first = peer.firstUnreadableBeforeKey ?? now()
        peer.firstUnreadableBeforeKey = first
        if peer.unreadableBeforeKey.count < Self.maximumUnreadableBeforeKey {
            peer.unreadableBeforeKey.append((chainID, index))
        } else {
            peer.unreadableOverflow += 1
        }
        if now() - first >= Self.firstKeyGrace {
            reportUnreadableBeforeKey(of: peer, explainedBy: nil, actions: &actions)
        }
    }

    /// Ends the wait for `peer`'s first chain key: the kept messages that `key` (its chain id and first index)
    /// shows were sent before `peer` saw us join are dropped quietly; the others are reported as undecryptable.
    private func reportUnreadableBeforeKey(
        of peer: Peer, explainedBy key: (chainID: [UInt8], index: UInt32)?, actions: inout [SecurityAction]
    ) {
        let unexplained =
            peer.unreadableBeforeKey.filter { message in
                guard let key else { return true }
                return !(constantTimeEquals(message.chainID, key.chainID) && message.index < key.index)
            }.count + peer.unreadableOverflow
        peer.stoppedWaitingForKey = true
        peer.unreadableBeforeKey = []
        peer.unreadableOverflow = 0
        peer.firstUnreadableBeforeKey = nil
        if unexplained > 0 { warnUndecryptable(from: peer, count: unexplained, actions: &actions) }
    }

    private func warnUndecryptable(from peer: Peer, count: Int, actions: inout [SecurityAction]) {
        peer.undecryptable += count
        let messages = count == 1 ? "message" : "\(count) messages"
        let its = count == 1 ? "its key" : "their key"
        actions.warn(
            "undecryptable", about: peer.name,
            "\(messages) from \(peer.name) cannot be decrypted: \(its) never arrived (\(peer.undecryptable) so far)")
    }

    private func receiveGroupMessage(
        _ payload: ArraySlice<UInt8>, from peer: Peer, identityKey: [UInt8], actions: inout [SecurityAction]
    ) {
        let minimum = AutomaticKeys.groupHeaderSize + 1 + AESGCM.tagSize + Ed25519.signatureSize
        guard payload.count >= minimum else {
            actions.warn("tampered", about: peer.name, "message from \(peer.name) is too short to be genuine")
            return
        }
        // 1. The sender's signature, before anything else is used.
        let body = payload.dropLast(Ed25519.signatureSize)
        let signature = Array(payload.suffix(Ed25519.signatureSize))
        let signed = AutomaticKeys.groupSignedBytes(room: room, sender: peer.name, headerAndSealed: body)
        guard Ed25519.isValidSignature(signature, for: signed, publicKey: identityKey) else {
            actions.warn("tampered", about: peer.name, "message signed by someone other than \(peer.name) refused")
            return
        }
        var reader = ByteReader(body)
        _ = try? reader.readUInt8("kind")
        guard let chainID = try? reader.readBytes(AutomaticKeys.chainIDSize, "chain id").map({ $0 }),
            let index = try? reader.readUInt32("index"), let viewCount = try? reader.readUInt32("view count"),
            let viewDigest = try? reader.readBytes(SHA256.digestSize, "view digest").map({ $0 })
        else { return }
        let sealed = Array(reader.readRemaining())
        // 2. The chain and the index.
        guard var incoming = peer.chain, constantTimeEquals(incoming.chainID, chainID) else {
            if peer.retiredChains.contains(where: { constantTimeEquals($0, chainID) }) {
                actions.warn("replay", about: peer.name, "message from a replaced key of \(peer.name) refused")
            } else if !peer.stoppedWaitingForKey {
                awaitFirstKey(of: peer, chainID: chainID, index: index, actions: &actions)
            } else {
                warnUndecryptable(from: peer, count: 1, actions: &actions)
            }
            return
        }
        guard index < AutomaticKeys.indexLimit else {
            actions.warn(
                "tampered", about: peer.name,
                "message \(index) from \(peer.name) is past the last usable index; refused")
            return
        }
        guard index >= incoming.nextIndex else {
            actions.warn("replay", about: peer.name, "message \(index) from \(peer.name) was already received")
            return
        }
        guard index - incoming.nextIndex <= AutomaticKeys.maximumSkip else {
            actions.warn(
                "tampered", about: peer.name,
                "message \(index) from \(peer.name) is too far ahead of \(incoming.nextIndex); refused")
            return
        }
        // 3. Ratchet to the index (tentatively: only an authentic message moves the chain).
        var chainKey = incoming.chainKey
        for _ in incoming.nextIndex..<index { chainKey = AutomaticKeys.ratchet(chainKey).next }
        let (messageKey, next) = AutomaticKeys.ratchet(chainKey)
        let plaintext: [UInt8]
        do {
            let (key, nonce) = try AutomaticKeys.groupCipherInputs(messageKey: messageKey)
            let aad = AutomaticKeys.groupAssociatedData(
                header: body.prefix(AutomaticKeys.groupHeaderSize), room: room, sender: peer.name)
            plaintext = try AESGCM(key: key).open(sealed, nonce: nonce, authenticating: aad)
        } catch {
            actions.warn("tampered", about: peer.name, "message from \(peer.name) failed authentication")
            return
        }
        let missing = index - incoming.nextIndex
        incoming.nextIndex = index + 1
        incoming.chainKey = next
        peer.chain = incoming
        if missing > 0 {
            actions.warn("missing", about: peer.name, "\(missing) messages from \(peer.name) missing")
        }
        checkView(AutomaticKeys.RoomView(count: viewCount, digest: viewDigest), from: peer, actions: &actions)
        do {
            actions.append(.deliver(try MessageContent(decoding: plaintext), from: peer.name, isPrivate: false))
        } catch {
            actions.warn("tampered", about: peer.name, "unreadable message: \(error.description)")
        }
    }

    // MARK: Commands

    public func handle(_ command: SecurityCommand) -> [SecurityAction] {
        collecting { handle(command, actions: &$0) }
    }

    private func handle(_ command: SecurityCommand, actions: inout [SecurityAction]) {
        switch command {
        case .who:
            actions.append(
                .show(
                    .who(
                        members: peers.values.sorted { $0.name < $1.name }.map {
                            MemberStatus(
                                name: $0.name, fingerprint: $0.identityKey.map(Identity.fingerprint), trust: $0.trust,
                                features: $0.features?.names)
                        }, you: MemberStatus(name: name, fingerprint: ownFingerprint, trust: .verified))))
        case .verifySelf:
            if let ownFingerprint { actions.append(.show(.identity(name: name, fingerprint: ownFingerprint))) }
        case .verifyRoom:
            let keys = [identity.publicKey] + peers.values.compactMap(\.identityKey)
            actions.append(
                .show(
                    .roomCode(
                        code: Identity.roomCode(room: room, identityKeys: keys), members: keys.count, asked: true)))
        case .verifyMember(let target):
            guard let peer = peers[target], let key = peer.identityKey else {
                actions.append(
                    .show(
                        .error(
                            message: "no member named '\(target)' with a valid identity here; /who lists the members")))
                return
            }
            actions.append(
                .show(
                    .verify(
                        name: target, fingerprint: Identity.fingerprint(of: key),
                        safetyNumber: Identity.safetyNumber(identity.publicKey, key), yours: ownFingerprint)))
        case .trust(let target):
            guard let peer = peers[target], let key = peer.identityKey, peer.channel != nil else {
                actions.append(
                    .show(
                        .error(
                            message: "no member named '\(target)' with a valid identity here; /who lists the members")))
                return
            }
            knownPeers.trust(key, relay: relay, name: target)
            let wasBlocking = peer.blocksSending
            peer.trust = .verified
            peer.blocksSending = false
            actions.append(.show(.trusted(name: target, fingerprint: Identity.fingerprint(of: key))))
            if wasBlocking {
                sendChain(to: peer, actions: &actions)
                release(actions: &actions)
            }
            announceHolding(actions: &actions)
        }
    }
}

extension [SecurityAction] {
    /// Appends a warning to show: `kind` is its machine-readable kind (`tampered`, `replay`, …), `name` the member
    /// it is about.
    mutating func warn(_ kind: String, about name: String, _ message: String) {
        append(.show(.warning(kind: kind, name: name, message: message)))
    }
}
