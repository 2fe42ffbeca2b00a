import Foundation
import Queue
import Store

/// Limits failed logins, in Redis so every API process shares the counts. Each attempt reserves
/// a count before the password is checked (concurrent guesses cannot all pass the check), and a
/// success gives it back. Counters, each over `window`:
///
/// - per account and client address (`maximumFailuresPerAccountAndAddress`): an address that
///   failed too often waits, even with the right password; other addresses do not, so a stranger
///   cannot lock the owner out;
/// - per account (`maximumFailuresPerAccount`, higher): a ceiling for guesses spread over many
///   addresses;
/// - per address (`maximumFailuresPerAddress`): one address guessing many accounts.
///
/// Accounts are keyed by a hash of the address as ``EmailAddress/canonical(_:)`` spells it, the
/// spelling the lookup matches, so `" Victim@X"` counts against `victim@x`; Redis holds no
/// addresses of people. Keys: `<prefix>:ratelimit:{login}:account:<hash>[:address:<ip>]` and
/// `<prefix>:ratelimit:{login}:address:<ip>`.
public struct LoginRateLimiter: Sendable {
    public struct Options: Sendable {
        public var maximumFailuresPerAccountAndAddress: Int
        public var maximumFailuresPerAccount: Int
        public var maximumFailuresPerAddress: Int
        public var window: Duration

        public init(
            maximumFailuresPerAccountAndAddress: Int = 5, maximumFailuresPerAccount: Int = 100, maximumFailuresPerAddress: Int = 30,
            window: Duration = .seconds(900)
        ) {
            self.maximumFailuresPerAccountAndAddress = maximumFailuresPerAccountAndAddress
            self.maximumFailuresPerAccount = maximumFailuresPerAccount
            self.maximumFailuresPerAddress = maximumFailuresPerAddress
            self.window = window
        }
    }

    let counters: RateLimitCounters
    let prefix: String
    let options: Options

    public init(redis: RedisClient, keyPrefix: String = "harrow", options: Options = Options()) {
        self.counters = RateLimitCounters(redis: redis, window: options.window)
        self.prefix = keyPrefix
        self.options = options
    }

    /// Reserves an attempt for `email` from `address`: the seconds to wait when a limit is
    /// reached (nothing is counted then), else `nil`.
    public func reserve(email: String, address: String?) async throws -> Int? {
        try await counters.reserve(counters(email: email, address: address))
    }

    /// A successful login: its reserved attempt is given back, and the failures of this account
    /// from this address are forgotten (those from elsewhere, and the address's on other
    /// accounts, are not: one known password does not excuse guessing others).
    public func succeeded(email: String, address: String?) async throws {
        let keys = counters(email: email, address: address).map(\.key)
        try await counters.refund(keys)
        try await counters.forget(keys.first.map { [$0] } ?? [])
    }

    private func counters(email: String, address: String?) -> [RateLimitCounters.Counter] {
        // One hash tag for all of them: a script may touch them together on a Redis Cluster.
        let account = "\(prefix):ratelimit:{login}:account:\(RateLimitCounters.digest(EmailAddress.canonical(email)))"
        let address = AddressBucket.of(address)
        return [
            .init(key: "\(account):address:\(address)", limit: options.maximumFailuresPerAccountAndAddress),
            .init(key: account, limit: options.maximumFailuresPerAccount),
            .init(key: "\(prefix):ratelimit:{login}:address:\(address)", limit: options.maximumFailuresPerAddress),
        ]
    }
}
