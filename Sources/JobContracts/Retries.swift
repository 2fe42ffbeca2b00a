/// How often a failing job is tried and how long to wait between tries, in plain values (the
/// worker turns them into its retry policy).
public struct Retries: Sendable, Hashable {
    /// The rule for the delay before the next attempt.
    public enum Backoff: Sendable, Hashable {
        /// attempt⁴ + 15 s + jitter, as Sidekiq: about three weeks over 25 attempts.
        case polynomial
        /// `base` × 2^(attempt − 1), at most `maximum`, with up to 10 % jitter.
        case exponential(base: Duration, maximum: Duration)
        /// The same delay every time.
        case constant(Duration)
    }

    /// Total runs allowed, the first included; after the last failure the job is dead-lettered.
    public var maxAttempts: Int
    /// The delay before each next attempt.
    public var backoff: Backoff

    public init(maxAttempts: Int, backoff: Backoff) {
        self.maxAttempts = maxAttempts
        self.backoff = backoff
    }
}
