import Foundation
import Queue
import Store

/// Admits a webhook's deliveries: at most `perMinute` a minute per webhook, and each delivery
/// (and each signed request) once. In Redis, so every API process shares the counts, and the
/// marks expire by themselves: a Postgres table would need a migration and a sweeper, and would
/// bring nothing a lost mark could not: a mark lost with Redis's data can let one replay of a
/// GitHub delivery through, while Harrow's own format is still held to its five minutes.
///
/// Keys share the hash tag `{<webhook id>}`, so one script can check and set them together on a
/// Redis Cluster: `<prefix>:webhook:{<id>}:rate` (the minute's count),
/// `<prefix>:webhook:{<id>}:delivery:<hash>` and `<prefix>:webhook:{<id>}:signature:<hash>`
/// (hashes of the sender's text, so a key's size does not depend on it).
struct WebhookDeliveries: Sendable {
    /// What ``admit(webhook:marks:)`` decided.
    enum Admission: Sendable, Hashable {
        /// Go ahead; release the reservation if no operation comes of it.
        case admitted(Reservation)
        /// A mark was set already: this delivery, or this very request, was received before.
        case duplicate
        /// The webhook's minute is spent; the next one starts in this many seconds.
        case rateLimited(retryAfter: Int)
    }

    /// The marks a delivery set, to take back when its operation could not be recorded.
    struct Reservation: Sendable, Hashable {
        let keys: [String]
    }

    /// Something that must be seen once per webhook, for `seconds`.
    struct Mark: Sendable, Hashable {
        var kind: String
        var value: String
        var seconds: Int
    }

    let redis: RedisClient
    let prefix: String
    let perMinute: Int

    /// Refuses a request whose marks are set; else counts it and sets its marks. Duplicates are
    /// not counted: replaying a captured delivery must not spend the sender's minute. KEYS: the
    /// counter, then the marks. ARGV: the limit (0: none), the window (ms), then each mark's
    /// lifetime (s). Returns `{0}` (admitted), `{1, ms until the window ends}` (limited) or `{2}`
    /// (a mark was set).
    static let script = RedisScript(
        name: "webhook-admit",
        source: """
            for i = 2, #KEYS do
              if redis.call('EXISTS', KEYS[i]) == 1 then return {2} end
            end
            local limit = tonumber(ARGV[1])
            if limit > 0 then
              local n = redis.call('INCR', KEYS[1])
              if n == 1 then redis.call('PEXPIRE', KEYS[1], ARGV[2]) end
              if n > limit then return {1, redis.call('PTTL', KEYS[1])} end
            end
            for i = 2, #KEYS do
              redis.call('SET', KEYS[i], '1', 'EX', ARGV[i + 1])
            end
            return {0}
            """)

    /// Counts a verified request against `webhook`'s minute and reserves `marks`, atomically.
    func admit(webhook: UUID, marks: [Mark]) async throws -> Admission {
        let keys = marks.map { key(webhook, $0.kind, $0.value) }
        let reply = try await redis.run(
            Self.script, keys: [key(webhook, "rate")] + keys,
            arguments: [.int(perMinute), .int(60_000)] + marks.map { .int($0.seconds) })
        let values = reply.array?.compactMap(\.int) ?? []
        switch values.first {
        case 0: return .admitted(Reservation(keys: keys))
        case 1: return .rateLimited(retryAfter: max(1, ((values.count > 1 ? values[1] : 60_000) + 999) / 1000))
        default: return .duplicate
        }
    }

    /// Takes a reservation back: the sender's retry of the delivery is then a new one.
    func release(_ reservation: Reservation) async throws {
        guard !reservation.keys.isEmpty else { return }
        try await redis.send("DEL", reservation.keys.map { .string($0) })
    }

    func key(_ webhook: UUID, _ kind: String, _ value: String? = nil) -> String {
        let base = "\(prefix):webhook:{\(webhook.uuidString.lowercased())}:\(kind)"
        guard let value else { return base }
        return base + ":" + RateLimitCounters.digest(value)
    }
}
