import AESChatCrypto

/// Where a connection is in the encrypted link's handshake (docs/PROTOCOL.md, the encrypted link).
enum LinkStage {
    /// Reading the 12-byte cleartext preamble.
    case preamble
    /// Reading message 1 (`0x00 0x30 ‖ 48 bytes`) under the relay key the preamble named.
    case message1(LinkMessage1Stage)
    /// Message 1 is with the handshake executor; any byte from the client now closes the connection (an honest client
    /// waits for message 2).
    case responding
    /// The link is up and hello has not come yet: the handshake hash is kept for hello's name claim (docs/PROTOCOL.md
    /// section 3.1).
    case awaitingHello(handshakeHash: [UInt8])
    /// The link is up and the member registered (or was refused): the connection's bytes are frames.
    case linked
    /// The handshake failed or was answered; the connection is closing.
    case ended
}

/// What reading message 1 needs, boxed so that every connection's ``LinkStage`` is one reference wide (8 bytes
/// rather than 17) for the short while a connection has it.
final class LinkMessage1Stage {
    let preamble: LinkPreamble
    /// The relay key the preamble named.
    let key: X25519PrivateKey
    /// Whether that is the relay's previous key.
    let isPreviousKey: Bool

    init(preamble: LinkPreamble, key: X25519PrivateKey, isPreviousKey: Bool) {
        self.preamble = preamble
        self.key = key
        self.isPreviousKey = isPreviousKey
    }
}

/// The relay's side of the encrypted link: it reads each new connection's preamble and message 1, answers what is not
/// a handshake (a key request, an unknown key id, another version, an aeschat 0.1 client), applies the per-address
/// handshake rate and the cap of handshakes in progress (both answered busy), hands message 1 to the
/// ``HandshakeExecutor``, and on success writes message 2 and protects the connection with the transport keys.
///
/// Owned by ``Relay``; confined to the event loop's thread (the executor may run the handshake itself elsewhere).
final class RelayLink {
    private let configuration: RelayConfiguration
    private let admission: RelayAdmission
    private let log: (String) -> Void
    private let executor: any HandshakeExecutor
    private let currentKey: X25519PrivateKey
    private let previousKey: X25519PrivateKey?
    private let currentKeyID: [UInt8]
    private let previousKeyID: [UInt8]?
    /// The relay's public keys, current first.
    let publicKeys: [RelayPublicKey]
    /// The `relay-keys` frame sent after `welcome` on a link made under the previous key.
    let relayKeysFrame: [UInt8]
    /// Handshakes handed to the executor whose results have not come back.
    private(set) var inProgress = 0
    /// Handshakes completed (message 2 sent, connection protected).
    private(set) var completedCount = 0
    /// Message 1s that failed (a wrong key or prologue, or altered bytes): closed without an answer.
    private(set) var failedCount = 0
    /// Connections answered busy (handshake rate, handshakes in progress, connection caps, shutdown).
    private(set) var busyCount = 0

    /// The length prefix of both handshake messages: 48.
    static let messagePrefix: [UInt8] = [0x00, UInt8(NoiseHandshake.emptyMessageLength)]
    /// Message 1 with its prefix: 50 bytes.
    static let message1Length = messagePrefix.count + NoiseHandshake.emptyMessageLength

    /// Creates the relay's side of the link.
    /// - Parameters:
    ///   - configuration: the relay's keys and limits.
    ///   - admission: the relay's admission, which keeps the per-address handshake buckets.
    ///   - executor: where handshakes run.
    ///   - log: receives a line per connection refused for not speaking protocol 2.
    init(
        configuration: RelayConfiguration, admission: RelayAdmission, executor: any HandshakeExecutor,
        log: @escaping (String) -> Void
    ) {
        self.configuration = configuration
        self.admission = admission
        self.log = log
        self.executor = executor
        currentKey = configuration.relayKey
        previousKey = configuration.previousRelayKey
        // Built from 32-byte X25519 public keys, so never invalid.
        let current = try? RelayPublicKey(bytes: configuration.relayKey.publicKey)
        let previous = configuration.previousRelayKey.flatMap { try? RelayPublicKey(bytes: $0.publicKey) }
        publicKeys = [current, previous].compactMap { $0 }
        currentKeyID = publicKeys[0].keyID
        previousKeyID = previous?.keyID
        relayKeysFrame = RelayFrame.relayKeys(publicKeys.map(\.bytes)).encoded()
    }

    /// Handles bytes a connection sent before its link is up.
    func read(_ bytes: UnsafeRawBufferPointer, for member: RelayConnection) {
        var rest = bytes[...]
        if case .preamble = member.linkStage {
            let take = min(LinkPreamble.length - member.handshakeBytes.count, rest.count)
            member.handshakeBytes.append(contentsOf: rest.prefix(take))
            rest = rest.dropFirst(take)
            let preamble: LinkPreamble
            do throws(LinkError) {
                guard let parsed = try LinkPreamble.parse(member.handshakeBytes) else { return }
                preamble = parsed
            } catch .unsupportedVersion(let version) {
                answer(
                    member, LinkAnswer.version(LinkPreamble.version).encoded(),
                    reason: "it speaks aeschat protocol \(version)")
                return
            } catch {
                log(
                    "refused connection from \(member.connection.peerDescription): it is not an aeschat 2 client")
                answer(member, LinkAnswer.olderClientRefusal, reason: "not an aeschat 2 client")
                return
            }
            member.handshakeBytes = []
            if preamble.keyID == RelayPublicKey.keyRequestID {
                answer(member, LinkAnswer.keys(publicKeys).encoded(), reason: "asked for the relay's keys")
                return
            }
            if constantTimeEquals(preamble.keyID, currentKeyID) {
                member.linkStage = .message1(.init(preamble: preamble, key: currentKey, isPreviousKey: false))
            } else if let previousKey, let previousKeyID, constantTimeEquals(preamble.keyID, previousKeyID) {
                member.linkStage = .message1(.init(preamble: preamble, key: previousKey, isPreviousKey: true))
            } else {
                answer(member, LinkAnswer.keys(publicKeys).encoded(), reason: "named a key the relay does not hold")
                return
            }
        }
        switch member.linkStage {
        case .message1(let stage):
            let take = min(Self.message1Length - member.handshakeBytes.count, rest.count)
            member.handshakeBytes.append(contentsOf: rest.prefix(take))
            rest = rest.dropFirst(take)
            for (byte, expected) in zip(member.handshakeBytes, Self.messagePrefix) where byte != expected {
                end(member, reason: "handshake message 1 has the wrong length")
                return
            }
            guard member.handshakeBytes.count == Self.message1Length else { return }
            guard rest.isEmpty else {
                end(member, reason: "sent bytes before the relay's handshake message 2")
                return
            }
            let message1 = Array(member.handshakeBytes[Self.messagePrefix.count...])
            member.handshakeBytes = []
            respond(
                to: message1, preamble: stage.preamble, key: stage.key, isPreviousKey: stage.isPreviousKey, for: member)
        case .responding:
            end(member, reason: "sent bytes before the relay's handshake message 2")
        case .preamble, .awaitingHello, .linked, .ended:
            return
        }
    }

    /// Hands message 1 to the executor, unless the address's handshake rate or the cap of handshakes in progress
    /// refuses it (busy).
    private func respond(
        to message1: [UInt8], preamble: LinkPreamble, key: X25519PrivateKey, isPreviousKey: Bool,
        for member: RelayConnection
    ) {
        let limits = configuration.limits
        guard admission.takeHandshakeToken(for: member.address) else {
            answerBusy(member, reason: "more than \(limits.handshakeRate) handshakes a second from its address")
            return
        }
        guard limits.maximumHandshakesInProgress == 0 || inProgress < limits.maximumHandshakesInProgress else {
            answerBusy(member, reason: "\(inProgress) handshakes in progress")
            return
        }
        member.linkStage = .responding
        inProgress += 1
        let job = HandshakeJob(staticKey: key, prologue: preamble.prologue, message1: message1)
        // Holds the member until the worker answers (or stops): a weak reference would give every member a side
        // table for life, and every retain of it the runtime's slow path. `finish` ignores a member that closed.
        executor.respond(to: job) { [weak self, member] result in
            guard let self else { return }
            self.inProgress -= 1
            self.finish(result, isPreviousKey: isPreviousKey, for: member)
        }
    }

    /// Completes the handshake: message 2 goes out as it is, then everything is sealed and opened with the keys.
    private func finish(_ result: HandshakeResult, isPreviousKey: Bool, for member: RelayConnection) {
        guard case .responding = member.linkStage, member.connection.isOpen else { return }
        switch result.outcome {
        case .failure:
            failedCount += 1
            end(member, reason: "handshake message 1 did not authenticate")
        case .success(let (message2, keys)):
            completedCount += 1
            member.connection.write(Self.messagePrefix + message2)
            member.connection.protect(with: LinkRecordLayer(keys: keys))
            member.becomeLinked(announcingRelayKeys: isPreviousKey, handshakeHash: keys.handshakeHash)
        }
    }

    /// Answers `member` busy (try again later) and closes it.
    func answerBusy(_ member: RelayConnection, reason: String) {
        busyCount += 1
        answer(member, LinkAnswer.busy.encoded(), reason: "busy: \(reason)")
    }

    /// Sends `answer` in the clear and closes the connection after it.
    private func answer(_ member: RelayConnection, _ answer: [UInt8], reason: String) {
        member.linkStage = .ended
        member.handshakeBytes = []
        member.willClose(reason: reason)
        member.connection.write(answer)
        member.connection.closeAfterFlushing(timeout: configuration.closeTimeout)
    }

    /// Closes the connection without an answer: a client that breaks the handshake gets nothing to learn from.
    func end(_ member: RelayConnection, reason: String) {
        member.linkStage = .ended
        member.handshakeBytes = []
        member.willClose(reason: reason)
        member.connection.close()
    }
}
