import AESChatCrypto
import AESChatTesting
import Testing

@testable import AESChatCore

/// The worked example of docs/PROTOCOL.md, checked byte for byte. The expected values were
/// computed with an independent implementation (Python's `cryptography` package) from the
/// document's description, not from this code.
@Suite struct ProtocolVectorTests {
    let roomKey = RoomKey(bytes: Array(0x00...0x1F))
    let sessionID: [UInt8] = Array(0xA0...0xAF)

    func hex(_ text: String) -> [UInt8] { Hex.decode(text)! }

    @Test func workedExample_messageKey() throws {
        let key = try RoomKeyEnvelope.messageKey(
            roomKey: roomKey, sessionID: sessionID[...], room: "lobby", sender: "alice")
        #expect(
            key.withUnsafeBytes { Array($0) } == hex(WorkedExamples.RoomKeyMode.messageKey)
        )
    }

    /// The sending time of the example: 2026-12-03 00:00:00 UTC, in milliseconds.
    static let sentAt: UInt64 = 1_796_256_000_000

    @Test func workedExample_nonceAndAssociatedData() {
        #expect(RoomKeyEnvelope.nonce(counter: 7) == hex("000000000000000000000007"))
        let header = RoomKeyEnvelope.header(sessionID: sessionID, counter: 7, sentAt: Self.sentAt)
        #expect(header == [0x05] + sessionID + hex("0000000000000007000001a239336800"))
        #expect(
            RoomKeyEnvelope.associatedData(header: header[...], room: "lobby", sender: "alice", recipient: nil)
                == hex(
                    "616573636861742f3105a0a1a2a3a4a5a6a7a8a9aaabacadaeaf0000000000000007000001a239336800056c6f62627905616c69636500"
                ))
    }

    @Test func workedExample_publishAndDeliverFrames() throws {
        let sealer = try RoomKeySealer(
            roomKey: roomKey, room: "lobby", sender: "alice", fixedSessionID: sessionID, counter: 7,
            clock: { Self.sentAt })
        let envelope = try sealer.seal(.text("hello, world 👋"))
        #expect(MessageContent.text("hello, world 👋").encoded() == hex(WorkedExamples.RoomKeyMode.plaintext))
        let expectedEnvelope = hex(
            "05a0a1a2a3a4a5a6a7a8a9aaabacadaeaf0000000000000007000001a23933680028062f47bfaf73866583b363a4ea9998cfb1db47d266e8a1d537ba5ef84ee6126d9e"
        )
        #expect(envelope == expectedEnvelope)
        #expect(ClientFrame.publish(payload: envelope[...]).encoded() == hex("0000004402") + expectedEnvelope)
        let deliver = RelayFrame.deliver(from: "alice", isDirect: false, payload: envelope[...]).encoded()
        #expect(deliver == hex("0000004b8405616c69636500") + expectedEnvelope)

        var decoder = FrameDecoder()
        guard
            case .deliver(let from, false, let payload) = try RelayFrame(
                try #require(decoder.frames(after: deliver).frames.first))
        else {
            Issue.record("not a deliver frame")
            return
        }
        let opener = RoomKeyOpener(roomKey: roomKey, room: "lobby", clock: { Self.sentAt + 1_000 })
        #expect(opener.open(payload, from: from) == .content(.text("hello, world 👋"), missing: 0))
    }

    @Test func workedExample_privateFileControl_isBoundToItsRecipient() throws {
        let sealer = try RoomKeySealer(
            roomKey: roomKey, room: "lobby", sender: "alice", fixedSessionID: sessionID, counter: 0,
            clock: { Self.sentAt })
        let abort = MessageContent.fileAbort(fileID: Array(0x10...0x1F), reason: "stopped")
        #expect(abort.encoded() == hex("24101112131415161718191a1b1c1d1e1f000773746f70706564"))
        let header = RoomKeyEnvelope.header(sessionID: sessionID, counter: 0, sentAt: Self.sentAt)
        #expect(
            RoomKeyEnvelope.associatedData(header: header[...], room: "lobby", sender: "alice", recipient: "bob")
                == hex(
                    "616573636861742f3105a0a1a2a3a4a5a6a7a8a9aaabacadaeaf0000000000000000000001a239336800056c6f62627905616c69636503626f62"
                ))
        let envelope = try sealer.seal(abort, to: "bob")
        #expect(
            envelope
                == hex(
                    "05a0a1a2a3a4a5a6a7a8a9aaabacadaeaf0000000000000000000001a239336800c012378aff2a91b0ca3abf72fa05010efc50289ad564d4596fe1441b4da183faa453a5ad866bcb72ae16"
                ))
        let clock = { Self.sentAt }
        #expect(
            RoomKeyOpener(roomKey: roomKey, room: "lobby", clock: clock).open(envelope[...], from: "alice", to: "bob")
                == .content(abort, missing: 0))
        // Handed to carol, or presented as a room message, it fails.
        #expect(
            RoomKeyOpener(roomKey: roomKey, room: "lobby", clock: clock).open(envelope[...], from: "alice", to: "carol")
                .isRefused)
        #expect(
            RoomKeyOpener(roomKey: roomKey, room: "lobby", clock: clock).open(envelope[...], from: "alice").isRefused)
    }
}
