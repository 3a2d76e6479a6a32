import AESChatCrypto
import Testing

@testable import AESChatCore

/// The record layer and the preamble of the encrypted link (Sources/AESChatCore/Link/LinkRecords.swift and
/// LinkPreamble.swift): records over a real NK handshake, splitting, reading in any pieces, deterministic rekeying,
/// failing closed, and the preamble's parser.
@Suite struct LinkRecordTests {
    // MARK: - Helpers

    /// Both sides' transport keys after a real NK handshake whose prologue carries the preamble.
    private func handshake() throws -> (initiator: NoiseTransportKeys, responder: NoiseTransportKeys) {
        let relayKey = try X25519PrivateKey(rawRepresentation: [UInt8](repeating: 7, count: 32))
        let preamble = try LinkPreamble(relayFingerprint: SHA256.hash(relayKey.publicKey))
        let initiator = try NoiseHandshake.initiator(
            responderStaticKey: relayKey.publicKey, prologue: preamble.prologue)
        let responder = NoiseHandshake.responder(staticKey: relayKey, prologue: preamble.prologue)
        _ = try responder.readMessage(try initiator.writeMessage())
        _ = try initiator.readMessage(try responder.writeMessage())
        return (try initiator.finish(), try responder.finish())
    }

    /// Two cipher states with one fixed key, for a writer and its reader.
    private func pair(key: UInt8 = 1) throws -> (NoiseCipherState, NoiseCipherState) {
        let bytes = [UInt8](repeating: key, count: 32)
        return (try NoiseCipherState(key: SecretBytes(bytes)), try NoiseCipherState(key: SecretBytes(bytes)))
    }

    private func bytes(_ count: Int, seed: UInt64) -> [UInt8] {
        var generator = SeededGenerator(seed: seed)
        return (0..<count).map { _ in UInt8.random(in: 0...255, using: &generator) }
    }

    /// Reads `stream` in pieces cut after each offset in `cuts`, and then the rest; returns what was delivered
    /// and the first failure.
    private func read(
        _ stream: [UInt8], with reader: LinkRecordReader, pieces: [Int]
    ) -> (plaintext: [UInt8], error: LinkError?) {
        var plaintext: [UInt8] = []
        var offset = 0
        for size in pieces + [stream.count] where offset < stream.count {
            let end = min(stream.count, offset + size)
            do {
                try reader.read(Array(stream[offset..<end]), into: &plaintext)
            } catch {
                return (plaintext, error)
            }
            offset = end
        }
        return (plaintext, nil)
    }

    /// The record lengths (the `len` prefixes) of a well-formed stream.
    private func recordLengths(_ stream: [UInt8]) -> [Int] {
        var lengths: [Int] = []
        var offset = 0
        while offset + 2 <= stream.count {
            let length = Int(stream[offset]) << 8 | Int(stream[offset + 1])
            lengths.append(length)
            offset += 2 + length
        }
        return lengths
    }

    // MARK: - Round trips

    @Test func records_roundTrip_overNKHandshakeBothWays() throws {
        let (client, relay) = try handshake()
        let clientWriter = LinkRecordWriter(cipher: client.sending)
        let relayReader = LinkRecordReader(cipher: relay.receiving)
        let relayWriter = LinkRecordWriter(cipher: relay.sending)
        let clientReader = LinkRecordReader(cipher: client.receiving)

        let hello = Array("a hello frame, then another".utf8)
        var received: [UInt8] = []
        try relayReader.read(try clientWriter.seal(hello), into: &received)
        #expect(received == hello)

        let welcome = bytes(1_000, seed: 1)
        var back: [UInt8] = []
        try clientReader.read(try relayWriter.seal(welcome), into: &back)
        #expect(back == welcome)
        // The two directions use different keys: a record cannot be reflected to its sender.
        let reflected = try clientWriter.seal(hello)
        #expect(throws: LinkError.authenticationFailed) { try clientReader.read(reflected, into: &back) }
        #expect(back == welcome)
    }

    @Test func writer_emptyPlaintext_makesNoRecord() throws {
        let (sending, _) = try pair()
        let writer = LinkRecordWriter(cipher: sending)
        #expect(try writer.seal([]).isEmpty)
        #expect(sending.nonce == 0)
    }

    @Test func writer_frameLargerThanOneRecord_splitsIntoFullRecordsThenTheRest() throws {
        let (sending, receiving) = try pair()
        let frame = bytes(200_000, seed: 2)
        let stream = try LinkRecordWriter(cipher: sending).seal(frame)
        #expect(recordLengths(stream) == [65_535, 65_535, 65_535, 200_000 - 3 * 65_519 + 16])
        #expect(stream.count == LinkRecordWriter.recordsLength(forPlaintext: frame.count))
        #expect(stream.count == 200_000 + 4 * 18)
        let (plaintext, error) = read(stream, with: LinkRecordReader(cipher: receiving), pieces: [])
        #expect(error == nil)
        #expect(plaintext == frame)
    }

    @Test func writer_exactlyOneFullRecord_makesOneRecord() throws {
        let (sending, _) = try pair()
        let stream = try LinkRecordWriter(cipher: sending).seal(bytes(65_519, seed: 3))
        #expect(recordLengths(stream) == [65_535])
    }

    @Test func reader_wholeBytewiseAndRandomChunks_deliverTheSamePlaintext() throws {
        let (sending, _) = try pair()
        let writer = LinkRecordWriter(cipher: sending)
        var stream: [UInt8] = []
        var expected: [UInt8] = []
        for (index, size) in [1, 300, 0, 70_000, 16, 5_000, 65_519, 2].enumerated() {
            let run = bytes(size, seed: UInt64(10 + index))
            expected += run
            try run.withUnsafeBytes { try writer.seal($0, into: &stream) }
        }
        #expect(recordLengths(stream).count == 8)

        func fresh() throws -> LinkRecordReader { LinkRecordReader(cipher: try pair().1) }
        let whole = read(stream, with: try fresh(), pieces: [])
        #expect(whole.error == nil)
        #expect(whole.plaintext == expected)

        let bytewise = try fresh()
        let byByte = read(stream, with: bytewise, pieces: Array(repeating: 1, count: stream.count))
        #expect(byByte.error == nil)
        #expect(byByte.plaintext == expected)
        #expect(bytewise.bufferedByteCount == 0)

        for seed in 0..<8 as Range<UInt64> {
            var generator = SeededGenerator(seed: seed)
            let pieces = (0..<400).map { _ in
                Int.random(in: 1...(seed.isMultiple(of: 2) ? 40 : 70_000), using: &generator)
            }
            let chunked = read(stream, with: try fresh(), pieces: pieces)
            #expect(chunked.error == nil, "seed \(seed)")
            #expect(chunked.plaintext == expected, "seed \(seed)")
        }
    }

    @Test func reader_deliverCallback_getsOneCallPerRecordWithPlaintext() throws {
        let (sending, receiving) = try pair()
        let writer = LinkRecordWriter(cipher: sending)
        var stream = try writer.seal(Array("one".utf8))
        stream += try writer.seal(Array("two".utf8))
        let reader = LinkRecordReader(cipher: receiving)
        var calls: [String] = []
        try stream.withUnsafeBytes { piece in
            try reader.read(piece) { calls.append(String(decoding: $0, as: UTF8.self)) }
        }
        #expect(calls == ["one", "two"])
        try reader.finish()
    }

    // MARK: - Rekeying

    @Test func rekey_smallIntervalOnBothSides_interoperates() throws {
        let (client, relay) = try handshake()
        let writer = LinkRecordWriter(cipher: client.sending, rekeyInterval: 3)
        let reader = LinkRecordReader(cipher: relay.receiving, rekeyInterval: 3)
        var expected: [UInt8] = []
        var received: [UInt8] = []
        for index in 0..<10 {
            let run = bytes(100 + index, seed: UInt64(index))
            expected += run
            try reader.read(try writer.seal(run), into: &received)
        }
        #expect(received == expected)
        #expect(client.sending.nonce == 10)
        #expect(relay.receiving.nonce == 10)
    }

    @Test func rekey_readerThatDoesNotRekey_failsOnTheFirstRecordAfterTheInterval() throws {
        let (sending, receiving) = try pair()
        let writer = LinkRecordWriter(cipher: sending, rekeyInterval: 3)
        let reader = LinkRecordReader(cipher: receiving)
        var stream: [UInt8] = []
        for index in 0..<5 {
            stream += try writer.seal([UInt8(index)])
        }
        let (plaintext, error) = read(stream, with: reader, pieces: [])
        #expect(plaintext == [0, 1, 2])
        #expect(error == .authenticationFailed)
        #expect(receiving.nonce == 3)
    }

    @Test func rekey_keyActuallyChanges_sameCounterDifferentCiphertext() throws {
        let (rekeyed, plain) = try pair()
        let first = LinkRecordWriter(cipher: rekeyed, rekeyInterval: 1)
        let second = LinkRecordWriter(cipher: plain)
        _ = try first.seal([1])
        _ = try second.seal([1])
        #expect(try first.seal([2]) != second.seal([2]))
    }

    // MARK: - Nonce exhaustion

    @Test func writer_nonceExhausted_refusesAndLeavesOutputUnchanged() throws {
        let (sending, _) = try pair()
        sending.setNonce(UInt64.max - 1)
        let writer = LinkRecordWriter(cipher: sending)
        var output: [UInt8] = [9]
        try [UInt8]([1]).withUnsafeBytes { try writer.seal($0, into: &output) }
        #expect(output.count == 1 + 2 + 1 + 16)
        let before = output
        #expect(throws: LinkError.nonceExhausted) {
            try [UInt8]([2]).withUnsafeBytes { try writer.seal($0, into: &output) }
        }
        #expect(output == before)
        // A run of several records is all or nothing, and the writer stays failed.
        #expect(throws: LinkError.nonceExhausted) { try writer.seal([]) }
    }

    @Test func writer_failureInsideARun_dropsTheWholeRun() throws {
        let (sending, _) = try pair()
        sending.setNonce(UInt64.max - 2)
        let writer = LinkRecordWriter(cipher: sending)
        var output: [UInt8] = []
        #expect(throws: LinkError.nonceExhausted) {
            try bytes(3 * 65_519, seed: 4).withUnsafeBytes { try writer.seal($0, into: &output) }
        }
        #expect(output.isEmpty)
    }

    @Test func reader_nonceExhausted_refuses() throws {
        let (sending, receiving) = try pair()
        sending.setNonce(UInt64.max - 1)
        receiving.setNonce(UInt64.max - 1)
        let record = try LinkRecordWriter(cipher: sending).seal([5])
        let reader = LinkRecordReader(cipher: receiving)
        var plaintext: [UInt8] = []
        try reader.read(record, into: &plaintext)
        #expect(plaintext == [5])
        #expect(throws: LinkError.nonceExhausted) { try reader.read(record, into: &plaintext) }
        #expect(plaintext == [5])
    }

    // MARK: - Failing closed

    @Test func reader_flippedBitAnywhere_failsAndDeliversNothingFromThatRecordOn() throws {
        let (sending, _) = try pair()
        let writer = LinkRecordWriter(cipher: sending)
        let runs = [bytes(20, seed: 5), bytes(3, seed: 6), bytes(40, seed: 7)]
        var stream: [UInt8] = []
        var recordOf: [Int] = []
        for (index, run) in runs.enumerated() {
            let record = try writer.seal(run)
            stream += record
            recordOf += Array(repeating: index, count: record.count)
        }
        for position in stream.indices {
            for bit in 0..<8 {
                var altered = stream
                altered[position] ^= 1 << bit
                let reader = LinkRecordReader(cipher: try pair().1)
                var (plaintext, error) = read(altered, with: reader, pieces: [])
                if error == nil {
                    // A length made longer waits for bytes that never come.
                    #expect(reader.bufferedByteCount > 0)
                    #expect(throws: LinkError.self) { try reader.finish() }
                }
                let expected = runs[..<recordOf[position]].reduce([], +)
                #expect(plaintext == expected, "byte \(position) bit \(bit)")
                // Nothing after the failure is delivered, even a valid continuation.
                if error != nil {
                    #expect(throws: error!) { try reader.read(stream, into: &plaintext) }
                    #expect(plaintext == expected)
                    error = nil
                }
            }
        }
    }

    @Test func reader_lengthBelowTag_isRefusedForEveryValue() throws {
        for length in 0..<16 {
            let (sending, receiving) = try pair()
            let writer = LinkRecordWriter(cipher: sending)
            let stream =
                try writer.seal([1, 2, 3]) + [0, UInt8(length)] + [UInt8](repeating: 0, count: 16)
                + writer.seal([4])
            let reader = LinkRecordReader(cipher: receiving)
            let (plaintext, error) = read(stream, with: reader, pieces: [])
            #expect(plaintext == [1, 2, 3], "len \(length)")
            #expect(error == .ciphertextTooShort(actual: length), "len \(length)")
            #expect(reader.hasFailed)
            #expect(throws: LinkError.ciphertextTooShort(actual: length)) { try reader.finish() }
        }
    }

    @Test func reader_truncatedStream_holdsThePartialRecordAndFinishSaysSo() throws {
        let (sending, _) = try pair()
        let writer = LinkRecordWriter(cipher: sending)
        let first = try writer.seal([1, 2, 3])
        let second = try writer.seal(bytes(100, seed: 8))
        for cut in 0..<second.count {
            let reader = LinkRecordReader(cipher: try pair().1)
            let (plaintext, error) = read(first + second[..<cut], with: reader, pieces: [])
            #expect(error == nil)
            #expect(plaintext == [1, 2, 3])
            #expect(reader.bufferedByteCount == cut)
            if cut == 0 {
                try reader.finish()
            } else {
                #expect(throws: LinkError.truncatedRecord(buffered: cut)) { try reader.finish() }
            }
        }
    }

    // MARK: - In-place cipher calls

    @Test func cipherState_inPlace_matchesTheArrayCalls() throws {
        let (arrayState, inPlaceState) = try pair()
        let plaintext = bytes(1_000, seed: 9)
        let sealed = try arrayState.encrypt(plaintext)
        var buffer = plaintext + [UInt8](repeating: 0, count: 16)
        try buffer.withUnsafeMutableBytes { try inPlaceState.encryptInPlace($0) }
        #expect(buffer == sealed)
        #expect(inPlaceState.nonce == 1)

        let (opener, arrayOpener) = try pair()
        #expect(try arrayOpener.decrypt(sealed) == plaintext)
        let count = try buffer.withUnsafeMutableBytes { try opener.decryptInPlace($0) }
        #expect(count == 1_000)
        #expect(Array(buffer[..<count]) == plaintext)
        #expect(opener.nonce == 1)
    }

    @Test func cipherState_inPlace_matchesTheArrayCalls_atLargeCounters() throws {
        for counter: UInt64 in [1, 255, 256, 1 << 32 - 1, 1 << 32, 1 << 56, UInt64.max - 1] {
            let (arrayState, inPlaceState) = try pair(key: 3)
            arrayState.setNonce(counter)
            inPlaceState.setNonce(counter)
            let plaintext = bytes(33, seed: counter)
            var buffer = plaintext + [UInt8](repeating: 0, count: 16)
            try buffer.withUnsafeMutableBytes { try inPlaceState.encryptInPlace($0) }
            #expect(buffer == (try arrayState.encrypt(plaintext)), "counter \(counter)")
            let (opener, _) = try pair(key: 3)
            opener.setNonce(counter)
            let count = try buffer.withUnsafeMutableBytes { try opener.decryptInPlace($0) }
            #expect(Array(buffer[..<count]) == plaintext, "counter \(counter)")
        }
    }

    @Test func cipherState_decryptInPlace_tamperedZeroesAndKeepsTheCounter() throws {
        let (sending, receiving) = try pair()
        var buffer = try sending.encrypt(bytes(64, seed: 10))
        buffer[0] ^= 1
        #expect(throws: LinkError.authenticationFailed) {
            try buffer.withUnsafeMutableBytes { try receiving.decryptInPlace($0) }
        }
        #expect(buffer[..<64].allSatisfy { $0 == 0 })
        #expect(receiving.nonce == 0)
    }

    @Test func cipherState_inPlace_refusesLengthsOutside16To65535() throws {
        let (state, _) = try pair()
        var short = [UInt8](repeating: 0, count: 15)
        var long = [UInt8](repeating: 0, count: 65_536)
        #expect(throws: LinkError.ciphertextTooShort(actual: 15)) {
            try short.withUnsafeMutableBytes { try state.encryptInPlace($0) }
        }
        #expect(throws: LinkError.ciphertextTooShort(actual: 15)) {
            try short.withUnsafeMutableBytes { try state.decryptInPlace($0) }
        }
        #expect(throws: LinkError.messageTooLong(actual: 65_536, maximum: 65_535)) {
            try long.withUnsafeMutableBytes { try state.encryptInPlace($0) }
        }
        #expect(throws: LinkError.messageTooLong(actual: 65_536, maximum: 65_535)) {
            try long.withUnsafeMutableBytes { try state.decryptInPlace($0) }
        }
        #expect(state.nonce == 0)
    }

    // MARK: - Preamble

    @Test func preamble_encodesMagicVersionAndKeyID() throws {
        let fingerprint = SHA256.hash(Array("relay key".utf8))
        let preamble = try LinkPreamble(relayFingerprint: fingerprint)
        #expect(preamble.bytes == Array("AESCHAT".utf8) + [2] + fingerprint[0..<4])
        #expect(preamble.bytes.count == 12)
        #expect(preamble.keyID == Array(fingerprint[0..<4]))
        #expect(preamble.prologue == Array("aeschat/2 transport".utf8) + preamble.bytes)
    }

    @Test func preamble_parse_rightOneEvenWithTheHandshakeAfterIt() throws {
        let preamble = try LinkPreamble(relayFingerprint: [0xDE, 0xAD, 0xBE, 0xEF, 0x01])
        #expect(try LinkPreamble.parse(preamble.bytes) == preamble)
        #expect(try LinkPreamble.parse(preamble.bytes + [0, 48] + bytes(48, seed: 11)) == preamble)
        #expect(try LinkPreamble.parse(ArraySlice(preamble.bytes))?.keyID == [0xDE, 0xAD, 0xBE, 0xEF])
    }

    @Test func preamble_parse_wrongMagicIsNotAESChat() {
        // A v1 client's first bytes: a frame length below 16 MiB.
        for input in [[0, 0, 0, 40, 1], Array("GET / HTTP/1.1\r\n".utf8), Array("AESCHAX\u{2}abcd".utf8), [0x42]] {
            #expect(throws: LinkError.notAESChat) { try LinkPreamble.parse(input) }
        }
        #expect(LinkError.notAESChat.description.contains("not an aeschat relay or client"))
    }

    @Test func preamble_parse_otherVersionNamesIt() {
        for version in [0, 1, 3, 255] {
            let input = Array("AESCHAT".utf8) + [UInt8(version), 1, 2, 3, 4]
            #expect(throws: LinkError.unsupportedVersion(version)) { try LinkPreamble.parse(input) }
            // As soon as the version byte is there.
            #expect(throws: LinkError.unsupportedVersion(version)) { try LinkPreamble.parse(input[..<8]) }
        }
        #expect(
            LinkError.unsupportedVersion(1).description
                == "the peer speaks aeschat protocol version 1, this build speaks 2; update the older side")
    }

    @Test func preamble_parse_shortValidStartAsksForMore() throws {
        let whole = try LinkPreamble(relayFingerprint: [1, 2, 3, 4]).bytes
        for count in 0..<12 {
            #expect(try LinkPreamble.parse(whole[..<count]) == nil, "\(count) bytes")
        }
    }

    @Test func preamble_shortFingerprint_isRefused() {
        #expect(throws: LinkError.fingerprintTooShort(actual: 3)) { try LinkPreamble(relayFingerprint: [1, 2, 3]) }
    }

    @Test func linkErrors_newDescriptions_areOneLine() {
        let errors: [LinkError] = [
            .notAESChat, .unsupportedVersion(7), .fingerprintTooShort(actual: 0), .truncatedRecord(buffered: 5),
        ]
        for error in errors {
            #expect(!error.description.contains("\n"))
            #expect(!error.description.isEmpty)
        }
    }
}
