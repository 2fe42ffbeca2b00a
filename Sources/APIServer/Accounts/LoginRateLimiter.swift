import Crypto
import Foundation
import Queue
import Store

/// Limits failed logins per account and per client address, in Redis so every API process
/// shares the counts: after `maximumFailures` failures within `window`, logins for that account
/// (or from that address) are refused with 429 until the window ends. A success clears the
/// account's count. Accounts are keyed by a hash of the lowercased email, so Redis holds no
/// addresses of people.
public struct LoginRateLimiter: Sendable {
    public struct Options: Sendable {
        public var maximumFailuresPerAccount: Int
        public var maximumFailuresPerAddress: Int
        public var window: Duration

        public init(maximumFailuresPerAccount: Int = 5, maximumFailuresPerAddress: Int = 30, window: Duration = .seconds(900)) {
            self.maximumFailuresPerAccount = maximumFailuresPerAccount
            self.maximumFailuresPerAddress = maximumFailuresPerAddress
            self.window = window
        }
    }

    let redis: RedisClient
    let prefix: String
    let options: Options

    public init(redis: RedisClient, keyPrefix: String = "harrow", options: Options = Options()) {
        self.redis = redis
        self.prefix = keyPrefix
        self.options = options
    }

    /// Counts a failure and returns the counts. KEYS: counter. ARGV: window ms. Returns the count.
    static let countFailure = RedisScript(
        name: "login-failure",
        source: """
            local n = redis.call('INCR', KEYS[1])
            if n == 1 then redis.call('PEXPIRE', KEYS[1], ARGV[1]) end
            return n
            """)

    /// Seconds until logins for `email` from `address` are allowed again; `nil` when they are.
    /// One round trip for both counters.
    public func retryAfter(email: String, address: String?) async throws -> Int? {
        let keys = keys(email: email, address: address)
        let replies = try await redis.pipeline(
            keys.flatMap { key, _ in
                [RedisPipelineItem.command(RedisCommand("GET", [.string(key)])), .command(RedisCommand("PTTL", [.string(key)]))]
            })
        var waits: [Int] = []
        for (index, (_, limit)) in keys.enumerated() where replies.count > 2 * index + 1 {
            guard let count = replies[2 * index].string.flatMap(Int.init), count >= limit, let ttl = replies[2 * index + 1].int, ttl > 0
            else { continue }
            waits.append((ttl + 999) / 1000)
        }
        return waits.max()
    }

    /// Records a failed login against the account and the address, in one round trip.
    public func recordFailure(email: String, address: String?) async throws {
        let window = Int(options.window.components.seconds * 1000)
        let replies = try await redis.pipeline(
            keys(email: email, address: address).map { key, _ in
                .script(RedisScript.Call(Self.countFailure, keys: [key], arguments: [.int(window)]))
            })
        for case .error(let message) in replies {
            throw Problem.unavailable("failed logins cannot be counted: \(message)")
        }
    }

    /// Records a successful login: the account's failures are forgotten (the address's are not,
    /// so one known password does not reset an address that guesses others).
    public func recordSuccess(email: String) async throws {
        _ = try await redis.send("DEL", [.string(accountKey(email))])
    }

    private func keys(email: String, address: String?) -> [(String, Int)] {
        var keys = [(accountKey(email), options.maximumFailuresPerAccount)]
        if let address, !address.isEmpty {
            keys.append(("\(prefix):ratelimit:login:address:\(address)", options.maximumFailuresPerAddress))
        }
        return keys
    }

    private func accountKey(_ email: String) -> String {
        "\(prefix):ratelimit:login:account:\(Hex.encode(SHA256.hash(data: Array(email.lowercased().utf8)).prefix(16)))"
    }
}
