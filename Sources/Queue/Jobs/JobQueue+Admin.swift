import FoundationEssentials
import NIOCore

/// One queue's figures at one moment.
public struct QueueStats: Sendable, Hashable, Codable {
    public var queue: String
    /// Waiting in the stream, not yet delivered.
    public var ready: Int
    /// Delivered to a worker and not yet acknowledged (running, or held by a dead worker).
    public var pending: Int
    public var delayed: Int
    public var dead: Int
    public var consumers: Int
    /// How long the oldest ready job has waited, in ms; `nil` when none is ready.
    public var oldestReadyAgeMilliseconds: Int?
    public var paused: Bool
}

/// Where a job is, as ``JobQueue/find(queue:id:)`` finds it.
public enum JobState: String, Sendable, Codable {
    case ready, pending, delayed, dead
}

/// A job found in a queue, for listing and peeking.
public struct JobSummary: Sendable, Hashable {
    public var state: JobState
    /// The job's fields as stored.
    public var fields: [String: String]
    /// The stream entry id for ready and pending jobs.
    public var entryID: String?
    /// For delayed jobs, when they are due (ms since the epoch).
    public var runAt: Int64?
    /// For pending jobs, the worker holding it and for how long it has been idle.
    public var consumer: String?
    public var idleMilliseconds: Int?
    /// For dead jobs, the dead letter.
    public var deadLetter: DeadLetter?

    public var id: String { fields["id"] ?? entryID ?? "" }
    public var type: String { fields["type"] ?? "" }
}

extension JobQueue {
    /// Figures for each of `queues` in one round trip.
    public func stats(queues: [String]) async throws -> [QueueStats] {
        let items = queues.map { queue -> RedisPipelineItem in
            let keys = keys(queue)
            return .script(RedisScript.Call(QueueScripts.stats, keys: [keys.stream, keys.delayed, keys.dead, keys.paused], arguments: []))
        }
        let replies = try await redis.pipeline(items)
        return try zip(queues, replies).map { queue, reply in
            if case .error(let message) = reply { throw RedisError.server(message, command: "EVALSHA stats") }
            guard let v = reply.array?.map(\.int), v.count == 7, v.allSatisfy({ $0 != nil }) else {
                throw RedisError.unexpected(reply, command: "EVALSHA stats")
            }
            return QueueStats(
                queue: queue, ready: v[0]!, pending: v[1]!, delayed: v[2]!, dead: v[3]!, consumers: v[4]!,
                oldestReadyAgeMilliseconds: v[5]! < 0 ? nil : v[5]!, paused: v[6]! == 1)
        }
    }

    /// Stops workers from taking jobs from `queue` (jobs already running finish).
    public func pause(queue: String) async throws {
        try QueueName.validate(queue)
        try await redis.pipeline([.command(RedisCommand("SET", [.string(keys(queue).paused), "1"]))] + registrationCommands(for: [queue]))
            .forEach { if case .error(let m) = $0, !m.hasPrefix("BUSYGROUP") { throw RedisError.server(m, command: "SET") } }
    }

    public func resume(queue: String) async throws {
        try QueueName.validate(queue)
        try await redis.send("DEL", [.string(keys(queue).paused)])
    }

    /// Ready jobs, oldest first.
    public func readyJobs(queue: String, limit: Int = 50) async throws -> [JobSummary] {
        let stream = keys(queue).stream
        var start = "-"
        let groups = try await redis.sendRaw(RedisCommand("XINFO", ["GROUPS", .string(stream)]))
        for group in groups.array ?? [] {
            let flat = group.array ?? []
            var info: [String: RESPValue] = [:]
            var index = 0
            while index + 1 < flat.count {
                if let key = flat[index].string { info[key] = flat[index + 1] }
                index += 2
            }
            if info["name"]?.string == Self.consumerGroup, let last = info["last-delivered-id"]?.string {
                start = "(" + last
            }
        }
        let reply = try await redis.send("XRANGE", [.string(stream), .string(start), "+", "COUNT", .int(limit)])
        return Self.summaries(entries: reply.array ?? [], state: .ready)
    }

    /// Jobs delivered and not yet acknowledged, with their holder and idle time.
    public func pendingJobs(queue: String, limit: Int = 50) async throws -> [JobSummary] {
        let stream = keys(queue).stream
        let reply = try await redis.sendRaw(RedisCommand("XPENDING", [.string(stream), "workers", "-", "+", .int(limit)]))
        guard let rows = reply.array else { return [] }
        let parsed: [(String, String, Int)] = rows.compactMap { row in
            guard let r = row.array, r.count >= 3, let id = r[0].string, let consumer = r[1].string, let idle = r[2].int else { return nil }
            return (id, consumer, idle)
        }
        let entries = try await redis.pipeline(parsed.map { RedisCommand("XRANGE", [.string(stream), .string($0.0), .string($0.0)]) })
        return zip(parsed, entries).map { row, entry in
            var summary =
                Self.summaries(entries: entry.array ?? [], state: .pending).first
                ?? JobSummary(state: .pending, fields: [:], entryID: row.0)
            summary.consumer = row.1
            summary.idleMilliseconds = row.2
            return summary
        }
    }

    /// Delayed jobs, soonest first.
    public func delayedJobs(queue: String, limit: Int = 50) async throws -> [JobSummary] {
        let keys = keys(queue)
        let reply = try await redis.send("ZRANGE", [.string(keys.delayed), "0", .int(limit - 1), "WITHSCORES"])
        let flat = reply.array ?? []
        var ids: [(String, Int64)] = []
        var index = 0
        while index + 1 < flat.count {
            if let id = flat[index].string, let score = flat[index + 1].string.flatMap({ Double($0) }) { ids.append((id, Int64(score))) }
            index += 2
        }
        let hashes = try await redis.pipeline(ids.map { RedisCommand("HGETALL", [.string(keys.job($0.0))]) })
        return zip(ids, hashes).map { pair, hash in
            let fields = [String: ByteBuffer](flatReply: hash.array ?? [])?.mapValues { String(buffer: $0) } ?? [:]
            return JobSummary(state: .delayed, fields: fields.isEmpty ? ["id": pair.0] : fields, runAt: pair.1)
        }
    }

    /// Dead letters, newest first.
    public func deadLetters(queue: String, offset: Int = 0, limit: Int = 50) async throws -> [DeadLetter] {
        let reply = try await redis.send("LRANGE", [.string(keys(queue).dead), .int(offset), .int(offset + limit - 1)])
        return (reply.array ?? []).compactMap(\.string).map(DeadLetter.init(raw:))
    }

    /// Puts the dead job `id` back into its stream with a fresh attempt count, retaking its
    /// unique lock. Returns whether it was found.
    ///
    /// - Throws: ``QueueError`` `uniqueKeyHeld` when another job holds its unique key: both would
    ///   run at once. Retry it once that job is done, or delete that job.
    @discardableResult
    public func retryDead(queue: String, id: String) async throws -> Bool {
        let keys = keys(queue)
        let all = try await deadLetters(queue: queue, offset: 0, limit: options.deadLetterLimit)
        guard let letter = all.first(where: { $0.id == id }) else { return false }
        var fields = letter.fields
        fields["attempt"] = "1"
        let arguments: [RESPArgument] = fields.sorted { $0.key < $1.key }.flatMap { [RESPArgument.string($0.key), .string($0.value)] }
        let unique = fields["unique_key"]
        let uniqueTTL = unique == nil ? 0 : Self.milliseconds(options.defaultUniqueFor)
        let reply = try await redis.run(
            QueueScripts.retryDead, keys: [keys.dead, keys.stream, keys.unique(unique ?? "")],
            arguments: [.string(letter.raw), .string(id), .int(Int(uniqueTTL))] + arguments)
        guard let values = reply.array, let status = values.first?.int else {
            throw RedisError.unexpected(reply, command: "EVALSHA retry-dead")
        }
        if status == -1 {
            let owner = values.count > 1 ? values[1].string ?? "?" : "?"
            throw QueueError(
                code: .uniqueKeyHeld,
                message: "dead job \(id) was not retried: job \(owner) holds its unique key \(unique ?? ""); retry it once that job is done"
            )
        }
        return status == 1
    }

    /// Puts every dead job of `queue` back into its stream, oldest first, retaking their unique
    /// locks; a job whose unique key another job holds stays dead. Returns how many went back.
    @discardableResult
    public func retryAllDead(queue: String) async throws -> Int {
        let keys = keys(queue)
        let batch = 1000
        var total = 0
        // Each record is looked at once per call (kept ones go to the head), so a bounded
        // number of rounds, plus a few for records added or removed meanwhile.
        var rounds = try await redis.send("LLEN", [.string(keys.dead)]).int.map { $0 / batch + 3 } ?? 3
        while rounds > 0 {
            rounds -= 1
            // Oldest last: the script takes them from the tail, so oldest first.
            let tail = try await redis.send("LRANGE", [.string(keys.dead), .int(-batch), -1]).array?.compactMap(\.string) ?? []
            if tail.isEmpty { return total }
            var scriptKeys = [keys.dead, keys.stream]
            var arguments: [RESPArgument] = [.int(Int(Self.milliseconds(options.defaultUniqueFor)))]
            for raw in tail.reversed() {
                let letter = DeadLetter(raw: raw)
                var lockIndex = 0
                if let unique = letter.fields["unique_key"], !letter.id.isEmpty {
                    scriptKeys.append(keys.unique(unique))
                    lockIndex = scriptKeys.count
                }
                arguments += [.string(raw), .int(lockIndex)]
            }
            let reply = try await redis.run(QueueScripts.retryAllDead, keys: scriptKeys, arguments: arguments)
            guard let values = reply.array, values.count == 2, let retried = values[0].int, let kept = values[1].int else {
                throw RedisError.unexpected(reply, command: "EVALSHA retry-all-dead")
            }
            total += retried
            let changedMeanwhile = retried + kept < tail.count
            if !changedMeanwhile && (retried == 0 || tail.count < batch) { return total }
        }
        return total
    }

    /// Deletes every dead letter of `queue`. Returns how many there were.
    @discardableResult
    public func purgeDead(queue: String) async throws -> Int {
        try await redis.run(QueueScripts.purgeDead, keys: [keys(queue).dead], arguments: []).int ?? 0
    }

    /// Finds job `id` in `queue`: delayed, ready or pending in the stream, or dead.
    public func find(queue: String, id: String) async throws -> JobSummary? {
        let keys = keys(queue)
        let hash = try await redis.send("HGETALL", [.string(keys.job(id))])
        if let flat = hash.array, !flat.isEmpty {
            let score = try await redis.send("ZSCORE", [.string(keys.delayed), .string(id)])
            let fields = [String: ByteBuffer](flatReply: flat)?.mapValues { String(buffer: $0) } ?? [:]
            return JobSummary(state: .delayed, fields: fields, runAt: score.string.flatMap { Double($0) }.map { Int64($0) })
        }
        if let entry = try await findInStream(queue: queue, id: id) {
            let pending = try await redis.sendRaw(
                RedisCommand(
                    "XPENDING", [.string(keys.stream), "workers", .string(entry.entryID ?? ""), .string(entry.entryID ?? ""), "1"]))
            if let row = pending.array?.first?.array, row.count >= 3 {
                var summary = entry
                summary.state = .pending
                summary.consumer = row[1].string
                summary.idleMilliseconds = row[2].int
                return summary
            }
            return entry
        }
        let dead = try await deadLetters(queue: queue, offset: 0, limit: options.deadLetterLimit)
        if let letter = dead.first(where: { $0.id == id }) {
            return JobSummary(state: .dead, fields: letter.fields, deadLetter: letter)
        }
        return nil
    }

    /// Deletes a job that is waiting (ready) or delayed. A running job cannot be deleted.
    public func delete(queue: String, id: String) async throws {
        let keys = keys(queue)
        let removed = try await redis.pipeline([
            RedisCommand("HGET", [.string(keys.job(id)), "unique_key"]),
            RedisCommand("ZREM", [.string(keys.delayed), .string(id)]), RedisCommand("DEL", [.string(keys.job(id))]),
        ])
        if removed[1].int == 1 {
            if let unique = removed[0].string {
                try await redis.run(QueueScripts.releaseUnique, keys: [keys.unique(unique)], arguments: [.string(id)])
            }
            return
        }
        guard let entry = try await findInStream(queue: queue, id: id), let entryID = entry.entryID else {
            throw QueueError(code: .jobNotFound, message: "no waiting or delayed job \(id) in queue \(queue)")
        }
        let reply = try await redis.run(QueueScripts.deleteWaiting, keys: [keys.stream], arguments: [.string(entryID)])
        if reply.int == -1 {
            throw QueueError(code: .jobIsRunning, message: "job \(id) in queue \(queue) is running; it cannot be deleted")
        }
        if reply.int == 1, let unique = entry.fields["unique_key"] {
            try await redis.run(QueueScripts.releaseUnique, keys: [keys.unique(unique)], arguments: [.string(id)])
        }
    }

    /// Scans the stream for the entry of job `id`, a page at a time.
    private func findInStream(queue: String, id: String) async throws -> JobSummary? {
        let stream = keys(queue).stream
        var start = "-"
        while true {
            let reply = try await redis.send("XRANGE", [.string(stream), .string(start), "+", "COUNT", 1000])
            let entries = reply.array ?? []
            for summary in Self.summaries(entries: entries, state: .ready) where summary.id == id {
                return summary
            }
            guard entries.count == 1000, let last = entries.last?.array?.first?.string else { return nil }
            start = "(" + last
        }
    }

    static func summaries(entries: [RESPValue], state: JobState) -> [JobSummary] {
        entries.compactMap { entry in
            guard let pair = entry.array, pair.count == 2, let entryID = pair[0].string else { return nil }
            let fields = [String: ByteBuffer](flatReply: pair[1].array ?? [])?.mapValues { String(buffer: $0) } ?? [:]
            var summary = JobSummary(state: state, fields: fields, entryID: entryID)
            if summary.fields["id"] == nil { summary.fields["id"] = entryID }
            return summary
        }
    }
}
