import AESChatCLI
import AESChatCrypto
import Foundation
import Testing

@testable import AESChatCore

#if canImport(Glibc)
    import Glibc
#elseif canImport(Darwin)
    import Darwin
#endif

/// `aeschat selftest`: a healthy installation passes every check, and each check fails when its condition is broken.
@Suite struct SelfTestTests {
    /// A fresh folder standing in for the user's home, removed when the test ends.
    final class Home {
        let path: String
        init() {
            var template = Array("/tmp/aeschat-selftest-test-XXXXXX".utf8CString)
            path = template.withUnsafeMutableBufferPointer { String(cString: mkdtemp($0.baseAddress!)!) }
        }
        deinit { try? FileManager.default.removeItem(atPath: path) }
        var environment: [String: String] { ["HOME": path, "XDG_CONFIG_HOME": path + "/config"] }
        var configuration: String { path + "/config/aeschat" }

        func makeConfiguration(mode: mode_t = 0o700) {
            try! FileManager.default.createDirectory(atPath: configuration, withIntermediateDirectories: true)
            chmod(configuration, mode)
        }
    }

    func check(_ name: String, in checks: [SelfTestCheck]) throws -> SelfTestCheck {
        try #require(checks.first { $0.name == name }, "no check named \(name)")
    }

    @Test func knownAnswers_everyPrimitiveHasVectors_andAllPass() {
        for primitive in KnownAnswerTest.Primitive.allCases {
            #expect(KnownAnswerTest.published.filter { $0.primitive == primitive }.count >= 2, "\(primitive)")
        }
        for test in KnownAnswerTest.published {
            #expect(test.run() == nil, "\(test.source)")
        }
    }

    @Test(arguments: KnownAnswerTest.published.indices)
    func knownAnswer_fails_whenItsExpectedValueIsCorrupted(index: Int) {
        var test = KnownAnswerTest.published[index]
        test.expected[test.expected.count / 2] ^= 0x40
        #expect(test.run() != nil, "\(test.source) passed with a corrupted answer")
        var input = KnownAnswerTest.published[index]
        guard let position = input.inputs.indices.first(where: { !input.inputs[$0].isEmpty }) else { return }
        // Byte 1: X25519 clamps bits of bytes 0 and 31 of a scalar, so flipping those may change nothing.
        input.inputs[position][min(1, input.inputs[position].count - 1)] ^= 0x01
        #expect(input.run() != nil, "\(input.source) passed with a corrupted input")
    }

    @Test func selfTest_corruptedVector_failsItsPrimitiveOnly() throws {
        var selfTest = SelfTest(environment: Home().environment)
        let index = try #require(selfTest.knownAnswers.firstIndex { $0.primitive == .x25519 })
        selfTest.knownAnswers[index].expected[0] ^= 0xFF
        let checks = selfTest.run()
        #expect(try check("X25519", in: checks).passed == false)
        #expect(try check("X25519", in: checks).detail.contains(selfTest.knownAnswers[index].source))
        #expect(try check("SHA-256", in: checks).passed)
    }

    @Test func workedExamples_allMatchTheDocument() {
        let outcomes = WorkedExamples.check()
        #expect(outcomes.count == 4)
        for outcome in outcomes { #expect(outcome.failure == nil, "\(outcome.name)") }
    }

    @Test func healthyInstallation_passesEveryCheck_andReportsIt() throws {
        let home = Home()
        home.makeConfiguration()
        let inbox = home.path + "/inbox"
        try FileManager.default.createDirectory(atPath: inbox, withIntermediateDirectories: false)
        let identity = Identity(key: Ed25519PrivateKey())
        try identity.write(toNewFile: home.configuration + "/identity")
        let checks = SelfTest(environment: home.environment, inbox: inbox).run()
        for check in checks { #expect(check.passed, "\(check.name): \(check.detail)") }
        #expect(try check("chat in process", in: checks).detail.contains("100 kB file"))
        #expect(try check("chat over loopback TCP", in: checks).passed)
        #expect(try check("identity file", in: checks).detail.contains(Identity.fingerprint(of: identity.publicKey)))
        // The probe file was removed again.
        #expect(try FileManager.default.contentsOfDirectory(atPath: inbox).isEmpty)

        let text = SelfTestReport.text(checks, total: .milliseconds(840))
        #expect(text.last == "\(checks.count) checks, \(checks.count) passed, 0 failed, in 840.0 ms")
        let json = SelfTestReport.json(checks, total: .milliseconds(840))
        #expect(json.count == checks.count + 1)
        #expect(json[0].hasPrefix("{\"event\":\"check\",\"name\":\"libgcrypt\",\"passed\":true,"))
        #expect(
            json.last
                == "{\"event\":\"summary\",\"checks\":\(checks.count),\"failed\":0,\"passed\":true,\"milliseconds\":840}"
        )
    }

    @Test func identityFile_readableByOthers_fails() throws {
        let home = Home()
        home.makeConfiguration()
        let path = home.configuration + "/identity"
        try Identity(key: Ed25519PrivateKey()).write(toNewFile: path)
        chmod(path, 0o644)
        let checks = SelfTestFiles(environment: home.environment, inbox: nil).checks()
        let identity = try check("identity file", in: checks)
        #expect(!identity.passed)
        #expect(identity.detail.contains("mode 644") && identity.detail.contains("chmod 600"))
    }

    @Test func identityFile_thatDoesNotParse_fails() throws {
        let home = Home()
        home.makeConfiguration()
        let path = home.configuration + "/identity"
        #expect(FileManager.default.createFile(atPath: path, contents: Data("not a key\n".utf8)))
        chmod(path, 0o600)
        #expect(
            try check("identity file", in: SelfTestFiles(environment: home.environment, inbox: nil).checks()).passed
                == false)
    }

    @Test func configurationFolder_writableByOthers_fails() throws {
        let home = Home()
        home.makeConfiguration(mode: 0o777)
        let folder = try check(
            "configuration folder", in: SelfTestFiles(environment: home.environment, inbox: nil).checks())
        #expect(!folder.passed)
        #expect(folder.detail.contains("chmod 700"))
    }

    @Test func configurationFile_isCheckedAsJoinReadsIt() throws {
        let home = Home()
        home.makeConfiguration()
        let path = home.configuration + "/config"
        func configurationCheck() throws -> SelfTestCheck {
            try check("configuration file", in: SelfTestFiles(environment: home.environment, inbox: nil).checks())
        }
        #expect(try configurationCheck().passed)
        #expect(try configurationCheck().detail.contains("optional"))
        #expect(FileManager.default.createFile(atPath: path, contents: Data("# mine\nport = 7777\nbell = all\n".utf8)))
        #expect(try configurationCheck().passed)
        #expect(try configurationCheck().detail.contains("2 settings"))
        #expect(FileManager.default.createFile(atPath: path, contents: Data("port = 7777\nport = seventy\n".utf8)))
        let twice = try configurationCheck()
        #expect(!twice.passed)
        #expect(twice.detail.contains(path + ":2"))
        #expect(FileManager.default.createFile(atPath: path, contents: Data("port = 99999\n".utf8)))
        let outOfRange = try configurationCheck()
        #expect(!outOfRange.passed)
        #expect(outOfRange.detail.hasPrefix(path + ":1: "))
    }

    @Test func missingFiles_pass_andNothingIsCreated() throws {
        let home = Home()
        let checks = SelfTestFiles(environment: home.environment, inbox: nil).checks()
        #expect(checks.map(\.name) == ["configuration folder", "identity file", "known_peers", "configuration file"])
        for check in checks { #expect(check.passed, "\(check.name): \(check.detail)") }
        #expect(!FileManager.default.fileExists(atPath: home.configuration))
    }

    @Test func inbox_missing_aFile_orNotWritable_fails() throws {
        let home = Home()
        func inboxCheck(_ path: String) throws -> SelfTestCheck {
            try check("inbox", in: SelfTestFiles(environment: home.environment, inbox: path).checks())
        }
        #expect(try inboxCheck(home.path + "/missing").passed == false)
        let file = home.path + "/file"
        #expect(FileManager.default.createFile(atPath: file, contents: Data()))
        #expect(try inboxCheck(file).detail.contains("not a folder"))
        let shared = home.path + "/shared"
        try FileManager.default.createDirectory(atPath: shared, withIntermediateDirectories: false)
        chmod(shared, 0o777)
        #expect(try inboxCheck(shared).detail.contains("can be written by other users (mode 777)"))
        let locked = home.path + "/locked"
        try FileManager.default.createDirectory(atPath: locked, withIntermediateDirectories: false)
        if getuid() == 0 {
            // Root writes anywhere: a folder of another user is what root must not use.
            chown(locked, 65534, 65534)
            #expect(try inboxCheck(locked).detail.contains("another user"))
        } else {
            chmod(locked, 0o500)
            #expect(try inboxCheck(locked).detail.contains("cannot write"))
        }
        #expect(try inboxCheck(locked).passed == false)
    }

    @Test func failingWorkedExample_failsItsCheck_andTheExitCode() {
        var selfTest = SelfTest(environment: Home().environment)
        selfTest.workedExamples = { [WorkedExamples.Outcome(name: "9.1 test", failure: "the envelope is 00")] }
        let checks = selfTest.run()
        let example = checks.first { $0.name == "worked example 9.1 test" }
        #expect(example?.passed == false && example?.detail == "the envelope is 00")
        let text = SelfTestReport.text(checks, total: .seconds(1))
        #expect(text.contains("  FAIL  worked example 9.1 test: the envelope is 00"))
        #expect(text.last?.contains(", 1 failed, in 1000.0 ms") == true)
    }

    @Test func mode_exitsZero_whenAllPass() {
        var lines: [String] = []
        let code = SelfTestMode.run(SelfTestOptions(json: true), environment: Home().environment) { lines.append($0) }
        #expect(code == .success, "\(lines)")
        #expect(lines.last?.contains("\"passed\":true") == true)
    }

    @Test func libgcryptProblems_areNamed_andGuardedOnesStillPass() {
        #expect(Libgcrypt.knownProblem(of: "1.10.1")?.hasSuffix("(guarded)") == true)
        #expect(Libgcrypt.knownProblem(of: "1.11.0") == nil)
        #expect(Libgcrypt.knownProblem(of: "garbage") != nil)
        #expect(!Libgcrypt.version.isEmpty)
    }
}
