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

    @Test func recordLayer_rekeyingInItsSlots_matchesAReaderAndWriterOverCipherStates() throws {
        // Two layers' directions share one SecretKeySlots each; rekeying one slot must not disturb the other, and the
        // thread's handle must take up each replaced key.
        let (client, relay) = try linkHandshake()
        let clientLayer = LinkRecordLayer(keys: client, rekeyInterval: 2)
        let relayLayer = LinkRecordLayer(keys: relay, rekeyInterval: 2)
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

    @Test func recordLayer_sealsAsAWriterOverTheSameCipherState() throws {
        // The same keys, handed to a layer and (from a second identical handshake's state) to a writer, give the
        // same records, rekeys included.
        let key = [UInt8](repeating: 9, count: 32)
        func keys() throws -> NoiseTransportKeys {
            NoiseTransportKeys(
                role: .initiator, initiatorToResponder: try NoiseCipherState(key: SecretBytes(key)),
                responderToInitiator: try NoiseCipherState(key: SecretBytes(key)), handshakeHash: [])
        }
        let layer = LinkRecordLayer(keys: try keys(), rekeyInterval: 3)
        let writer = LinkRecordWriter(cipher: try keys().sending, rekeyInterval: 3)
        for round in 0..<8 {
            let plaintext = linkTestBytes(5 + round, seed: UInt64(100 + round))
            var record = [UInt8](repeating: 0, count: 2) + plaintext + [UInt8](repeating: 0, count: 16)
            try record.withUnsafeMutableBytes { try layer.sealRecord($0) }
            #expect(record == (try writer.seal(plaintext)))
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
