public import AESChatCLI
import AESChatCrypto
public import Foundation

#if canImport(Glibc)
    import Glibc
#elseif canImport(Darwin)
    import Darwin
#endif

/// One line of `aeschat selftest`'s report.
public struct SelfTestCheck: Sendable, Equatable {
    /// What was checked, for example "AES-256-GCM".
    public let name: String
    /// Whether the check passed.
    public let passed: Bool
    /// What was found, in one line (the reason when it failed).
    public let detail: String
    /// How long the check took.
    public let milliseconds: Int
}

/// `aeschat selftest`: checks this installation — the libgcrypt in use, every primitive against published vectors,
/// the protocol's worked examples, a whole chat in process and over loopback TCP, the user's files, and the random
/// generator — and reports each in one line. Everything it starts listens on loopback only.
public struct SelfTest {
    /// The environment (`HOME`, `XDG_CONFIG_HOME`) naming the user's files.
    public var environment: [String: String]
    /// The inbox to check, if one was given.
    public var inbox: String?
    /// The known-answer tests to run (tests corrupt one to see the check fail).
    var knownAnswers = KnownAnswerTest.published
    /// Recomputes the worked examples (tests replace it to see the check fail).
    var workedExamples: () -> [WorkedExamples.Outcome] = WorkedExamples.check

    /// Creates a self test of the files named by `environment`, and of `inbox` if given.
    public init(environment: [String: String] = ProcessInfo.processInfo.environment, inbox: String? = nil) {
        self.environment = environment
        self.inbox = inbox
    }

    /// Runs every check, in report order.
    public func run() -> [SelfTestCheck] {
        var checks: [SelfTestCheck] = [timed("libgcrypt", libgcrypt)]
        for primitive in KnownAnswerTest.Primitive.allCases {
            checks.append(timed(primitive.rawValue) { knownAnswers(of: primitive) })
        }
        for outcome in workedExamples() {
            checks.append(
                SelfTestCheck(
                    name: "worked example \(outcome.name)", passed: outcome.failure == nil,
                    detail: outcome.failure ?? "matches docs/PROTOCOL.md", milliseconds: 0))
        }
        checks.append(timed("chat in process", { SelfTestChat.inMemory() }))
        checks.append(timed("chat over loopback TCP", { SelfTestChat.overLoopback() }))
        checks.append(contentsOf: SelfTestFiles(environment: environment, inbox: inbox).checks())
        checks.append(timed("random generator", randomGenerator))
        return checks
    }

    private func timed(_ name: String, _ body: () -> (Bool, String)) -> SelfTestCheck {
        let start = ContinuousClock.now
        let (passed, detail) = body()
        let elapsed = ContinuousClock.now - start
        return SelfTestCheck(
            name: name, passed: passed, detail: detail, milliseconds: Int(elapsed.wholeMilliseconds))
    }

    private func libgcrypt() -> (Bool, String) {
        let version = Libgcrypt.version
        let built = "libgcrypt \(version) (aeschat was built against \(Libgcrypt.headerVersion))"
        guard let problem = Libgcrypt.knownProblem(of: version) else { return (true, built + "; no known problem") }
        // A problem aeschat guards against is worth knowing, not a failure; an unreadable version is.
        return (problem.hasSuffix("(guarded)"), built + "; " + problem)
    }

    private func knownAnswers(of primitive: KnownAnswerTest.Primitive) -> (Bool, String) {
        let tests = knownAnswers.filter { $0.primitive == primitive }
        guard !tests.isEmpty else { return (false, "no known-answer test is built in") }
        for test in tests {
            if let failure = test.run() { return (false, "\(test.source): \(failure)") }
        }
        return (true, tests.map(\.source).joined(separator: "; "))
    }

    private func randomGenerator() -> (Bool, String) {
        let start = ContinuousClock.now
        let first = SecureRandom.bytes(count: 32)
        let strong = ContinuousClock.now - start
        let second = SecureRandom.bytes(count: 32)
        guard first != second, first.contains(where: { $0 != 0 }) else {
            return (false, "two 32-byte draws were equal or all zero")
        }
        let veryStrongStart = ContinuousClock.now
        _ = SecretBytes(count: 32)
        let veryStrong = ContinuousClock.now - veryStrongStart
        return (
            true,
            "a strong 32-byte draw took \(Self.describe(strong)), a very strong one (long-term keys) "
                + "\(Self.describe(veryStrong))"
        )
    }

    static func describe(_ duration: Duration) -> String {
        let microseconds = Double(duration.components.seconds) * 1e6 + Double(duration.components.attoseconds) / 1e12
        return microseconds < 1000
            ? "\(Int(microseconds.rounded())) µs" : String(format: "%.1f ms", microseconds / 1000)
    }
}

/// The report's two forms.
public enum SelfTestReport {
    /// The text report: one line per check and a summary.
    public static func text(_ checks: [SelfTestCheck], total: Duration) -> [String] {
        var lines = ["aeschat \(aeschatVersion) selftest"]
        for check in checks {
            lines.append("  \(check.passed ? "ok  " : "FAIL")  \(check.name): \(check.detail)")
        }
        let failed = checks.filter { !$0.passed }.count
        lines.append(
            "\(checks.count) checks, \(checks.count - failed) passed, \(failed) failed, in "
                + SelfTest.describe(total))
        return lines
    }

    /// One JSON object per check, then a summary object.
    public static func json(_ checks: [SelfTestCheck], total: Duration) -> [String] {
        var lines = checks.map {
            JSONLine.encode([
                ("event", .string("check")), ("name", .string($0.name)), ("passed", .bool($0.passed)),
                ("detail", .string($0.detail)), ("milliseconds", .integer(Int64($0.milliseconds))),
            ])
        }
        let failed = checks.filter { !$0.passed }.count
        lines.append(
            JSONLine.encode([
                ("event", .string("summary")), ("checks", .integer(Int64(checks.count))),
                ("failed", .integer(Int64(failed))), ("passed", .bool(failed == 0)),
                ("milliseconds", .integer(Int64(total.wholeMilliseconds))),
            ]))
        return lines
    }
}

/// `aeschat selftest`: runs ``SelfTest`` and prints its report.
public enum SelfTestMode {
    /// Runs the self test; exit code 0 when every check passed, 1 otherwise.
    /// - Parameters:
    ///   - environment: names the user's files (`HOME`, `XDG_CONFIG_HOME`).
    ///   - print: writes one line of the report.
    public static func run(
        _ options: SelfTestOptions, environment: [String: String] = ProcessInfo.processInfo.environment,
        print: (String) -> Void = { Swift.print($0) }
    ) -> ExitCode {
        let start = ContinuousClock.now
        let checks = SelfTest(environment: environment, inbox: options.inbox).run()
        let total = ContinuousClock.now - start
        let lines = options.json ? SelfTestReport.json(checks, total: total) : SelfTestReport.text(checks, total: total)
        for line in lines { print(line) }
        return checks.allSatisfy(\.passed) ? .success : .failure
    }
}
