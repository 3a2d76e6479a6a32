/// The members of one room, sorted by name, with the welcome entries that list them and the
/// frames sent to the room in the current loop iteration.
final class Room {
    let name: String
    /// Sorted by name (bytewise), the order a welcome lists them in.
    private(set) var members: [RelayConnection] = []
    /// The welcome entries (`name str8 | profile bytes16`) of `members`, in the same order: the
    /// profiles live only here, and a welcome copies them in one go.
    private var roster: [UInt8] = []
    /// The length of each member's welcome entry, in the order of `members`: where an entry starts is the sum of
    /// those before it, added up from contiguous integers rather than from every member's name.
    private var entryLengths: [UInt16] = []

    /// Counts the batches; a member's cursor is valid only for the epoch it was set in.
    private(set) var epoch: UInt64 = 0
    /// This iteration's frames, in order, across one or more buffers.
    private(set) var buffers: [SharedBuffer] = []
    /// Where each buffer starts in the batch.
    private(set) var bufferStarts: [Int] = []
    /// Bytes in this iteration's batch.
    var batchLength = 0
    /// Whether the room is on the relay's list for the end of the iteration.
    var isDirty = false
    /// Whether the batch holds only presence frames (joined, left) and may wait, across iterations, until its
    /// presence window ends (see ``FanOut``).
    var isLingering = false

    init(name: String) { self.name = name }

    func startBuffer(_ buffer: SharedBuffer) {
        bufferStarts.append(batchLength)
        buffers.append(buffer)
    }

    func endBatch() {
        buffers.removeAll(keepingCapacity: true)
        bufferStarts.removeAll(keepingCapacity: true)
        batchLength = 0
        isLingering = false
        epoch &+= 1
    }

    func add(_ client: RelayConnection, profile: [UInt8]) {
        guard let name = client.name else { return }
        let index = insertionIndex(of: name)
        let offset = rosterOffset(before: index)
        var entry: [UInt8] = []
        entry.reserveCapacity(RelayFrame.memberEntryLength(name: name, profileCount: profile.count))
        RelayFrame.writeMemberEntry(name: name, profile: profile, into: &entry)
        roster.insert(contentsOf: entry, at: offset)
        members.insert(client, at: index)
        entryLengths.insert(UInt16(entry.count), at: index)
    }

    func remove(_ client: RelayConnection) {
        guard let name = client.name else { return }
        let index = insertionIndex(of: name)
        guard index < members.count, members[index] === client else { return }
        let offset = rosterOffset(before: index)
        roster.removeSubrange(offset..<(offset + Int(entryLengths[index])))
        members.remove(at: index)
        entryLengths.remove(at: index)
        if members.isEmpty {
            roster = []
            entryLengths = []
        }
    }

    /// How many members the first welcome entries list (at most `maximumMembers`) and their bytes.
    func rosterPrefix(maximumMembers: Int) -> (count: Int, bytes: Int) {
        guard members.count > maximumMembers else { return (members.count, roster.count) }
        return (maximumMembers, rosterOffset(before: maximumMembers))
    }

    /// The first `prefixBytes` bytes of the welcome entries.
    func roster(prefixBytes: Int) -> ArraySlice<UInt8> {
        roster[0..<prefixBytes]
    }

    private func rosterOffset(before index: Int) -> Int {
        var offset = 0
        for length in entryLengths[0..<index] { offset += Int(length) }
        return offset
    }

    /// The first index whose name is not bytewise below `name`.
    private func insertionIndex(of name: String) -> Int {
        var low = 0
        var high = members.count
        while low < high {
            let middle = (low + high) / 2
            if members[middle].name!.utf8.lexicographicallyPrecedes(name.utf8) {
                low = middle + 1
            } else {
                high = middle
            }
        }
        return low
    }
}
