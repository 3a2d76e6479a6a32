/// A room line held back from members whose changed identity key waits for `/trust` (or from everyone, when the
/// user chose `/hold all`), until it can reach them. Value type; `Sendable`.
public struct HeldLine: Equatable, Sendable {
    /// The line, with its message id (`MessageContent/identified(id:_:)`).
    public var content: MessageContent
    /// The members it was meant for: those present with a session key when it was typed.
    public var meantFor: Set<String>
    /// Those of them it has not reached yet.
    public var missing: Set<String>
    /// Room lines published before it, counted by the security layer that holds it (see
    /// ``HeldLines/detached(linesPublished:)``): how far back the others would have to remember its message id.
    var publishedBefore: Int
}

/// The lines a connection's security layer holds, oldest first, with those dropped beyond the limit; handed to the
/// next connection's security layer after a reconnect (``MessageSecurity/takeHeldLines()``,
/// ``MessageSecurity/adoptHeldLines(_:)``). Value type; `Sendable`.
public struct HeldLines: Equatable, Sendable {
    /// Held lines kept, at most; older ones are dropped (and counted for the members they missed).
    public static let maximumLines = 64

    /// The lines, oldest first.
    public internal(set) var lines: [HeldLine] = []
    /// Lines dropped beyond ``maximumLines``, counted by the member each did not reach.
    public internal(set) var dropped: [String: Int] = [:]

    /// Nothing held.
    public init() {}

    /// Whether nothing is held (and nothing was dropped).
    public var isEmpty: Bool { lines.isEmpty && dropped.isEmpty }

    /// How many lines did not reach each member yet (those dropped included), by name, sorted by name.
    public var counts: [(name: String, count: Int)] {
        var counts = dropped
        for line in lines {
            for name in line.missing { counts[name, default: 0] += 1 }
        }
        return counts.filter { $0.value > 0 }.sorted { $0.key < $1.key }.map { ($0.key, $0.value) }
    }

    /// Adds a line, dropping the oldest beyond ``maximumLines``.
    mutating func append(_ line: HeldLine) {
        lines.append(line)
        guard lines.count > Self.maximumLines else { return }
        for name in lines.removeFirst().missing { dropped[name, default: 0] += 1 }
    }

    /// Forgets `name` (it left, or is not back): how many lines it did not get.
    mutating func forget(_ name: String) -> Int {
        var count = dropped.removeValue(forKey: name) ?? 0
        for index in lines.indices where lines[index].missing.remove(name) != nil { count += 1 }
        lines.removeAll { $0.missing.isEmpty }
        return count
    }

    /// The same lines, with ``HeldLine/publishedBefore`` made relative to the end of the connection that held them
    /// (`linesPublished` room lines went out on it): a value at most 0, which the next connection's layer offsets
    /// by its own count.
    func detached(linesPublished: Int) -> HeldLines {
        var copy = self
        for index in copy.lines.indices { copy.lines[index].publishedBefore -= linesPublished }
        return copy
    }
}

/// A held line going out again once it can reach the members it missed: to the room (``onlyTo`` nil), whose other
/// members drop it by its message id, or to each member in ``onlyTo`` alone, as private messages, when a room
/// message would reach someone it was not meant for.
public struct ReleasedLine: Equatable, Sendable {
    /// The line, with its message id.
    public var content: MessageContent
    /// The members it goes to privately, or nil for the room.
    public var onlyTo: [String]?
}
