import Queue

/// Does nothing (payload `{}`): for smoke tests and benchmarks of the queue itself.
///
/// With `record` set to a key, the handler adds the job id to that Redis set, so a test or a
/// benchmark can check that every job ran (`SCARD`).
public struct NoopJob: Job {
    public static let name = "noop"
    /// Diagnostic jobs retry within seconds, not Sidekiq's minutes: they exist to watch the
    /// queue work.
    public static let retryPolicy = RetryPolicy(backoff: .exponential(base: .seconds(1), maximum: .seconds(30)))
    public var record: String?

    public init(record: String? = nil) {
        self.record = record
    }
}

/// Sleeps `ms` milliseconds (payload `{"ms": 20}`), honouring cancellation: a stand-in for work
/// that takes time. `record` works as for ``NoopJob``.
public struct SleepJob: Job {
    public static let name = "sleep"
    public static let retryPolicy = NoopJob.retryPolicy
    public var ms: Int
    public var record: String?

    public init(ms: Int = 20, record: String? = nil) {
        self.ms = ms
        self.record = record
    }
}

extension JobRegistry {
    /// Registers ``NoopJob`` and ``SleepJob``.
    public mutating func registerDiagnosticJobs() throws(WorkerError) {
        try register(NoopJob.self) { job, context in
            try await Self.record(job.record, context)
        }
        try register(SleepJob.self) { job, context in
            try await Task.sleep(for: .milliseconds(max(0, job.ms)))
            try await Self.record(job.record, context)
        }
    }

    private static func record(_ key: String?, _ context: JobContext) async throws {
        guard let key else { return }
        try await context.jobQueue.redis.send("SADD", [.string(key), .string(context.id)])
    }
}
