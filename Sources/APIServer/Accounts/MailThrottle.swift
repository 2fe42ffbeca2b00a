import Foundation
import Queue
import Store

/// Limits the mails that requests make Harrow send (sign-up, verification, password reset,
/// invitations), so the API cannot be made a relay: per recipient and per caller (a client
/// address, or a user for invitations), each per hour, counted in Redis for every API process.
/// A request over a limit is refused with 429 whether or not the address has an account, so the
/// refusal tells nothing. Keys: `<prefix>:ratelimit:{mail}:to:<hash>` and
/// `<prefix>:ratelimit:{mail}:from:<caller>`.
public struct MailThrottle: Sendable {
    /// How many mails an hour each may ask for.
    public struct Options: Sendable {
        /// Mails to one address (`--mails-per-recipient-hour`).
        public var perRecipientPerHour: Int
        /// Mails asked for by one client address or user (`--mails-per-caller-hour`).
        public var perCallerPerHour: Int

        /// The limits; the defaults are the flags'.
        public init(perRecipientPerHour: Int = 5, perCallerPerHour: Int = 20) {
            self.perRecipientPerHour = perRecipientPerHour
            self.perCallerPerHour = perCallerPerHour
        }
    }

    let counters: RateLimitCounters
    let prefix: String
    let options: Options

    /// A throttle counting in `redis` under `keyPrefix`.
    public init(redis: RedisClient, keyPrefix: String = "harrow", options: Options = Options()) {
        self.counters = RateLimitCounters(redis: redis, window: .seconds(3600))
        self.prefix = keyPrefix
        self.options = options
    }

    /// Counts a mail to `recipient` asked for by `caller`, or throws 429 when either has had
    /// its hour's share.
    func reserve(to recipient: String, caller: String) async throws {
        let recipientHash = RateLimitCounters.digest(EmailAddress.canonical(recipient))
        if let wait = try await counters.reserve([
            .init(key: "\(prefix):ratelimit:{mail}:to:\(recipientHash)", limit: options.perRecipientPerHour),
            .init(key: "\(prefix):ratelimit:{mail}:from:\(caller)", limit: options.perCallerPerHour),
        ]) {
            throw Problem.tooManyRequests(retryAfter: wait)
        }
    }
}
