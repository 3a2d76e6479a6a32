/// The message ids each sender used most recently, so that a line its sender sent again after
/// losing the connection is shown once. Kept across reconnects of the receiving client (a
/// ``ReconnectingSession`` hands the same instance to each of its clients) and bounded: the last
/// ``idsPerSender`` ids of at most ``maximumSenders`` senders.
///
/// A sender never has more than ``ChatRoom/maximumUnconfirmedLines`` lines unconfirmed, and those
/// are the only ones it sends again, first thing after reconnecting; so the copies it repeats are
/// always among the ids remembered here.
public final class RecentMessageIDs {
    /// Ids remembered per sender.
    public static let idsPerSender = 128
    /// Senders remembered; the one heard from least recently is forgotten first.
    public static let maximumSenders = 4096

    private struct Ring {
        var ids: [UInt64] = []
        var next = 0
        /// The clock reading when the sender was last heard from.
        var lastHeard: UInt64 = 0

        mutating func insert(_ id: UInt64) {
            if ids.count < RecentMessageIDs.idsPerSender {
                ids.append(id)
            } else {
                ids[next] = id
                next = (next + 1) % ids.count
            }
        }
    }

    private var rings: [String: Ring] = [:]
    private var clock: UInt64 = 0

    public init() {}

    /// Records `id` from `sender`; `false` if it was already recorded (a repeated copy).
    public func recordIfNew(_ id: UInt64, from sender: String) -> Bool {
        clock &+= 1
        if rings[sender] == nil && rings.count >= Self.maximumSenders { forgetLeastRecentSender() }
        rings[sender, default: Ring()].lastHeard = clock
        if rings[sender]!.ids.contains(id) { return false }
        rings[sender]!.insert(id)
        return true
    }

    /// Senders currently remembered.
    public var senderCount: Int { rings.count }

    private func forgetLeastRecentSender() {
        guard let oldest = rings.min(by: { $0.value.lastHeard < $1.value.lastHeard })?.key else { return }
        rings[oldest] = nil
    }
}
