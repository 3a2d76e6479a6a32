#if canImport(Glibc)
    import CLinux
    import Glibc
#endif
import AESChatCrypto
import Foundation
import Testing

@testable import AESChatCore

/// What an idle link costs per connection: the record layer holds keys and counters, never a cipher handle; each
/// operation borrows its thread's ``AESGCMWorkspace``.
@Suite(.serialized) struct LinkMemoryTests {
    @Test func cipherStates_sharingTheThreadsHandle_interleavedAndRekeyed_matchTheirPeers() throws {
        // Four states over two keys, used in turn on one thread: each seal must use its own key and counter.
        let keyA = SecretBytes([UInt8](repeating: 1, count: 32))
        let keyB = SecretBytes([UInt8](repeating: 2, count: 32))
        let (sendA, openA) = (try NoiseCipherState(key: keyA), try NoiseCipherState(key: keyA))
        let (sendB, openB) = (try NoiseCipherState(key: keyB), try NoiseCipherState(key: keyB))
        for round in 0..<6 {
            let plaintext = linkTestBytes(50 + round, seed: UInt64(round))
            let sealedA = try sendA.encrypt(plaintext)
            let sealedB = try sendB.encrypt(plaintext)
            #expect(sealedA != sealedB)
            #expect(try openB.decrypt(sealedB) == plaintext)
            #expect(try openA.decrypt(sealedA) == plaintext)
            #expect(throws: LinkError.authenticationFailed) { try openA.decrypt(sealedB) }
            if round == 2 {
                try sendA.rekey()
                try openA.rekey()
            }
        }
        // The same results as a handle of its own: AESGCM under key A at nonce 0.
        let fresh = try NoiseCipherState(key: keyA)
        #expect(
            try fresh.encrypt([9])
                == AESGCM(key: [UInt8](repeating: 1, count: 32)).seal(
                    [9], nonce: [UInt8](repeating: 0, count: 12), authenticating: []))
    }

    @Test func keysFromAHandshakeOnAnotherThread_workOnThisOne() throws {
        final class Handover: @unchecked Sendable {
            var keys: (initiator: NoiseTransportKeys, responder: NoiseTransportKeys)?
            var sealed: [UInt8] = []
        }
        let handover = Handover()
        let done = DispatchSemaphore(value: 0)
        let worker = Thread {
            // The handshake, and a first record, on the worker thread's own workspace.
            handover.keys = try? linkHandshake()
            if let keys = handover.keys {
                handover.sealed = (try? LinkRecordWriter(cipher: keys.responder.sending).seal([1, 2, 3])) ?? []
            }
            done.signal()
        }
        worker.start()
        done.wait()
        let keys = try #require(handover.keys)
        let clientLayer = LinkRecordLayer(keys: keys.initiator)
        var received: [UInt8] = []
        var bytes = handover.sealed
        try bytes.withUnsafeMutableBytes { buffer in
            try clientLayer.openRecords(buffer) { received.append(contentsOf: $0) }
        }
        #expect(received == [1, 2, 3])
    }

    @Test func aesgcm_setKey_replacesTheKey() throws {
        let first = [UInt8](repeating: 3, count: 32)
        let second = [UInt8](repeating: 4, count: 32)
        let nonce = [UInt8](repeating: 7, count: 12)
        let cipher = try AESGCM(key: first)
        try cipher.setKey(SecretBytes(second))
        #expect(
            try cipher.seal([1, 2], nonce: nonce, authenticating: [])
                == AESGCM(key: second).seal([1, 2], nonce: nonce, authenticating: []))
        var buffer: [UInt8] = [1, 2] + [UInt8](repeating: 0, count: 16)
        try buffer.withUnsafeMutableBytes { output in
            try nonce.withUnsafeBytes { try cipher.sealInPlace(output, nonce: $0) }
        }
        #expect(buffer == (try AESGCM(key: second).seal([1, 2], nonce: nonce, authenticating: [])))
        try buffer.withUnsafeMutableBytes { output in
            try nonce.withUnsafeBytes { try cipher.openInPlace(output, nonce: $0) }
        }
        #expect(buffer.prefix(2) == [1, 2])
        #expect(throws: CryptoError.self) { try cipher.setKey(SecretBytes([1, 2, 3])) }
    }

    @Test(arguments: [LinkCipherHandles.borrowed, .owned], [LinkCipherHandles.borrowed, .owned])
    func recordLayer_rekeyingInItsSlots_matchesAReaderAndWriterOverCipherStates(
        clientHandles: LinkCipherHandles, relayHandles: LinkCipherHandles
    ) throws {
        // Two layers' directions share one SecretKeySlots each; rekeying one slot must not disturb the other, and the
        // thread's handle, or a direction's own, must take up each replaced key.
        let (client, relay) = try linkHandshake()
        let clientLayer = LinkRecordLayer(keys: client, rekeyInterval: 2, handles: clientHandles)
        let relayLayer = LinkRecordLayer(keys: relay, rekeyInterval: 2, handles: relayHandles)
        for round in 0..<7 {
            let plaintext = linkTestBytes(20 + round, seed: UInt64(round))
            for (layer, peer) in [(clientLayer, relayLayer), (relayLayer, clientLayer)] {
                var record = [UInt8](repeating: 0, count: 2) + plaintext + [UInt8](repeating: 0, count: 16)
                try record.withUnsafeMutableBytes { try layer.sealRecord($0) }
                var opened: [UInt8] = []
                try record.withUnsafeMutableBytes { buffer in
                    try peer.openRecords(buffer) { opened.append(contentsOf: $0) }
                }
                #expect(opened == plaintext)
            }
        }
        // The cipher states handed over can no longer seal or open: no nonce is used twice.
        #expect(throws: LinkError.nonceExhausted) { try client.sending.encrypt([1]) }
        #expect(throws: LinkError.nonceExhausted) { try relay.receiving.decrypt([UInt8](repeating: 0, count: 16)) }
    }

    @Test(arguments: [LinkCipherHandles.borrowed, .owned])
    func recordLayer_sealsAsAWriterOverTheSameCipherState(handles: LinkCipherHandles) throws {
        // The same keys, handed to a layer and (from a second identical handshake's state) to a writer, give the
        // same records, rekeys included (a direction's own handle is made again with each new key).
        let key = [UInt8](repeating: 9, count: 32)
        func keys() throws -> NoiseTransportKeys {
            NoiseTransportKeys(
                role: .initiator, initiatorToResponder: try NoiseCipherState(key: SecretBytes(key)),
                responderToInitiator: try NoiseCipherState(key: SecretBytes(key)), handshakeHash: [])
        }
        let layer = LinkRecordLayer(keys: try keys(), rekeyInterval: 3, handles: handles)
        let writer = LinkRecordWriter(cipher: try keys().sending, rekeyInterval: 3)
        for round in 0..<8 {
            let plaintext = linkTestBytes(5 + round, seed: UInt64(100 + round))
            var record = [UInt8](repeating: 0, count: 2) + plaintext + [UInt8](repeating: 0, count: 16)
            try record.withUnsafeMutableBytes { try layer.sealRecord($0) }
            #expect(record == (try writer.seal(plaintext)))
        }
    }

    /// A receiver that lends storage for the next plaintext bytes in sizes taken in turn from `sizes` (0: it lends
    /// none for that record), as a frame reader does for the rest of a large frame, and reassembles what it gets
    /// through either path.
    private final class LendingReceiver {
        let sizes: [Int]
        private var next = 0
        /// The storage lent and not yet filled, filled with 0xAA when lent.
        private(set) var lent: UnsafeMutableRawBufferPointer?
        private(set) var received: [UInt8] = []
        private(set) var filledBytes = 0
        private(set) var deliveredBytes = 0

        init(sizes: [Int]) { self.sizes = sizes }

        deinit { lent?.deallocate() }

        /// Opens `piece` with `layer`, lending storage as described.
        func open(_ piece: [UInt8], with layer: LinkRecordLayer) throws(TransportError) {
            var bytes = piece
            var failure: TransportError?
            bytes.withUnsafeMutableBytes { buffer in
                do throws(TransportError) {
                    try layer.openRecords(
                        buffer,
                        into: {
                            if lent == nil {
                                let size = sizes[next % sizes.count]
                                next += 1
                                guard size > 0 else { return nil }
                                let storage = UnsafeMutableRawBufferPointer.allocate(byteCount: size, alignment: 1)
                                storage.initializeMemory(as: UInt8.self, repeating: 0xAA)
                                lent = storage
                            }
                            return lent
                        },
                        filled: { count in
                            received += UnsafeRawBufferPointer(rebasing: lent![0..<count])
                            filledBytes += count
                            lent!.deallocate()
                            lent = nil
                        },
                        deliver: { plaintext in
                            received += plaintext
                            deliveredBytes += plaintext.count
                        })
                } catch {
                    failure = error
                }
            }
            if let failure { throw failure }
        }
    }

    /// Transport keys with one fixed key both ways, so that several layers can read what one sealed.
    private func fixedKeys(_ byte: UInt8) throws -> NoiseTransportKeys {
        let key = [UInt8](repeating: byte, count: 32)
        return NoiseTransportKeys(
            role: .initiator, initiatorToResponder: try NoiseCipherState(key: SecretBytes(key)),
            responderToInitiator: try NoiseCipherState(key: SecretBytes(key)), handshakeHash: [])
    }

    @Test func recordLayer_openingIntoLentStorage_deliversTheSameBytesInOrder() throws {
        let writer = LinkRecordLayer(keys: try fixedKeys(8))
        var stream: [UInt8] = []
        var expected: [UInt8] = []
        for (index, size) in [65_519, 1, 300, 65_519, 0, 70_000, 16, 200_000, 3].enumerated() {
            let plaintext = linkTestBytes(size, seed: UInt64(200 + index))
            expected += plaintext
            var offset = 0
            repeat {
                let chunk = min(65_519, plaintext.count - offset)
                var record = [UInt8](repeating: 0, count: 2) + plaintext[offset..<(offset + chunk)]
                record += [UInt8](repeating: 0, count: 16)
                try record.withUnsafeMutableBytes { try writer.sealRecord($0) }
                stream += record
                offset += chunk
            } while offset < plaintext.count
        }
        for (seed, sizes) in [[100_000], [0], [1, 0, 65_519, 7], [70_000, 16, 0, 100], [65_519]].enumerated() {
            // Read in random pieces: records whole, cut, and held across reads (opened from the held copy).
            let reader = LinkRecordLayer(keys: try fixedKeys(8))
            var generator = SeededGenerator(seed: UInt64(seed))
            let receiver = LendingReceiver(sizes: sizes)
            var offset = 0
            while offset < stream.count {
                let end = min(stream.count, offset + Int.random(in: 1...150_000, using: &generator))
                try receiver.open(Array(stream[offset..<end]), with: reader)
                offset = end
            }
            #expect(receiver.received == expected, "lent sizes \(sizes)")
            #expect(reader.bufferedByteCount == 0)
            if sizes.allSatisfy({ $0 == 0 }) {
                #expect(receiver.filledBytes == 0)
            } else {
                #expect(receiver.filledBytes > 0, "lent sizes \(sizes)")
            }
            #expect(receiver.filledBytes + receiver.deliveredBytes == expected.count)
        }
    }

    @Test func recordLayer_openingIntoLentStorage_tamperedRecord_reportsNothingAndZeroesTheStorage() throws {
        let plaintext = linkTestBytes(3 * 65_519, seed: 9)
        let writer = LinkRecordWriter(cipher: try fixedKeys(4).sending)
        let stream = try writer.seal(plaintext)
        // A bit of the third record's ciphertext, or of its tag.
        for flipped in [2 * 65_537 + 2 + 10, 3 * 65_537 - 1] {
            var altered = stream
            altered[flipped] ^= 0x01
            let reader = LinkRecordLayer(keys: try fixedKeys(4))
            let receiver = LendingReceiver(sizes: [100_000])
            #expect(throws: TransportError.self) { try receiver.open(altered, with: reader) }
            #expect(receiver.received == Array(plaintext[0..<(2 * 65_519)]), "flipped \(flipped)")
            #expect(receiver.filledBytes == 2 * 65_519)
            // The third record was opened into lent storage before its tag was checked: those bytes are zero now.
            let lent = Array(try #require(receiver.lent))
            #expect(lent[0..<65_519].allSatisfy { $0 == 0 }, "flipped \(flipped)")
            #expect(lent[65_519...].allSatisfy { $0 == 0xAA })
            // Failed for good.
            #expect(throws: TransportError.self) { try receiver.open([1, 2, 3], with: reader) }
        }
    }

    @Test func recordLayer_preferredReadLength_endsReadsWhereFullRecordsEnd() throws {
        let plaintext = linkTestBytes(20 * 65_519 + 1_000, seed: 5)
        let stream = try LinkRecordWriter(cipher: try fixedKeys(3).sending).seal(plaintext)
        let reader = LinkRecordLayer(keys: try fixedKeys(3))
        let limit = 256 * 1024
        #expect(reader.preferredReadLength(limit: limit) == 3 * 65_537)
        #expect(reader.preferredReadLength(limit: 1_000) == 1_000)
        var received: [UInt8] = []
        var offset = 0
        var reads = 0
        while offset < stream.count {
            // The first read cuts a record (as a read of whatever had arrived would); the others take the preferred
            // length, which completes the held record and then takes whole ones only.
            let length = reads == 0 ? 100_000 : reader.preferredReadLength(limit: limit)
            let end = min(stream.count, offset + length)
            var piece = Array(stream[offset..<end])
            try piece.withUnsafeMutableBytes { bytes in try reader.openRecords(bytes) { received += $0 } }
            offset = end
            reads += 1
            if reads == 1 {
                #expect(reader.bufferedByteCount == 100_000 - 65_537)
                #expect(reader.preferredReadLength(limit: limit) == (2 * 65_537 - 100_000) + 3 * 65_537)
                // A held piece too short to show its record's length: no guess.
                #expect(reader.preferredReadLength(limit: 10) == 10)
            } else {
                #expect(reader.bufferedByteCount == 0, "read \(reads)")
            }
        }
        #expect(received == plaintext)
        // A held record whose length prefix is cut: the whole limit.
        let cut = LinkRecordLayer(keys: try fixedKeys(3))
        var one: [UInt8] = [stream[0]]
        try one.withUnsafeMutableBytes { bytes in try cut.openRecords(bytes) { _ in } }
        #expect(cut.preferredReadLength(limit: limit) == limit)
    }

    @Test func recordLayer_sealGathering_matchesSealingTheConcatenationInPlace() throws {
        let gathering = LinkRecordLayer(keys: try fixedKeys(6), rekeyInterval: 2)
        let inPlace = LinkRecordLayer(keys: try fixedKeys(6), rekeyInterval: 2)
        for round in 0..<6 {
            let parts = [
                linkTestBytes(round * 7, seed: 1), linkTestBytes(1, seed: 2), linkTestBytes(300 * round, seed: 3),
            ]
            let plaintext = parts.flatMap { $0 }
            var expected = [UInt8](repeating: 0, count: 2) + plaintext + [UInt8](repeating: 0, count: 16)
            try expected.withUnsafeMutableBytes { try inPlace.sealRecord($0) }
            var record = [UInt8](repeating: 0, count: plaintext.count + 18)
            try parts[0].withUnsafeBytes { a in
                try parts[1].withUnsafeBytes { b in
                    try parts[2].withUnsafeBytes { c in
                        try [a, b, c].withUnsafeBufferPointer { pieces in
                            try record.withUnsafeMutableBytes { try gathering.sealRecord($0, gathering: pieces) }
                        }
                    }
                }
            }
            // The same nonce and key give the same record; each layer's counter moved on once per record, so no
            // nonce of one layer served two records.
            #expect(record == expected, "round \(round)")
        }
    }

    @Test func secretKeySlots_countIsKeptApartFromTheGeneration() {
        for count in [1, 2, 3, 255] {
            let slots = SecretKeySlots.make(slotCount: count)
            #expect(slots.slotCount == count)
            #expect(slots.generation == 0)
            for round in 1...3 {
                [UInt8](repeating: UInt8(round), count: 32).withUnsafeBytes {
                    slots.replaceKey(inSlot: count - 1, with: $0)
                }
                #expect(slots.generation == UInt64(round))
                #expect(slots.slotCount == count)
            }
            #expect(slots.withUnsafeBytes(ofSlot: count - 1) { Array($0) } == [UInt8](repeating: 3, count: 32))
        }
    }

    @Test func secretKeySlots_replaceKey_movesTheGenerationAndKeepsOtherSlots() {
        let slots = SecretKeySlots.make(slotCount: 2)
        #expect(slots.slotCount >= 2)
        #expect(slots.withUnsafeBytes(ofSlot: 1) { Array($0) } == [UInt8](repeating: 0, count: 32))
        let before = slots.generation
        [UInt8](repeating: 3, count: 32).withUnsafeBytes { slots.replaceKey(inSlot: 0, with: $0) }
        #expect(slots.generation != before)
        #expect(slots.withUnsafeBytes(ofSlot: 0) { Array($0) } == [UInt8](repeating: 3, count: 32))
        #expect(slots.withUnsafeBytes(ofSlot: 1) { Array($0) } == [UInt8](repeating: 0, count: 32))
    }

    #if canImport(Glibc)
        /// Bytes the allocator has handed out and not taken back.
        private func allocatedBytes() -> Int { Int(mallinfo2().uordblks) }

        @Test func idleRecordLayer_costsFewBytes() throws {
            let count = 10_000
            let secret = [UInt8](repeating: 5, count: 32)
            // The keys a handshake hands out, without the handshakes (a layer keeps the cipher states only).
            func keys() throws -> NoiseTransportKeys {
                NoiseTransportKeys(
                    role: .responder, initiatorToResponder: try NoiseCipherState(key: SecretBytes(secret)),
                    responderToInitiator: try NoiseCipherState(key: SecretBytes(secret)), handshakeHash: [])
            }
            // Other tests allocate meanwhile (the allocator's count is the process's): the least of three runs.
            var perLayer = Int.max
            for _ in 0..<3 {
                var layers: [LinkRecordLayer] = []
                layers.reserveCapacity(count)
                let before = allocatedBytes()
                for _ in 0..<count { layers.append(LinkRecordLayer(keys: try keys())) }
                perLayer = min(perLayer, (allocatedBytes() - before) / count)
                withExtendedLifetime(layers) {}
            }
            // 224 bytes here (glibc, 64-bit): the layer and one allocation for both keys; 384 with a cipher state
            // object and a SecretBytes (two allocations) per direction; 4,304 with a cipher handle each.
            #expect(perLayer <= 240, "\(perLayer) bytes per idle record layer")
        }
    #endif
}
