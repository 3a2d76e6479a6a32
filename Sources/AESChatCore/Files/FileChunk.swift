import AESChatCrypto

/// The chunk envelope (kind 0x04), the payload of publish or direct frames that carry file data:
///
///     kind u8 = 0x04 | file id [16] | index u64 | flags u8 (bit 0: final) | ciphertext | tag [16]
///     nonce = 0x00000000 | index (u64);  key = the transfer's random key from the offer
///     aad   = "aeschat/1 file chunk" | file id | index | flags | str8(sender)
public enum FileChunk {
    public static let headerSize = 1 + 16 + 8 + 1
    public static let finalFlag: UInt8 = 0x01
    /// The chunk size senders use.
    public static let defaultChunkSize: UInt32 = 256 * 1024

    package static func associatedData(fileID: ArraySlice<UInt8>, index: UInt64, flags: UInt8, sender: String)
        -> [UInt8]
    {
        var writer = ByteWriter(capacity: 80)
        writer.write(contentsOf: Array("aeschat/1 file chunk".utf8))
        writer.write(contentsOf: fileID)
        writer.write(index)
        writer.write(flags)
        writer.writeShortString(sender)
        return writer.bytes
    }

    package static func nonce(_ index: UInt64) -> [UInt8] { AutomaticKeys.counterNonce(index) }

    /// The envelope's header as read in place from a chunk (``handleChunk(inPlace:from:)``).
    struct Header {
        var fileID: [UInt8]
        var index: UInt64
        var flags: UInt8

        /// Reads the header at the start of `envelope` (its kind byte is not checked); nil when
        /// `envelope` is shorter than a header.
        init?(_ envelope: UnsafeRawBufferPointer) {
            var reader = RawByteReader(envelope)
            guard (try? reader.readUInt8("kind")) != nil,
                let fileID = try? reader.readBytes(MessageContent.fileIDSize, "file id"),
                let index = try? reader.readUInt64("index"), let flags = try? reader.readUInt8("flags")
            else { return nil }
            self.fileID = Array(fileID)
            self.index = index
            self.flags = flags
        }
    }

    /// Writes the envelope's header: kind, file id, index and flags.
    static func writeHeader<S: ByteSink>(fileID: [UInt8], index: UInt64, flags: UInt8, into sink: inout S) {
        sink.write(EnvelopeKind.fileChunk.rawValue)
        sink.write(bytes: fileID)
        sink.write(index)
        sink.write(flags)
    }

    /// The length of a chunk's relay frame up to the sealed chunk (see ``writeFrameHeader``).
    static func frameHeaderLength(recipients: ArraySlice<String>) -> Int {
        (recipients.count == 1
            ? ClientFrame.directHeaderLength(to: recipients.first!)
            : ClientFrame.multicastHeaderLength(to: recipients)) + headerSize
    }

    /// Writes the start of a chunk's relay frame, up to the sealed chunk: a direct frame to one
    /// recipient, or a multicast to several (at most 255), then the envelope's header.
    /// `sealedCount` is the ciphertext and tag that follow.
    static func writeFrameHeader<S: ByteSink>(
        fileID: [UInt8], index: UInt64, flags: UInt8, recipients: ArraySlice<String>, sealedCount: Int,
        into sink: inout S
    ) {
        precondition(!recipients.isEmpty && recipients.count <= 255, "a chunk goes to 1 to 255 members")
        if recipients.count == 1 {
            ClientFrame.writeDirectHeader(to: recipients.first!, payloadCount: headerSize + sealedCount, into: &sink)
        } else {
            ClientFrame.writeMulticastHeader(to: recipients, payloadCount: headerSize + sealedCount, into: &sink)
        }
        writeHeader(fileID: fileID, index: index, flags: flags, into: &sink)
    }

    /// The start of a chunk's relay frame, up to the sealed chunk (see ``writeFrameHeader``).
    static func frameHeader(
        fileID: [UInt8], index: UInt64, flags: UInt8, recipients: ArraySlice<String>, sealedCount: Int
    ) -> [UInt8] {
        var prefix = ByteWriter(capacity: frameHeaderLength(recipients: recipients))
        writeFrameHeader(
            fileID: fileID, index: index, flags: flags, recipients: recipients, sealedCount: sealedCount,
            into: &prefix)
        return prefix.bytes
    }

    /// Seals one chunk straight into a complete relay frame (see ``frameHeader``), encrypting the
    /// plaintext into the frame buffer, with no other copy.
    static func sealFrame(
        _ plaintext: UnsafeRawBufferPointer, fileID: [UInt8], index: UInt64, isFinal: Bool, sender: String,
        recipients: [String], cipher: AESGCM
    ) throws(CryptoError) -> [UInt8] {
        let flags = isFinal ? finalFlag : 0
        let header = frameHeader(
            fileID: fileID, index: index, flags: flags, recipients: recipients[...],
            sealedCount: plaintext.count + AESGCM.tagSize)
        let total = header.count + plaintext.count + AESGCM.tagSize
        let aad = associatedData(fileID: fileID[...], index: index, flags: flags, sender: sender)
        var failure: CryptoError?
        let frame = [UInt8](unsafeUninitializedCapacity: total) { buffer, initialized in
            let raw = UnsafeMutableRawBufferPointer(buffer)
            header.withUnsafeBytes { raw.baseAddress!.copyMemory(from: $0.baseAddress!, byteCount: $0.count) }
            do throws(CryptoError) {
                try cipher.seal(
                    plaintext, nonce: nonce(index), authenticating: aad,
                    into: UnsafeMutableRawBufferPointer(rebasing: raw[header.count...]))
                initialized = total
            } catch {
                failure = error
                initialized = 0
            }
        }
        if let failure { throw failure }
        return frame
    }
}
