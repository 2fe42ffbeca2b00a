import FoundationEssentials

/// What a job type's handler expects of the queue when the job itself does not say: how many
/// runs it gets, how long it may run and go without a heartbeat.
///
/// Workers publish the policies of the types they run into each queue they read
/// (`<prefix>:{queue}:policies`, a hash of type → JSON), so the reclaimer treats a job that came
/// without these fields (a plain `XADD`, an older enqueuer) as its type demands rather than with
/// the queue's defaults.
public struct JobPolicy: Sendable, Hashable {
    /// Runs allowed before the job is dead-lettered.
    public var maxAttempts: Int?
    /// How long one run may take (informational for the reclaimer).
    public var timeout: Duration?
    /// How long a running job may go without a heartbeat before it is redelivered.
    public var visibilityTimeout: Duration?

    /// A policy; `nil` leaves a value to the queue's defaults.
    public init(maxAttempts: Int? = nil, timeout: Duration? = nil, visibilityTimeout: Duration? = nil) {
        self.maxAttempts = maxAttempts
        self.timeout = timeout
        self.visibilityTimeout = visibilityTimeout
    }

    /// The JSON the reclaim script reads: `{"max_attempts": n, "timeout": ms, "visibility_timeout": ms}`.
    var json: String {
        var parts: [String] = []
        if let maxAttempts { parts.append(#""max_attempts":\#(maxAttempts)"#) }
        if let timeout { parts.append(#""timeout":\#(JobQueue.milliseconds(timeout))"#) }
        if let visibilityTimeout { parts.append(#""visibility_timeout":\#(JobQueue.milliseconds(visibilityTimeout))"#) }
        return "{" + parts.joined(separator: ",") + "}"
    }
}
