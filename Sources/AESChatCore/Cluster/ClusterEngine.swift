/// The engine several relays share a cluster through (docs/ARCHITECTURE.md "Cluster"; the design is issue 16's,
/// `cluster.md` §3): one sequencer that executes every relay's commands one at a time, so that every relay sees every
/// room's events in one order. A relay's ``ClusterBus`` drives it; ``InMemoryClusterEngine`` runs the same steps in
/// process (for tests); a Redis engine maps each operation onto a script or command of one Redis 7 primary.
///
/// ## The state it holds (Redis keys, prefix `P` = `--cluster-prefix`, default `aeschat`)
///
/// | key | type | content |
/// |---|---|---|
/// | `P:relays` | ZSET | each live incarnation, scored by its last heartbeat in ms of the engine's clock (Redis `TIME`) |
/// | `P:names` | HASH | name → the holder's ``ClusterNameHolder/encoded`` value (`"<inc> <ticket> <room>[ <claim>]"`) |
/// | `P:relay:<inc>` | HASH | name → room: the members an incarnation registered, for reaping |
/// | `P:room:<room>` | HASH | name → ``ClusterRoster/value(incarnation:profile:)`` (`inc` ‖ profile, profile ≤ 1 KiB) |
/// | `P:r:<room>` | channel | a room's ``ClusterMessage`` `joined`, `left` and `publish` |
/// | `P:n:<inc>` | channel | an incarnation's inbox: ``ClusterMessage`` `direct` and its own `ping` |
///
/// Only names, room names, opaque profiles, incarnation ids and heartbeat times: never a payload at rest, never a
/// key. An incarnation id is 16 lowercase hex digits (a random 64-bit number for Redis), never reused.
///
/// ## The contract
/// - **Thread.** Every call is made on the relay's event loop and returns at once; every completion and every
///   delegate call comes later on the same loop, never from inside a call. Bytes passed in are valid only during
///   the call.
/// - **Command order.** The operations that return a sequence number (join, leave, publish, send, heartbeat) are
///   executed by the engine one at a time in the order the relay called them (for Redis: one command connection,
///   FIFO), interleaved with other relays' commands in one global order. Sequence numbers count up by one per
///   operation from 1 in each incarnation. ``ClusterEngineDelegate/engineDidAcknowledge(through:)`` reports that every
///   operation up to that number was executed (its completion, if any, already called). The relay holds a
///   member's pong until a heartbeat sent after the member's operations succeeded: the heartbeat is fenced, so its
///   success also proves they were executed before any reaping of this incarnation.
/// - **Stream order.** Everything published to a subscribed room channel and to the relay's inbox reaches
///   ``ClusterEngineDelegate/engine(didReceive:on:)`` in the engine's one global order (for Redis: one subscriber
///   connection): every relay subscribed to a room sees that room's messages in the same order, and one relay's
///   publishes in the order it made them, across room and inbox channels. A subscription's completion comes in the
///   same stream: every message executed after it is delivered, none executed before.
/// - **Replies and stream are independent.** A join's reply may come before or after its `joined` message reaches
///   the relay's stream; the relay handles both orders.
/// - **Loss.** Anything that may have lost a command, a reply or a stream message (a connection closed or errored,
///   a `FENCED` reply because this incarnation was reaped, a subscriber cut for its output buffer, a self-fence
///   timeout) ends the incarnation: ``ClusterEngineDelegate/engineDidLose(reason:)``, once, and then no further
///   completion, acknowledgement or message of that incarnation. The relay may then call ``start()`` again, which
///   begins a new incarnation with a new id.
public protocol ClusterEngine: AnyObject {
    /// Receives the stream, acknowledgements, start and loss. Held weakly.
    var delegate: (any ClusterEngineDelegate)? { get set }

    /// The current incarnation's id, between ``ClusterEngineDelegate/engineDidStart(incarnation:census:)`` and the loss or
    /// ``stop()``; nil otherwise.
    var incarnation: String? { get }

    /// Bytes of commands queued towards the engine and not yet sent (the relay may stop reading members above a cap).
    var pendingOutputByteCount: Int { get }

    /// Begins an incarnation: connects, names the subscriber connection, subscribes the inbox channel `P:n:<inc>`,
    /// then registers the incarnation (`ZADD P:relays <now> <inc>`); then
    /// ``ClusterEngineDelegate/engineDidStart(incarnation:census:)``, or ``ClusterEngineDelegate/engineDidLose(reason:)`` if
    /// the engine cannot be reached.
    func start()

    /// Ends the incarnation on purpose (the relay shuts down), after every command already queued: deregisters it
    /// (`ZREM P:relays`, `DEL P:relay:<inc>`), then closes. No delegate call follows.
    func stop()

    /// Ends the incarnation from the relay's side (a malformed message, no heartbeat reply in time): closes both
    /// connections at once, without deregistering (the others reap it). No delegate call follows.
    func abandon(reason: String)

    /// Subscribes the room channel `P:r:<room>`; `completion` comes in the stream once it is subscribed.
    func subscribe(room: String, completion: @escaping () -> Void)

    /// Unsubscribes the room channel: messages of the room stop (the relay ignores those still in flight).
    func unsubscribe(room: String)

    /// The join script, atomically:
    /// 1. fence: unless `ZSCORE P:relays <inc>` exists, the reply is `FENCED` (the incarnation was reaped: loss);
    /// 2. if `request.replacing` is set and `HGET P:names <name>` equals `replacing.encoded`: the holder is removed as
    ///    by the leave script (`HDEL P:names`, `HDEL P:relay:<its inc> <name>`, `HDEL P:room:<its room> <name>`) and
    ///    `request.replacedMessage` is published on `P:r:<its room>`;
    /// 3. `HSETNX P:names <name> <holder.encoded>`; if the name is held, the reply is ``ClusterJoinReply/taken(_:)``
    ///    with the value held, and nothing changes;
    /// 4. `HSET P:relay:<inc> <name> <room>`, `HSET P:room:<room> <name> <roster value>`;
    /// 5. `PUBLISH P:r:<room> <request.message>` (the `joined`);
    /// 6. if `request.wantsSnapshot`: `HGETALL P:room:<room>` (the roster right after the `joined`, the newcomer
    ///    included) is the reply's snapshot, else none.
    @discardableResult
    func join(_ request: ClusterJoinRequest, completion: @escaping (ClusterJoinReply) -> Void) -> UInt64

    /// The leave script, atomically: fence as for join; if `HGET P:names <name>` equals `holder.encoded`:
    /// `HDEL P:names <name>`, `HDEL P:relay:<inc> <name>`, `HDEL P:room:<room> <name>`, `PUBLISH P:r:<room> <message>`
    /// (the `left`); otherwise nothing (the name was reclaimed or reaped already).
    @discardableResult
    func leave(name: String, holder: ClusterNameHolder, message: UnsafeRawBufferPointer) -> UInt64

    /// `PUBLISH P:r:<room> <message>` (a `publish` message).
    @discardableResult
    func publish(room: String, message: UnsafeRawBufferPointer) -> UInt64

    /// `PUBLISH P:n:<incarnation> <message>` (a `direct` message, or the relay's own `ping` to itself).
    @discardableResult
    func send(toRelay incarnation: String, message: UnsafeRawBufferPointer) -> UInt64

    /// The heartbeat script: fence as for join, then `ZADD P:relays <now in ms> <inc>`; `completion` on success.
    @discardableResult
    func heartbeat(completion: @escaping () -> Void) -> UInt64

    /// The incarnations to reap: those in `P:relays` whose heartbeat is older than `deadAfter` by the engine's clock,
    /// and those with no subscriber connection named for them (for Redis: `ZRANGE` first, then `CLIENT LIST TYPE
    /// pubsub`, so a relay registering in between is not misjudged). Never this incarnation.
    func findDeadRelays(deadAfter: Duration, completion: @escaping ([String]) -> Void)

    /// The reap script for one dead incarnation, idempotent: for up to `limit` of the names in `P:relay:<dead>`: if
    /// `P:names[name]` starts with `"<dead> "`, `HDEL` it; if `P:room:<room>[name]` starts with `<dead>`, `HDEL` it and
    /// `PUBLISH P:r:<room>` the `left` ``ClusterMessage`` with origin `<dead>` and cause ``ClusterLeftCause/reaped``
    /// (built in the script: `string.char(1, 2, #dead) .. dead .. string.char(#room) .. room .. string.char(#name) ..
    /// name .. string.char(2)`); `HDEL P:relay:<dead> <name>`. When none is left: `DEL P:relay:<dead>`, `ZREM P:relays
    /// <dead>`. `completion` gets the number of members that were reaped in this call and the number still left.
    func reap(relay dead: String, limit: Int, completion: @escaping (_ reaped: Int, _ remaining: Int) -> Void)
}

/// What a ``ClusterEngine`` reports to its relay, on the relay's event loop.
public protocol ClusterEngineDelegate: AnyObject {
    /// An incarnation began: the relay may serve members.
    func engineDidStart(incarnation: String, census: ClusterCensus)

    /// One message of a subscribed room channel or of the inbox, in the stream's order; its bytes are valid only
    /// during the call.
    func engine(didReceive message: UnsafeRawBufferPointer, on channel: ClusterChannel)

    /// Every operation up to `sequence` was executed.
    func engineDidAcknowledge(through sequence: UInt64)

    /// The incarnation ended (see ``ClusterEngine``, "Loss"): `reason` is one line for the log and for members.
    func engineDidLose(reason: String)
}

/// The cluster as a new incarnation found it when it registered (for its log line).
public struct ClusterCensus: Sendable, Equatable {
    /// Registered incarnations, this one included.
    public var relays: Int
    /// Rooms with at least one member, on any relay.
    public var rooms: Int
    /// Members holding a name, on any relay.
    public var members: Int

    /// A census from its counts.
    public init(relays: Int, rooms: Int, members: Int) {
        self.relays = relays
        self.rooms = rooms
        self.members = members
    }
}

/// Which kind of channel a message came on. The message names its room itself.
public enum ClusterChannel: Sendable, Equatable {
    /// A room channel `P:r:<room>`.
    case room
    /// The relay's inbox `P:n:<inc>`.
    case inbox
}

/// Who holds a name: the value of `P:names[name]`, `"<inc> <ticket> <room>"` or, for a name registered with a claim
/// key, `"<inc> <ticket> <room> <claim key, 64 lowercase hex digits>"`. The ticket (lowercase hex, no leading zeros)
/// tells two registrations of the same name on the same relay apart, so that a leave never removes a later holder.
public struct ClusterNameHolder: Sendable, Equatable {
    /// The holder's incarnation.
    public var incarnation: String
    /// Its registration's ticket at that incarnation.
    public var ticket: UInt64
    /// Its room.
    public var room: String
    /// The key of its name claim, if it registered with one (32 bytes).
    public var claimKey: [UInt8]?

    /// A holder from its parts.
    public init(incarnation: String, ticket: UInt64, room: String, claimKey: [UInt8]?) {
        self.incarnation = incarnation
        self.ticket = ticket
        self.room = room
        self.claimKey = claimKey
    }

    /// The value stored in `P:names`.
    public var encoded: String {
        var text = "\(incarnation) \(String(ticket, radix: 16)) \(room)"
        if let claimKey { text += " " + Self.hex(claimKey) }
        return text
    }

    /// Parses a stored value; nil when it is not one.
    public init?(_ encoded: String) {
        let parts = encoded.split(separator: " ", omittingEmptySubsequences: false)
        guard parts.count == 3 || parts.count == 4, ClusterIncarnation.isValid(parts[0]),
            let ticket = UInt64(parts[1], radix: 16), !parts[2].isEmpty
        else { return nil }
        incarnation = String(parts[0])
        self.ticket = ticket
        room = String(parts[2])
        if parts.count == 4 {
            guard let key = Self.unhex(parts[3]), key.count == 32 else { return nil }
            claimKey = key
        } else {
            claimKey = nil
        }
    }

    static func hex(_ bytes: [UInt8]) -> String {
        let digits = Array("0123456789abcdef".utf8)
        var text: [UInt8] = []
        text.reserveCapacity(bytes.count * 2)
        for byte in bytes {
            text.append(digits[Int(byte >> 4)])
            text.append(digits[Int(byte & 15)])
        }
        return String(decoding: text, as: UTF8.self)
    }

    static func unhex(_ text: Substring) -> [UInt8]? {
        let utf8 = Array(text.utf8)
        guard utf8.count % 2 == 0 else { return nil }
        var bytes: [UInt8] = []
        bytes.reserveCapacity(utf8.count / 2)
        func value(_ digit: UInt8) -> UInt8? {
            switch digit {
            case UInt8(ascii: "0")...UInt8(ascii: "9"): digit - UInt8(ascii: "0")
            case UInt8(ascii: "a")...UInt8(ascii: "f"): digit - UInt8(ascii: "a") + 10
            default: nil
            }
        }
        var index = 0
        while index < utf8.count {
            guard let high = value(utf8[index]), let low = value(utf8[index + 1]) else { return nil }
            bytes.append(high << 4 | low)
            index += 2
        }
        return bytes
    }
}

/// Incarnation ids: 16 lowercase hex digits.
public enum ClusterIncarnation {
    /// The length of an id.
    public static let length = 16

    /// Whether `text` is a well-formed id.
    public static func isValid<S: StringProtocol>(_ text: S) -> Bool {
        text.utf8.count == length
            && text.utf8.allSatisfy { (0x30...0x39).contains($0) || (0x61...0x66).contains($0) }
    }

    /// The id of the 64-bit number `value`.
    public static func id(_ value: UInt64) -> String {
        let digits = String(value, radix: 16)
        return String(repeating: "0", count: length - digits.count) + digits
    }
}

/// A roster entry in `P:room:<room>`: the value is the home incarnation's 16-digit id followed by the profile.
public enum ClusterRoster {
    /// The value stored for a member of `incarnation` with `profile`.
    public static func value(incarnation: String, profile: [UInt8]) -> [UInt8] {
        Array(incarnation.utf8) + profile
    }

    /// Splits a stored value; nil when it is not one (no id, or a profile over 1 KiB).
    public static func parse(_ value: [UInt8]) -> (incarnation: String, profile: [UInt8])? {
        guard value.count >= ClusterIncarnation.length,
            value.count - ClusterIncarnation.length <= MemberEntry.maximumProfileSize
        else { return nil }
        let id = String(decoding: value[0..<ClusterIncarnation.length], as: UTF8.self)
        guard ClusterIncarnation.isValid(id) else { return nil }
        return (id, Array(value[ClusterIncarnation.length...]))
    }
}

/// The join script's arguments (see ``ClusterEngine/join(_:completion:)``).
public struct ClusterJoinRequest: Sendable {
    /// The name claimed.
    public var name: String
    /// The room joined.
    public var room: String
    /// The value for `P:names[name]` (its incarnation is the engine's current one).
    public var holder: ClusterNameHolder
    /// The value for `P:room:<room>[name]` (``ClusterRoster/value(incarnation:profile:)``).
    public var rosterValue: [UInt8]
    /// The `joined` ``ClusterMessage`` published on `P:r:<room>`.
    public var message: [UInt8]
    /// Whether the reply carries the room's roster.
    public var wantsSnapshot: Bool
    /// A holder to take the name over from (a verified name claim), if its value is still exactly this one.
    public var replacing: ClusterNameHolder?
    /// The `left` ``ClusterMessage`` (cause ``ClusterLeftCause/reclaimed``) published on the replaced holder's room.
    public var replacedMessage: [UInt8]

    /// A request from its parts.
    public init(
        name: String, room: String, holder: ClusterNameHolder, rosterValue: [UInt8], message: [UInt8],
        wantsSnapshot: Bool, replacing: ClusterNameHolder? = nil, replacedMessage: [UInt8] = []
    ) {
        self.name = name
        self.room = room
        self.holder = holder
        self.rosterValue = rosterValue
        self.message = message
        self.wantsSnapshot = wantsSnapshot
        self.replacing = replacing
        self.replacedMessage = replacedMessage
    }
}

/// The join script's reply.
public enum ClusterJoinReply: Sendable, Equatable {
    /// Registered; the room's roster (name, ``ClusterRoster`` value) right after the `joined`, when asked for.
    case joined(snapshot: [ClusterSnapshotEntry]?)
    /// The name is held: its `P:names` value (normally a ``ClusterNameHolder/encoded``).
    case taken(String)
}

/// One field of a roster snapshot (`HGETALL P:room:<room>`).
public struct ClusterSnapshotEntry: Sendable, Equatable {
    /// The member's name.
    public var name: String
    /// Its ``ClusterRoster`` value.
    public var value: [UInt8]

    /// An entry from its parts.
    public init(name: String, value: [UInt8]) {
        self.name = name
        self.value = value
    }
}
