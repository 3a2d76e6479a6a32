/// A token bucket: refilled by a rate per second at each tick, holding at most its capacity.
/// One counts frames (``RelayLimits/messageRate``), one payload bytes (``RelayLimits/byteRate``).
struct TokenBucket {
    private(set) var tokens: Double
    let capacity: Double

    init(capacity: Int) {
        self.capacity = Double(capacity)
        self.tokens = Double(capacity)
    }

    /// Takes `amount` tokens; false (taking none) when fewer are left.
    mutating func take(_ amount: Int = 1) -> Bool {
        let wanted = Double(amount)
        guard tokens >= wanted else { return false }
        tokens -= wanted
        return true
    }

    mutating func refill(_ amount: Double) {
        tokens = min(capacity, tokens + amount)
    }
}
