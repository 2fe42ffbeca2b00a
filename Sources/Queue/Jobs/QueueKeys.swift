/// The Redis keys of one queue. They share the hash tag `{queue}` so a queue lives in one
/// Redis Cluster slot and multi-key scripts over it are legal.
public struct QueueKeys: Sendable, Hashable {
    public let prefix: String
    public let queue: String

    public init(prefix: String, queue: String) {
        self.prefix = prefix
        self.queue = queue
    }

    private var base: String { "\(prefix):{\(queue)}" }

    /// Stream of ready (and in-flight) jobs, consumer group ``JobQueue/consumerGroup``.
    public var stream: String { "\(base):stream" }
    /// Sorted set of job ids scheduled for later, scored by run-at in milliseconds.
    public var delayed: String { "\(base):delayed" }
    /// List of dead-lettered jobs, newest first.
    public var dead: String { "\(base):dead" }
    /// Present while the queue is paused.
    public var paused: String { "\(base):paused" }
    /// Uniqueness lock for `key`, holding the id of the job that owns it.
    public func unique(_ key: String) -> String { "\(base):unique:\(key)" }
    /// Marker that a job with this id was enqueued recently, for enqueues that must not add the
    /// same job twice (the outbox relay's retries).
    public func enqueued(_ id: String) -> String { "\(base):enqueued:\(id)" }
    /// Hash of job type → the type's ``JobPolicy`` as JSON, published by the workers that read
    /// this queue, for jobs that carry no policy of their own.
    public var policies: String { "\(base):policies" }
    /// Sorted set of throughput samples (`<ms>:<added>:<finished>`, scored by their time), the
    /// last hour's, written by the workers' sampler (``JobQueue/sampleThroughput(queues:)``).
    public var throughput: String { "\(base):throughput" }
    /// Hash with the fields of a delayed job, while it waits in ``delayed``.
    public func job(_ id: String) -> String { "\(base):job:\(id)" }
}

/// The keys shared by all queues of one prefix.
public struct GlobalKeys: Sendable, Hashable {
    public let prefix: String

    /// Set of every queue that ever had a job enqueued or a worker reading it.
    public var queues: String { "\(prefix):queues" }
    /// Sorted set of live workers, scored by their last heartbeat (ms, Redis clock).
    public var workers: String { "\(prefix):workers" }
    /// Hash describing one worker (host, pid, queues, concurrency, started at).
    public func worker(_ id: String) -> String { "\(prefix):worker:\(id)" }
    /// A leader lease for a singleton loop.
    public func lease(_ name: String) -> String { "\(prefix):lease:\(name)" }
}
