import Logging
import PostgresNIO
import Prometheus
import Queue
import Store

/// The queue depths `/metrics` shows, `harrow_queue_jobs{queue,state}` and `harrow_outbox_jobs`,
/// read from Redis and Postgres at most once per `maxAge`. A scrape within it reuses the last
/// reading, and scrapes that arrive during a reading wait for that one rather than start their
/// own: however many scrapes come, Redis and Postgres see one reading per `maxAge`.
actor QueueDepths {
    private let jobQueue: JobQueue
    private let database: PostgresClient
    private let registry: PrometheusCollectorRegistry
    private let maxAge: Duration
    private var readAt: ContinuousClock.Instant?
    private var reading: Task<Void, Never>?

    init(jobQueue: JobQueue, database: PostgresClient, registry: PrometheusCollectorRegistry, maxAge: Duration) {
        self.jobQueue = jobQueue
        self.database = database
        self.registry = registry
        self.maxAge = maxAge
    }

    /// `harrow_queue_jobs{queue,state}`
    static var queueJobs: MetricNameDescriptor {
        MetricNameDescriptor(namespace: "harrow", metricName: "queue", unitName: "jobs", helpText: "Jobs in a queue, by state")
    }

    /// `harrow_outbox_jobs`
    static var outboxJobs: MetricNameDescriptor {
        MetricNameDescriptor(namespace: "harrow", metricName: "outbox", unitName: "jobs", helpText: "Jobs waiting in the Postgres outbox")
    }

    /// Brings the gauges up to date unless they are younger than `maxAge`. A failed reading
    /// counts as one too (the gauges keep their last values): a Redis that does not answer is
    /// not asked again at every scrape.
    func refresh(logger: Logger) async {
        if let reading {
            await reading.value
            return
        }
        if let readAt, readAt.duration(to: .now) < maxAge { return }
        let task = Task { await Self.read(jobQueue: jobQueue, database: database, into: registry, logger: logger) }
        reading = task
        await task.value
        reading = nil
        readAt = .now
    }

    private static func read(
        jobQueue: JobQueue, database: PostgresClient, into registry: PrometheusCollectorRegistry, logger: Logger
    ) async {
        do {
            for stats in try await jobQueue.stats(queues: try await jobQueue.knownQueues()) {
                for (state, value) in [
                    ("ready", stats.ready), ("pending", stats.pending), ("delayed", stats.delayed), ("dead", stats.dead),
                ] {
                    registry.makeGauge(descriptor: queueJobs, labels: [("queue", stats.queue), ("state", state)]).set(Double(value))
                }
            }
            let outbox = try await Outbox.stats(client: database, logger: logger)
            registry.makeGauge(descriptor: outboxJobs).set(Double(outbox.depth))
        } catch {
            logger.warning("could not read queue depths for /metrics", metadata: ["error": "\(error)"])
        }
    }
}
