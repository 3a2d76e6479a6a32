/// The relay's limits against hostile or broken clients (``RelayLimits``), applied: connections
/// counted in all and per address, each connection's token buckets for frames and payload bytes,
/// the budgets for frames in progress, the handshake timeout, and the tick that refills the buckets,
/// pings idle members and closes those silent too long or too slow to finish a frame.
///
/// Owned by ``Relay``, which schedules its timers; it refuses connections through
/// ``RelayConnection/refuse(_:_:reason:)`` and pings members through ``FanOut``. Confined to the
/// event loop's thread.
final class RelayAdmission {
    let limits: RelayLimits
    private let fanOut: FanOut
    private var connectionsByAddress: [String: Int] = [:]
    /// Bytes of large-frame buffers held by connections for frames in progress
    /// (``RelayLimits/incompleteFrameBudget``).
    private var largeFrameBytesHeld = 0
    /// Bytes held for frames in progress by address, large or small
    /// (``RelayLimits/incompleteFrameBudgetPerAddress``).
    private var frameBytesByAddress: [String: Int] = [:]
    /// Handshake tokens by address (``RelayLimits/handshakeRate``); an address whose bucket is full again is
    /// forgotten, so the table holds only addresses that made handshakes lately.
    private var handshakeBuckets: [String: TokenBucket] = [:]

    /// Creates the admission of a relay.
    /// - Parameters:
    ///   - limits: the limits to apply.
    ///   - fanOut: the fan-out that queues the relay's pings.
    init(limits: RelayLimits, fanOut: FanOut) {
        self.limits = limits
        self.fanOut = fanOut
    }

    // MARK: Connections

    /// Why a new connection from `address` is refused (`too-many-connections`) while `open`
    /// connections are open; nil when it is admitted.
    func refusal(forConnectionFrom address: String, open: Int) -> String? {
        if limits.maximumConnections > 0 && open >= limits.maximumConnections {
            return "too many connections: the relay holds \(limits.maximumConnections)"
        }
        if limits.maximumConnectionsPerAddress > 0
            && connectionsByAddress[address, default: 0] >= limits.maximumConnectionsPerAddress
        {
            return "too many connections from \(address): at most \(limits.maximumConnectionsPerAddress)"
        }
        return nil
    }

    /// Counts a connection admitted from `address`.
    func connectionOpened(from address: String) {
        connectionsByAddress[address, default: 0] += 1
    }

    /// Counts a connection from `address` closed.
    func connectionClosed(from address: String) {
        if let count = connectionsByAddress[address] {
            connectionsByAddress[address] = count > 1 ? count - 1 : nil
        }
    }

    /// Takes a handshake token for `address`; false (taking none) when its bucket is empty.
    func takeHandshakeToken(for address: String) -> Bool {
        guard limits.handshakeRate > 0 else { return true }
        var bucket = handshakeBuckets[address] ?? TokenBucket(capacity: max(1, limits.handshakeBurst))
        let taken = bucket.take()
        handshakeBuckets[address] = bucket
        return taken
    }

    /// Closes `connection` (`handshake-timeout`): it sent no hello within the handshake timeout. A connection whose
    /// link is not up yet is closed without a word (it cannot read a frame).
    func refuseHandshakeTimeout(_ connection: RelayConnection) {
        guard connection.isLinked else {
            connection.relay.link.end(connection, reason: "no handshake within the handshake timeout")
            return
        }
        connection.refuse(
            .handshakeTimeout, "no hello within \(limits.handshakeTimeout.wholeSeconds) seconds",
            reason: "no hello within the handshake timeout")
    }

    /// The `name-taken` message for a hello that asks for `name` in `requestedRoom` while `holder` has it: when the
    /// name frees up if its holder stays silent (the idle timeout's second half, counted from the holder's last
    /// frame), rounded up to whole seconds. The holder's room is named only when it is the one asked for: a room's
    /// name is all it takes to join it, so it is not told to whoever tries a name.
    func nameTakenMessage(name: String, holder: RelayConnection, requestedRoom: String) -> String {
        let place = holder.room?.name == requestedRoom ? "in \(requestedRoom)" : "on this relay"
        let taken = "the name '\(name)' is already in use \(place)"
        guard limits.idleTimeout > .zero else { return taken + "; choose another with --name" }
        let remaining = max(limits.idleTimeout * 2 - holder.silentFor, .zero)
        let seconds = max(1, remaining.wholeSecondsRoundedUp)
        return taken + "; it frees up in about \(seconds) s if its holder stays silent, or choose another with --name"
    }

    // MARK: Rates and timers

    /// Refills every token bucket, closes connections whose frame in progress is past its
    /// deadline, pings members idle for the idle timeout and closes those silent for twice as long.
    func tick(_ members: [RelayConnection]) {
        let interval = limits.tickInterval
        let intervalSeconds = interval.secondsWithFraction
        let refill = Double(limits.messageRate) * intervalSeconds
        let byteRefill = Double(limits.byteRate) * intervalSeconds
        let idleTimeout = limits.idleTimeout
        refillHandshakeBuckets(by: Double(limits.handshakeRate) * intervalSeconds)
        for member in members where member.connection.isOpen {
            member.refillBuckets(frames: refill, bytes: byteRefill)
            if checkFrameInProgress(of: member, interval: interval) { continue }
            guard idleTimeout > .zero, member.name != nil else { continue }
            member.silentFor += interval
            if member.silentFor >= idleTimeout * 2 {
                member.refuse(
                    .idleTimeout, "silent for \(member.silentFor.wholeSeconds) seconds; no answer to ping",
                    reason: "no answer to the relay's ping")
            } else if member.silentFor >= idleTimeout && !member.pingOutstanding {
                member.pingOutstanding = true
                fanOut.sendPrivately(
                    RelayFrame.ping(token: UInt64(member.silentFor.wholeSeconds)).encoded(), to: member)
            }
        }
    }

    private func refillHandshakeBuckets(by amount: Double) {
        guard !handshakeBuckets.isEmpty else { return }
        for (address, var bucket) in handshakeBuckets {
            bucket.refill(amount)
            handshakeBuckets[address] = bucket.tokens >= bucket.capacity ? nil : bucket
        }
    }

    /// Closes `member` (`slow-frame`) when the frame it is sending has taken longer than its
    /// deadline, and returns true; otherwise counts one more tick for a frame in progress.
    private func checkFrameInProgress(of member: RelayConnection, interval: Duration) -> Bool {
        guard let length = member.frameInProgressLength else {
            member.frameInProgressFor = .zero
            return false
        }
        member.frameInProgressFor += interval
        let declared = length > 0 ? length : nil
        guard let deadline = limits.incompleteFrameDeadline(length: declared),
            member.frameInProgressFor > deadline
        else { return false }
        let described = declared.map { "a frame of \($0) bytes" } ?? "a frame"
        let message =
            "\(described) still incomplete after \(member.frameInProgressFor.wholeSeconds) seconds: frames must "
            + "arrive within \(limits.incompleteFrameGrace.wholeSeconds) seconds plus "
            + "1 second per \(limits.minimumFrameRate) bytes"
        member.refuse(.slowFrame, message, reason: "slow frame")
        return true
    }

    /// Takes one frame token and `bytes` byte tokens for a frame; refuses the connection as
    /// flooding when either bucket cannot pay.
    func allowFrame(from member: RelayConnection, bytes: Int = 0) -> Bool {
        if limits.messageRate > 0 && !member.takeFrameToken() {
            member.refuse(
                .flooding, "flooding: more than \(limits.messageRate) frames a second (burst \(limits.messageBurst))",
                reason: "flooding")
            return false
        }
        if limits.byteRate > 0 && bytes > 0 && !member.takeByteTokens(bytes) {
            member.refuse(
                .flooding,
                "flooding: more than \(limits.byteRate) payload bytes a second (burst \(limits.byteBurst)); "
                    + "direct and multicast payloads count once per recipient",
                reason: "flooding")
            return false
        }
        return true
    }

    // MARK: Frames in progress

    /// Which budget for frames in progress `member` would pass by holding `capacity` bytes for
    /// its frame in progress (in place of what it holds now), described for an error message; nil
    /// when it fits. A large frame (read into a buffer of its own) counts in all and for the
    /// member's address, a small one (kept by the decoder) only for its address. The first frame
    /// held in all, and from an address, always fits.
    func frameBudgetExceeded(capacity: Int, isLarge: Bool, for member: RelayConnection) -> String? {
        let current = member.largeFrameBytes + member.smallFrameBytes
        let others = largeFrameBytesHeld - member.largeFrameBytes
        if isLarge && limits.incompleteFrameBudget > 0 && others > 0 && others + capacity > limits.incompleteFrameBudget
        {
            return "the relay's budget of \(limits.incompleteFrameBudget) bytes for partly received large frames"
        }
        let fromAddress = frameBytesByAddress[member.address, default: 0] - current
        if limits.incompleteFrameBudgetPerAddress > 0 && fromAddress > 0
            && fromAddress + capacity > limits.incompleteFrameBudgetPerAddress
        {
            return "the budget of \(limits.incompleteFrameBudgetPerAddress) bytes for partly received "
                + "frames from \(member.address)"
        }
        return nil
    }

    /// Refuses `member` (`frame-budget`): its large frame would pass `budget`.
    func refuseOverFrameBudget(_ member: RelayConnection, frameLength: Int, budget: String) {
        member.refuse(
            .frameBudget,
            "a frame of \(frameLength) bytes cannot start now: it would pass \(budget); send it again later",
            reason: "over the budget for frames in progress")
    }

    /// Counts a change in the bytes a member at `address` holds for its frame in progress.
    func frameBytesChanged(by delta: Int, isLarge: Bool, address: String) {
        if isLarge { largeFrameBytesHeld += delta }
        let fromAddress = frameBytesByAddress[address, default: 0] + delta
        frameBytesByAddress[address] = fromAddress > 0 ? fromAddress : nil
    }
}

extension Duration {
    /// The duration in whole seconds, a part of a second counting as one (for "frees up in about N s").
    fileprivate var wholeSecondsRoundedUp: Int64 {
        let (seconds, attoseconds) = components
        return attoseconds > 0 ? seconds + 1 : seconds
    }
}
