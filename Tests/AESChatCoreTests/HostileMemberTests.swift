import AESChatCrypto
import AESChatTesting
import Testing

@testable import AESChatCore

/// A room with a genuine client (`bob`) and a member holding valid keys who uses them against him
/// (`mallory`), on the in-memory transport.
final class HostileRoom {
    let harness = RelayHarness()
    var loop: MemoryEventLoop { harness.loop }
    let bob: ChatRoom
    let bobOutput = EventCollector()
    let bobOutcome = Box<ClientOutcome?>(nil)
    let mallory: HostileMember
    let folder = InboxFolder()

    init(roomKey: RoomKey? = nil) throws {
        let security: any MessageSecurity =
            if let roomKey {
                RoomKeySecurity(roomKey: roomKey, room: "lobby", name: "bob")
            } else {
                try AutomaticKeySecurity(
                    identity: Ed25519PrivateKey(), name: "bob", room: "lobby", relay: "memory",
                    knownPeers: KnownPeers())
            }
        bob = ChatRoom(
            name: "bob", room: "lobby", security: security,
            connection: startLink(on: harness.listener.connect(), pinning: harness.relayKey, loop: harness.loop),
            output: bobOutput, loop: harness.loop, inbox: try Inbox(path: folder.path + "/inbox")
        ) { [bobOutcome] in bobOutcome.value = $0 }
        bob.start()
        harness.loop.runUntilIdle()
        let keys: HostileMember.Keys = roomKey.map { .roomKey($0) } ?? .automatic(identity: Ed25519PrivateKey())
        mallory = try HostileMember(
            name: "mallory", room: "lobby", keys: keys, connection: harness.linkedConnection())
        mallory.start()
        harness.loop.runUntilIdle()
    }

    /// Every event bob showed, rendered as JSON and as text (where large numbers once trapped).
    func renderEverything() {
        for event in bobOutput.events {
            _ = event.json
            _ = event.humanText
        }
    }
}

@Suite struct HostileMemberTests {
    @Test func senderKeyAtTheLastIndex_thenAMessageThere_isRefused_andBobCarriesOn() throws {
        let room = try HostileRoom()
        let chainID = [UInt8](repeating: 0xEE, count: 16)
        let chainKey = [UInt8](repeating: 0x42, count: 32)
        room.mallory.sendSenderKey(chainID: chainID, index: UInt32.max, chainKey: chainKey, to: "bob")
        room.loop.runUntilIdle()
        room.mallory.sendGroupMessage(MessageContent.text("boom").encoded(), chainID: chainID, index: UInt32.max)
        room.loop.runUntilIdle()
        #expect(room.bobOutcome.value == nil)
        #expect(!room.bobOutput.messages.contains("mallory: boom"))
        #expect(room.bobOutput.warnings("tampered").contains { $0.contains("past the last usable") })
        // A chain that ends one below the limit: the message at 2^32 - 2 is the last one accepted.
        let lastChain = [UInt8](repeating: 0xEF, count: 16)
        room.mallory.sendSenderKey(chainID: lastChain, index: UInt32.max - 1, chainKey: chainKey, to: "bob")
        room.mallory.sendGroupMessage(
            MessageContent.text("last").encoded(), chainID: lastChain, index: UInt32.max - 1)
        room.loop.runUntilIdle()
        #expect(room.bobOutput.messages == ["mallory: last"])
        room.renderEverything()
    }

    @Test(arguments: [false, true])
    func offerOfAnUnrepresentableSize_isDeclinedWithAReason(roomKeyMode: Bool) throws {
        let room = try HostileRoom(roomKey: roomKeyMode ? RoomKey(bytes: Array(repeating: 7, count: 32)) : nil)
        for (number, size) in [UInt64.max, 1 << 63, FileOffer.maximumSize + 1].enumerated() {
            let offer = FileOffer(
                fileID: Array(repeating: UInt8(number), count: 16), size: size, chunkSize: 1024,
                key: Array(repeating: 1, count: 32), name: "huge\(number).bin")
            room.mallory.sendPrivately(.fileOffer(offer), to: "bob")
            room.loop.runUntilIdle()
        }
        room.renderEverything()
        #expect(room.bobOutcome.value == nil)
        let declines = room.mallory.contentsHeard.compactMap { heard -> String? in
            if case .fileReply(_, false, _, let reason) = heard.content { return reason }
            return nil
        }
        #expect(declines.count == 3)
        #expect(declines.allSatisfy { $0.contains("at most 2^53 bytes") })
    }

    /// An offer whose chunk size is out of bounds reaches a real client over the relay, which declines it with the
    /// reason at once: the sender hears it in the same turn of the loop, with no timer run.
    @Test(arguments: [false, true])
    func offerWithAChunkSizeOutOfBounds_isDeclinedWithTheReason_atOnce(roomKeyMode: Bool) throws {
        let room = try HostileRoom(roomKey: roomKeyMode ? RoomKey(bytes: Array(repeating: 7, count: 32)) : nil)
        for chunkSize: UInt32 in [9_999_999, 0] {
            let offer = FileOffer(
                fileID: Array(repeating: UInt8(truncatingIfNeeded: chunkSize), count: 16), size: 5000,
                chunkSize: chunkSize, key: Array(repeating: 1, count: 32), name: "report.pdf")
            room.mallory.sendPrivately(.fileOffer(offer), to: "bob")
            room.loop.runUntilIdle()
        }
        room.renderEverything()
        #expect(room.bobOutcome.value == nil)
        let declines = room.mallory.contentsHeard.compactMap { heard -> String? in
            if case .fileReply(_, false, _, let reason) = heard.content { return reason }
            return nil
        }
        #expect(
            declines == [
                "chunk size 9999999 out of bounds (allowed 1024 to 4194304 bytes)",
                "chunk size 0 out of bounds (allowed 1024 to 4194304 bytes)",
            ])
        #expect(room.bobOutput.warnings("tampered").isEmpty)
    }

    @Test func chunkCount_neverOverflows() {
        let offer = FileOffer(fileID: [], size: .max, chunkSize: 1024, key: [], name: "")
        #expect(offer.chunkCount == UInt64.max / 1024 + 1)
        #expect(FileOffer(fileID: [], size: 0, chunkSize: 1024, key: [], name: "").chunkCount == 1)
        #expect(FileOffer(fileID: [], size: 2048, chunkSize: 1024, key: [], name: "").chunkCount == 2)
        #expect(FileOffer(fileID: [], size: 2049, chunkSize: 1024, key: [], name: "").chunkCount == 3)
    }

    @Test func channelCounterAtTheLastValue_isRefused() throws {
        let room = try HostileRoom()
        room.mallory.sendOverChannel(
            MessageContent.text("edge").encoded(), to: "bob", counter: UInt64.max)
        room.loop.runUntilIdle()
        #expect(room.bobOutput.messages.isEmpty)
        // The channel still works from where it was.
        room.mallory.sendOverChannel(MessageContent.text("fine").encoded(), to: "bob", counter: 5)
        room.loop.runUntilIdle()
        #expect(room.bobOutput.messages == ["mallory (private): fine"] || room.bobOutput.messages == ["mallory: fine"])
    }
}

/// Seeded state-machine fuzzing with real keys: random programs of valid, authenticated actions by
/// a hostile member against a real client, in both key modes, for a few seconds each.
@Suite struct HostileMemberFuzzTests {
    @Test(arguments: HostileMemberFuzzer.Mode.allCases)
    func randomAuthenticatedPrograms_neverCrashOrStopTheVictim(mode: HostileMemberFuzzer.Mode) throws {
        let clock = ContinuousClock()
        let deadline = clock.now + .seconds(3)
        var seed: UInt64 = mode == .automatic ? 1 : 1_000_001
        var programs = 0
        var setup = Duration.zero
        // At least 10 programs whatever the machine's load, then as many as 3 s allow (400 at most).
        while (clock.now < deadline || programs < 10) && programs < 400 {
            let folder = InboxFolder()
            var generator = SeededGenerator(seed: seed)
            let program = generator.bytes(64 + Int(generator.next() % 256))
            let started = clock.now
            let fuzzer = try HostileMemberFuzzer(mode: mode, folder: folder.path)
            setup += clock.now - started
            fuzzer.run(program)
            #expect(fuzzer.checkInvariants() == [], "seed \(seed)")
            fuzzer.finish()
            seed += 1
            programs += 1
        }
        print("hostile-member fuzzing (\(mode)): \(programs) programs, \(setup) in setting up")
    }
}
