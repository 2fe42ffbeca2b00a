/// How often a failing job is tried and how long to wait between tries.
public struct RetryPolicy: Sendable {
    /// Total runs allowed, the first included; after the last failure the job is dead-lettered.
    public var maxAttempts: Int
    /// The delay before run `attempt + 1` after run `attempt` failed.
    public var backoff: Backoff

    public init(maxAttempts: Int = 25, backoff: Backoff = .polynomial) {
        self.maxAttempts = max(1, maxAttempts)
        self.backoff = backoff
    }

    /// 25 attempts with ``Backoff/polynomial`` backoff (about three weeks in all, as Sidekiq).
    public static let `default` = RetryPolicy()
    /// One run; a failure goes straight to the dead list.
    public static let never = RetryPolicy(maxAttempts: 1)

    /// A rule for the delay before the next attempt.
    public struct Backoff: Sendable {
        let delay: @Sendable (_ attempt: Int) -> Duration

        /// A custom rule; `attempt` is the run that just failed, from 1.
        public init(_ delay: @escaping @Sendable (_ attempt: Int) -> Duration) {
            self.delay = delay
        }

        public func delay(afterAttempt attempt: Int) -> Duration {
            delay(attempt)
        }

        /// attempt⁴ + 15 s + up to 10 × (attempt + 1) s of jitter, as Sidekiq does.
        public static let polynomial = Backoff { attempt in
            let base = attempt * attempt * attempt * attempt + 15
            let jitter = Int.random(in: 0..<10) * (attempt + 1)
            return .seconds(base + jitter)
        }

        /// `base` × 2^(attempt − 1), at most `maximum`, with up to 10 % jitter.
        public static func exponential(base: Duration, maximum: Duration = .seconds(3600)) -> Backoff {
            Backoff { attempt in
                let factor = Double(1 << min(max(attempt - 1, 0), 30))
                let delay = min(base * factor, maximum)
                return delay + delay * Double.random(in: 0..<0.1)
            }
        }

        /// 100 ms doubling to 5 s, without jitter: how the runtime itself retries Redis (a fetch,
        /// a heartbeat, an acknowledgement, a singleton loop) after a failure.
        public static let reconnect = Backoff { attempt in
            .milliseconds(min(5000, 100 << min(max(attempt - 1, 0), 6)))
        }

        /// The same delay every time.
        public static func constant(_ delay: Duration) -> Backoff {
            Backoff { _ in delay }
        }
    }
}
