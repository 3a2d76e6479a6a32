import AESChatCore
import AESChatCrypto

/// The CPU one member's client spends on one group message of the W1 size: signature check,
/// ratchet, AES-GCM open, and formatting the JSON line it would print.
enum MemberCost {
    struct Result {
        var messages: Int
        var envelopeBytes: Int
        var microsecondsPerMessage: Double
        var signatureMicroseconds: Double
    }

    private final class Recorder {
        enum Item {
            case publish([UInt8])
            case direct([UInt8])
        }
        var items: [Item] = []
        var printedBytes = 0
        var shown = 0
        func record(_ actions: [SecurityAction]) {
            for action in actions {
                switch action {
                case .publish(let envelope): items.append(.publish(envelope))
                case .direct(let envelope, _): items.append(.direct(envelope))
                case .show(let event): emit(event)
                case .release: break
                case .deliver(let content, let sender, let isPrivate):
                    if let event = ClientEvent(content: content, from: sender, isPrivate: isPrivate) { emit(event) }
                }
            }
        }
        func emit(_ event: ClientEvent) {
            if case .message = event { shown += 1 }
            printedBytes += event.json.utf8.count + 1
        }
    }

    /// Measures `messages` receptions in this process with the real ``AutomaticKeySecurity``.
    static func measure(messages: Int) throws -> Result {
        let alice = try AutomaticKeySecurity(
            identity: Ed25519PrivateKey(), name: "alice", room: "bench", relay: "bench:1",
            knownPeers: KnownPeers())
        let bob = try AutomaticKeySecurity(
            identity: Ed25519PrivateKey(), name: "bob", room: "bench", relay: "bench:1",
            knownPeers: KnownPeers())
        let fromAlice = Recorder()
        let atBob = Recorder()
        fromAlice.record(alice.didRegister(members: [MemberEntry(name: "bob", profile: bob.profile)]))
        atBob.record(bob.didRegister(members: [MemberEntry(name: "alice", profile: alice.profile)]))
        deliver(fromAlice, to: bob, atBob)
        let text = String(repeating: "x", count: 100)
        for index in 0..<messages {
            fromAlice.record(alice.sendToRoom(.identified(id: UInt64(index), .text(text))))
        }
        var envelopeBytes = 0
        if case .publish(let first)? = fromAlice.items.first(where: {
            if case .publish = $0 { return true }
            return false
        }) {
            envelopeBytes = first.count
        }
        // The messages are received in five batches, each timed, alternating with five batches of bare
        // signature checks (for the breakdown); the median batch of each is reported, so that a moment of
        // other work on the machine does not skew either figure.
        let key = Ed25519PrivateKey()
        let signed = [UInt8](repeating: 7, count: 64)
        let signature = try key.signature(for: signed)
        let batches = 5
        let perBatch = max(1, messages / batches)
        var receiveTimes: [Double] = []
        var verifyTimes: [Double] = []
        for _ in 0..<batches {
            let before = atBob.shown
            let start = Measure.nanoseconds()
            deliver(fromAlice, to: bob, atBob, limit: perBatch)
            receiveTimes.append(Double(Measure.nanoseconds() - start) / 1e3 / Double(perBatch))
            guard atBob.shown - before == perBatch else {
                throw CostError.unsound("member-cost: only \(atBob.shown - before) of \(perBatch) messages opened")
            }
            let verifyStart = Measure.nanoseconds()
            var valid = 0
            for _ in 0..<perBatch where Ed25519.isValidSignature(signature, for: signed, publicKey: key.publicKey) {
                valid += 1
            }
            verifyTimes.append(Double(Measure.nanoseconds() - verifyStart) / 1e3 / Double(perBatch))
            precondition(valid == perBatch)
        }
        return Result(
            messages: perBatch * batches, envelopeBytes: envelopeBytes,
            microsecondsPerMessage: receiveTimes.sorted()[batches / 2],
            signatureMicroseconds: verifyTimes.sorted()[batches / 2])
    }

    /// Hands the recorded envelopes to `member` in order, up to `limit` group messages (and the
    /// sender keys before them); what is handed over is removed.
    private static func deliver(
        _ from: Recorder, to member: AutomaticKeySecurity, _ outbox: Recorder, limit: Int = .max
    ) {
        var groupMessages = 0
        var used = 0
        while used < from.items.count && groupMessages < limit {
            switch from.items[used] {
            case .publish(let envelope):
                outbox.record(member.receive(envelope[...], from: "alice", isDirect: false))
                groupMessages += 1
            case .direct(let envelope):
                outbox.record(member.receive(envelope[...], from: "alice", isDirect: true))
            }
            used += 1
        }
        from.items.removeFirst(used)
    }
}
