import AESChatCrypto

#if canImport(Glibc)
    import Glibc
#elseif canImport(Darwin)
    import Darwin
#endif

/// Measures the crypto layer alone, for docs/BENCHMARKS.md: AES-256-GCM sealing in 16 KiB blocks
/// (as `openssl speed -evp aes-256-gcm` does at its 16384-byte size) and SHA-256 in 256 KiB blocks.
/// Prints one `name MB/s` line per figure. Usage: `aeschat-bench [seconds per figure]`.

func seconds() -> Double {
    var now = timespec()
    clock_gettime(CLOCK_MONOTONIC, &now)
    return Double(now.tv_sec) + Double(now.tv_nsec) / 1e9
}

let duration = CommandLine.arguments.count > 1 ? Double(CommandLine.arguments[1]) ?? 3 : 3

func measure(_ name: String, blockSize: Int, _ body: (UnsafeRawBufferPointer, UnsafeMutableRawBufferPointer) -> Void) {
    let input = UnsafeMutableRawBufferPointer.allocate(byteCount: blockSize, alignment: 64)
    let output = UnsafeMutableRawBufferPointer.allocate(byteCount: blockSize + 64, alignment: 64)
    defer {
        input.deallocate()
        output.deallocate()
    }
    input.initializeMemory(as: UInt8.self, repeating: 0x5A)
    var blocks = 0
    let start = seconds()
    var elapsed = 0.0
    while elapsed < duration {
        for _ in 0..<64 { body(UnsafeRawBufferPointer(input), output) }
        blocks += 64
        elapsed = seconds() - start
    }
    let rate = Double(blocks * blockSize) / elapsed / 1e6
    print("\(name) \(Int(rate)) MB/s")
}

let gcm = try AESGCM(key: SecureRandom.bytes(count: 32))
var counter: UInt64 = 0
let aad = [UInt8](repeating: 1, count: 13)
measure("aes-256-gcm-seal-16KiB", blockSize: 16 * 1024) { input, output in
    counter += 1
    let nonce = [0, 0, 0, 0] + withUnsafeBytes(of: counter.bigEndian, Array.init)
    try! gcm.seal(
        input, nonce: nonce, authenticating: aad,
        into: UnsafeMutableRawBufferPointer(rebasing: output[0..<(input.count + 16)]))
}
let hasher = SHA256Hasher()
measure("sha-256-256KiB", blockSize: 256 * 1024) { input, _ in hasher.update(input) }
