import Foundation
import Testing

@testable import AESChatCore

/// docs/CLI.md describes every slash command (``SlashCommand/all``) and every `--json` event (``ClientEvent``) the
/// client has: a command or event added without a line there, or one left there after it is gone, fails here.
@Suite struct DocumentedInterfaceTests {
    static let cli: [Substring] = {
        let root = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
            .deletingLastPathComponent()
        let text = (try? String(contentsOf: root.appendingPathComponent("docs/CLI.md"), encoding: .utf8)) ?? ""
        return text.split(separator: "\n", omittingEmptySubsequences: false)
    }()

    /// The first cells of the table that follows `heading`, which follows `section` (a `## ` heading).
    static func firstCells(section: String, heading: String) -> [String] {
        guard let sectionStart = cli.firstIndex(of: Substring(section)),
            let start = cli[sectionStart...].firstIndex(of: Substring(heading)),
            let tableStart = cli[start...].firstIndex(where: { $0.hasPrefix("| ") })
        else { return [] }
        let rows = cli[(tableStart + 2)...].prefix { $0.hasPrefix("|") }
        return rows.map { String($0.dropFirst(2).prefix { $0 != "|" }).trimmingCharacters(in: .whitespaces) }
    }

    /// The command names (`/verify`) that the cells mention, each cell possibly naming several (`/ignore NAME`,
    /// `/unignore NAME`).
    static func commandNames(_ cells: [String]) -> Set<String> {
        Set(
            cells.flatMap { cell in
                cell.split(separator: "`").filter { $0.hasPrefix("/") }.map { String($0.prefix { $0 != " " }) }
            })
    }

    @Test func interactiveCommandTable_namesExactlyTheTerminalsCommands() {
        let documented = Self.commandNames(Self.firstCells(section: "## Interactive terminal", heading: "### Commands"))
        #expect(documented == Set(SlashCommand.all.map(\.name)))
        #expect(!Self.cli.contains { $0.contains("not yet available") })
    }

    @Test func lineModeCommandTable_namesExactlyTheClientsCommands() {
        let documented = Self.commandNames(Self.firstCells(section: "## JSON output (--json)", heading: "### Commands"))
        let clientCommands = SlashCommand.all.filter { $0.handler != .terminal }.map(\.name)
        #expect(documented == Set(clientCommands))
    }

    /// One event of every kind, for their names.
    static let samples: [ClientEvent] = [
        .ready(name: "a", room: "r", members: [], fingerprint: nil), .joined(name: "a"), .left(name: "a"),
        .message(from: "a", text: "t", isPrivate: false), .action(from: "a", text: "t", isPrivate: false),
        .warning(kind: "tampered", name: "a", message: "m"), .error(message: "m"),
        .member(MemberStatus(name: "a", fingerprint: nil, trust: .invalid)), .who(members: []),
        .verify(name: "a", fingerprint: "f", safetyNumber: "s"), .roomCode(code: "c", members: 1),
        .trusted(name: "a", fingerprint: "f"), .info("i"),
        .fileIncoming(name: "n", from: "a", bytes: 1, resumeFrom: 0),
        .fileOffered(number: 1, name: "n", from: "a", bytes: 1, seconds: 60), .transfers([]),
        .fileProgress(name: "n", peer: "a", sending: true, bytes: 1, total: 2, bytesPerSecond: 3),
        .fileReceived(from: "a", name: "n", path: "p", bytes: 1, sha256: "h"),
        .fileSent(name: "n", bytes: 1, to: []), .fileFailed(name: "n", from: "a", to: nil, reason: "r"),
        .reconnecting(attempt: 1, delayMilliseconds: 1, reason: "r"), .reconnected,
        .differentRoomKey(name: "a", message: "m"), .identity(name: "a", fingerprint: "f"),
        .relayKey(address: "h:1", fingerprint: "f", pinnedAt: nil, how: nil), .holding(members: []),
        .holding(members: ["a"], all: true),
        .unsupported(from: "a", kind: 0x40, count: 1),
        .back(name: "a"), .connectionLost(reason: "r"),
    ]

    /// Fails to compile when ``ClientEvent`` gains a case, so that ``samples`` (and CLI.md) are brought along.
    static func sampled(_ event: ClientEvent) -> Bool {
        switch event {
        case .ready, .joined, .left, .message, .action, .warning, .error, .member, .who, .verify, .roomCode, .trusted,
            .info, .fileIncoming, .fileProgress, .fileReceived, .fileSent, .fileFailed, .reconnecting, .reconnected,
            .differentRoomKey, .identity, .relayKey, .holding, .unsupported, .fileOffered, .transfers, .back,
            .connectionLost:
            true
        }
    }

    @Test func jsonEventTable_namesExactlyTheEventsTheClientWrites() throws {
        let documented = Self.firstCells(section: "## JSON output (--json)", heading: "## JSON output (--json)")
            .map { $0.trimmingCharacters(in: CharacterSet(charactersIn: "`")) }
        var written: [String] = []
        for event in Self.samples where Self.sampled(event) {
            let object = try JSONSerialization.jsonObject(with: Data(event.json.utf8)) as? [String: Any]
            let name = try #require(object?["event"] as? String)
            if !written.contains(name) { written.append(name) }
        }
        #expect(Set(documented) == Set(written))
        #expect(documented.count == Set(documented).count, "an event has two rows")
    }

    /// The warning kinds the client's code writes (`warn("kind"` and `.warning(kind: "kind"` in Sources/AESChatCore).
    static let warningKindsInTheCode: Set<String> = {
        let root = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
            .deletingLastPathComponent().appendingPathComponent("Sources/AESChatCore")
        let pattern = try! NSRegularExpression(pattern: #"(?:\bwarn\(|\.warning\(\s*kind:)\s*"([a-z][a-z-]*)""#)
        var kinds: Set<String> = []
        let files = FileManager.default.enumerator(at: root, includingPropertiesForKeys: nil)
        while let file = files?.nextObject() as? URL {
            guard file.pathExtension == "swift", let text = try? String(contentsOf: file, encoding: .utf8) else {
                continue
            }
            for match in pattern.matches(in: text, range: NSRange(text.startIndex..., in: text)) {
                if let range = Range(match.range(at: 1), in: text) { kinds.insert(String(text[range])) }
            }
        }
        return kinds
    }()

    @Test func warningRow_namesEveryWarningKindTheClientWrites() throws {
        let row = try #require(Self.cli.first { $0.hasPrefix("| `warning` |") })
        #expect(Self.warningKindsInTheCode.isSuperset(of: ["tampered", "replay", "roster-mismatch", "undelivered"]))
        for kind in Self.warningKindsInTheCode {
            #expect(row.contains("`\(kind)`"), "warning kind \(kind) is not described in CLI.md")
        }
    }
}
