/// The keys and channels of one cluster in Redis (cluster.md §3.2, and ``ClusterEngine``'s table, which is the
/// contract), all under its prefix `P` (`--cluster-prefix`, default `aeschat`), so several clusters can share one
/// Redis:
///
/// | key / channel | type | content |
/// |---|---|---|
/// | `P:relays` | sorted set | member: a live incarnation id; score: its last heartbeat, milliseconds of Redis's clock |
/// | `P:reaping` | set | incarnations being reaped (fenced, members not all announced `left` yet) |
/// | `P:names` | hash | member name → its holder, ``ClusterNameHolder/encoded`` (`"<inc> <ticket> <room>[ <claim>]"`) |
/// | `P:relay:<inc>` | hash | member name → room: the members an incarnation registered, for reaping |
/// | `P:room:<room>` | hash | member name → ``ClusterRoster`` value: the home incarnation's id, then the profile |
/// | `P:r:<room>` | channel | the room's ``ClusterMessage``s: joined, left, publish |
/// | `P:n:<inc>` | channel | a relay's inbox: direct and multicast messages for its members, its self-ping |
///
/// Redis holds only names, room names, opaque profiles, incarnation ids and heartbeat times: no payload is stored,
/// no key ever reaches it.
public struct ClusterKeys: Sendable, Equatable {
    /// The prefix, such as `aeschat`.
    public let prefix: String

    public init(prefix: String) {
        self.prefix = prefix
    }

    public var relays: String { "\(prefix):relays" }
    public var reaping: String { "\(prefix):reaping" }
    public var names: String { "\(prefix):names" }
    public func relay(_ incarnation: String) -> String { "\(prefix):relay:\(incarnation)" }
    public func room(_ room: String) -> String { "\(prefix):room:\(room)" }
    public func roomChannel(_ room: String) -> String { "\(prefix):r:\(room)" }
    public func inboxChannel(_ incarnation: String) -> String { "\(prefix):n:\(incarnation)" }
    /// The name of an incarnation's connections in `CLIENT LIST`, by which a dead process is noticed.
    public func clientName(_ incarnation: String) -> String { "aeschat.\(prefix).\(incarnation)" }
}

/// The Lua scripts of a cluster (cluster.md §3.2–3.5). Each changes the cluster's keys and publishes what the change
/// means in one atomic step, so that the roster a script returns and the bus messages on the room channel agree. The
/// time is always Redis's own (`TIME`), never a relay's clock. Error replies start with a code: `FENCED` (the
/// incarnation is not registered: reaped, or never was), `TAKEN` (the name is held), `EXISTS`.
public enum ClusterScripts {
    /// Registers a new incarnation with a first heartbeat.
    /// KEYS: relays, names. ARGV: inc. Returns `{now_ms, relay_count, member_count, room_count}` (the cluster as the
    /// new incarnation finds it, for its log line; counting the rooms reads every name's holder once, at start only);
    /// `EXISTS` if the id is already registered.
    public static let register = RedisScript(
        name: "register",
        source: """
            local t = redis.call('TIME')
            local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
            if redis.call('ZADD', KEYS[1], 'NX', now, ARGV[1]) == 0 then
              return redis.error_reply('EXISTS relay incarnation is already registered')
            end
            local rooms, roomCount = {}, 0
            for _, holder in ipairs(redis.call('HVALS', KEYS[2])) do
              local room = string.match(holder, '^%S+ %S+ (%S+)')
              if room and not rooms[room] then
                rooms[room] = true
                roomCount = roomCount + 1
              end
            end
            return {now, redis.call('ZCARD', KEYS[1]), redis.call('HLEN', KEYS[2]), roomCount}
            """)

    /// A heartbeat: moves the incarnation's score to Redis's clock now.
    /// KEYS: relays. ARGV: inc. Returns now in milliseconds; `FENCED` if the incarnation was reaped.
    public static let heartbeat = RedisScript(
        name: "heartbeat",
        source: """
            if not redis.call('ZSCORE', KEYS[1], ARGV[1]) then
              return redis.error_reply('FENCED relay incarnation is not registered')
            end
            local t = redis.call('TIME')
            local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
            redis.call('ZADD', KEYS[1], 'XX', now, ARGV[1])
            return now
            """)

    /// A member joins (``ClusterEngine/join(_:completion:)``): optionally takes the name over from a holder whose
    /// claim verified (removing it as the leave script would and publishing its `left`), claims the name across the
    /// cluster, adds the member to its relay's and its room's rosters, and publishes the `joined` message on the room
    /// channel, all at once; with the snapshot flag, also returns the room's roster right after that message (the
    /// newcomer included).
    /// KEYS: relays, names, relay:inc, room:room. ARGV: inc, room, name, holder (encoded), roster value, joined
    /// message, room channel, snapshot flag (`1` or `0`), holder replaced (encoded, or empty), its `left` message,
    /// prefix. Returns `{receivers}` or `{receivers, {name, value, …}}`; `FENCED`, or `TAKEN <value held>`.
    public static let join = RedisScript(
        name: "join",
        source: """
            if not redis.call('ZSCORE', KEYS[1], ARGV[1]) then
              return redis.error_reply('FENCED relay incarnation is not registered')
            end
            if ARGV[9] ~= '' and redis.call('HGET', KEYS[2], ARGV[3]) == ARGV[9] then
              local words = {}
              for word in string.gmatch(ARGV[9], '[^ ]+') do words[#words + 1] = word end
              redis.call('HDEL', KEYS[2], ARGV[3])
              redis.call('HDEL', ARGV[11] .. ':relay:' .. words[1], ARGV[3])
              redis.call('HDEL', ARGV[11] .. ':room:' .. words[3], ARGV[3])
              redis.call('PUBLISH', ARGV[11] .. ':r:' .. words[3], ARGV[10])
            end
            if redis.call('HSETNX', KEYS[2], ARGV[3], ARGV[4]) == 0 then
              return redis.error_reply('TAKEN ' .. redis.call('HGET', KEYS[2], ARGV[3]))
            end
            redis.call('HSET', KEYS[3], ARGV[3], ARGV[2])
            redis.call('HSET', KEYS[4], ARGV[3], ARGV[5])
            local receivers = redis.call('PUBLISH', ARGV[7], ARGV[6])
            if ARGV[8] == '1' then
              return {receivers, redis.call('HGETALL', KEYS[4])}
            end
            return {receivers}
            """)

    /// A member leaves (``ClusterEngine/leave(name:holder:message:)``): fenced as join is; if the name is still held
    /// by exactly this registration, frees it, takes the member out of the rosters and publishes the `left` message
    /// on the room channel, all at once (behind everything the relay sent before).
    /// KEYS: relays, names, relay:inc, room:room. ARGV: inc, holder (encoded), name, left message, room channel.
    /// Returns 1 when the member left, 0 when the name was no longer this registration's (reclaimed or reaped: its
    /// `left` is already out); `FENCED`.
    public static let leave = RedisScript(
        name: "leave",
        source: """
            if not redis.call('ZSCORE', KEYS[1], ARGV[1]) then
              return redis.error_reply('FENCED relay incarnation is not registered')
            end
            if redis.call('HGET', KEYS[2], ARGV[3]) ~= ARGV[2] then
              return 0
            end
            redis.call('HDEL', KEYS[2], ARGV[3])
            redis.call('HDEL', KEYS[3], ARGV[3])
            redis.call('HDEL', KEYS[4], ARGV[3])
            redis.call('PUBLISH', ARGV[5], ARGV[4])
            return 1
            """)

    /// Reaps a dead incarnation (``ClusterEngine/reap(relay:limit:completion:)``), at most `limit` members per call
    /// (a long script would stall Redis and make heartbeats late). It fences the incarnation at once (out of
    /// `relays`, into `reaping`, where reapers find it until done, so that the dead relay can neither join nor beat
    /// while its members are announced), then for each of its members: if the name is still held by it, frees it; if
    /// the room's roster still has it from that incarnation, takes it out and publishes `left` on the room channel,
    /// after everything the dead relay had published. The `left` ``ClusterMessage`` is built here as the relays build
    /// it: `01 02 len(inc) inc len(room) room len(name) name 02` (version 1, kind left, origin the dead incarnation,
    /// cause ``ClusterLeftCause/reaped``). Idempotent: several relays reaping the same incarnation at once publish
    /// each `left` once.
    /// KEYS: relays, names, reaping. ARGV: prefix, inc, limit. Returns `{members_left_to_reap, members_reaped}`; call
    /// again while the first is not 0.
    public static let reap = RedisScript(
        name: "reap",
        source: """
            local prefix, inc, limit = ARGV[1], ARGV[2], tonumber(ARGV[3])
            local relayKey = prefix .. ':relay:' .. inc
            redis.call('ZREM', KEYS[1], inc)
            redis.call('SADD', KEYS[3], inc)
            local fields
            if redis.call('HLEN', relayKey) <= limit then
              fields = redis.call('HGETALL', relayKey)
            else
              -- COUNT is a hint (a small hash comes back whole): the loop below takes at most limit of them.
              fields = redis.call('HSCAN', relayKey, 0, 'COUNT', limit)[2]
            end
            local reaped = 0
            for i = 1, math.min(#fields, 2 * limit), 2 do
              local name, room = fields[i], fields[i + 1]
              local holder = redis.call('HGET', KEYS[2], name)
              if holder and string.sub(holder, 1, #inc + 1) == inc .. ' ' then
                redis.call('HDEL', KEYS[2], name)
              end
              local roomKey = prefix .. ':room:' .. room
              local entry = redis.call('HGET', roomKey, name)
              if entry and string.sub(entry, 1, #inc) == inc then
                redis.call('HDEL', roomKey, name)
                local message = string.char(1, 2, #inc) .. inc .. string.char(#room) .. room
                  .. string.char(#name) .. name .. string.char(2)
                redis.call('PUBLISH', prefix .. ':r:' .. room, message)
                reaped = reaped + 1
              end
              redis.call('HDEL', relayKey, name)
            end
            local left = redis.call('HLEN', relayKey)
            if left == 0 then
              redis.call('DEL', relayKey)
              redis.call('SREM', KEYS[3], inc)
            end
            return {left, reaped}
            """)

    /// What a reaper looks at: Redis's clock, every registered incarnation with its last heartbeat, and those whose
    /// reaping is unfinished. (The relay compares them with `CLIENT LIST TYPE pubsub`, which a script cannot call.)
    /// KEYS: relays, reaping. Returns `{now_ms, {inc, last_ms, …}, {inc, …}}`.
    public static let survey = RedisScript(
        name: "survey",
        source: """
            local t = redis.call('TIME')
            local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
            return {now, redis.call('ZRANGE', KEYS[1], 0, -1, 'WITHSCORES'), redis.call('SMEMBERS', KEYS[2])}
            """)

    /// Every script, for ``RedisScriptRunner/load(_:_:)``.
    public static let all = [register, heartbeat, join, leave, reap, survey]
}
