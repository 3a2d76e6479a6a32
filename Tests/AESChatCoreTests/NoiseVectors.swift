import AESChatCrypto
import Foundation
import Testing

/// The public test vectors for `Noise_NK_25519_AESGCM_SHA256` (cacophony's and snow's), read at test time from
/// `<repository root>/../shared/noise/` (the root is found from this file's `#filePath`, as the Wycheproof runner
/// finds `../shared/wycheproof/`). They are never copied into the repository. A missing file skips its tests with
/// a visible message, unless `AESCHAT_REQUIRE_WYCHEPROOF=1` (which CI sets for all external vectors): then the tests
/// run and fail.
///
/// The file holds `key value` lines; `source` starts a vector and `end` closes it; `payload`/`ciphertext` pairs
/// alternate direction, initiator first (`../shared/noise/README.md`).
struct NoiseVector: CustomTestStringConvertible, Sendable {
    static let file = "Noise_NK_25519_AESGCM_SHA256.txt"

    /// The folder holding the file.
    static let directory: URL = {
        // This file is <root>/Tests/AESChatCoreTests/NoiseVectors.swift.
        let root = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
            .deletingLastPathComponent()
        return root.deletingLastPathComponent().appendingPathComponent("shared/noise", isDirectory: true)
            .standardizedFileURL
    }()

    static var url: URL { directory.appendingPathComponent(file) }

    static var isPresent: Bool { FileManager.default.isReadableFile(atPath: url.path) }

    /// Whether a missing file must fail the run instead of skipping.
    static var isRequired: Bool { ProcessInfo.processInfo.environment["AESCHAT_REQUIRE_WYCHEPROOF"] == "1" }

    /// Whether the vector tests run: when the file is present, or when it is required (and then fails).
    static var shouldRun: Bool {
        let run = isPresent || isRequired
        if !run {
            print("Noise vectors not found at \(url.path); skipped.")
        }
        return run
    }

    static var skipComment: Comment {
        Comment(
            rawValue: "Noise vectors not found at \(url.path); skipped. Set AESCHAT_REQUIRE_WYCHEPROOF=1 to make this "
                + "a failure.")
    }

    /// One `payload` and the `ciphertext` it becomes.
    struct Message: Sendable {
        var payload: [UInt8]
        var ciphertext: [UInt8]
    }

    /// The `source` line after its keyword, such as `cacophony vectors/cacophony.txt`.
    var source: String
    var fields: [String: [UInt8]] = [:]
    var messages: [Message] = []

    var testDescription: String { source }

    /// The hex field `key`, recording a failure if it is missing.
    func field(_ key: String, sourceLocation: SourceLocation = #_sourceLocation) -> [UInt8] {
        guard let value = fields[key] else {
            Issue.record("vector \(source) has no \(key)", sourceLocation: sourceLocation)
            return []
        }
        return value
    }

    /// Every vector of the file, or none (with a recorded failure) if it is missing or malformed.
    static func load(sourceLocation: SourceLocation = #_sourceLocation) -> [NoiseVector] {
        guard isPresent else {
            Issue.record(
                "Noise vector file \(url.path) is missing and AESCHAT_REQUIRE_WYCHEPROOF=1 requires it.",
                sourceLocation: sourceLocation)
            return []
        }
        guard let text = try? String(contentsOf: url, encoding: .utf8) else {
            Issue.record("Could not read \(url.path).", sourceLocation: sourceLocation)
            return []
        }
        var vectors: [NoiseVector] = []
        var current: NoiseVector?
        var pendingPayload: [UInt8]?
        for (index, line) in text.split(separator: "\n", omittingEmptySubsequences: true).enumerated() {
            let parts = line.split(separator: " ", maxSplits: 1).map(String.init)
            let key = parts[0]
            let value = parts.count > 1 ? parts[1] : ""
            func malformed(_ reason: String) -> [NoiseVector] {
                Issue.record("\(url.path) line \(index + 1): \(reason)", sourceLocation: sourceLocation)
                return []
            }
            switch key {
            case "source":
                guard current == nil else { return malformed("source inside a vector") }
                current = NoiseVector(source: value)
            case "end":
                guard let finished = current, pendingPayload == nil else { return malformed("unexpected end") }
                vectors.append(finished)
                current = nil
            default:
                guard current != nil, let bytes = Hex.decode(value) else { return malformed("bad line '\(line)'") }
                switch key {
                case "payload":
                    guard pendingPayload == nil else { return malformed("two payloads in a row") }
                    pendingPayload = bytes
                case "ciphertext":
                    guard let payload = pendingPayload else { return malformed("ciphertext without payload") }
                    current?.messages.append(Message(payload: payload, ciphertext: bytes))
                    pendingPayload = nil
                default:
                    current?.fields[key] = bytes
                }
            }
        }
        guard current == nil else {
            Issue.record("\(url.path): the last vector has no end line", sourceLocation: sourceLocation)
            return []
        }
        return vectors
    }
}
