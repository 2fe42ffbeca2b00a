import FoundationEssentials
import NIOCore

/// What to enqueue: a job's type, queue, JSON payload and options.
public struct EnqueueRequest: Sendable {
    public var type: String
    public var queue: String
    /// The job's JSON.
    public var payload: ByteBuffer
    public var options: EnqueueOptions

    public init(type: String, queue: String, payload: ByteBuffer, options: EnqueueOptions = EnqueueOptions()) {
        self.type = type
        self.queue = queue
        self.payload = payload
        self.options = options
    }

    public init(type: String, queue: String, json: String, options: EnqueueOptions = EnqueueOptions()) {
        self.init(type: type, queue: queue, payload: ByteBuffer(string: json), options: options)
    }
}

/// How a job should be enqueued.
public struct EnqueueOptions: Sendable, Hashable {
    /// The job id; a new UUIDv7 when `nil`. The outbox passes its row id here. Generated ids
    /// are unique, not secret: one id and the process's generator predict the next ones, so an
    /// id must never stand in for a capability.
    public var id: String?
    /// Run no earlier than this (ms since the epoch, compared with Redis's clock); `nil` runs as
    /// soon as a worker is free.
    public var runAt: Int64?
    /// Run this long after Redis receives the job (measured by Redis's clock, so the enqueuer's
    /// clock does not matter); wins over ``runAt``.
    public var delay: Duration?
    /// Runs allowed before the job is dead-lettered; `nil`: the job type's policy, as the worker
    /// that runs it knows it (25 for a type it does not know).
    public var maxAttempts: Int?
    public var timeout: Duration?
    public var visibilityTimeout: Duration?
    /// While a job with this key is waiting, delayed or running, enqueueing another with the same
    /// key returns the first one's id instead of adding a job.
    public var uniqueKey: String?
    /// How long the uniqueness lock lasts at most; ``JobQueue/Options/defaultUniqueFor`` when `nil`.
    public var uniqueFor: Duration?
    public var traceparent: String?
    /// When set, a job with this id (``id`` must be given) is added only once within this
    /// time: a second enqueue of the same id returns `enqueued == false`. For callers that
    /// retry an enqueue whose answer they may have lost, such as the outbox relay.
    public var deduplicateFor: Duration?

    public init(
        id: String? = nil,
        runAt: Int64? = nil,
        delay: Duration? = nil,
        maxAttempts: Int? = nil,
        timeout: Duration? = nil,
        visibilityTimeout: Duration? = nil,
        uniqueKey: String? = nil,
        uniqueFor: Duration? = nil,
        traceparent: String? = nil,
        deduplicateFor: Duration? = nil
    ) {
        self.id = id
        self.runAt = runAt
        self.delay = delay
        self.maxAttempts = maxAttempts
        self.timeout = timeout
        self.visibilityTimeout = visibilityTimeout
        self.uniqueKey = uniqueKey
        self.uniqueFor = uniqueFor
        self.traceparent = traceparent
        self.deduplicateFor = deduplicateFor
    }

    /// Runs the job `delay` after Redis receives it.
    public static func delayed(by delay: Duration) -> EnqueueOptions {
        EnqueueOptions(delay: delay)
    }

    /// Whether the job needs the enqueue script: it is unique, deduplicated or to run later.
    var needsScript: Bool {
        // Any runAt goes to the script, which compares it with Redis's clock, not this machine's.
        uniqueKey != nil || deduplicateFor != nil || runAt != nil || (delay.map { $0 > .zero } ?? false)
    }
}

/// The outcome of an enqueue.
public struct EnqueueResult: Sendable, Hashable {
    /// The job's id: the new job's, or for a duplicate unique job, the id of the job holding the key.
    public var id: String
    /// `false` when nothing was added: a unique job with the same key already existed, or (with
    /// ``EnqueueOptions/deduplicateFor``) this job id was enqueued already.
    public var enqueued: Bool
}

extension JobQueue {
    /// Enqueues one job.
    @discardableResult
    public func enqueue(_ request: EnqueueRequest) async throws -> EnqueueResult {
        try await enqueue(batch: [request])[0]
    }

    /// Enqueues one job.
    @discardableResult
    public func enqueue(
        type: String, queue: String, payload: ByteBuffer, options: EnqueueOptions = EnqueueOptions()
    ) async throws -> EnqueueResult {
        try await enqueue(EnqueueRequest(type: type, queue: queue, payload: payload, options: options))
    }

    /// Enqueues many jobs in one round trip. Results come back in the order of `requests`.
    ///
    /// Each job is added atomically on its own; a failure of one (say, a full Redis) is thrown
    /// after the others were sent, so the caller may retry the batch: ids are fixed before
    /// sending when given in the options.
    public func enqueue(batch requests: [EnqueueRequest]) async throws -> [EnqueueResult] {
        guard !requests.isEmpty else { return [] }
        let now = options.clock.milliseconds()
        for request in requests {
            try QueueName.validate(request.queue)
            guard !request.type.isEmpty else {
                throw QueueError(code: .invalidJob, message: "a job needs a type")
            }
            if let maxAttempts = request.options.maxAttempts, maxAttempts < 1 {
                throw QueueError(code: .invalidJob, message: "maxAttempts must be at least 1")
            }
            if request.options.deduplicateFor != nil && request.options.id == nil {
                throw QueueError(code: .invalidJob, message: "deduplicateFor needs the job's id")
            }
        }
        if !requests.contains(where: { $0.options.needsScript }) {
            return try await enqueuePlain(requests, now: now)
        }
        var items = registrationCommands(for: Set(requests.map(\.queue)))
        let registrationCount = items.count
        var ids: [String] = []
        ids.reserveCapacity(requests.count)
        for (request, envelope) in zip(requests, Self.envelopes(for: requests, now: now)) {
            let options = request.options
            ids.append(envelope.id)
            let keys = keys(request.queue)
            if !options.needsScript {
                items.append(.command(RedisCommand("XADD", [.string(keys.stream), "*"] + envelope.fieldArguments)))
            } else {
                let uniqueTTL = options.uniqueKey == nil ? 0 : Self.milliseconds(options.uniqueFor ?? self.options.defaultUniqueFor)
                let lock = keys.unique(options.uniqueKey ?? "")
                let markerTTL = options.deduplicateFor.map { max(1, Self.milliseconds($0)) } ?? 0
                let call = RedisScript.Call(
                    QueueScripts.enqueue,
                    keys: [keys.stream, keys.delayed, keys.job(envelope.id), lock, keys.enqueued(envelope.id)],
                    arguments: [
                        .string(envelope.id), .int(Int(options.runAt ?? 0)),
                        .int(Int(max(0, options.delay.map(Self.milliseconds) ?? 0))),
                        .int(Int(max(uniqueTTL, options.uniqueKey == nil ? 0 : 1))), .int(Int(markerTTL)),
                    ] + envelope.fieldArguments)
                items.append(.script(call))
            }
        }
        let waits = replicationWaits(for: requests)
        items += waits.map { .command($0) }
        var replies: [RESPValue]
        do {
            replies = try await redis.pipeline(items)
            try Self.checkRegistration(Array(replies.prefix(registrationCount)))
        } catch {
            forgetRegistration(of: requests.map(\.queue))
            throw error
        }
        let confirmations = replies.suffix(waits.count)
        replies.removeLast(waits.count)
        var results: [EnqueueResult] = []
        results.reserveCapacity(requests.count)
        for (index, reply) in replies.dropFirst(registrationCount).enumerated() {
            switch reply {
            case .error(let message):
                throw RedisError.server(message, command: items[registrationCount + index].name)
            case .array(let values):
                guard values.count == 2, let added = values[0].int, let id = values[1].string else {
                    throw RedisError.unexpected(reply, command: "EVALSHA enqueue")
                }
                results.append(EnqueueResult(id: id, enqueued: added == 1))
            default:
                results.append(EnqueueResult(id: ids[index], enqueued: true))
            }
        }
        try checkReplication(Array(confirmations))
        return results
    }

    /// One `WAIT` per queue of the batch, sent after its writes and routed like them (in a
    /// cluster, to the connection of the master that took them); none unless
    /// ``Options/replicasToConfirm`` asks.
    private func replicationWaits(for requests: [EnqueueRequest]) -> [RedisCommand] {
        guard options.replicasToConfirm > 0 else { return [] }
        var seen = Set<String>()
        let timeout = max(1, Int(Self.milliseconds(options.replicationTimeout)))
        return requests.compactMap { request in
            guard seen.insert(request.queue).inserted else { return nil }
            return RedisCommand("WAIT", [.int(options.replicasToConfirm), .int(timeout)], routedLike: keys(request.queue).stream)
        }
    }

    /// Throws `notReplicated` when a `WAIT` saw fewer replicas than asked for.
    private func checkReplication(_ replies: [RESPValue]) throws {
        for reply in replies {
            if case .error(let message) = reply { throw RedisError.server(message, command: "WAIT") }
            let confirmed = reply.int ?? 0
            if confirmed < options.replicasToConfirm {
                throw QueueError(
                    code: .notReplicated,
                    message:
                        "the job was written to the master, but only \(confirmed) of \(options.replicasToConfirm) replicas confirmed it within \(options.replicationTimeout): a failover now could lose it; enqueue it again with the same id to be sure"
                )
            }
        }
    }

    /// The common case, jobs to run now without a unique key: one `XADD` each, encoded straight
    /// into one buffer and sent in one write.
    private func enqueuePlain(_ requests: [EnqueueRequest], now: Int64) async throws -> [EnqueueResult] {
        let registration = registrationCommands(for: Set(requests.map(\.queue)))
        var pipeline = RedisPipeline(capacity: 256 * requests.count + 64)
        for item in registration { pipeline.append(item.command) }
        var results: [EnqueueResult] = []
        results.reserveCapacity(requests.count)
        for (request, envelope) in zip(requests, Self.envelopes(for: requests, now: now)) {
            envelope.appendXADD(to: &pipeline, stream: keys(request.queue).stream)
            results.append(EnqueueResult(id: envelope.id, enqueued: true))
        }
        let waits = replicationWaits(for: requests)
        for wait in waits { pipeline.append(wait) }
        var replies: [RESPValue]
        do {
            replies = try await redis.pipeline(pipeline)
            try Self.checkRegistration(Array(replies.prefix(registration.count)))
        } catch {
            forgetRegistration(of: requests.map(\.queue))
            throw error
        }
        let confirmations = replies.suffix(waits.count)
        replies.removeLast(waits.count)
        for reply in replies.dropFirst(registration.count) {
            if case .error(let message) = reply { throw RedisError.server(message, command: "XADD") }
        }
        try checkReplication(Array(confirmations))
        return results
    }

    /// The envelopes of `requests`, with fresh ids where none was given.
    static func envelopes(for requests: [EnqueueRequest], now: Int64) -> [JobEnvelope] {
        var freshIDs = JobID.make(count: requests.count { $0.options.id == nil })[...]
        return requests.map { request in
            let options = request.options
            return JobEnvelope(
                id: options.id ?? freshIDs.popFirst()!,
                type: request.type,
                queue: request.queue,
                payload: request.payload,
                maxAttempts: options.maxAttempts,
                enqueuedAt: now,
                timeout: options.timeout.map(Self.milliseconds),
                visibilityTimeout: options.visibilityTimeout.map(Self.milliseconds),
                uniqueKey: options.uniqueKey,
                traceparent: options.traceparent
            )
        }
    }
}
