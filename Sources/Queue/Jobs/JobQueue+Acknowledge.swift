import NIOCore

/// A finished job to acknowledge.
public struct Acknowledgement: Sendable, Hashable {
    public var queue: String
    public var entryID: String
    public var jobID: String
    public var uniqueKey: String?

    public init(queue: String, entryID: String, jobID: String, uniqueKey: String? = nil) {
        self.queue = queue
        self.entryID = entryID
        self.jobID = jobID
        self.uniqueKey = uniqueKey
    }
}

extension JobQueue {
    /// Acknowledges finished jobs in one round trip: one XACK and one XDEL per queue with all
    /// their entry ids, and for a unique job one script that acknowledges it and releases its lock
    /// only if its entry was still pending (a stale acknowledgement frees nothing).
    public func acknowledge(_ acknowledgements: [Acknowledgement]) async throws {
        guard !acknowledgements.isEmpty else { return }
        var byQueue: [String: [RESPArgument]] = [:]
        var items: [RedisPipelineItem] = []
        for ack in acknowledgements {
            if let unique = ack.uniqueKey {
                let keys = keys(ack.queue)
                items.append(
                    .script(
                        RedisScript.Call(
                            QueueScripts.acknowledgeUnique, keys: [keys.stream, keys.unique(unique)],
                            arguments: [.string(ack.entryID), .string(ack.jobID)])))
            } else {
                byQueue[ack.queue, default: []].append(.string(ack.entryID))
            }
        }
        for (queue, ids) in byQueue {
            let stream = keys(queue).stream
            items.append(.command(RedisCommand("XACK", [.string(stream), "workers"] + ids)))
            items.append(.command(RedisCommand("XDEL", [.string(stream)] + ids)))
        }
        let replies = try await redis.pipeline(items)
        for (index, reply) in replies.enumerated() {
            if case .error(let message) = reply { throw RedisError.server(message, command: items[index].name) }
        }
    }

    /// Schedules the job again `delay` after now by Redis's clock, with the envelope given (its
    /// attempt already counted for a retry, unchanged for a snooze), then acknowledges the entry; a unique job keeps its lock at least
    /// until then plus ``Options/defaultUniqueFor``. Returns `false` when the entry was no longer
    /// pending (it had been reclaimed), in which case nothing changed.
    @discardableResult
    public func retry(entryID: String, envelope: JobEnvelope, delay: Duration) async throws -> Bool {
        let keys = keys(envelope.queue)
        let uniqueTTL = envelope.uniqueKey == nil ? 0 : Self.milliseconds(options.defaultUniqueFor)
        let reply = try await redis.run(
            QueueScripts.retry, keys: [keys.stream, keys.delayed, keys.job(envelope.id), keys.unique(envelope.uniqueKey ?? "")],
            arguments: [.string(entryID), .int(Int(max(0, Self.milliseconds(delay)))), .string(envelope.id), .int(Int(uniqueTTL))]
                + envelope.fieldArguments)
        return reply.int == 1
    }

    /// Pushes a dead letter with `fields` and `error`, then acknowledges the entry and releases the
    /// job's unique lock. Returns `false` when the entry was no longer pending.
    @discardableResult
    public func deadLetter(
        queue: String, entryID: String, fields: [String: String], error: String, worker: String
    ) async throws -> Bool {
        let keys = keys(queue)
        let record = DeadLetter.encode(fields: fields, error: error, failedAt: options.clock.milliseconds(), worker: worker)
        let jobID = fields["unique_key"] == nil ? "" : (fields["id"] ?? "")
        let reply = try await redis.run(
            QueueScripts.deadLetter, keys: [keys.stream, keys.dead, keys.unique(fields["unique_key"] ?? "")],
            arguments: [.string(entryID), .string(record), .int(options.deadLetterLimit), .string(jobID)])
        return reply.int == 1
    }

    /// Puts entries this consumer holds back at the end of their stream at once, without
    /// counting an attempt (graceful shutdown). Returns how many went back.
    @discardableResult
    public func handBack(queue: String, entryIDs: [String], consumer: String) async throws -> Int {
        guard !entryIDs.isEmpty else { return 0 }
        let reply = try await redis.run(
            QueueScripts.handBack, keys: [keys(queue).stream], arguments: [.string(consumer)] + entryIDs.map { .string($0) })
        return reply.int ?? 0
    }

    /// Resets the idle time of in-flight entries (a heartbeat), so the reclaimer leaves them
    /// alone. One XCLAIM … JUSTID per queue, in one round trip.
    public func refresh(_ entries: [(queue: String, entryID: String)], consumer: String) async throws {
        guard !entries.isEmpty else { return }
        var byQueue: [String: [RESPArgument]] = [:]
        for entry in entries { byQueue[entry.queue, default: []].append(.string(entry.entryID)) }
        let items = byQueue.map { queue, ids in
            RedisPipelineItem.command(
                RedisCommand("XCLAIM", [.string(keys(queue).stream), "workers", .string(consumer), "0"] + ids + ["JUSTID"]))
        }
        let replies = try await redis.pipeline(items)
        for reply in replies {
            if case .error(let message) = reply { throw RedisError.server(message, command: "XCLAIM") }
        }
    }

    /// The entry ids `consumer` holds in `queue` (delivered, not acknowledged).
    public func pendingEntryIDs(queue: String, consumer: String, limit: Int = 10_000) async throws -> [String] {
        let reply = try await redis.send(
            "XPENDING", [.string(keys(queue).stream), "workers", "-", "+", .int(limit), .string(consumer)])
        return (reply.array ?? []).compactMap { $0.array?.first?.string }
    }

    /// Publishes the policies of job types (by type name) into each of `queues`, where the
    /// reclaimer reads them for jobs that carry none of their own.
    public func publishPolicies(_ policies: [String: JobPolicy], queues: [String]) async throws {
        guard !policies.isEmpty, !queues.isEmpty else { return }
        let fields = policies.sorted { $0.key < $1.key }.flatMap { [RESPArgument.string($0.key), .string($0.value.json)] }
        let items = queues.map { RedisCommand("HSET", [.string(keys($0).policies)] + fields) }
        for (index, reply) in try await redis.pipeline(items).enumerated() {
            if case .error(let message) = reply { throw RedisError.server(message, command: items[index].name) }
        }
    }
}

/// A unique job's lock, to keep alive while its job is held.
public struct UniqueLock: Sendable, Hashable {
    public var queue: String
    public var key: String
    public var jobID: String
    /// The least time the lock must live from now.
    public var ttl: Duration

    public init(queue: String, key: String, jobID: String, ttl: Duration) {
        self.queue = queue
        self.key = key
        self.jobID = jobID
        self.ttl = ttl
    }
}

extension JobQueue {
    /// Keeps the locks of unique jobs a worker holds alive for at least their `ttl` (only where
    /// the job still owns its lock), so a job that waits or runs longer than `uniqueFor` still
    /// excludes duplicates until it is acknowledged or dead.
    public func extend(_ locks: [UniqueLock]) async throws {
        guard !locks.isEmpty else { return }
        let items = locks.map { lock in
            RedisPipelineItem.script(
                RedisScript.Call(
                    QueueScripts.extendUnique, keys: [keys(lock.queue).unique(lock.key)],
                    arguments: [.string(lock.jobID), .int(Int(Self.milliseconds(lock.ttl)))]))
        }
        for (index, reply) in try await redis.pipeline(items).enumerated() {
            if case .error(let message) = reply { throw RedisError.server(message, command: items[index].name) }
        }
    }
}
