// A libFuzzer target for everything that parses network or file data: the frame decoder, ClientFrame,
// RelayFrame, MessageContent, the automatic-keys profile check, room key files, identity files and the
// known-peers file; and for the state machines behind authentication: a hostile member with valid keys
// playing the input as a program against a real client (HostileMemberFuzzer), in both key modes. Built only by
// scripts/fuzz (AESCHAT_FUZZ=1, -sanitize=fuzzer,address); the first input byte picks the target.

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
    switch input[0] % 8 {
    case 6, 7:
        runHostileMember(data, mode: input[0] % 8 == 6 ? .automatic : .roomKey)
    case 0:
        // Frames in chunks whose sizes come from the data, through both frame parsers.
        var decoder = FrameDecoder(maximumLength: 1 << 16)
        var offset = 0
        while offset < data.count {
            let size = Int(data[offset] % 61) + 1
            let end = min(data.count, offset + size)
            decoder.append(contentsOf: data[offset..<end])
            offset = end
            do {
                while let frame = try decoder.nextFrame() {
                    _ = try? ClientFrame(frame)
                    _ = try? RelayFrame(frame)
                }
            } catch {
                return 0
            }
        }
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
