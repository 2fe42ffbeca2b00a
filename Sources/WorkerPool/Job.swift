/// A kind of job: its payload type and how it should be run.
///
/// The payload is the conforming type itself, encoded as JSON. Every requirement but
/// ``name`` has a default.
///
/// ```swift
/// struct SendReport: Job {
///     static let name = "send-report"
///     static let queue = "reports"
///     var reportID: Int
/// }
/// ```
public protocol Job: Codable, Sendable {
    /// The type name on the wire (`type` in the envelope). Stable across deploys.
    static var name: String { get }
    /// The queue jobs of this type go to unless enqueued elsewhere. Default: `default`.
    static var queue: String { get }
    /// How many runs and how long between them. Default: ``RetryPolicy/default``.
    static var retryPolicy: RetryPolicy { get }
    /// How long one run may take before its task is cancelled. Default: 5 minutes.
    static var timeout: Duration { get }
    /// How long a running job may go without a heartbeat before another worker gets it; the
    /// worker sends heartbeats on its own while the handler runs. Default: the queue's
    /// (60 seconds).
    static var visibilityTimeout: Duration? { get }
}

extension Job {
    public static var queue: String { "default" }
    public static var retryPolicy: RetryPolicy { .default }
    public static var timeout: Duration { .seconds(300) }
    public static var visibilityTimeout: Duration? { nil }
}
