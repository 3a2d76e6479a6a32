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

    private final class Recorder: SecurityOutbox {
        enum Item {
            case publish([UInt8])
            case direct([UInt8])
        }
        var items: [Item] = []
        var printedBytes = 0
        var shown = 0
        func publish(_ envelope: [UInt8]) { items.append(.publish(envelope)) }
        func direct(_ envelope: [UInt8], to name: String) { items.append(.direct(envelope)) }
        func emit(_ event: ClientEvent) {
            if case .message = event { shown += 1 }
            printedBytes += event.json.utf8.count + 1
        }
        func deliver(_ content: MessageContent, from sender: String, isPrivate: Bool) {
            if let event = ClientEvent(content: content, from: sender, isPrivate: isPrivate) { emit(event) }
        }
    }

    /// Measures `messages` receptions in this process with the real ``AutomaticKeySecurity``.
    static func measure(messages: Int) throws -> Result {
        let alice = try AutomaticKeySecurity(
            identity: Ed25519PrivateKey(), name: "alice", room: "bench", relay: "bench:1",
            knownPeers: KnownPeers(path: nil))
        let bob = try AutomaticKeySecurity(
            identity: Ed25519PrivateKey(), name: "bob", room: "bench", relay: "bench:1",
            knownPeers: KnownPeers(path: nil))
        let fromAlice = Recorder()
        let atBob = Recorder()
        alice.didRegister(members: [MemberEntry(name: "bob", profile: bob.profile)], outbox: fromAlice)
        bob.didRegister(members: [MemberEntry(name: "alice", profile: alice.profile)], outbox: atBob)
        deliver(fromAlice, to: bob, atBob)
        let text = String(repeating: "x", count: 100)
        for _ in 0..<messages { alice.sendToRoom(.text(text), outbox: fromAlice) }
        var envelopeBytes = 0
        if case .publish(let first)? = fromAlice.items.first(where: {
            if case .publish = $0 { return true }
            return false
        }) {
            envelopeBytes = first.count
        }
        let before = atBob.shown
        let start = Measure.nanoseconds()
        deliver(fromAlice, to: bob, atBob)
        let elapsed = Double(Measure.nanoseconds() - start) / 1e3
        guard atBob.shown - before == messages else {
            throw LoadError.usage("member-cost: only \(atBob.shown - before) of \(messages) messages opened")
        }
        // Signature verification alone, for the breakdown.
        let key = Ed25519PrivateKey()
        let signed = [UInt8](repeating: 7, count: 64)
        let signature = try key.signature(for: signed)
        let rounds = max(messages / 4, 10)
        let verifyStart = Measure.nanoseconds()
        var valid = 0
        for _ in 0..<rounds where Ed25519.isValidSignature(signature, for: signed, publicKey: key.publicKey) {
            valid += 1
        }
        let verify = Double(Measure.nanoseconds() - verifyStart) / 1e3 / Double(rounds)
        precondition(valid == rounds)
        return Result(
            messages: messages, envelopeBytes: envelopeBytes, microsecondsPerMessage: elapsed / Double(messages),
            signatureMicroseconds: verify)
    }

    private static func deliver(_ from: Recorder, to member: AutomaticKeySecurity, _ outbox: Recorder) {
        for item in from.items {
            switch item {
            case .publish(let envelope): member.receive(envelope[...], from: "alice", isDirect: false, outbox: outbox)
            case .direct(let envelope): member.receive(envelope[...], from: "alice", isDirect: true, outbox: outbox)
            }
        }
        from.items.removeAll()
    }
}
