import Logging
import Metrics

/// How a run ended, as the worker decided after the handler returned or threw.
public enum JobOutcome: Sendable {
    case succeeded
    /// Failed; scheduled again after `delay`.
    case retried(error: String, delay: Duration)
    /// Failed for good (permanent failure, attempts exhausted, undecodable payload).
    case deadLettered(error: String)
    /// Interrupted by shutdown; handed back to the queue without counting an attempt.
    case handedBack
}

/// Code wrapped around every handler: logging, metrics, tracing, …
///
/// Middleware runs outermost first, in the order given to the worker.
public protocol JobMiddleware: Sendable {
    /// Runs around the handler; call `next` to continue.
    func run(_ context: JobContext, next: @Sendable (JobContext) async throws -> Void) async throws
    /// Called once the worker has decided what the run's outcome means.
    func finished(_ context: JobContext, outcome: JobOutcome, duration: Duration)
}

extension JobMiddleware {
    public func run(_ context: JobContext, next: @Sendable (JobContext) async throws -> Void) async throws {
        try await next(context)
    }

    public func finished(_ context: JobContext, outcome: JobOutcome, duration: Duration) {}
}

/// Logs each run's start (debug) and outcome (info for success, warning for failures).
public struct LoggingMiddleware: JobMiddleware {
    public init() {}

    public func run(_ context: JobContext, next: @Sendable (JobContext) async throws -> Void) async throws {
        context.logger.debug("job started")
        try await next(context)
    }

    public func finished(_ context: JobContext, outcome: JobOutcome, duration: Duration) {
        var logger = context.logger
        logger[metadataKey: "duration_ms"] = "\(duration.milliseconds)"
        switch outcome {
        case .succeeded:
            logger.debug("job succeeded")
        case .retried(let error, let delay):
            logger.warning("job failed, will retry", metadata: ["error": "\(error)", "retry_in_ms": "\(delay.milliseconds)"])
        case .deadLettered(let error):
            logger.error("job failed for good, dead-lettered", metadata: ["error": "\(error)"])
        case .handedBack:
            logger.info("job handed back at shutdown")
        }
    }
}

/// Records swift-metrics figures for each run, with `queue` and `type` dimensions:
/// `harrow_jobs_processed_total`, `harrow_jobs_failed_total`, `harrow_jobs_retried_total`,
/// `harrow_jobs_dead_total`, `harrow_job_duration_seconds` and `harrow_job_queue_time_seconds`.
public struct MetricsMiddleware: JobMiddleware {
    public init() {}

    public func run(_ context: JobContext, next: @Sendable (JobContext) async throws -> Void) async throws {
        let waited = Double(max(0, Self.nowMilliseconds() - context.enqueuedAt)) / 1000
        Metrics.Timer(label: "harrow_job_queue_time_seconds", dimensions: dimensions(context), preferredDisplayUnit: .seconds)
            .recordSeconds(waited)
        try await next(context)
    }

    public func finished(_ context: JobContext, outcome: JobOutcome, duration: Duration) {
        let dimensions = dimensions(context)
        Metrics.Timer(label: "harrow_job_duration_seconds", dimensions: dimensions, preferredDisplayUnit: .seconds)
            .recordNanoseconds(duration.nanoseconds)
        switch outcome {
        case .succeeded:
            Counter(label: "harrow_jobs_processed_total", dimensions: dimensions).increment()
        case .retried:
            Counter(label: "harrow_jobs_failed_total", dimensions: dimensions).increment()
            Counter(label: "harrow_jobs_retried_total", dimensions: dimensions).increment()
        case .deadLettered:
            Counter(label: "harrow_jobs_failed_total", dimensions: dimensions).increment()
            Counter(label: "harrow_jobs_dead_total", dimensions: dimensions).increment()
        case .handedBack:
            break
        }
    }

    private func dimensions(_ context: JobContext) -> [(String, String)] {
        [("queue", context.queue), ("type", context.type)]
    }

    static func nowMilliseconds() -> Int64 {
        JobClock.nowMilliseconds()
    }
}

extension Duration {
    var milliseconds: Int64 {
        components.seconds * 1000 + components.attoseconds / 1_000_000_000_000_000
    }

    var nanoseconds: Int64 {
        components.seconds * 1_000_000_000 + components.attoseconds / 1_000_000_000
    }
}
