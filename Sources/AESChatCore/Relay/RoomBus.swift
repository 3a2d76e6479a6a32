/// Where the room directory and the fan-out meet: the relay hands every room event a member
/// causes (joining, leaving, publishing, a direct or multicast payload) to its bus, and the bus
/// decides who gets it and in what order, then queues it for the members on this relay through
/// ``RoomDirectory`` and ``FanOut``. ``LocalBus`` is today's behaviour, a room that lives on this
/// relay alone; a bus that several relays share (through Redis, say) would be a second
/// implementation.
///
/// The contract every bus keeps (docs/PROTOCOL.md, the relay's guarantees):
/// - **Thread.** Every call is made on the event loop's thread and returns without blocking. A
///   payload's bytes are valid only during the call: a bus that keeps them copies them.
/// - **Join.** ``join(_:name:room:profile:claim:)`` is called once the relay has checked the hello
///   (version, name and room syntax). The bus claims the name, unique across everything it spans
///   (this relay for ``LocalBus``; every relay sharing the bus otherwise), and then either refuses
///   the member with ``RelayErrorCode/nameTaken`` through ``RelayConnection/refuse(_:_:reason:)``,
///   or admits it: the member's welcome is the first frame queued for it and lists the room as
///   of the point where its `joined` enters the room's order; every other member gets that
///   `joined` before any payload of the newcomer; payloads ordered before that point never reach
///   the newcomer (its cursor starts at the room's batch length). ``LocalBus`` decides at once. A
///   bus that must ask elsewhere (a remote name claim, a room subscription, a roster snapshot)
///   completes later: it holds what the member sends until the welcome is queued or the member
///   refused (``RelayConnection/holdFrames(limit:)``, bounded), since nothing the member sends can
///   be ordered before its welcome.
/// - **Leave.** ``leave(_:reason:)`` does nothing for a connection that is not in a room, so it
///   may be called more than once (bye, a refusal, the close). Everything the member sent before
///   reaches the others before its `left`; a member leaving in order is first handed what the
///   room owes it (one dropped as too slow is not).
/// - **Publish.** ``publish(_:from:)`` puts one deliver frame into the room's order, encoded once
///   into the room's batch (``FanOut/appendToBatch(of:length:_:)``) for every local member
///   but the sender, whose cursor skips it after it was handed what it was owed. A shared bus
///   ships the encoded frame to the other relays, where it enters the same way into their room
///   batches for their local members, in the bus's order; the sender's own relay then delivers
///   from the bus too, so that every member sees one order.
/// - **Direct and multicast.** ``direct(_:to:from:)`` and ``multicast(_:to:from:)`` keep each
///   sender's order across publish, direct and multicast for every recipient: a recipient is
///   handed its room batch before a private frame (``FanOut/deliverPrivately(_:from:to:)``). A
///   direct to a name not in the sender's room gets the sender error `unknown-recipient`; a
///   multicast skips names not in the room (the names are distinct, checked by the caller).
/// - **Cost.** Publishing allocates nothing in steady state. The relay holds its bus as a
///   concrete type, so these calls are dispatched statically: ``Relay`` holds its ``LocalBus`` and,
///   in a cluster, a ``ClusterBus``, and picks with one check, rather than holding `any RoomBus`.
/// - **Backpressure.** Members too slow for what the bus delivers are dropped by ``FanOut`` at the
///   output cap, as today; a bus whose own outbound link backs up stops reading every connection
///   (``Connection/pauseReading()``) until it drains (``ClusterBus``: 64 MiB queued toward the
///   engine, resumed at 16 MiB).
protocol RoomBus: AnyObject {
    /// Claims `name` for `member` and, if free, admits it into `room` (created if it has no
    /// members), with `profile` as its roster entry. A name held by a connection whose claim key is
    /// `claim`'s is taken over when the claim verifies for `member`'s link (the holder is refused with
    /// `name-reclaimed`; a claim that does not verify is refused with `invalid-claim`); any other held
    /// name refuses `member` (`name-taken`, saying when the name frees up).
    func join(_ member: RelayConnection, name: String, room: String, profile: [UInt8], claim: NameClaim?)

    /// Takes `member` out of its room and tells the others; `reason` is for the log.
    func leave(_ member: RelayConnection, reason: String)

    /// Sends `payload` to every other member of the sender's room.
    func publish(_ payload: UnsafeRawBufferPointer, from member: RelayConnection)

    /// Sends `payload` to the member named `recipient` in the sender's room.
    func direct(_ payload: ReceivedPayload, to recipient: String, from member: RelayConnection)

    /// Sends `payload` to each member named in `recipients` who is in the sender's room, encoded once.
    func multicast(_ payload: ReceivedPayload, to recipients: [String], from member: RelayConnection)

    /// Answers `member`'s ping with `token` once every frame it sent before is taken: at once for ``LocalBus``; once
    /// the engine acknowledged every command those frames caused for ``ClusterBus``.
    func pong(_ token: UInt64, to member: RelayConnection)
}
