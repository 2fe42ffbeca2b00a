import Crypto
import Queue
import Store

/// Fixed-window counters in Redis, shared by every API process: a request reserves one count on
/// each of its counters at once, before the work it limits, or is refused with the wait until
/// the fullest counter's window ends. Reserving first means concurrent requests cannot all pass
/// a check that none of them has counted yet.
struct RateLimitCounters: Sendable {
    /// One counter and its limit within the window.
    struct Counter: Sendable {
        var key: String
        var limit: Int
    }

    let redis: RedisClient
    let window: Duration

    /// A fixed-size key part for text chosen by callers (an address, a delivery id): the first
    /// 16 bytes of its SHA-256, in hex, so a key's length does not depend on the caller.
    static func digest(_ text: String) -> String {
        Hex.encode(SHA256.hash(data: Array(text.utf8)).prefix(16))
    }

    /// KEYS: the counters. ARGV: the window in ms, then each counter's limit. When a counter has
    /// reached its limit, returns the longest remaining window in ms and counts nothing;
    /// otherwise counts one on each and returns 0.
    static let reserve = RedisScript(
        name: "ratelimit-reserve",
        source: """
            local wait = 0
            for i, key in ipairs(KEYS) do
                local count = tonumber(redis.call('GET', key) or '0')
                if count >= tonumber(ARGV[i + 1]) then
                    local ttl = redis.call('PTTL', key)
                    if ttl < 0 then ttl = tonumber(ARGV[1]) end
                    if ttl > wait then wait = ttl end
                end
            end
            if wait > 0 then return wait end
            for _, key in ipairs(KEYS) do
                if redis.call('INCR', key) == 1 then redis.call('PEXPIRE', key, ARGV[1]) end
            end
            return 0
            """)

    /// Gives one count back on each counter (never below zero), for work that turned out not to
    /// count (a login that succeeded).
    static let refund = RedisScript(
        name: "ratelimit-refund",
        source: """
            for _, key in ipairs(KEYS) do
                if tonumber(redis.call('GET', key) or '0') > 0 then redis.call('DECR', key) end
            end
            return 0
            """)

    /// Reserves one count on each counter; the seconds to wait when one is full, else `nil`.
    func reserve(_ counters: [Counter]) async throws -> Int? {
        let windowMilliseconds = Int(window.components.seconds * 1000)
        let reply: RESPValue
        do {
            reply = try await redis.run(
                Self.reserve, keys: counters.map(\.key), arguments: [.int(windowMilliseconds)] + counters.map { .int($0.limit) })
        } catch {
            throw Problem.unavailable("the rate limits cannot be checked: Redis does not answer")
        }
        guard let wait = reply.int else { throw Problem.unavailable("the rate limits cannot be checked") }
        return wait > 0 ? (wait + 999) / 1000 : nil
    }

    /// Gives back one count on each of `keys`.
    func refund(_ keys: [String]) async throws {
        do {
            _ = try await redis.run(Self.refund, keys: keys, arguments: [])
        } catch {
            throw Problem.unavailable("the rate limits cannot be updated: Redis does not answer")
        }
    }

    /// Deletes `keys`: their counts are forgotten.
    func forget(_ keys: [String]) async throws {
        guard !keys.isEmpty else { return }
        do {
            _ = try await redis.send("DEL", keys.map { .string($0) })
        } catch {
            throw Problem.unavailable("the rate limits cannot be updated: Redis does not answer")
        }
    }
}
