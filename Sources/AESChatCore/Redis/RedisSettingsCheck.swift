/// The start-up check of the Redis settings a cluster relies on (cluster.md §3.2): a warning line for each that is
/// off, never a refusal (the operator may know better, and a managed Redis may not show its settings).
///
/// - `maxmemory-policy` must be `noeviction`: an evicted roster or name key would corrupt membership silently.
/// - `client-output-buffer-limit` for `pubsub` must let a relay fall a few 16 MiB frames behind: Redis cuts a
///   subscriber whose buffer passes the hard limit, or stays over the soft limit for its seconds (the default, 32 MiB
///   hard and 8 MiB soft, is two frames). At least ``minimumPubSubLimit`` for both, or 0 (no limit).
public enum RedisSettingsCheck {
    /// The smallest pub/sub output limit (hard and soft) that passes: four 16 MiB frames.
    public static let minimumPubSubLimit = 64 << 20

    /// Asks `connection` for the settings (CONFIG GET) and hands `completion` the warnings, one line each (none when
    /// all is well). A server that refuses CONFIG (renamed, or denied by an ACL) gives one warning saying so.
    public static func run(on connection: RedisConnection, _ completion: @escaping ([String]) -> Void) {
        var policy: Result<RedisValue, RedisError>?
        connection.send(["CONFIG", "GET", "maxmemory-policy"]) { policy = $0 }
        connection.send(["CONFIG", "GET", "client-output-buffer-limit"]) { limits in
            guard let policy else { return completion(["cannot check Redis's settings: no reply"]) }
            switch (policy, limits) {
            case (.success(let policyValue), .success(let limitsValue)):
                completion(warnings(policy: configValue(policyValue), outputBufferLimits: configValue(limitsValue)))
            case (.failure(let error), _), (_, .failure(let error)):
                completion([
                    "cannot check Redis's settings (\(error)); make sure of maxmemory-policy noeviction and "
                        + "client-output-buffer-limit pubsub \(minimumPubSubLimit >> 20)mb \(minimumPubSubLimit >> 20)mb 0"
                ])
            }
        }
    }

    /// The value in a `CONFIG GET` reply (`[name, value]`), or nil.
    private static func configValue(_ reply: RedisValue) -> String? {
        guard let elements = reply.elements, elements.count == 2 else { return nil }
        return elements[1].text
    }

    /// The warnings for the values of `maxmemory-policy` and `client-output-buffer-limit` (nil: not reported).
    public static func warnings(policy: String?, outputBufferLimits: String?) -> [String] {
        var lines: [String] = []
        if policy != "noeviction" {
            lines.append(
                "warning: Redis's maxmemory-policy is \(policy.map { "'\($0)'" } ?? "not reported"), not "
                    + "'noeviction': under memory pressure Redis may evict cluster keys and corrupt rosters "
                    + "(CONFIG SET maxmemory-policy noeviction)")
        }
        let limit = outputBufferLimits.flatMap(pubSubLimits)
        let small = limit.map { [$0.hard, $0.soft].contains { $0 != 0 && $0 < minimumPubSubLimit } } ?? true
        if small {
            let shown = limit.map { "\($0.hard) bytes hard, \($0.soft) bytes soft" } ?? "not reported"
            lines.append(
                "warning: Redis's client-output-buffer-limit for pubsub is \(shown): Redis will cut a relay "
                    + "that falls a few 16 MiB frames behind (CONFIG SET client-output-buffer-limit "
                    + "'pubsub \(minimumPubSubLimit >> 20)mb \(minimumPubSubLimit >> 20)mb 0' or more)")
        }
        return lines
    }

    /// The pub/sub class of a `client-output-buffer-limit` value such as
    /// `normal 0 0 0 slave 268435456 67108864 60 pubsub 33554432 8388608 60`.
    static func pubSubLimits(_ value: String) -> (hard: Int, soft: Int, seconds: Int)? {
        let words = value.split(separator: " ")
        guard let index = words.firstIndex(of: "pubsub"), index + 3 < words.count,
            let hard = Int(words[index + 1]), let soft = Int(words[index + 2]), let seconds = Int(words[index + 3])
        else { return nil }
        return (hard, soft, seconds)
    }
}
