/// A cluster relay's copy of one room's roster (every member, on whatever relay, with its home incarnation and
/// profile), changed only by the room's stream, and the state of its subscription (issue 16's design §3.3):
/// `subscribing` (the subscription was asked for; stream messages are dropped), `bootstrapping` (subscribed; the
/// roster comes with a join script's snapshot, stream messages wait in ``queue`` until then), `live`. A mirror goes
/// once the room has had no local member or pending join for the linger time.
///
/// Owned by ``ClusterBus``; confined to the event loop's thread.
final class RoomMirror {
    enum State {
        case subscribing
        case bootstrapping
        case live
    }

    /// A member as the roster lists it.
    struct Entry {
        var incarnation: String
        var profile: [UInt8]
    }

    let name: String
    var state = State.subscribing
    /// Joins that wait for the subscription before their join script goes out.
    var waiting: [PendingJoin] = []
    /// Joins of local members in flight for this room (sent or waiting).
    var pendingCount = 0
    /// Stream messages received while bootstrapping, before a snapshot came.
    var queue: [[UInt8]] = []
    var queuedBytes = 0
    /// A snapshot that came before its join's `joined` reached the stream: the roster right after that `joined`.
    var snapshot: (ticket: UInt64, entries: [String: Entry])?
    /// The timer that drops the mirror once the room has had no local interest for the linger time.
    var lingerTimer: TimerID?
    /// Every member, by name.
    private(set) var entries: [String: Entry] = [:]
    /// The names, sorted bytewise (the order a welcome lists them in).
    private(set) var sortedNames: [String] = []

    init(name: String) {
        self.name = name
    }

    var count: Int { entries.count }

    func entry(_ name: String) -> Entry? { entries[name] }

    /// Replaces the roster (from a snapshot).
    func replace(with entries: [String: Entry]) {
        self.entries = entries
        sortedNames = entries.keys.sorted { $0.utf8.lexicographicallyPrecedes($1.utf8) }
    }

    func add(_ name: String, _ entry: Entry) {
        if entries.updateValue(entry, forKey: name) == nil {
            sortedNames.insert(name, at: insertionIndex(of: name))
        }
    }

    @discardableResult
    func remove(_ name: String) -> Entry? {
        guard let entry = entries.removeValue(forKey: name) else { return nil }
        let index = insertionIndex(of: name)
        if index < sortedNames.count, sortedNames[index] == name { sortedNames.remove(at: index) }
        return entry
    }

    /// The welcome for `newcomer`: every member but the newcomer, sorted (at most
    /// ``RelayFrame/maximumWelcomeMembers``).
    func welcome(for newcomer: String) -> [UInt8] {
        var roster: [UInt8] = []
        var listed = 0
        for name in sortedNames where name != newcomer {
            guard listed < RelayFrame.maximumWelcomeMembers, let entry = entries[name] else { break }
            RelayFrame.writeMemberEntry(name: name, profile: entry.profile, into: &roster)
            listed += 1
        }
        var welcome = ByteWriter(
            capacity: RelayFrame.welcomeLength(name: newcomer, room: name, entryBytes: roster.count))
        roster.withUnsafeBytes {
            RelayFrame.writeWelcome(name: newcomer, room: name, memberCount: listed, entries: $0, into: &welcome)
        }
        return welcome.bytes
    }

    private func insertionIndex(of name: String) -> Int {
        var low = 0
        var high = sortedNames.count
        while low < high {
            let middle = (low + high) / 2
            if sortedNames[middle].utf8.lexicographicallyPrecedes(name.utf8) {
                low = middle + 1
            } else {
                high = middle
            }
        }
        return low
    }
}

/// A local member's join on its way through the cluster: its join script sent (or waiting for the room's
/// subscription), its welcome not yet given.
final class PendingJoin {
    let member: RelayConnection
    let name: String
    let room: String
    let profile: [UInt8]
    let claim: NameClaim?
    let ticket: UInt64
    /// Whether its join script went out.
    var isSent = false
    /// Whether it already asked to take the name over from another relay's holder.
    var triedTakeover = false

    init(member: RelayConnection, name: String, room: String, profile: [UInt8], claim: NameClaim?, ticket: UInt64) {
        self.member = member
        self.name = name
        self.room = room
        self.profile = profile
        self.claim = claim
        self.ticket = ticket
    }
}
