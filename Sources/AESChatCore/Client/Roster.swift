/// The other members present, as the relay announced them: their names in order of arrival, and
/// a set for lookups. Loop thread only.
struct Roster {
    /// The names, in the order the relay announced them.
    private(set) var names: [String] = []
    private var present: Set<String> = []

    /// A roster of `names` (distinct).
    init(_ names: [String] = []) {
        self.names = names
        present = Set(names)
    }

    /// How many members are present.
    var count: Int { names.count }

    /// Whether `name` is present.
    func contains(_ name: String) -> Bool { present.contains(name) }

    /// Adds `name` unless it is present.
    mutating func insert(_ name: String) {
        if present.insert(name).inserted { names.append(name) }
    }

    /// Removes `name` if it is present.
    mutating func remove(_ name: String) {
        if present.remove(name) != nil { names.removeAll { $0 == name } }
    }
}
