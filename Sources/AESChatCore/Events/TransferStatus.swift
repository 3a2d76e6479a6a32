/// One file transfer as `/transfers` lists it.
public struct TransferStatus: Equatable, Sendable {
    /// Where a transfer stands.
    public enum State: String, Equatable, Sendable {
        /// Offered; waiting for the receivers' replies.
        case offering
        /// Offered to this user, who has not answered yet (`/accept`, `/decline`).
        case asking
        /// Chunks are moving.
        case moving
        /// Waiting for the receivers to confirm the whole file.
        case finishing
        /// A file of a folder, waiting for the files before it.
        case queued
    }

    /// The number `/accept`, `/decline` and `/cancel` take.
    public var number: Int
    /// Whether this user sends the file (else receives it).
    public var sending: Bool
    /// The file's name (a path inside the folder for a file sent with its folder).
    public var name: String
    /// The other side: a member, or "the room".
    public var peer: String
    /// Bytes moved (or held from an earlier attempt), and the file's size.
    public var bytes: UInt64
    public var total: UInt64
    public var state: State

    /// Creates a status.
    public init(
        number: Int, sending: Bool, name: String, peer: String, bytes: UInt64, total: UInt64, state: State
    ) {
        self.number = number
        self.sending = sending
        self.name = name
        self.peer = peer
        self.bytes = bytes
        self.total = total
        self.state = state
    }

    /// The percentage moved, from numbers a peer gave: computed without arithmetic that could trap.
    public var percent: Int { Self.percent(bytes, of: total) }

    static func percent(_ bytes: UInt64, of total: UInt64) -> Int {
        total == 0 ? 100 : Int(Double(min(bytes, total)) * 100 / Double(total))
    }

    /// One line of `/transfers`: `#3 ↑ report.pdf to bob: 34% of 6.0 MB, moving`.
    public var humanText: String {
        let clean = TerminalText.escapeControls
        let direction = sending ? "↑ \(clean(name)) to \(clean(peer))" : "↓ \(clean(name)) from \(clean(peer))"
        let what: String
        switch state {
        case .offering: what = "offered, waiting for replies"
        case .asking: what = "waiting for your answer: /accept \(number) or /decline \(number)"
        case .moving: what = "\(percent)% of \(ClientEvent.formatBytes(total))"
        case .finishing: what = "100% of \(ClientEvent.formatBytes(total)), waiting for confirmation"
        case .queued: what = "queued (\(ClientEvent.formatBytes(total)))"
        }
        return "#\(number) \(direction): \(what)"
    }
}

/// What the transfers under way add up to, for the interactive terminal's status row. Sent with
/// ``ClientOutput/transfersChanged(_:)`` whenever the set of transfers, their percentage or
/// their rate changes.
public struct TransferTotals: Equatable, Sendable {
    /// Transfers offered, moving or finishing (not those asking the user).
    public var count: Int
    /// Bytes moved and bytes in all, over those transfers.
    public var bytes: UInt64
    public var total: UInt64
    /// The sum of their latest rates; 0 when nothing moved for a while.
    public var bytesPerSecond: UInt64
    /// The single transfer's name and direction, when there is exactly one.
    public var single: (name: String, sending: Bool)?
    /// The numbers of the offers waiting for this user's answer, oldest first.
    public var asking: [Int]

    /// No transfers.
    public static let none = TransferTotals(count: 0, bytes: 0, total: 0, bytesPerSecond: 0, single: nil, asking: [])

    /// Creates totals.
    public init(
        count: Int, bytes: UInt64, total: UInt64, bytesPerSecond: UInt64, single: (name: String, sending: Bool)?,
        asking: [Int]
    ) {
        self.count = count
        self.bytes = bytes
        self.total = total
        self.bytesPerSecond = bytesPerSecond
        self.single = single
        self.asking = asking
    }

    public static func == (lhs: TransferTotals, rhs: TransferTotals) -> Bool {
        lhs.count == rhs.count && lhs.bytes == rhs.bytes && lhs.total == rhs.total
            && lhs.bytesPerSecond == rhs.bytesPerSecond && lhs.single?.name == rhs.single?.name
            && lhs.single?.sending == rhs.single?.sending && lhs.asking == rhs.asking
    }

    /// The percentage moved over every transfer.
    public var percent: Int { TransferStatus.percent(bytes, of: total) }

    /// The status row's part, at most 43 columns for one transfer (so that it fits an 80-column row
    /// after `-- alice in lobby | 2 others here | `): `↑ report.pdf 34% 11.2 MB/s ETA 0:04`, or
    /// `2 transfers, 34% 11.2 MB/s`; with offers waiting for an answer, `file offered: y/n` leads.
    /// Nil when there is nothing to show. A name longer than 16 characters is cut, with `…`.
    public var statusText: String? {
        var parts: [String] = []
        if let first = asking.first {
            parts.append(asking.count == 1 ? "file offered: y/n" : "\(asking.count) files offered: y/n for #\(first)")
        }
        if count > 0 {
            var text: String
            if count == 1, let single {
                text = (single.sending ? "↑ " : "↓ ") + Self.cut(TerminalText.escapeControls(single.name), to: 16)
            } else {
                text = "\(count) transfers,"
            }
            text += " \(percent)%"
            if bytesPerSecond > 0 {
                let remaining = Int(clamping: (total - min(bytes, total)) / bytesPerSecond)
                text += " \(ClientEvent.formatBytes(bytesPerSecond))/s"
                if count == 1 {
                    text += " ETA \(remaining / 60):" + (remaining % 60 < 10 ? "0" : "") + "\(remaining % 60)"
                }
            } else if bytes < total {
                text += " stalled"
            }
            parts.append(text)
        }
        return parts.isEmpty ? nil : parts.joined(separator: " | ")
    }

    /// `text` cut to `width` characters, ending with `…` when cut.
    static func cut(_ text: String, to width: Int) -> String {
        text.count <= width ? text : String(text.prefix(width - 1)) + "…"
    }
}
