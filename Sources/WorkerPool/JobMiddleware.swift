import Logging
import Metrics
import NIOConcurrencyHelpers
import Queue

/// How a run ended, as the worker decided after the handler returned or threw.
public enum JobOutcome: Sendable {
    case succeeded
    /// Failed; scheduled again after `delay`.
    case retried(error: String, delay: Duration)
    /// Failed for good (permanent failure, attempts exhausted, undecodable payload).
    case deadLettered(error: String)
    /// Interrupted by shutdown; handed back to the queue without counting an attempt.
    case handedBack
    /// The handler asked to run later (``JobFailure/snooze(after:_:)``): scheduled again after
    /// `delay` without counting an attempt.
    case snoozed(reason: String, delay: Duration)
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

/// Logs each run's start (debug) and outcome (debug for a success or a snooze, warning for a
/// retry, error for a dead letter).
public struct LoggingMiddleware: JobMiddleware {
    public init() {}

    public func run(_ context: JobContext, next: @Sendable (JobContext) async throws -> Void) async throws {
        if context.logLevel <= .debug { context.logger.debug("job started") }
        try await next(context)
    }

    public func finished(_ context: JobContext, outcome: JobOutcome, duration: Duration) {
        if case .succeeded = outcome, context.logLevel > .debug { return }
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
        case .snoozed(let reason, let delay):
            // Expected and frequent under a limit (every surplus job, every few seconds): no failure.
            logger.debug("job snoozed", metadata: ["reason": "\(reason)", "retry_in_ms": "\(delay.milliseconds)"])
        }
    }
}

/// Records swift-metrics figures for each run, with `queue` and `type` dimensions:
/// `harrow_jobs_processed_total`, `harrow_jobs_failed_total`, `harrow_jobs_retried_total`,
/// `harrow_jobs_dead_total`, `harrow_jobs_snoozed_total`, `harrow_job_duration_seconds` and
/// `harrow_job_queue_time_seconds`.
///
/// The metric objects of each queue and type are made once and kept: making them asks the
/// metrics factory under its lock every time.
public struct MetricsMiddleware: JobMiddleware {
    private let cache = MetricsCache()

    public init() {}

    public func run(_ context: JobContext, next: @Sendable (JobContext) async throws -> Void) async throws {
        let waited = Double(max(0, context.jobQueue.options.clock.milliseconds() - context.enqueuedAt)) / 1000
        cache.metrics(queue: context.queue, type: context.type).queueTime.recordSeconds(waited)
        try await next(context)
    }

    public func finished(_ context: JobContext, outcome: JobOutcome, duration: Duration) {
        let metrics = cache.metrics(queue: context.queue, type: context.type)
        metrics.duration.recordNanoseconds(duration.nanoseconds)
        switch outcome {
        case .succeeded:
            metrics.processed.increment()
        case .retried:
            metrics.failed.increment()
            metrics.retried.increment()
        case .deadLettered:
            metrics.failed.increment()
            metrics.dead.increment()
        case .snoozed:
            metrics.snoozed.increment()
        case .handedBack:
            break
        }
    }
}

/// The metric objects of one queue and job type.
final class JobMetrics: Sendable {
    let queueTime: Metrics.Timer
    let duration: Metrics.Timer
    let processed: Counter
    let failed: Counter
    let retried: Counter
    let dead: Counter
    let snoozed: Counter

    init(queue: String, type: String) {
        let dimensions = [("queue", queue), ("type", type)]
        queueTime = Metrics.Timer(label: "harrow_job_queue_time_seconds", dimensions: dimensions, preferredDisplayUnit: .seconds)
        duration = Metrics.Timer(label: "harrow_job_duration_seconds", dimensions: dimensions, preferredDisplayUnit: .seconds)
        processed = Counter(label: "harrow_jobs_processed_total", dimensions: dimensions)
        failed = Counter(label: "harrow_jobs_failed_total", dimensions: dimensions)
        retried = Counter(label: "harrow_jobs_retried_total", dimensions: dimensions)
        dead = Counter(label: "harrow_jobs_dead_total", dimensions: dimensions)
        snoozed = Counter(label: "harrow_jobs_snoozed_total", dimensions: dimensions)
    }
}

/// ``JobMetrics`` by queue and type, made on first use.
final class MetricsCache: Sendable {
    private struct Key: Hashable {
        var queue: String
        var type: String
    }

    private let entries = NIOLockedValueBox([Key: JobMetrics]())

    func metrics(queue: String, type: String) -> JobMetrics {
        let key = Key(queue: queue, type: type)
        if let metrics = entries.withLockedValue({ $0[key] }) { return metrics }
        let metrics = JobMetrics(queue: queue, type: type)
        return entries.withLockedValue { entries in
            if let existing = entries[key] { return existing }
            entries[key] = metrics
            return metrics
        }
    }
}

extension Duration {
    var milliseconds: Int64 {
        JobQueue.milliseconds(self)
    }

    var nanoseconds: Int64 {
        components.seconds * 1_000_000_000 + components.attoseconds / 1_000_000_000
    }
}
