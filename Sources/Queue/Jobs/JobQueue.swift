import FoundationEssentials
import Logging
import NIOConcurrencyHelpers
import NIOCore

/// The queue protocol on Redis Streams: enqueue, fetch, acknowledge, retry, dead letters,
/// delays, uniqueness, pause, reclaim and stats. It knows nothing of job types or handlers;
/// ``WorkerPool`` builds the runtime on top of it, and any program can enqueue with it.
public final class JobQueue: Sendable {
    /// Behaviour shared by every queue of one prefix.
    public struct Options: Sendable {
        /// First part of every key (`harrow:{queue}:stream`).
        public var keyPrefix: String
        /// How many dead letters a queue keeps; older ones are trimmed.
        public var deadLetterLimit: Int
        /// How long an in-flight job may go without a heartbeat before it is redelivered, for
        /// jobs whose envelope does not say.
        public var defaultVisibilityTimeout: Duration
        /// How long a unique job's lock lasts when the caller does not say.
        public var defaultUniqueFor: Duration
        /// The clock the queue stamps jobs with (never the one that decides when they are due).
        public var clock: WallClock
        /// How many replicas must confirm each enqueue (`WAIT`, on the connection that wrote it)
        /// before it returns; 0 (the default) returns once the master has it. Redis replicates
        /// asynchronously: a master that fails over loses what its replicas had not received.
        public var replicasToConfirm: Int
        /// How long an enqueue waits for ``replicasToConfirm``; then it throws `notReplicated`.
        public var replicationTimeout: Duration

        public init(
            keyPrefix: String = "harrow",
            deadLetterLimit: Int = 10_000,
            defaultVisibilityTimeout: Duration = .seconds(60),
            defaultUniqueFor: Duration = .seconds(24 * 3600),
            clock: WallClock = .system,
            replicasToConfirm: Int = 0,
            replicationTimeout: Duration = .seconds(1)
        ) {
            self.keyPrefix = keyPrefix
            self.deadLetterLimit = max(1, deadLetterLimit)
            self.defaultVisibilityTimeout = defaultVisibilityTimeout
            self.defaultUniqueFor = defaultUniqueFor
            self.clock = clock
            self.replicasToConfirm = max(0, replicasToConfirm)
            self.replicationTimeout = replicationTimeout
        }
    }

    /// The consumer group every worker reads through.
    public static let consumerGroup = "workers"

    public let redis: RedisClient
    public let options: Options
    public let globalKeys: GlobalKeys
    /// Queues this process has already added to the `queues` set, to skip a SADD per enqueue.
    private let registeredQueues = NIOLockedValueBox(Set<String>())
    /// Queues the last fetch found paused: fetched with the script, which takes nothing from a
    /// paused queue, until one finds them resumed.
    let pausedQueues = NIOLockedValueBox(Set<String>())

    public init(redis: RedisClient, options: Options = Options()) {
        self.redis = redis
        self.options = options
        self.globalKeys = GlobalKeys(prefix: options.keyPrefix)
    }

    public func keys(_ queue: String) -> QueueKeys {
        QueueKeys(prefix: options.keyPrefix, queue: queue)
    }

    /// Commands that register `queues` in the known-queues set and create their consumer groups,
    /// for queues this process has not registered yet.
    func registrationCommands(for queues: some Sequence<String>) -> [RedisPipelineItem] {
        let new = registeredQueues.withLockedValue { registered -> [String] in
            var new: [String] = []
            for queue in queues where registered.insert(queue).inserted { new.append(queue) }
            return new
        }
        guard !new.isEmpty else { return [] }
        var items: [RedisPipelineItem] = [.command(RedisCommand("SADD", [.string(globalKeys.queues)] + new.map { .string($0) }))]
        for queue in new {
            items.append(.command(RedisCommand("XGROUP", ["CREATE", .string(keys(queue).stream), "workers", "0", "MKSTREAM"])))
        }
        return items
    }

    /// Makes the next ``registrationCommands(for:)`` include `queues` again, after the commands
    /// that registered them may not have reached Redis.
    func forgetRegistration(of queues: some Sequence<String>) {
        registeredQueues.withLockedValue { $0.subtract(queues) }
    }

    /// Registers queues and creates their streams and consumer groups (idempotent).
    public func prepare(queues: [String]) async throws {
        for queue in queues { try QueueName.validate(queue) }
        registeredQueues.withLockedValue { $0.subtract(queues) }
        let replies = try await redis.pipeline(registrationCommands(for: queues))
        try Self.checkRegistration(replies)
    }

    static func checkRegistration(_ replies: [RESPValue]) throws(RedisError) {
        for reply in replies {
            if case .error(let message) = reply, !message.hasPrefix("BUSYGROUP") {
                throw RedisError.server(message, command: "XGROUP")
            }
        }
    }

    /// Every queue that has had a job or a worker, sorted.
    public func knownQueues() async throws -> [String] {
        let reply = try await redis.send("SMEMBERS", [.string(globalKeys.queues)])
        return (reply.array ?? []).compactMap(\.string).sorted()
    }

    /// Whole milliseconds of `duration`, the unit the queue counts time in on the wire.
    public static func milliseconds(_ duration: Duration) -> Int64 {
        let (seconds, attoseconds) = duration.components
        return seconds * 1000 + attoseconds / 1_000_000_000_000_000
    }
}
