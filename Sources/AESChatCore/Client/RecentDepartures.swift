/// Who was in the room lately, so that a member who comes back shows as back (``ClientEvent/back(name:)``), not as
/// new: a member is back when it left, or was lost with this client's own connection, less than ``window`` ago and
/// arrives with the same identity key (automatic keys: the key its profile proves, so nobody else can come back in
/// its place). With a pre-shared room key there are no identities and the name alone counts, as every member of such
/// a room can take any name anyway. A member whose profile proves no key is never back.
///
/// One per session, shared by the clients of its connections (``ChatRoom/departures``). Bounded: at most
/// ``capacity`` departures are remembered, the oldest dropped first. Loop thread only.
public final class RecentDepartures {
    /// How long after leaving a member still counts as back (docs/CLI.md, "Losing the relay").
    public static let window: Duration = .seconds(300)
    /// Departures remembered at most.
    static let capacity = 16_384

    private let now: () -> ContinuousClock.Instant
    /// The members present on the current connection, with their identity keys (empty with a room key).
    private var present: [String: [UInt8]] = [:]
    private var departed: [String: (identity: [UInt8], at: ContinuousClock.Instant)] = [:]

    /// An empty record; `now` is the clock (a seam for tests).
    public init(now: @escaping () -> ContinuousClock.Instant = { .now }) {
        self.now = now
    }

    /// Whether `name`, arriving with `identity` (nil: its profile proves none), left less than ``window`` ago with
    /// the same identity.
    public func isReturning(_ name: String, identity: [UInt8]?) -> Bool {
        guard let identity, let departure = departed[name] else { return false }
        return now() - departure.at < Self.window && departure.identity == identity
    }

    /// `name` is present (listed at registration, or joined) with `identity`.
    public func arrived(_ name: String, identity: [UInt8]?) {
        departed[name] = nil
        if let identity { present[name] = identity } else { present[name] = nil }
    }

    /// `name` left.
    public func left(_ name: String) {
        guard let identity = present.removeValue(forKey: name) else { return }
        remember(name, identity: identity)
    }

    /// This client's connection was lost: everyone present departs now.
    public func connectionLost() {
        let lost = present
        present.removeAll()
        for (name, identity) in lost { remember(name, identity: identity) }
    }

    private func remember(_ name: String, identity: [UInt8]) {
        let time = now()
        if departed.count >= Self.capacity, departed[name] == nil {
            departed = departed.filter { time - $0.value.at < Self.window }
            if departed.count >= Self.capacity, let oldest = departed.min(by: { $0.value.at < $1.value.at }) {
                departed[oldest.key] = nil
            }
        }
        departed[name] = (identity, time)
    }
}
