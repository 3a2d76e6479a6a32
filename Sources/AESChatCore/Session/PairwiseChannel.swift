import AESChatCrypto

/// One direction-pair of a pairwise channel: counter nonces per direction, strictly increasing.
final class PairwiseChannel {
    private let sender: AESGCM
    private let receiver: AESGCM
    private var sendCounter: UInt64 = 0
    private var nextReceiveCounter: UInt64 = 0

    init(sendKey: [UInt8], receiveKey: [UInt8]) throws(CryptoError) {
        sender = try AESGCM(key: sendKey)
        receiver = try AESGCM(key: receiveKey)
    }

    func seal(_ plaintext: [UInt8], room: String, from: String, to: String) throws(CryptoError) -> [UInt8] {
        let counter = sendCounter
        sendCounter += 1
        var writer = ByteWriter(capacity: plaintext.count + 32)
        writer.write(EnvelopeKind.channel.rawValue)
        writer.write(counter)
        let aad = AutomaticKeys.channelAssociatedData(counter: counter, room: room, from: from, to: to)
        writer.write(
            contentsOf: try sender.seal(plaintext, nonce: AutomaticKeys.counterNonce(counter), authenticating: aad))
        return writer.bytes
    }

    enum Opened: Equatable {
        case plaintext([UInt8], missing: UInt64)
        case tampered
        case replayed(UInt64)
    }

    func open(_ envelope: ArraySlice<UInt8>, room: String, from: String, to: String) -> Opened {
        var reader = ByteReader(envelope)
        guard (try? reader.readUInt8("kind")) == EnvelopeKind.channel.rawValue,
            let counter = try? reader.readUInt64("counter")
        else { return .tampered }
        guard counter >= nextReceiveCounter else { return .replayed(counter) }
        // The last counter would leave no next one (a wrapped next counter would accept replays).
        guard counter < UInt64.max else { return .tampered }
        let aad = AutomaticKeys.channelAssociatedData(counter: counter, room: room, from: from, to: to)
        guard
            let plaintext = try? receiver.open(
                Array(reader.readRemaining()), nonce: AutomaticKeys.counterNonce(counter), authenticating: aad)
        else { return .tampered }
        let missing = counter - nextReceiveCounter
        nextReceiveCounter = counter &+ 1
        return .plaintext(plaintext, missing: missing)
    }
}
