import Logging
import Queue

/// What a handler knows about the run it is in.
public struct JobContext: Sendable {
    public let id: String
    public let type: String
    public let queue: String
    /// This run's number, from 1.
    public let attempt: Int
    public let maxAttempts: Int
    /// When the job was first enqueued (ms since the epoch).
    public let enqueuedAt: Int64
    public let traceparent: String?
    /// The worker running the job.
    public let workerID: String
    /// A logger with `job_id`, `job_type`, `queue` and `attempt` metadata.
    public var logger: Logger
    /// The queue, for handlers that enqueue follow-up jobs.
    public let jobQueue: JobQueue

    /// Whether this is the last run before the job is dead-lettered on failure.
    public var isLastAttempt: Bool { attempt >= maxAttempts }
}
