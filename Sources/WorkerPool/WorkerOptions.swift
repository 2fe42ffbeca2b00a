import FoundationEssentials

extension Worker {
    /// How a worker runs.
    public struct Options: Sendable {
        /// The queues to read, in order or with weights.
        public var queues: QueueSelection
        /// Most jobs running at once in this process.
        public var concurrency: Int
        /// Jobs fetched ahead of free slots, to wait in this process for one: a fixed number
        /// (0: none), or `nil` for automatic (the default). Fetching ahead overlaps the round
        /// trip to Redis with running jobs, which matters for many short jobs; it delays a
        /// prefetched job behind the running ones, which matters for long ones. Automatic
        /// prefetch keeps as many as the slots start within ``prefetchHorizon`` at the pace jobs
        /// have been finishing (up to ten times the concurrency, 100 to 1,000), and hands them
        /// back when every slot stays busy for ``prefetchStall``. Prefetched jobs are
        /// heartbeated like running ones and handed back at shutdown.
        public var prefetch: Int?
        /// How soon automatic prefetch expects a prefetched job to start.
        public var prefetchHorizon: Duration
        /// How long prefetched jobs may wait while every slot stays busy before automatic
        /// prefetch hands them back (to run on another worker) and stops until a job finishes.
        public var prefetchStall: Duration
        /// How long in-flight jobs may run on after SIGTERM before they are cancelled.
        public var shutdownTimeout: Duration
        /// How long cancelled jobs get to end (and hand themselves back) after that. With the
        /// defaults, 20 s + 5 s fit in the 30 s most supervisors give before SIGKILL.
        public var cancellationGrace: Duration
        /// How often the worker reports itself alive and refreshes its running jobs.
        public var heartbeatInterval: Duration
        /// A worker whose heartbeat is older than this is dead: its jobs are reclaimed at once.
        public var deadWorkerAfter: Duration
        /// How long one blocking read waits before the worker looks at pauses and shutdown again.
        public var blockTimeout: Duration
        /// Whether this worker takes part in running the singleton loops (promoter, reclaimer).
        public var runsMaintenance: Bool
        /// How often the promoter looks for due delayed jobs (it wakes earlier when one is due).
        public var promoteInterval: Duration
        /// How often the reclaimer looks for dead workers and stalled jobs.
        public var reclaimInterval: Duration
        /// How often the sampler records every queue's throughput (``JobQueue/sampleThroughput(queues:)``).
        public var sampleInterval: Duration
        /// This worker's id, the consumer name in every group. Unique per process.
        public var workerID: String
        /// Where the worker's own tasks and its jobs' handlers run; `nil` (the default): one
        /// event loop of the Redis client's group (``EventLoopTaskExecutor``), so a reply resumes
        /// the task waiting for it on the thread that read it, without a hand-off. Handlers must
        /// not block that thread: a blocking call belongs on a thread pool (`NIOThreadPool`).
        /// One that does anyway holds up this worker's fetches and other jobs, though not its
        /// heartbeats, which have a thread of their own. `globalConcurrentExecutor` runs them on
        /// Swift's default executor instead. A given executor must outlive the worker: jobs
        /// handed to a shut-down event loop never run, and the worker would wait for them.
        public var jobExecutor: (any TaskExecutor)?

        public init(
            queues: QueueSelection, concurrency: Int = 10, prefetch: Int? = nil, prefetchHorizon: Duration = .milliseconds(10),
            prefetchStall: Duration = .seconds(1), shutdownTimeout: Duration = .seconds(20),
            cancellationGrace: Duration = .seconds(5), heartbeatInterval: Duration = Worker.defaultHeartbeatInterval,
            deadWorkerAfter: Duration = .seconds(30), blockTimeout: Duration = .seconds(2),
            runsMaintenance: Bool = true, promoteInterval: Duration = .seconds(1), reclaimInterval: Duration = .seconds(5),
            sampleInterval: Duration = .seconds(5), workerID: String = Worker.makeWorkerID(),
            jobExecutor: (any TaskExecutor)? = nil
        ) {
            self.queues = queues
            self.concurrency = max(1, concurrency)
            self.prefetch = prefetch.map { max(0, $0) }
            self.prefetchHorizon = prefetchHorizon
            self.prefetchStall = prefetchStall
            self.shutdownTimeout = shutdownTimeout
            self.cancellationGrace = cancellationGrace
            self.heartbeatInterval = heartbeatInterval
            self.deadWorkerAfter = deadWorkerAfter
            self.blockTimeout = blockTimeout
            self.runsMaintenance = runsMaintenance
            self.promoteInterval = promoteInterval
            self.reclaimInterval = reclaimInterval
            self.sampleInterval = sampleInterval
            self.workerID = workerID
            self.jobExecutor = jobExecutor
        }
    }

    /// How often a worker beats unless told otherwise.
    public static let defaultHeartbeatInterval: Duration = .seconds(5)

    /// `host:pid:random`, readable in `queue-inspect workers` and unique across restarts.
    public static func makeWorkerID() -> String {
        let host = ProcessInfo.processInfo.hostName.split(separator: ".").first.map(String.init) ?? "host"
        let random = String(UInt32.random(in: 0...UInt32.max), radix: 16)
        return "\(host):\(ProcessInfo.processInfo.processIdentifier):\(random)"
    }
}
