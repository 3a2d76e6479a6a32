import AESChatCrypto
import Foundation

#if canImport(Glibc)
    import Glibc
#elseif canImport(Darwin)
    import Darwin
#endif

/// The self test's whole chat: a relay and two members with automatic keys (alice and bob), a line each way, a private
/// line and a small file, over the in-memory transport and then over loopback TCP on a free port.
final class SelfTestChat: ClientOutput {
    /// The steps, in order; each starts once the previous one was seen at its receiver.
    private enum Step: Int {
        case joining, aliceSays, bobSays, aliceWhispers, aliceSends, done
    }

    private var step = Step.joining
    private var alice: ChatRoom?
    private var bob: ChatRoom?
    private var events: [(member: String, event: ClientEvent)] = []
    private(set) var failure: String?
    private let folder: String
    private let filePath: String
    private let fileContents: [UInt8]

    private init(folder: String) throws {
        self.folder = folder
        filePath = folder + "/selftest.bin"
        fileContents = SecureRandom.bytes(count: 100_000)
        guard FileManager.default.createFile(atPath: filePath, contents: Data(fileContents)) else {
            throw SelfTestFailure("cannot write '\(filePath)'")
        }
        try FileManager.default.createDirectory(atPath: folder + "/inbox", withIntermediateDirectories: false)
    }

    private struct SelfTestFailure: Error, CustomStringConvertible {
        let description: String
        init(_ description: String) { self.description = description }
    }

    /// The chat over ``MemoryConnection``s, driven to completion by the memory loop.
    static func inMemory() -> (Bool, String) {
        withFolder { chat in
            let loop = MemoryEventLoop()
            let listener = MemoryListener(loop: loop)
            let relayKey = try X25519PrivateKey(ephemeral: ())
            let relay = Relay(
                configuration: RelayConfiguration(relayKey: relayKey), loop: loop, handshakes: InlineHandshakes()
            ) { _ in }
            relay.attach(to: listener)
            let pinned = try RelayPublicKey(bytes: relayKey.publicKey)
            for name in ["alice", "bob"] {
                chat.join(name, over: listener.connect(), relayKey: pinned, loop: loop)
            }
            for _ in 0..<200 where chat.failure == nil && chat.step != .done {
                loop.runUntilIdle()
                chat.advance()
            }
            return withExtendedLifetime(relay) { chat.outcome(transport: "in-memory transport") }
        }
    }

    /// The chat over TCP on 127.0.0.1 and a free port, with a 5-second limit.
    static func overLoopback() -> (Bool, String) {
        withFolder { chat in
            let loop = try PosixEventLoop()
            let listener = try TCPListener(host: "127.0.0.1", port: 0, loop: loop)
            defer { listener.close() }
            let relayKey = try X25519PrivateKey(ephemeral: ())
            let relay = Relay(
                configuration: RelayConfiguration(relayKey: relayKey), loop: loop, handshakes: InlineHandshakes()
            ) { _ in }
            relay.attach(to: listener)
            let pinned = try RelayPublicKey(bytes: relayKey.publicKey)
            for name in ["alice", "bob"] {
                TCPConnection.connect(host: "127.0.0.1", port: listener.localPort, loop: loop, timeout: .seconds(2)) {
                    switch $0 {
                    case .success(let connection): chat.join(name, over: connection, relayKey: pinned, loop: loop)
                    case .failure(let error): chat.fail("\(name) could not connect: \(error)")
                    }
                }
            }
            let deadline = ContinuousClock.now + .seconds(5)
            func poll() {
                chat.advance()
                if chat.failure != nil || chat.step == .done {
                    loop.stop()
                } else if ContinuousClock.now > deadline {
                    chat.fail("no progress for 5 s")
                    loop.stop()
                } else {
                    loop.schedule(after: .milliseconds(2), poll)
                }
            }
            loop.schedule(after: .milliseconds(1), poll)
            try loop.run()
            return withExtendedLifetime(relay) {
                chat.outcome(transport: "loopback TCP port \(listener.localPort)")
            }
        }
    }

    /// Runs `body` with a chat whose files live in a fresh temporary folder, removed afterwards.
    private static func withFolder(_ body: (SelfTestChat) throws -> (Bool, String)) -> (Bool, String) {
        let base = (ProcessInfo.processInfo.environment["TMPDIR"].flatMap { $0.isEmpty ? nil : $0 } ?? "/tmp")
        var template = Array((base + "/aeschat-selftest-XXXXXX").utf8CString)
        guard let made = template.withUnsafeMutableBufferPointer({ mkdtemp($0.baseAddress!) }) else {
            return (false, "cannot make a temporary folder in '\(base)': \(String(cString: strerror(errno)))")
        }
        let folder = String(cString: made)
        defer { try? FileManager.default.removeItem(atPath: folder) }
        do {
            return try body(try SelfTestChat(folder: folder))
        } catch {
            return (false, "\(error)")
        }
    }

    private func join(_ name: String, over connection: any Connection, relayKey: RelayPublicKey, loop: any EventLoop) {
        RelayLinkStarter.start(
            on: connection, configuration: RelayLinkConfiguration(relayKey: relayKey, relay: "selftest"), loop: loop
        ) { [self] linked in
            do {
                let connection = try linked.get()
                let security = try AutomaticKeySecurity(
                    identity: Ed25519PrivateKey(seed: SecureRandom.bytes(count: 32)), name: name, room: "selftest",
                    relay: "selftest",
                    knownPeers: KnownPeers())
                let output = MemberOutput(name: name, chat: self)
                let inbox = name == "bob" ? try Inbox(path: folder + "/inbox") : nil
                let room = ChatRoom(
                    name: name, room: "selftest", security: security, connection: connection, output: output,
                    loop: loop, inbox: inbox
                ) { _ in }
                if name == "alice" { alice = room } else { bob = room }
                room.start()
            } catch {
                fail("\(name) could not join: \(error)")
            }
        }
    }

    /// Receives one member's events.
    private final class MemberOutput: ClientOutput {
        let name: String
        unowned let chat: SelfTestChat
        init(name: String, chat: SelfTestChat) {
            self.name = name
            self.chat = chat
        }
        func emit(_ event: ClientEvent) { chat.events.append((name, event)) }
    }

    func emit(_ event: ClientEvent) {}

    private func fail(_ reason: String) {
        if failure == nil { failure = reason }
    }

    /// Starts the next step once the current one has arrived; records the first error or warning.
    private func advance() {
        for (member, event) in events {
            switch event {
            case .error(let message): fail("\(member) was told: \(message)")
            case .warning(let kind, _, let message): fail("\(member) was warned (\(kind)): \(message)")
            case .fileFailed(_, _, _, let reason): fail("the file failed: \(reason)")
            default: break
            }
        }
        guard failure == nil, let alice, let bob else { return }
        switch step {
        case .joining:
            guard seen("alice", { if case .joined(name: "bob") = $0 { true } else { false } }) else { return }
            guard seen("bob", { if case .ready = $0 { true } else { false } }) else { return }
            alice.submit(line: "selftest: alice to bob")
        case .aliceSays:
            guard seen("bob", message(from: "alice", "selftest: alice to bob", isPrivate: false)) else { return }
            bob.submit(line: "selftest: bob to alice")
        case .bobSays:
            guard seen("alice", message(from: "bob", "selftest: bob to alice", isPrivate: false)) else { return }
            alice.submit(line: "/msg bob selftest: private")
        case .aliceWhispers:
            guard seen("bob", message(from: "alice", "selftest: private", isPrivate: true)) else { return }
            alice.submit(line: "/send \(filePath)")
        case .aliceSends:
            guard
                let path = events.lazy.compactMap({ member, event -> String? in
                    if member == "bob", case .fileReceived(_, _, let path, _, _) = event { return path }
                    return nil
                }).first
            else { return }
            guard FileManager.default.contents(atPath: path).map(Array.init) == fileContents else {
                fail("the file bob received differs from the one alice sent")
                return
            }
        case .done:
            return
        }
        step = Step(rawValue: step.rawValue + 1) ?? .done
    }

    private func seen(_ member: String, _ matches: (ClientEvent) -> Bool) -> Bool {
        events.contains { $0.member == member && matches($0.event) }
    }

    private func message(from sender: String, _ text: String, isPrivate: Bool) -> (ClientEvent) -> Bool {
        { $0 == .message(from: sender, text: text, isPrivate: isPrivate) }
    }

    private func outcome(transport: String) -> (Bool, String) {
        if let failure { return (false, "\(failure) (\(transport))") }
        guard step == .done else { return (false, "stopped at step \(step) (\(transport))") }
        return (
            true,
            "relay and two members with automatic keys over the \(transport): a line each way, a private line, "
                + "a 100 kB file"
        )
    }
}
