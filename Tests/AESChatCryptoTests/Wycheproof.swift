import Foundation
import Testing

@testable import AESChatCrypto

/// Finds and decodes Project Wycheproof test vector files.
///
/// The vectors are read from `<repository root>/../shared/wycheproof/` (the root is found from this file's
/// `#filePath`), or from the folder named by `AESCHAT_WYCHEPROOF_DIR`. They are never copied into the repository.
/// A missing file skips its test with a visible message, unless `AESCHAT_REQUIRE_WYCHEPROOF=1`, which CI sets:
/// then the test runs and fails.
enum Wycheproof {
    /// The folder holding the `*_test.json` files.
    static let directory: URL = {
        if let override = ProcessInfo.processInfo.environment["AESCHAT_WYCHEPROOF_DIR"], !override.isEmpty {
            return URL(fileURLWithPath: override, isDirectory: true).standardizedFileURL
        }
        // This file is <root>/Tests/AESChatCryptoTests/Wycheproof.swift.
        let root = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
            .deletingLastPathComponent()
        return root.deletingLastPathComponent().appendingPathComponent("shared/wycheproof", isDirectory: true)
            .standardizedFileURL
    }()

    /// Whether a missing file must fail the run instead of skipping.
    static var isRequired: Bool {
        ProcessInfo.processInfo.environment["AESCHAT_REQUIRE_WYCHEPROOF"] == "1"
    }

    static func url(of file: String) -> URL {
        directory.appendingPathComponent(file)
    }

    static func isPresent(_ file: String) -> Bool {
        FileManager.default.isReadableFile(atPath: url(of: file).path)
    }

    /// Whether the test for `file` runs: when the file is present, or when it is required (and then fails).
    static func shouldRun(_ file: String) -> Bool {
        let run = isPresent(file) || isRequired
        if !run {
            print("Wycheproof vectors not found at \(url(of: file).path); skipped (set AESCHAT_WYCHEPROOF_DIR).")
        }
        return run
    }

    /// The reason shown by Swift Testing when the test for `file` is skipped.
    static func skipComment(_ file: String) -> Comment {
        Comment(
            rawValue: "Wycheproof vectors not found at \(url(of: file).path); skipped. Set AESCHAT_WYCHEPROOF_DIR "
                + "to their folder, or AESCHAT_REQUIRE_WYCHEPROOF=1 to make this a failure."
        )
    }

    /// Decodes `file`, recording a test failure (and returning `nil`) if it is missing or malformed.
    static func load<File: Decodable>(
        _ type: File.Type,
        from file: String,
        sourceLocation: SourceLocation = #_sourceLocation
    ) -> File? {
        let location = url(of: file)
        guard isPresent(file) else {
            let message =
                "Wycheproof file \(location.path) is missing and AESCHAT_REQUIRE_WYCHEPROOF=1 requires it; "
                + "put the vectors there or set AESCHAT_WYCHEPROOF_DIR."
            Issue.record(Comment(rawValue: message), sourceLocation: sourceLocation)
            return nil
        }
        do {
            return try JSONDecoder().decode(File.self, from: Data(contentsOf: location))
        } catch {
            Issue.record("Could not decode \(location.path): \(error)", sourceLocation: sourceLocation)
            return nil
        }
    }
}

extension Wycheproof {
    /// Runs every case of `file`: decodes it (a missing or malformed file is a recorded failure), checks its
    /// algorithm, asks `checker` for each group's case checker (`nil` skips the group, which then fails the count),
    /// checks every case, expects the count to match `numberOfTests`, and prints
    /// `Wycheproof <file>: checked N of M cases` followed by `summary()`.
    /// - Parameters:
    ///   - file: the file name in ``directory``.
    ///   - algorithm: the file's expected `algorithm` field.
    ///   - label: what the cases are called in the count's failure message, such as `HMAC`.
    ///   - groups: the type of the file's test groups.
    ///   - summary: text appended to the printed line, read after every case ran.
    ///   - checker: given a group, the function that checks one of its cases.
    static func run<Group: WycheproofGroup>(
        _ file: String, algorithm: String, cases label: String, groups: Group.Type,
        summary: () -> String = { "" },
        sourceLocation: SourceLocation = #_sourceLocation,
        checker: (Group) -> ((Group.Case) -> Void)?
    ) {
        guard let decoded = load(WycheproofFile<Group>.self, from: file, sourceLocation: sourceLocation) else {
            return
        }
        #expect(decoded.algorithm == algorithm, sourceLocation: sourceLocation)
        var checked = 0
        for group in decoded.testGroups {
            guard let check = checker(group) else { continue }
            for test in group.tests {
                check(test)
                checked += 1
            }
        }
        #expect(
            checked == decoded.numberOfTests, "checked \(checked) \(label) cases of \(decoded.numberOfTests)",
            sourceLocation: sourceLocation)
        print("Wycheproof \(file): checked \(checked) of \(decoded.numberOfTests) cases" + summary())
    }
}

/// A group of test cases in a Wycheproof file.
protocol WycheproofGroup: Decodable {
    associatedtype Case: Decodable
    var tests: [Case] { get }
}

extension AEADTestGroup: WycheproofGroup {}
extension MACTestGroup: WycheproofGroup {}
extension HKDFTestGroup: WycheproofGroup {}
extension XDHTestGroup: WycheproofGroup {}
extension EdDSATestGroup: WycheproofGroup {}

/// A Wycheproof test's expected outcome.
enum WycheproofResult: String, Decodable {
    /// The operation must succeed with exactly the expected output.
    case valid
    /// Allowed to succeed; when it does, the output must be the expected one.
    case acceptable
    /// The operation must be refused.
    case invalid
}

/// The top level of every Wycheproof file.
struct WycheproofFile<Group: Decodable>: Decodable {
    let algorithm: String
    let numberOfTests: Int
    let testGroups: [Group]
}

/// A group of `aes_gcm_test.json` (schema `aead_test_schema.json`).
struct AEADTestGroup: Decodable {
    let ivSize: Int
    let keySize: Int
    let tagSize: Int
    let tests: [AEADTestCase]
}

struct AEADTestCase: Decodable {
    let tcId: Int
    let comment: String
    let flags: [String]
    let key: String
    let iv: String
    let aad: String
    let msg: String
    let ct: String
    let tag: String
    let result: WycheproofResult
}

/// A group of `hmac_sha256_test.json` (schema `mac_test_schema.json`); sizes are in bits.
struct MACTestGroup: Decodable {
    let keySize: Int
    let tagSize: Int
    let tests: [MACTestCase]
}

struct MACTestCase: Decodable {
    let tcId: Int
    let comment: String
    let flags: [String]
    let key: String
    let msg: String
    let tag: String
    let result: WycheproofResult
}

/// A group of `hkdf_sha256_test.json` (schema `hkdf_test_schema.json`).
struct HKDFTestGroup: Decodable {
    let keySize: Int
    let tests: [HKDFTestCase]
}

struct HKDFTestCase: Decodable {
    let tcId: Int
    let comment: String
    let flags: [String]
    let ikm: String
    let salt: String
    let info: String
    let size: Int
    let okm: String
    let result: WycheproofResult
}

/// Decodes a hex field of a test case, recording a failure that names the tcId if it is not hex.
func wycheproofBytes(
    _ hex: String,
    field: String,
    tcId: Int,
    sourceLocation: SourceLocation = #_sourceLocation
) -> [UInt8]? {
    guard let bytes = Hex.decode(hex) else {
        Issue.record("tcId \(tcId): field '\(field)' is not hex", sourceLocation: sourceLocation)
        return nil
    }
    return bytes
}

/// A group of `x25519_test.json` (schema `xdh_comp_schema_v1.json`).
struct XDHTestGroup: Decodable {
    let curve: String
    let tests: [XDHTestCase]
}

struct XDHTestCase: Decodable {
    let tcId: Int
    let comment: String
    let flags: [String]
    let `public`: String
    let `private`: String
    let shared: String
    let result: WycheproofResult
}

/// A group of `ed25519_test.json` (schema `eddsa_verify_schema_v1.json`).
struct EdDSATestGroup: Decodable {
    struct PublicKey: Decodable {
        let curve: String
        let pk: String
    }

    let publicKey: PublicKey
    let tests: [EdDSATestCase]
}

struct EdDSATestCase: Decodable {
    let tcId: Int
    let comment: String
    let flags: [String]
    let msg: String
    let sig: String
    let result: WycheproofResult
}
