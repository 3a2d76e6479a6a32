// A libFuzzer target for everything that parses network or file data: the frame reader (decoder and
// large-frame assembly, as the relay and the client read), ClientFrame, RelayFrame and their in-place readers, MessageContent, the automatic-keys profile check, room key files, identity files and the
// known-peers file; the encrypted link's record reader (LinkRecordReader) and preamble parser; and for the state machines behind authentication: a hostile member with valid keys
// playing the input as a program against a real client (HostileMemberFuzzer), in both key modes. Built only by
// scripts/fuzz (AESCHAT_FUZZ=1, -sanitize=fuzzer,address); the first input byte picks the target.

import AESChatCrypto
import AESChatTesting

@testable import AESChatCore

#if canImport(Glibc)
    import Glibc
#endif

/// One folder per process for the hostile-member target's inbox, emptied between inputs.
nonisolated(unsafe) private var hostileFolder: String?

/// libFuzzer's entry point: parses `count` bytes at `start`; must never crash, whatever they are.
@_cdecl("LLVMFuzzerTestOneInput")
public func fuzzOneInput(_ start: UnsafePointer<UInt8>?, _ count: Int) -> CInt {
    guard let start, count > 0 else { return 0 }
    let input = Array(UnsafeBufferPointer(start: start, count: count))
    let data = Array(input.dropFirst())
    switch input[0] % 9 {
    case 8:
        fuzzLinkReader(data)
    case 6, 7:
        runHostileMember(data, mode: input[0] % 9 == 6 ? .automatic : .roomKey)
    case 0:
        fuzzFrameReader(data)
    case 1:
        _ = try? MessageContent(decoding: data)
    case 2:
        _ = AutomaticKeys.checkProfile(data, room: "lobby", name: "alice")
    case 3:
        _ = try? RoomKey.parse(String(decoding: data, as: UTF8.self), path: "fuzz")
    case 4:
        _ = try? Identity.parse(String(decoding: data, as: UTF8.self), path: "fuzz")
    default:
        // The file parses to whole pins, or is refused naming one of its lines.
        let text = String(decoding: data, as: UTF8.self)
        do {
            let (pins, legacyPins) = try KnownPeers.parse(text)
            precondition(pins.values.allSatisfy { $0.identityKey.count == 32 }, "known_peers pin without a key")
            precondition(legacyPins.values.allSatisfy { $0.identityKey.count == 32 }, "known_peers pin without a key")
        } catch {
            precondition(error.line >= 1 && error.line <= text.utf8.count + 1, "known_peers named no line")
        }
    }
    return 0
}

/// Plays `program` as a hostile member against a real client; a trap, or a broken invariant, is a finding.
private func runHostileMember(_ program: [UInt8], mode: HostileMemberFuzzer.Mode) {
    if hostileFolder == nil {
        var template = Array("/tmp/aeschat-fuzz-XXXXXX".utf8CString)
        hostileFolder = template.withUnsafeMutableBufferPointer { mkdtemp($0.baseAddress!) }.map { String(cString: $0) }
    }
    guard let parent = hostileFolder else { return }
    let folder = parent + "/run"
    removeTree(folder)
    mkdir(folder, 0o700)
    guard let fuzzer = try? HostileMemberFuzzer(mode: mode, folder: folder) else { return }
    fuzzer.run(program)
    let failures = fuzzer.checkInvariants()
    precondition(failures.isEmpty, "hostile member broke an invariant: \(failures)")
    fuzzer.finish()
}

/// Removes a folder of plain files and folders (the fuzzer's own inbox), without following links.
private func removeTree(_ path: String) {
    guard let directory = opendir(path) else {
        unlink(path)
        return
    }
    var names: [String] = []
    while let entry = readdir(directory) {
        let name = withUnsafeBytes(of: entry.pointee.d_name) { String(decoding: $0.prefix { $0 != 0 }, as: UTF8.self) }
        if name != "." && name != ".." { names.append(name) }
    }
    closedir(directory)
    for name in names {
        var status = stat()
        let child = path + "/" + name
        if lstat(child, &status) == 0 && (status.st_mode & S_IFMT) == S_IFDIR {
            removeTree(child)
        } else {
            unlink(child)
        }
    }
    rmdir(path)
}

@_silgen_name("LLVMFuzzerRunDriver")
private func runFuzzerDriver(
    _ argc: UnsafeMutablePointer<CInt>,
    _ argv: UnsafeMutablePointer<UnsafeMutablePointer<UnsafeMutablePointer<CChar>?>?>,
    _ callback: @convention(c) (UnsafePointer<UInt8>?, Int) -> CInt
) -> CInt

/// The executable's entry point as SwiftPM names it: hands the command line to libFuzzer's driver.
@_cdecl("aeschat_fuzz_main")
public func fuzzMain(_ argc: CInt, _ argv: UnsafeMutablePointer<UnsafeMutablePointer<CChar>?>?) -> CInt {
    var count = argc
    var arguments = argv
    return runFuzzerDriver(&count, &arguments) { fuzzOneInput($0, $1) }
}

/// Reads `data` as a byte stream through a ``FrameReader``, the way the relay and the client read:
/// in pieces whose sizes come from the data, into the reader's own buffer whenever it offers one,
/// with a small large-frame threshold so that short inputs reach the assembly of large frames.
/// Every frame goes through both frame parsers and the in-place readers, which must agree with them;
/// the same stream read whole must give the same frames.
private func fuzzFrameReader(_ data: [UInt8]) {
    guard let first = data.first else { return }
    let stream = Array(data.dropFirst())
    let threshold = Int(first % 64) + Frame.headerSize + 1
    let headroom = first & 0x40 != 0 ? 64 : 0
    func read(inPieces: Bool) -> FuzzFrameEndpoint {
        let reader = FrameReader(maximumLength: 1 << 16, largeFrameThreshold: threshold)
        let endpoint = FuzzFrameEndpoint(headroom: headroom)
        stream.withUnsafeBytes { bytes in
            var offset = 0
            var step = 0
            while offset < bytes.count && endpoint.isReadingFrames {
                let piece = inPieces ? Int(bytes[(offset + step) % bytes.count] % 97) + 1 : bytes.count
                step += 1
                let end = min(bytes.count, offset + piece)
                if let target = reader.readDestination(for: endpoint), target.count > 0 {
                    let count = min(end - offset, target.count)
                    target.baseAddress!.copyMemory(from: bytes.baseAddress! + offset, byteCount: count)
                    offset += count
                    reader.didReadIntoDestination(count, for: endpoint)
                } else {
                    let chunk = Array(UnsafeRawBufferPointer(rebasing: bytes[offset..<end]))
                    offset = end
                    chunk.withUnsafeBytes { reader.read($0, for: endpoint) }
                }
            }
        }
        return endpoint
    }
    let whole = read(inPieces: false)
    let pieces = read(inPieces: true)
    precondition(whole.frames == pieces.frames, "the frame reader split one stream two ways")
    precondition(whole.failure == pieces.failure, "the frame reader failed differently on one stream")
}

/// Reads `data` through a ``LinkRecordReader`` under a fixed key, whole and in pieces whose sizes come from the data;
/// the two must deliver the same plaintext and fail the same way. With the first byte's top bit clear the rest is fed
/// as it is (lengths, short records, tags that never match); with it set, the rest is first sealed into records by a
/// ``LinkRecordWriter`` (so the reader gets past the tag check and rekeys), and with the next bit set one bit of
/// those records is flipped: the reader must then deliver a prefix of the plaintext, and all of it when nothing was
/// flipped. The bytes also go through the preamble parser.
private func fuzzLinkReader(_ data: [UInt8]) {
    guard let first = data.first else { return }
    let rest = Array(data.dropFirst())
    _ = try? LinkPreamble.parse(rest)
    let key = [UInt8](repeating: 0x5A, count: 32)
    let interval = UInt64(first & 3) + 1
    var stream = rest
    var sent: [UInt8]?
    var altered = false
    if first & 0x80 != 0 {
        guard let cipher = try? NoiseCipherState(key: SecretBytes(key)) else { return }
        let writer = LinkRecordWriter(cipher: cipher, rekeyInterval: interval)
        stream = []
        var offset = 0
        while offset < rest.count {
            let end = min(rest.count, offset + Int(rest[offset]) * 4 + 1)
            guard (try? rest[offset..<end].withUnsafeBytes { try writer.seal($0, into: &stream) }) != nil else {
                return
            }
            offset = end
        }
        sent = rest
        if first & 0x40 != 0, !stream.isEmpty {
            stream[(Int(rest.last ?? 0) * 64 + Int(first & 0x3F)) % stream.count] ^= 1 << (first >> 3 & 7)
            altered = true
        }
    }
    func read(inPieces: Bool) -> (plaintext: [UInt8], error: LinkError?) {
        guard let cipher = try? NoiseCipherState(key: SecretBytes(key)) else { return ([], nil) }
        let reader = LinkRecordReader(cipher: cipher, rekeyInterval: interval)
        var plaintext: [UInt8] = []
        var offset = 0
        var step = 0
        while offset < stream.count {
            let piece = inPieces ? Int(stream[(offset + step) % stream.count] % 97) + 1 : stream.count
            step += 1
            let end = min(stream.count, offset + piece)
            do {
                try reader.read(Array(stream[offset..<end]), into: &plaintext)
            } catch {
                return (plaintext, error)
            }
            offset = end
        }
        do {
            try reader.finish()
        } catch {
            return (plaintext, error)
        }
        return (plaintext, nil)
    }
    let whole = read(inPieces: false)
    let pieces = read(inPieces: true)
    precondition(whole.plaintext == pieces.plaintext, "the record reader split one stream two ways")
    precondition(whole.error == pieces.error, "the record reader failed differently on one stream")
    if let sent {
        precondition(sent.starts(with: whole.plaintext), "the record reader delivered what was not sent")
        precondition(altered || (whole.plaintext == sent && whole.error == nil), "the record reader lost records")
        precondition(!altered || whole.error != nil, "the record reader accepted an altered record")
    }
}

/// Records the frames a fuzzed ``FrameReader`` hands over and checks each with every parser.
private final class FuzzFrameEndpoint: FrameReaderDelegate {
    let headroom: Int
    var frames: [[UInt8]] = []
    var failure: WireError?

    init(headroom: Int) { self.headroom = headroom }

    var isReadingFrames: Bool { failure == nil }

    func handleFrame(
        type: UInt8, body: UnsafeRawBufferPointer, storage: (buffer: SharedBuffer, offset: Int)?
    ) throws(WireError) {
        frames.append([type] + Array(body))
        let frame = Frame(type: type, body: ArraySlice(body))
        let client = try? ClientFrame(frame)
        let relay = try? RelayFrame(frame)
        // The in-place readers accept exactly what the frame parsers accept, with the same fields.
        if type == FrameType.direct {
            let direct = try? ClientFrame.readDirect(body)
            if case .direct(let to, let expected)? = client {
                precondition(
                    direct?.to == to && direct.map { Array($0.payload) } == Array(expected),
                    "readDirect disagrees with ClientFrame")
            } else {
                precondition(direct == nil, "readDirect accepted what ClientFrame refused")
            }
        }
        if type == FrameType.multicast {
            var recipients: [String] = []
            let payload = try? ClientFrame.readMulticast(body, recipients: &recipients)
            if case .multicast(let to, let expected)? = client {
                precondition(payload.map(Array.init) == Array(expected) && recipients == to, "readMulticast disagrees")
            } else {
                precondition(payload == nil, "readMulticast accepted what ClientFrame refused")
            }
        }
        if type == FrameType.deliver {
            let deliver = try? RelayFrame.readDeliver(body)
            if case .deliver(let from, let isDirect, let expected)? = relay {
                precondition(
                    deliver?.from == from && deliver?.isDirect == isDirect
                        && deliver.map { Array($0.payload) } == Array(expected),
                    "readDeliver disagrees with RelayFrame")
                if let payload = deliver?.payload, let header = FileChunk.Header(payload) {
                    precondition(payload.count >= FileChunk.headerSize, "a chunk header read past its envelope")
                    precondition(header.fileID == Array(payload[1..<17]), "a chunk header misread its file id")
                }
            } else {
                precondition(deliver == nil, "readDeliver accepted what RelayFrame refused")
            }
        }
    }

    func largeFrameBuffer(frameLength: Int, for request: LargeFrameRequest) -> SharedBuffer? {
        let buffer = SharedBuffer(capacity: headroom + frameLength + FrameReader.largeFrameSlack)
        buffer.commit(headroom)
        return buffer
    }

    func frameReaderFailed(_ error: WireError) {
        precondition(failure == nil, "the frame reader failed twice")
        failure = error
    }
}
