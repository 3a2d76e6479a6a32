/// The session keys a session has seen, in the order first seen: at most `capacity`, the oldest
/// forgotten first. Only a replay of a key older than the last `capacity` keys goes unnoticed;
/// at the default of 65,536 that is four full welcomes of the largest room back.
struct SeenSessionKeys {
    static let defaultCapacity = 65_536
    private let capacity: Int
    private var keys: Set<[UInt8]> = []
    private var order: [[UInt8]] = []
    private var oldest = 0

    init(capacity: Int) { self.capacity = max(1, capacity) }

    func contains(_ key: [UInt8]) -> Bool { keys.contains(key) }

    /// Remembers `key`; false if it was already known.
    @discardableResult
    mutating func insert(_ key: [UInt8]) -> Bool {
        guard keys.insert(key).inserted else { return false }
        if order.count < capacity {
            order.append(key)
        } else {
            keys.remove(order[oldest])
            order[oldest] = key
            oldest = (oldest + 1) % capacity
        }
        return true
    }
}
