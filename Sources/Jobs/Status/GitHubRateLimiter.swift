import Crypto
import Queue
import Store

/// A token bucket per GitHub token in Redis, shared by every worker: at most `perHour` requests
/// an hour in the long run, bursts of up to `burst`. When GitHub says a token is out of requests
/// (a 403 or 429 with `Retry-After` or `X-RateLimit-Reset`), ``block(token:forMilliseconds:)``
/// holds every worker off it until then. Keys hold a hash of the token, never the token.
public struct GitHubRateLimiter: Sendable {
    let redis: RedisClient
    let keyPrefix: String
    let perHour: Int
    let burst: Int

    public init(redis: RedisClient, keyPrefix: String = "harrow", perHour: Int = 5000, burst: Int = 100) {
        self.redis = redis
        self.keyPrefix = keyPrefix
        self.perHour = max(1, perHour)
        self.burst = max(1, min(burst, perHour))
    }

    /// What ``acquire(token:reservingUpTo:)`` got.
    public enum Grant: Sendable, Hashable {
        /// Send now.
        case now
        /// A request is reserved for this caller after this wait: send then, without asking again.
        case after(Duration)
        /// Nothing is reserved: ask again after this wait.
        case retry(after: Duration)
    }

    /// Takes a request from the token's bucket, or reserves the next free one when it is at most
    /// `maximumWait` away: callers that wait their turn are served in order instead of racing
    /// for each refill.
    public func acquire(token: String, reservingUpTo maximumWait: Duration = .zero) async throws -> Grant {
        let reply =
            try await redis.run(
                Self.take, keys: [key(token)],
                arguments: [
                    .int(burst), .string("\(Double(perHour) / 3_600_000)"), .int(7200),
                    .int(Int(max(0, JobQueue.milliseconds(maximumWait)))),
                ]
            ).array?.compactMap(\.int) ?? []
        guard reply.count == 2 else {
            throw RedisError(code: .unexpectedReply, message: "\(Self.take.name) answered \(reply)")
        }
        if reply[1] <= 0 { return .now }
        return reply[0] == 1 ? .after(.milliseconds(reply[1])) : .retry(after: .milliseconds(reply[1]))
    }

    /// Holds every request with this token off for `milliseconds` (from now, on Redis's clock).
    public func block(token: String, forMilliseconds milliseconds: Int64) async throws {
        _ = try await redis.run(Self.hold, keys: [key(token)], arguments: [.int(Int(max(0, milliseconds))), .int(7200)])
    }

    func key(_ token: String) -> String {
        "\(keyPrefix):ratelimit:github:\(Hex.encode(SHA256.hash(data: Array(token.utf8)).prefix(16)))"
    }

    /// KEYS[1] the bucket; ARGV: capacity, tokens per ms, TTL in s, longest reservation in ms.
    /// Returns {taken, wait ms}: {1, 0} a token now, {1, w} one reserved (the count goes below
    /// zero) for w ms from now, {0, w} none (a block, or a reservation would be too far off).
    static let take = RedisScript(
        name: "github-rate-take",
        source: """
            local now = redis.call('TIME')
            local t = tonumber(now[1]) * 1000 + math.floor(tonumber(now[2]) / 1000)
            local state = redis.call('HMGET', KEYS[1], 'tokens', 'ts', 'blocked_until')
            local blocked = tonumber(state[3] or '0')
            if blocked > t then return {0, blocked - t} end
            local capacity = tonumber(ARGV[1])
            local rate = tonumber(ARGV[2])
            local tokens = tonumber(state[1] or ARGV[1])
            local ts = tonumber(state[2] or t)
            tokens = math.min(capacity, tokens + math.max(0, t - ts) * rate)
            local wait = 0
            if tokens < 1 then wait = math.ceil((1 - tokens) / rate) end
            local taken = 1
            if wait > tonumber(ARGV[4]) then taken = 0 else tokens = tokens - 1 end
            redis.call('HSET', KEYS[1], 'tokens', tostring(tokens), 'ts', t)
            redis.call('EXPIRE', KEYS[1], ARGV[3])
            return {taken, wait}
            """)

    /// KEYS[1] the bucket; ARGV: ms to block for, TTL in s. A later block wins.
    static let hold = RedisScript(
        name: "github-rate-hold",
        source: """
            local now = redis.call('TIME')
            local t = tonumber(now[1]) * 1000 + math.floor(tonumber(now[2]) / 1000)
            local until_ms = t + tonumber(ARGV[1])
            local current = tonumber(redis.call('HGET', KEYS[1], 'blocked_until') or '0')
            if until_ms > current then redis.call('HSET', KEYS[1], 'blocked_until', until_ms) end
            redis.call('EXPIRE', KEYS[1], ARGV[2])
            return 0
            """)
}
