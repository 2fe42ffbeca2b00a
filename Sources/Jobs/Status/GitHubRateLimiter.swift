import Crypto
import Queue

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

    /// Takes a request from the token's bucket: `nil` when the request may go now, else how long
    /// to wait before trying again.
    public func acquire(token: String) async throws -> Duration? {
        let wait =
            try await redis.run(
                Self.take, keys: [key(token)],
                arguments: [.int(burst), .string("\(Double(perHour) / 3_600_000)"), .int(7200)]
            ).int ?? 0
        return wait > 0 ? .milliseconds(wait) : nil
    }

    /// Holds every request with this token off for `milliseconds` (from now, on Redis's clock).
    public func block(token: String, forMilliseconds milliseconds: Int64) async throws {
        _ = try await redis.run(Self.hold, keys: [key(token)], arguments: [.int(Int(max(0, milliseconds))), .int(7200)])
    }

    func key(_ token: String) -> String {
        let digest = SHA256.hash(data: Array(token.utf8)).prefix(16).map { String($0, radix: 16).leftPadded(to: 2) }.joined()
        return "\(keyPrefix):ratelimit:github:\(digest)"
    }

    /// KEYS[1] the bucket; ARGV: capacity, tokens per ms, TTL in s. Returns 0 when a token was
    /// taken, else the ms until one will be there (or until a block ends).
    static let take = RedisScript(
        name: "github-rate-take",
        source: """
            local now = redis.call('TIME')
            local t = tonumber(now[1]) * 1000 + math.floor(tonumber(now[2]) / 1000)
            local state = redis.call('HMGET', KEYS[1], 'tokens', 'ts', 'blocked_until')
            local blocked = tonumber(state[3] or '0')
            if blocked > t then return blocked - t end
            local capacity = tonumber(ARGV[1])
            local rate = tonumber(ARGV[2])
            local tokens = tonumber(state[1] or ARGV[1])
            local ts = tonumber(state[2] or t)
            tokens = math.min(capacity, tokens + math.max(0, t - ts) * rate)
            local wait = 0
            if tokens >= 1 then tokens = tokens - 1 else wait = math.ceil((1 - tokens) / rate) end
            redis.call('HSET', KEYS[1], 'tokens', tostring(tokens), 'ts', t)
            redis.call('EXPIRE', KEYS[1], ARGV[3])
            return wait
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

extension String {
    fileprivate func leftPadded(to length: Int) -> String {
        count >= length ? self : String(repeating: "0", count: length - count) + self
    }
}
