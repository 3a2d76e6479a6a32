import AESChatCrypto
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
        #expect(key == hex("08796106a2aaa3851615d9be9ae0f1090dad4d2e1fe09fe569b3c4f134937430"))
    }

    @Test func workedExample_nonceAndAssociatedData() {
        #expect(RoomKeyEnvelope.nonce(counter: 7) == hex("000000000000000000000007"))
        let header = [RoomKeyEnvelope.kind] + sessionID + [0, 0, 0, 0, 0, 0, 0, 7]
        #expect(
            RoomKeyEnvelope.associatedData(header: header[...], room: "lobby", sender: "alice")
                == hex("616573636861742f3101a0a1a2a3a4a5a6a7a8a9aaabacadaeaf0000000000000007056c6f62627905616c696365"))
    }

    @Test func workedExample_publishAndDeliverFrames() throws {
        let sealer = try RoomKeySealer(
            roomKey: roomKey, room: "lobby", sender: "alice", fixedSessionID: sessionID, counter: 7)
        let envelope = try sealer.seal(.text("hello, world 👋"))
        #expect(MessageContent.text("hello, world 👋").encoded() == hex("0168656c6c6f2c20776f726c6420f09f918b"))
        let expectedEnvelope = hex(
            "01a0a1a2a3a4a5a6a7a8a9aaabacadaeaf000000000000000728062f47bfaf73866583b363a4ea9998cfb12bd599638acbb785cbbee2dc53a0c81a"
        )
        #expect(envelope == expectedEnvelope)
        #expect(ClientFrame.publish(payload: envelope[...]).encoded() == hex("0000003c02") + expectedEnvelope)
        let deliver = RelayFrame.deliver(from: "alice", isDirect: false, payload: envelope[...]).encoded()
        #expect(deliver == hex("000000438405616c69636500") + expectedEnvelope)

        var decoder = FrameDecoder()
        decoder.append(contentsOf: deliver)
        guard case .deliver(let from, false, let payload) = try RelayFrame(try #require(try decoder.nextFrame())) else {
            Issue.record("not a deliver frame")
            return
        }
        let opened = RoomKeyOpener(roomKey: roomKey, room: "lobby").open(payload, from: from)
        #expect(opened == .content(.text("hello, world 👋"), missing: 0))
    }
}
