import FoundationEssentials
import NIOCore

/// What one reclaim pass did.
public struct ReclaimResult: Sendable, Hashable {
    /// Entries put back into the stream (their attempt counted).
    public var requeued = 0
    /// Entries that were out of attempts and went to the dead list.
    public var deadLettered = 0

    public init(requeued: Int = 0, deadLettered: Int = 0) {
        self.requeued = requeued
        self.deadLettered = deadLettered
    }

    static func + (lhs: ReclaimResult, rhs: ReclaimResult) -> ReclaimResult {
        ReclaimResult(requeued: lhs.requeued + rhs.requeued, deadLettered: lhs.deadLettered + rhs.deadLettered)
    }
}

/// A live worker, as it registers itself.
public struct WorkerInfo: Sendable, Hashable {
    public var id: String
    public var host: String
    public var pid: Int
    public var queues: [String]
    public var concurrency: Int
    /// ms since the epoch.
    public var startedAt: Int64
    /// Last heartbeat, ms since the epoch (Redis clock).
    public var lastSeen: Int64
    /// How long without a heartbeat before this worker counts as dead (its own setting).
    public var deadAfter: Duration

    public init(
        id: String, host: String, pid: Int, queues: [String], concurrency: Int, startedAt: Int64, lastSeen: Int64 = 0,
        deadAfter: Duration = .seconds(30)
    ) {
        self.id = id
        self.host = host
        self.pid = pid
        self.queues = queues
        self.concurrency = concurrency
        self.startedAt = startedAt
        self.lastSeen = lastSeen
        self.deadAfter = deadAfter
    }
}

extension JobQueue {
    /// Moves due delayed jobs of `queue` into its stream. Returns how many moved and how long
    /// until the next one is due (`nil` when none is waiting).
    public func promoteDue(queue: String, limit: Int = 1000) async throws -> (moved: Int, nextDueIn: Duration?) {
        let keys = keys(queue)
        var total = 0
        var due: [String] = []
        var round = 0
        while true {
            round += 1
            // The first call only names what is due; the next moves those (see the script).
            let reply = try await redis.run(
                QueueScripts.promote, keys: [keys.stream, keys.delayed] + due.map { keys.job($0) },
                arguments: [.int(max(1, limit - total))] + due.map { .string($0) })
            guard let values = reply.array, values.count == 3, let moved = values[0].int, let next = values[1].array,
                let wait = values[2].int
            else {
                throw RedisError.unexpected(reply, command: "EVALSHA promote")
            }
            total += moved
            due = next.compactMap(\.string)
            // A few rounds at most: jobs made due meanwhile wait for the next call.
            if due.isEmpty || total >= limit || round > 10 {
                return (total, wait < 0 ? nil : .milliseconds(wait))
            }
        }
    }

    /// Redelivers entries of `queue` idle longer than their visibility timeout (the job's own, or
    /// ``Options/defaultVisibilityTimeout``). `minimumIdle` bounds the scan: entries idle less
    /// than it are not even looked at.
    public func reclaimStalled(queue: String, minimumIdle: Duration = .seconds(5)) async throws -> ReclaimResult {
        try await reclaim(queue: queue, consumer: "", minimumIdle: minimumIdle)
    }

    /// Redelivers what `consumer` holds in `queue`: its worker is gone. With a `minimumIdle`, only
    /// if the consumer itself has done nothing for that long (checked in the same script, so a
    /// worker that fetched a moment ago keeps its jobs), and only entries idle that long. Then
    /// removes the consumer from the group, unless it took new entries meanwhile.
    public func reclaimConsumer(queue: String, consumer: String, minimumIdle: Duration = .zero) async throws -> ReclaimResult {
        let result = try await reclaim(queue: queue, consumer: consumer, minimumIdle: minimumIdle)
        try await removeConsumer(queue: queue, consumer: consumer)
        return result
    }

    /// Removes `consumer` from `queue`'s group if it holds no entries. Returns whether it is gone.
    @discardableResult
    public func removeConsumer(queue: String, consumer: String) async throws -> Bool {
        let reply = try await redis.run(QueueScripts.deleteIdleConsumer, keys: [keys(queue).stream], arguments: [.string(consumer)])
        return reply.int != -1
    }

    /// Releases the unique locks of dead-lettered jobs (unique key, job id, …), each only if
    /// that job still holds it.
    private func releaseUniqueLocks(queue: String, pairs: [String]) async throws {
        guard pairs.count >= 2 else { return }
        let keys = keys(queue)
        let calls = stride(from: 0, to: pairs.count - 1, by: 2).map { index in
            RedisPipelineItem.script(
                RedisScript.Call(QueueScripts.releaseUnique, keys: [keys.unique(pairs[index])], arguments: [.string(pairs[index + 1])]))
        }
        // The dead letters are written: these pairs exist nowhere else, so a failed release is
        // tried again (a lock left behind refuses its key until the lock's TTL, 24 h by default).
        var attempt = 0
        while true {
            attempt += 1
            do {
                for reply in try await redis.pipeline(calls) {
                    if case .error(let message) = reply { throw RedisError.server(message, command: "EVALSHA release-unique") }
                }
                return
            } catch {
                if attempt >= 5 { throw error }
                try await Task.sleep(for: .milliseconds(100 * attempt))
            }
        }
    }

    private func reclaim(queue: String, consumer: String, minimumIdle: Duration) async throws -> ReclaimResult {
        let keys = keys(queue)
        var total = ReclaimResult()
        var start = "-"
        let batch = 100
        while true {
            let reply = try await redis.run(
                QueueScripts.reclaim, keys: [keys.stream, keys.dead, keys.policies],
                arguments: [
                    .string(consumer), .int(Int(Self.milliseconds(minimumIdle))),
                    .int(Int(Self.milliseconds(options.defaultVisibilityTimeout))), .int(batch), .int(options.deadLetterLimit),
                    .string(start),
                ])
            guard let values = reply.array, values.count == 5, let scanned = values[0].int, let requeued = values[1].int,
                let dead = values[2].int, let locks = values[4].array
            else { throw RedisError.unexpected(reply, command: "EVALSHA reclaim") }
            try await releaseUniqueLocks(queue: queue, pairs: locks.compactMap(\.string))
            total = total + ReclaimResult(requeued: requeued, deadLettered: dead)
            guard scanned == batch, let last = values[3].string, !last.isEmpty else { return total }
            start = "(" + last
        }
    }

    /// The consumers of `queue`'s group and how many entries each holds.
    public func consumers(queue: String) async throws -> [(name: String, pending: Int, idle: Duration)] {
        let reply = try await redis.sendRaw(RedisCommand("XINFO", ["CONSUMERS", .string(keys(queue).stream), "workers"]))
        if case .error = reply { return [] }
        return (reply.array ?? []).compactMap { item in
            guard let flat = item.array else { return nil }
            var info: [String: RESPValue] = [:]
            var index = 0
            while index + 1 < flat.count {
                if let key = flat[index].string { info[key] = flat[index + 1] }
                index += 2
            }
            guard let name = info["name"]?.string else { return nil }
            return (name, info["pending"]?.int ?? 0, .milliseconds(info["idle"]?.int ?? 0))
        }
    }

    /// Records a worker's heartbeat (and its description, kept a little longer than it would
    /// take to be declared dead), and re-registers its queues. Returns the heartbeat's time by
    /// Redis's clock (ms).
    @discardableResult
    public func heartbeat(_ worker: WorkerInfo, ttl: Duration) async throws -> Int64 {
        var items: [RedisPipelineItem] = [
            .script(RedisScript.Call(QueueScripts.heartbeat, keys: [globalKeys.workers], arguments: [.string(worker.id)])),
            .command(
                RedisCommand(
                    "HSET",
                    [
                        .string(globalKeys.worker(worker.id)), "host", .string(worker.host), "pid", .int(worker.pid), "queues",
                        .string(worker.queues.joined(separator: ",")), "concurrency", .int(worker.concurrency), "started_at",
                        .int(Int(worker.startedAt)), "dead_after", .int(Int(Self.milliseconds(worker.deadAfter))),
                    ])),
            .command(RedisCommand("PEXPIRE", [.string(globalKeys.worker(worker.id)), .int(Int(Self.milliseconds(ttl)))])),
        ]
        if !worker.queues.isEmpty {
            items.append(.command(RedisCommand("SADD", [.string(globalKeys.queues)] + worker.queues.map { .string($0) })))
        }
        let replies = try await redis.pipeline(items)
        for (index, reply) in replies.enumerated() {
            if case .error(let message) = reply { throw RedisError.server(message, command: items[index].name) }
        }
        guard let now = replies.first?.int else { throw RedisError.unexpected(replies.first ?? .null, command: "EVALSHA heartbeat") }
        return Int64(now)
    }

    /// How long the Redis server has been up (`INFO server`): after a restart, heartbeats and
    /// idle times still count the time it was down.
    public func serverUptime() async throws -> Duration {
        let info = try await redis.send("INFO", ["server"])
        for line in (info.string ?? "").split(whereSeparator: \.isNewline) where line.hasPrefix("uptime_in_seconds:") {
            if let seconds = Int64(line.dropFirst("uptime_in_seconds:".count)) { return .seconds(seconds) }
        }
        throw RedisError.unexpected(info, command: "INFO server")
    }

    /// Removes a worker from the live set (clean shutdown).
    public func deregister(workerID: String) async throws {
        _ = try await redis.pipeline([
            RedisCommand("ZREM", [.string(globalKeys.workers), .string(workerID)]),
            RedisCommand("DEL", [.string(globalKeys.worker(workerID))]),
        ])
    }

    /// Workers whose last heartbeat is within `maxAge`, or (`nil`) within each worker's own
    /// `deadAfter`, with their descriptions.
    public func liveWorkers(maxAge: Duration? = nil) async throws -> [WorkerInfo] {
        let stale = try await redis.run(QueueScripts.staleWorkers, keys: [globalKeys.workers], arguments: [.int(0)])
        guard let now = stale.array?.first?.int else { throw RedisError.unexpected(stale, command: "EVALSHA stale-workers") }
        let reply = try await redis.send("ZRANGEBYSCORE", [.string(globalKeys.workers), "-inf", "+inf", "WITHSCORES"])
        let flat = reply.array ?? []
        var ids: [(String, Int)] = []
        var index = 0
        while index + 1 < flat.count {
            if let id = flat[index].string, let score = flat[index + 1].int { ids.append((id, score)) }
            index += 2
        }
        let infos = try await redis.pipeline(ids.map { RedisCommand("HGETALL", [.string(globalKeys.worker($0.0))]) })
        return zip(ids, infos).compactMap { pair, info -> WorkerInfo? in
            var map: [String: String] = [:]
            let flat = info.array ?? []
            var i = 0
            while i + 1 < flat.count {
                if let key = flat[i].string, let value = flat[i + 1].string { map[key] = value }
                i += 2
            }
            let worker = WorkerInfo(
                id: pair.0, host: map["host"] ?? "", pid: Int(map["pid"] ?? "") ?? 0,
                queues: (map["queues"] ?? "").split(separator: ",").map(String.init), concurrency: Int(map["concurrency"] ?? "") ?? 0,
                startedAt: Int64(map["started_at"] ?? "") ?? 0, lastSeen: Int64(pair.1),
                deadAfter: Int64(map["dead_after"] ?? "").map { .milliseconds($0) } ?? .seconds(30))
            return Int64(now) - worker.lastSeen <= Self.milliseconds(maxAge ?? worker.deadAfter) ? worker : nil
        }
    }

    /// Finds consumers whose worker stopped heartbeating more than `deadAfter` ago (or never
    /// registered and have been idle that long), redelivers what they held, and forgets them.
    public func reclaimDeadWorkers(deadAfter: Duration) async throws -> ReclaimResult {
        // A worker is dead after the longer of `deadAfter` and its own setting, so one started
        // with a longer --dead-worker-after is not reclaimed early by a reclaimer with a shorter one.
        let registered = try await liveWorkers(maxAge: .seconds(86_400 * 365))
        let stale = try await redis.run(QueueScripts.staleWorkers, keys: [globalKeys.workers], arguments: [.int(0)])
        guard let now = stale.array?.first?.int else { throw RedisError.unexpected(stale, command: "EVALSHA stale-workers") }
        var patience: [String: Duration] = [:]
        var live = Set<String>()
        for worker in registered {
            let window = max(deadAfter, worker.deadAfter)
            patience[worker.id] = window
            if Int64(now) - worker.lastSeen <= Self.milliseconds(window) { live.insert(worker.id) }
        }
        var total = ReclaimResult()
        for queue in try await knownQueues() {
            for consumer in try await consumers(queue: queue) where !live.contains(consumer.name) {
                let window = patience[consumer.name] ?? deadAfter
                guard consumer.idle >= window else { continue }
                total = total + (try await reclaimConsumer(queue: queue, consumer: consumer.name, minimumIdle: window))
            }
        }
        let reply = try await redis.run(
            QueueScripts.staleWorkers, keys: [globalKeys.workers], arguments: [.int(Int(Self.milliseconds(deadAfter)))])
        if let stale = reply.array, stale.count == 2, let ids = stale[1].array, !ids.isEmpty {
            _ = try await redis.send(RedisCommand("ZREM", [.string(globalKeys.workers)] + ids.compactMap(\.string).map { .string($0) }))
        }
        return total
    }

    /// Takes or renews the lease `name` for `holder` for `ttl`. Returns whether `holder` holds it.
    public func acquireLease(_ name: String, holder: String, ttl: Duration) async throws -> Bool {
        let reply = try await redis.run(
            QueueScripts.acquireLease, keys: [globalKeys.lease(name)], arguments: [.string(holder), .int(Int(Self.milliseconds(ttl)))])
        return reply.int == 1
    }

    /// Gives the lease up if `holder` still holds it.
    public func releaseLease(_ name: String, holder: String) async throws {
        _ = try await redis.run(QueueScripts.releaseLease, keys: [globalKeys.lease(name)], arguments: [.string(holder)])
    }
}
