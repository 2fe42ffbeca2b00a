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
    /// The worker's logger; ``logger`` adds this job's metadata to it when asked for.
    let workerLogger: Logger
    /// The queue, for handlers that enqueue follow-up jobs.
    public let jobQueue: JobQueue

    /// A logger with `job_id`, `job_type`, `queue` and `attempt` metadata.
    ///
    /// Built on each access rather than per job: setting metadata makes swift-log's stream
    /// handler re-render it, which cost more than the whole job for a no-op.
    public var logger: Logger {
        var logger = workerLogger
        var metadata = logger.handler.metadata
        metadata["job_id"] = .string(id)
        metadata["job_type"] = .string(type)
        metadata["queue"] = .string(queue)
        metadata["attempt"] = .stringConvertible(attempt)
        logger.handler.metadata = metadata
        return logger
    }

    /// The level of ``logger``, to check before building it.
    public var logLevel: Logger.Level { workerLogger.logLevel }

    /// Whether this is the last run before the job is dead-lettered on failure.
    public var isLastAttempt: Bool { attempt >= maxAttempts }
}
