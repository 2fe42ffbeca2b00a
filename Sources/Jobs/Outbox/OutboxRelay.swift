import Foundation
import Logging
import NIOCore
import PostgresNIO
import Queue
import ServiceLifecycle
import Store
import WorkerPool

/// Moves jobs from the Postgres outbox into Redis: woken by the outbox's `NOTIFY` and by a
/// periodic sweep, it claims the oldest rows with `FOR UPDATE SKIP LOCKED`, enqueues them in one
/// pipelined round trip with the policy each row carries (attempts, timeout, visibility
/// timeout), and deletes them in the same transaction, only after Redis answered.
///
/// Each job is enqueued with its outbox id and a short-lived "already enqueued" marker checked in
/// the same script that adds it: when the relay dies (or Postgres fails) between Redis and the
/// commit, the rows stay and the next turn finds them enqueued already, so the job runs once.
/// While Redis is down, requests keep committing and the outbox grows; the relay retries with
/// the singleton loops' backoff and drains it in order when Redis is back. Across processes one
/// relay is active at a time, under a Redis lease (a ``SingletonLoop``); two at once would still
/// move each row once (the row locks).
public struct OutboxRelay: Service {
    public struct Options: Sendable {
        /// Rows claimed and enqueued per round trip.
        public var batchSize: Int
        /// How often the relay looks without a notification (notifications can be missed while
        /// the listening connection reconnects).
        public var sweepInterval: Duration
        /// How long the "already enqueued" marker of a job lives in Redis.
        public var deduplicationWindow: Duration
        /// The lease every relay competes for.
        public var leaseTTL: Duration
        /// This process's name as the lease holder.
        public var holder: String

        public init(
            batchSize: Int = 500, sweepInterval: Duration = .seconds(1), deduplicationWindow: Duration = .seconds(3600),
            leaseTTL: Duration = .seconds(15), holder: String = "relay-\(UUID().uuidString.lowercased())"
        ) {
            self.batchSize = max(1, batchSize)
            self.sweepInterval = sweepInterval
            self.deduplicationWindow = deduplicationWindow
            self.leaseTTL = leaseTTL
            self.holder = holder
        }
    }

    public let client: PostgresClient
    public let jobQueue: JobQueue
    public let options: Options
    let logger: Logger
    /// Runs between Redis's answer and the delete; tests use it to fail there.
    let afterEnqueue: @Sendable () async throws -> Void

    public init(client: PostgresClient, jobQueue: JobQueue, options: Options = Options(), logger: Logger) {
        self.init(client: client, jobQueue: jobQueue, options: options, logger: logger, afterEnqueue: {})
    }

    init(
        client: PostgresClient, jobQueue: JobQueue, options: Options, logger: Logger,
        afterEnqueue: @escaping @Sendable () async throws -> Void
    ) {
        self.client = client
        self.jobQueue = jobQueue
        self.options = options
        var logger = logger
        logger[metadataKey: "loop"] = "outbox-relay"
        self.logger = logger
        self.afterEnqueue = afterEnqueue
    }

    /// Relays while this process holds the lease, on every notification and every sweep, until
    /// graceful shutdown.
    public func run() async throws {
        let wakeup = SingletonLoop.Wakeup()
        let loop = SingletonLoop(
            name: "outbox-relay", jobQueue: jobQueue, holder: options.holder, leaseTTL: options.leaseTTL, logger: logger)
        await cancelWhenGracefulShutdown {
            await withDiscardingTaskGroup { group in
                group.addTask {
                    await NotificationListener(client: client, channel: Outbox.channel, logger: logger).run { _, _ in wakeup.wake() }
                }
                await loop.run(wakeup: wakeup) { try await drain() }
                group.cancelAll()
            }
        }
    }

    /// One turn: moves batches until the outbox is empty, or until a third of the lease's life
    /// is gone (then the loop renews the lease and comes straight back).
    func drain() async throws -> Duration {
        let started = ContinuousClock.now
        while try await relayBatch() == options.batchSize {
            if ContinuousClock.now - started > options.leaseTTL / 3 { return .zero }
        }
        return options.sweepInterval
    }

    /// Moves up to one batch; returns how many rows it took (moved or set aside).
    @discardableResult
    public func relayBatch() async throws -> Int {
        try await client.inTransaction(logger: logger) { connection in
            let jobs = try await Outbox.claim(limit: options.batchSize, on: connection, logger: logger)
            guard !jobs.isEmpty else { return 0 }
            var valid: [OutboxJob] = []
            for job in jobs {
                do {
                    try Self.validate(job)
                    valid.append(job)
                } catch {
                    logger.error("outbox job cannot be enqueued; set aside", metadata: ["job_id": "\(job.jobID)", "error": "\(error)"])
                    try await Outbox.setAside(job.id, reason: "\(error)", on: connection, logger: logger)
                }
            }
            if !valid.isEmpty {
                _ = try await jobQueue.enqueue(batch: valid.map(request))
                try await afterEnqueue()
                try await Outbox.delete(valid.map(\.id), on: connection, logger: logger)
                logger.debug("outbox jobs enqueued", metadata: ["jobs": "\(valid.count)"])
            }
            return jobs.count
        }
    }

    /// Checks what the queue would refuse, so that one bad row is set aside for an operator
    /// rather than fail every batch it is in.
    static func validate(_ job: OutboxJob) throws {
        try QueueName.validate(job.queue)
        guard !job.type.isEmpty else { throw QueueError(code: .invalidJob, message: "outbox job \(job.jobID) has no type") }
    }

    private func request(_ job: OutboxJob) -> EnqueueRequest {
        EnqueueRequest(
            type: job.type, queue: job.queue, payload: ByteBuffer(string: job.payload),
            options: EnqueueOptions(
                id: job.jobID, runAt: job.runAt.map { Int64(($0.timeIntervalSince1970 * 1000).rounded()) }, maxAttempts: job.maxAttempts,
                timeout: job.timeout, visibilityTimeout: job.visibilityTimeout, uniqueKey: job.uniqueKey,
                deduplicateFor: options.deduplicationWindow))
    }
}
