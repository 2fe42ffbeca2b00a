/// Errors a handler throws to say how its job should continue. Any other error is retried
/// with the job type's backoff.
public struct JobFailure: Error, Sendable, CustomStringConvertible {
    enum Kind: Sendable {
        case permanent
        case retryAfter(Duration)
        case snooze(Duration)
    }

    let kind: Kind
    public let message: String

    /// The job cannot succeed (bad input, a 404 that will stay a 404): dead-letter it now.
    public static func permanent(_ message: String) -> JobFailure {
        JobFailure(kind: .permanent, message: message)
    }

    /// Try again after `delay` rather than the usual backoff (a rate limit's `Retry-After`). The
    /// attempt still counts.
    public static func retry(after delay: Duration, _ message: String = "retry requested") -> JobFailure {
        JobFailure(kind: .retryAfter(delay), message: message)
    }

    /// Not now, and not a failure: run the job again after `delay` without using an attempt (it
    /// is neither counted toward the type's `maxAttempts` nor ever dead-lettered for it). For a
    /// handler that is at a limit of its own (so many of a kind at once) and would rather give its
    /// worker slot back than wait in it. A handler that snoozes forever keeps its job forever.
    public static func snooze(after delay: Duration, _ message: String = "snoozed") -> JobFailure {
        JobFailure(kind: .snooze(delay), message: message)
    }

    public var description: String { message }
}

/// The handler did not finish within its job type's timeout.
public struct JobTimeoutError: Error, Sendable, CustomStringConvertible {
    public let timeout: Duration
    public var description: String { "timed out after \(timeout)" }
}
