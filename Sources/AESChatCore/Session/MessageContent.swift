/// What a message carries once decrypted: `kind u8 | body`. See docs/PROTOCOL.md.
public enum MessageContent: Equatable, Sendable {
    /// `0x01`: UTF-8 chat text.
    case text(String)
    /// `0x02`: a `/me` action, UTF-8.
    case action(String)
    /// `0x03`: `message id u64 | text or action content` — a chat line with the id its sender
    /// gave it, so that a line sent again after a reconnect is shown only once.
    indirect case identified(id: UInt64, MessageContent)
    /// `0x20`: `file id [16] | size u64 | chunk size u32 | key [32] | name str16`.
    case fileOffer(FileOffer)
    /// `0x21`: receiver → sender: `file id [16] | accept u8 | resume from chunk u64 | reason str16`.
    case fileReply(fileID: [UInt8], accept: Bool, resumeFrom: UInt64, reason: String)
    /// `0x22`: receiver → sender: `file id [16] | next chunk expected u64` (flow control).
    case fileProgress(fileID: [UInt8], nextChunk: UInt64)
    /// `0x23`: sender → receivers, after the final chunk: `file id [16] | sha256 [32] | size u64`.
    case fileDone(fileID: [UInt8], sha256: [UInt8], size: UInt64)
    /// `0x24`: either way: `file id [16] | reason str16` — the transfer is off.
    case fileAbort(fileID: [UInt8], reason: String)
    /// `0x25`: receiver → sender, after done: `file id [16] | accepted u8 | reason str16`.
    case fileResult(fileID: [UInt8], accepted: Bool, reason: String)
    /// An authentic content of a kind this version does not know, presumably from a newer client: its body is not
    /// kept. Not tampering; receivers ignore it with a quiet notice (docs/PROTOCOL.md section 5, *Contents of unknown
    /// kinds*).
    case unsupported(kind: UInt8)

    /// The kinds this version reads. Every other kind decodes as ``unsupported(kind:)``.
    static let knownKinds: Set<UInt8> = [0x01, 0x02, 0x03, 0x20, 0x21, 0x22, 0x23, 0x24, 0x25]

    static let fileIDSize = 16

    /// Encodes the plaintext.
    public func encoded() -> [UInt8] {
        var writer = ByteWriter(capacity: 64)
        switch self {
        case .text(let text):
            writer.write(UInt8(0x01))
            writer.write(contentsOf: text.utf8)
        case .action(let text):
            writer.write(UInt8(0x02))
            writer.write(contentsOf: text.utf8)
        case .identified(let id, let content):
            writer.write(UInt8(0x03))
            writer.write(id)
            writer.write(contentsOf: content.encoded())
        case .fileOffer(let offer):
            writer.write(UInt8(0x20))
            writer.write(contentsOf: offer.fileID)
            writer.write(offer.size)
            writer.write(offer.chunkSize)
            writer.write(contentsOf: offer.key)
            writer.writeLongString(offer.name)
        case .fileReply(let fileID, let accept, let resumeFrom, let reason):
            writer.write(UInt8(0x21))
            writer.write(contentsOf: fileID)
            writer.write(accept ? UInt8(1) : UInt8(0))
            writer.write(resumeFrom)
            writer.writeLongString(reason)
        case .fileProgress(let fileID, let nextChunk):
            writer.write(UInt8(0x22))
            writer.write(contentsOf: fileID)
            writer.write(nextChunk)
        case .fileDone(let fileID, let sha256, let size):
            writer.write(UInt8(0x23))
            writer.write(contentsOf: fileID)
            writer.write(contentsOf: sha256)
            writer.write(size)
        case .fileAbort(let fileID, let reason):
            writer.write(UInt8(0x24))
            writer.write(contentsOf: fileID)
            writer.writeLongString(reason)
        case .fileResult(let fileID, let accepted, let reason):
            writer.write(UInt8(0x25))
            writer.write(contentsOf: fileID)
            writer.write(accepted ? UInt8(1) : UInt8(0))
            writer.writeLongString(reason)
        case .unsupported(let kind):
            writer.write(kind)
        }
        return writer.bytes
    }

    /// Decodes a plaintext that has already been authenticated.
    /// - Throws: ``WireError/malformed(_:)`` for an unknown kind, a bad layout or invalid UTF-8.
    public init(decoding plaintext: [UInt8]) throws(WireError) {
        guard let kind = plaintext.first else { throw .malformed("empty message content") }
        var reader = ByteReader(plaintext[1...])
        switch kind {
        case 0x01, 0x02:
            guard let text = String(validating: plaintext[1...], as: UTF8.self) else {
                throw .malformed("message text is not valid UTF-8")
            }
            self = kind == 0x01 ? .text(text) : .action(text)
            return
        case 0x03:
            let id = try reader.readUInt64("message id")
            // After the id: text, an action, or a line of a kind a newer client may send (never an id again, nor file
            // control).
            guard plaintext.count > 9,
                plaintext[9] == 0x01 || plaintext[9] == 0x02 || !Self.knownKinds.contains(plaintext[9])
            else {
                throw .malformed("a message id must be followed by text or an action")
            }
            self = .identified(id: id, try MessageContent(decoding: Array(plaintext[9...])))
            return
        case 0x20:
            let fileID = Array(try reader.readBytes(Self.fileIDSize, "file id"))
            let size = try reader.readUInt64("file size")
            let chunkSize = try reader.readUInt32("chunk size")
            let key = Array(try reader.readBytes(32, "file key"))
            let nameBytes = try reader.readBytes(Int(try reader.readUInt16("file name")), "file name")
            // Values out of bounds (chunk size, size, a name that is not UTF-8) still make an offer, so that the
            // receiver can decline it with the reason (FileOffer.problem) instead of dropping it unanswered.
            let name = String(validating: nameBytes, as: UTF8.self)
            self = .fileOffer(
                FileOffer(
                    fileID: fileID, size: size, chunkSize: chunkSize, key: key,
                    name: name ?? String(decoding: nameBytes, as: UTF8.self), nameIsValid: name != nil))
        case 0x21:
            let fileID = Array(try reader.readBytes(Self.fileIDSize, "file id"))
            let accept = try reader.readUInt8("accept") == 1
            let resumeFrom = try reader.readUInt64("resume from")
            self = .fileReply(
                fileID: fileID, accept: accept, resumeFrom: resumeFrom, reason: try reader.readLongString("reason"))
        case 0x22:
            let fileID = Array(try reader.readBytes(Self.fileIDSize, "file id"))
            self = .fileProgress(fileID: fileID, nextChunk: try reader.readUInt64("next chunk"))
        case 0x23:
            let fileID = Array(try reader.readBytes(Self.fileIDSize, "file id"))
            let digest = Array(try reader.readBytes(32, "sha256"))
            self = .fileDone(fileID: fileID, sha256: digest, size: try reader.readUInt64("size"))
        case 0x24:
            let fileID = Array(try reader.readBytes(Self.fileIDSize, "file id"))
            self = .fileAbort(fileID: fileID, reason: try reader.readLongString("reason"))
        case 0x25:
            let fileID = Array(try reader.readBytes(Self.fileIDSize, "file id"))
            let accepted = try reader.readUInt8("accepted") == 1
            self = .fileResult(fileID: fileID, accepted: accepted, reason: try reader.readLongString("reason"))
        default:
            // Checked after authentication: only a member can send it. Its body is not read.
            self = .unsupported(kind: kind)
            return
        }
        try reader.expectEnd("message content")
    }

    /// Whether this content is about a file transfer rather than for display.
    public var isFileControl: Bool {
        switch self {
        case .text, .action, .identified, .unsupported: false
        default: true
        }
    }
}
