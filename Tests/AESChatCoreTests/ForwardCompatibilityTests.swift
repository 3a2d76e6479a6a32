import AESChatCrypto
import AESChatTesting
import Testing

@testable import AESChatCore

/// What a newer peer may send: contents of kinds this version does not know, and optional frame types
/// (docs/PROTOCOL.md sections 2 and 5). Ignored with a quiet notice, never taken for tampering, never breaking the
/// stream.
@Suite struct ForwardCompatibilityTests {
    @Test func unknownContentKind_decodesAsUnsupported_knownKindWithBadBody_isStillMalformed() throws {
        #expect(try MessageContent(decoding: [0x40, 1, 2, 3]) == .unsupported(kind: 0x40))
        #expect(try MessageContent(decoding: [0xFF]) == .unsupported(kind: 0xFF))
        #expect(
            try MessageContent(decoding: [0x03, 0, 0, 0, 0, 0, 0, 0, 9, 0x41, 7])
                == .identified(id: 9, .unsupported(kind: 0x41)))
        // An id before file control, or before another id, is still refused.
        #expect(throws: WireError.self) { try MessageContent(decoding: [0x03, 0, 0, 0, 0, 0, 0, 0, 9, 0x20]) }
        #expect(throws: WireError.self) { try MessageContent(decoding: [0x03, 0, 0, 0, 0, 0, 0, 0, 9, 0x03]) }
        // A known kind whose body does not parse.
        #expect(throws: WireError.self) { try MessageContent(decoding: [0x22, 1, 2]) }
        #expect(throws: WireError.self) { try MessageContent(decoding: [0x01, 0xFF]) }
    }

    @Test func unsupportedContent_isNoticedOnceThenAtPowersOfTen_andTheStreamGoesOn() throws {
        let harness = ChatHarness()
        let (_, bobSees, _) = harness.client("bob")
        // alice: a newer client, played by a raw peer that seals what it likes under the room key.
        let alice = harness.relayHarness.member("alice")
        let sealer = try RoomKeySealer(roomKey: harness.key, room: "lobby", sender: "alice")
        for kind: UInt8 in Array(repeating: 0x40, count: 12) + [0x41] {
            alice.send(.publish(payload: try sealer.seal(.unsupported(kind: kind))[...]))
        }
        alice.send(.publish(payload: try sealer.seal(.text("still here"))[...]))
        harness.loop.runUntilIdle()
        let notices = bobSees.events.compactMap { event -> String? in
            if case .unsupported(let from, let kind, let count) = event { return "\(from) \(kind) \(count)" }
            return nil
        }
        #expect(notices == ["alice 64 1", "alice 64 10", "alice 65 1"])
        #expect(bobSees.warnings.isEmpty)
        #expect(bobSees.messages == ["alice: still here"])
        #expect(
            ClientEvent.unsupported(from: "alice", kind: 0x40, count: 10).humanText
                == "* alice's client sent something this version cannot show (content kind 0x40) (10 so far); ignored. "
                + "A newer aeschat shows it")
    }

    @Test func relay_skipsAnOptionalClientFrame_andRefusesAnUnknownOtherOne() {
        let harness = RelayHarness()
        let alice = harness.member("alice")
        let bob = harness.member("bob")
        alice.connection.write(Frame.encode(type: 0x41) { $0.write(contentsOf: [1, 2, 3]) })
        alice.send(.publish(payload: Array("after".utf8)[...]))
        harness.loop.runUntilIdle()
        #expect(bob.delivered == ["alice:after"])
        #expect(alice.errors.isEmpty && !alice.closed)

        alice.connection.write(Frame.encode(type: 0x21) { $0.write(contentsOf: [1, 2, 3]) })
        harness.loop.runUntilIdle()
        #expect(alice.errors == [RelayErrorCode.malformedFrame.rawValue])
    }

    @Test func client_skipsAnOptionalRelayFrame_andCarriesOn() throws {
        let harness = ChatHarness()
        let (alice, _, _) = harness.client("alice")
        let (_, bobSees, link) = harness.tamperedClient("bob")
        let toBob = try #require(link.towardRelay.connection.handler as? ForwardToClient).clientSide
        toBob.write(Frame.encode(type: 0xC1) { $0.write(contentsOf: [9, 9]) })
        alice.submit(line: "hello bob")
        harness.loop.runUntilIdle()
        #expect(bobSees.messages == ["alice: hello bob"])
        #expect(!bobSees.events.contains { if case .error = $0 { true } else { false } })
    }
}
