import NIOConcurrencyHelpers
import NIOCore

/// A stream entry a worker received.
public enum Delivery: Sendable {
    /// A well-formed job.
    case job(FetchedJob)
    /// An entry that cannot be a job (missing type, a non-number attempt, …). It belongs in the
    /// dead list with `reason`; it must never stop a worker.
    case malformed(MalformedEntry)

    public var queue: String {
        switch self {
        case .job(let job): return job.queue
        case .malformed(let entry): return entry.queue
        }
    }

    public var entryID: String {
        switch self {
        case .job(let job): return job.entryID
        case .malformed(let entry): return entry.entryID
        }
    }
}

/// A job taken from a queue's stream, pending for this worker until acknowledged.
public struct FetchedJob: Sendable {
    public var queue: String { envelope.queue }
    /// The stream entry id (`1700000000000-0`), which ack/retry/dead-letter need.
    public var entryID: String
    public var envelope: JobEnvelope
}

/// A stream entry that is not a valid job.
public struct MalformedEntry: Sendable {
    public var queue: String
    public var entryID: String
    /// The raw fields, kept for the dead letter.
    public var fields: [String: String]
    public var reason: String

    /// An entry to dead-letter with `reason` (the worker also refuses jobs it must not run).
    public init(queue: String, entryID: String, fields: [String: String], reason: String) {
        self.queue = queue
        self.entryID = entryID
        self.fields = fields
        self.reason = reason
    }
}

/// What one fetch asks for: queues in the order to serve them and how many from each.
public struct FetchRequest: Sendable {
    /// Queue names in priority order, each with the most entries to take from it.
    public var queues: [(name: String, limit: Int)]
    /// The most entries to take in all.
    public var total: Int

    public init(queues: [(name: String, limit: Int)], total: Int) {
        self.queues = queues
        self.total = total
    }
}

/// What one non-blocking fetch found.
public struct FetchResult: Sendable {
    public var deliveries: [Delivery]
    /// Queues found paused (nothing was taken from them).
    public var paused: Set<String>
    /// Queues read and found empty, each with the id after which its next entry will arrive:
    /// what ``JobQueue/waitForEntries(after:block:reader:)`` waits on.
    public var emptyQueues: [String: String]
    /// Queues that could not be read (on a Redis Cluster, their master did not answer), with
    /// why: the others were read all the same.
    public var unavailable: [String: RedisError] = [:]
}

extension JobQueue {
    /// Takes ready entries without blocking, in the request's queue order, skipping paused
    /// queues. Returns the deliveries and the names of the queues found paused.
    public func fetchReady(_ request: FetchRequest, consumer: String) async throws -> FetchResult {
        var request = request
        // A limit of 0 takes nothing (and `XREADGROUP COUNT 0` would take everything).
        request.queues.removeAll { $0.limit <= 0 }
        guard !request.queues.isEmpty, request.total > 0 else { return FetchResult(deliveries: [], paused: [], emptyQueues: [:]) }
        if redis.isCluster && request.queues.count > 1 {
            return try await fetchReadyQueueByQueue(request, consumer: consumer)
        }
        if request.queues.count == 1, !pausedQueues.withLockedValue({ $0.contains(request.queues[0].name) }),
            let result = try await fetchReadyFromOneQueue(request, consumer: consumer)
        {
            return result
        }
        let result = try await fetchReadyWithScript(request, consumer: consumer)
        pausedQueues.withLockedValue { paused in
            for queue in request.queues {
                if result.paused.contains(queue.name) { paused.insert(queue.name) } else { paused.remove(queue.name) }
            }
        }
        return result
    }

    /// On a Redis Cluster each queue lives in a slot of its own, and no command or script may
    /// span two: the queues are read one after the other, in order, until the request is met.
    private func fetchReadyQueueByQueue(_ request: FetchRequest, consumer: String) async throws -> FetchResult {
        var result = FetchResult(deliveries: [], paused: [], emptyQueues: [:])
        for queue in request.queues {
            let remaining = request.total - result.deliveries.count
            guard remaining > 0 else { break }
            let one: FetchResult
            do {
                one = try await fetchReady(
                    FetchRequest(queues: [(queue.name, min(queue.limit, remaining))], total: remaining), consumer: consumer)
            } catch let error as RedisError where error.code == .unreachable || error.code == .connectionClosed || error.code == .timeout {
                // Its master is down: the other queues' masters may not be.
                result.unavailable[queue.name] = error
                continue
            }
            result.deliveries += one.deliveries
            result.paused.formUnion(one.paused)
            result.emptyQueues.merge(one.emptyQueues) { _, new in new }
        }
        if result.unavailable.count == request.queues.count, let error = result.unavailable.values.first { throw error }
        return result
    }

    /// One queue needs no script to keep an order between queues: a pipelined `EXISTS` of the
    /// pause flag and `XREADGROUP` spare Redis the script's copy of every entry into Lua and back
    /// (profiled: about 60 µs of Redis CPU per call for ten entries). A queue paused since the
    /// last fetch has its entries handed back at once, unrun. Returns `nil` when the script must
    /// answer: the group is missing (the script creates it) or the queue is empty (the script
    /// reports where to wait).
    private func fetchReadyFromOneQueue(_ request: FetchRequest, consumer: String) async throws -> FetchResult? {
        let queue = request.queues[0].name
        let keys = keys(queue)
        let replies = try await redis.pipeline([
            .command(RedisCommand("EXISTS", [.string(keys.paused)])),
            .command(
                RedisCommand(
                    "XREADGROUP",
                    [
                        "GROUP", "workers", .string(consumer), "COUNT", .int(min(request.total, request.queues[0].limit)), "STREAMS",
                        .string(keys.stream), ">",
                    ])),
        ])
        guard replies.count == 2 else { throw RedisError.unexpected(.array(replies), command: "XREADGROUP") }
        if case .error(let message) = replies[1] {
            if message.hasPrefix("NOGROUP") { return nil }
            throw RedisError.server(message, command: "XREADGROUP")
        }
        guard let perStream = replies[1].array, let entries = perStream.first?.array?.last?.array else { return nil }
        var deliveries: [Delivery] = []
        Self.decode(entries: entries, queue: queue, into: &deliveries)
        if replies[0].int == 1 {
            // Paused since the last fetch: nothing taken may run. Later fetches use the script.
            pausedQueues.withLockedValue { _ = $0.insert(queue) }
            try await handBack(queue: queue, entryIDs: deliveries.map(\.entryID), consumer: consumer)
            return FetchResult(deliveries: [], paused: [queue], emptyQueues: [:])
        }
        return FetchResult(deliveries: deliveries, paused: [], emptyQueues: [:])
    }

    private func fetchReadyWithScript(_ request: FetchRequest, consumer: String) async throws -> FetchResult {
        let scriptKeys = request.queues.map { self.keys($0.name).stream } + request.queues.map { self.keys($0.name).paused }
        let reply = try await redis.run(
            QueueScripts.fetch, keys: scriptKeys,
            arguments: [.string(consumer)] + request.queues.map { .int($0.limit) } + [.int(request.total)])
        guard let parts = reply.array, parts.count == 3, let flags = parts[0].array, let groups = parts[1].array,
            let lastIDs = parts[2].array
        else {
            throw RedisError.unexpected(reply, command: "EVALSHA fetch")
        }
        var paused = Set<String>()
        for (index, flag) in flags.enumerated() where flag.int == 1 && index < request.queues.count {
            paused.insert(request.queues[index].name)
        }
        var deliveries: [Delivery] = []
        for group in groups {
            guard let pair = group.array, pair.count == 2, let index = pair[0].int, index >= 1,
                index <= request.queues.count, let entries = pair[1].array
            else { throw RedisError.unexpected(group, command: "EVALSHA fetch") }
            Self.decode(entries: entries, queue: request.queues[index - 1].name, into: &deliveries)
        }
        var emptyQueues: [String: String] = [:]
        for (index, lastID) in lastIDs.enumerated() where index < request.queues.count {
            if let id = lastID.string, !id.isEmpty { emptyQueues[request.queues[index].name] = id }
        }
        return FetchResult(deliveries: deliveries, paused: paused, emptyQueues: emptyQueues)
    }

    /// Blocks up to `block` until an entry newer than the given id arrives in any of the given
    /// queues (`XREAD … BLOCK` on a dedicated connection). It takes nothing: the caller then
    /// fetches with ``fetchReady(_:consumer:)``, which honours priorities, limits and pauses.
    /// Returns whether something arrived. On a Redis Cluster, where one read cannot span queues,
    /// use ``waitForEntries(after:block:reader:)``.
    @discardableResult
    public func waitForEntries(
        after positions: [(queue: String, id: String)], block: Duration, connection: RedisConnection
    ) async throws -> Bool {
        guard !positions.isEmpty else { return false }
        if redis.isCluster && positions.count > 1 {
            throw RedisError(
                code: .invalidConfiguration, command: "XREAD",
                message: "one blocking read cannot span queues on a Redis Cluster; use waitForEntries(after:block:reader:)")
        }
        let blockMilliseconds = max(1, Int(Self.milliseconds(block)))
        let command = RedisCommand(
            "XREAD",
            ["COUNT", "1", "BLOCK", .int(blockMilliseconds), "STREAMS"] + positions.map { .string(keys($0.queue).stream) }
                + positions.map { .string($0.id) })
        let reply = try await connection.send(
            command, timeout: .milliseconds(Int64(blockMilliseconds)) + connection.configuration.commandTimeout)
        return !reply.isNull
    }

    /// Blocks like ``waitForEntries(after:block:connection:)``, on the reader's connections:
    /// on a Redis Cluster one read per queue (each on the master serving it, all at once); the
    /// first to see an entry ends the others.
    @discardableResult
    public func waitForEntries(after positions: [(queue: String, id: String)], block: Duration, reader: BlockingReader) async throws -> Bool
    {
        try await !reader.read(after: positions.map { (keys($0.queue).stream, $0.id) }, count: 1, block: block).isEmpty
    }

    /// Waits up to `block` for entries on any of `queues` with `XREADGROUP … BLOCK` on a
    /// dedicated connection, taking at most `count` from each. Creates missing consumer groups.
    /// On a Redis Cluster each queue has a slot of its own and no command may span two, so
    /// this takes one queue there, and `connection` must reach its master
    /// (``RedisClient/makeDedicatedConnection(forKey:)`` with the queue's stream key).
    public func fetchBlocking(
        queues: [String], count: Int, block: Duration, consumer: String, connection: RedisConnection
    ) async throws -> [Delivery] {
        guard !queues.isEmpty, count > 0 else { return [] }
        if redis.isCluster && queues.count > 1 {
            throw RedisError(
                code: .invalidConfiguration, command: "XREADGROUP",
                message:
                    "one blocking read cannot span queues on a Redis Cluster (each queue has a slot of its own); use fetchReady and waitForEntries(after:block:reader:)"
            )
        }
        let streams = queues.map { keys($0).stream }
        let command = RedisCommand(
            "XREADGROUP",
            ["GROUP", "workers", .string(consumer), "COUNT", .int(count)]
                + (Self.milliseconds(block) > 0 ? ["BLOCK", .int(Int(Self.milliseconds(block)))] : []) + ["STREAMS"]
                + streams.map { .string($0) } + streams.map { _ in ">" })
        let timeout = TimeAmount.milliseconds(Self.milliseconds(block)) + connection.configuration.commandTimeout
        var reply = try await connection.sendRaw(command, timeout: timeout)
        if case .error(let message) = reply, message.hasPrefix("NOGROUP") {
            // The stream or its group vanished (FLUSHALL, a Redis without persistence restarted).
            let create = streams.map { RedisCommand("XGROUP", ["CREATE", .string($0), "workers", "0", "MKSTREAM"]) }
            try Self.checkRegistration(try await connection.pipeline(create))
            reply = try await connection.sendRaw(command, timeout: timeout)
        }
        if case .error(let message) = reply { throw RedisError.server(message, command: "XREADGROUP") }
        guard let perStream = reply.array else { return [] }
        var deliveries: [Delivery] = []
        for item in perStream {
            guard let pair = item.array, pair.count == 2, let stream = pair[0].string, let entries = pair[1].array,
                let index = streams.firstIndex(of: stream)
            else { throw RedisError.unexpected(item, command: "XREADGROUP") }
            Self.decode(entries: entries, queue: queues[index], into: &deliveries)
        }
        return deliveries
    }

    static func decode(entries: [RESPValue], queue: String, into deliveries: inout [Delivery]) {
        for entry in entries {
            guard let pair = entry.array, pair.count == 2, let entryID = pair[0].string else { continue }
            let flat = pair[1].array ?? []
            guard let fields = [String: ByteBuffer](flatReply: flat) else {
                deliveries.append(
                    .malformed(
                        MalformedEntry(
                            queue: queue, entryID: entryID, fields: [:], reason: "malformed job entry: fields are not name/value pairs")))
                continue
            }
            do {
                let envelope = try JobEnvelope(fields: fields, queue: queue, fallbackID: entryID)
                deliveries.append(.job(FetchedJob(entryID: entryID, envelope: envelope)))
            } catch {
                deliveries.append(
                    .malformed(
                        MalformedEntry(
                            queue: queue, entryID: entryID, fields: fields.mapValues { String(buffer: $0) },
                            reason: error.message)))
            }
        }
    }
}
