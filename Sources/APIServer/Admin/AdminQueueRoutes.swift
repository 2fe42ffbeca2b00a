import Foundation
import HTTPTypes
import Hummingbird
import PostgresNIO
import Queue
import Store

/// Queue administration for platform admins, the same operations as `queue-inspect`: stats,
/// job listings, dead letters (list, retry, purge), pause and resume. Everyone else gets 404.
struct AdminQueueRoutes: Sendable {
    let jobQueue: JobQueue
    let database: PostgresClient
    let configuration: APIConfiguration

    struct QueueView: ResponseEncodable {
        var queue: String
        var ready: Int
        var pending: Int
        var delayed: Int
        var dead: Int
        var consumers: Int
        var oldestReadyAgeMs: Int?
        var paused: Bool

        init(_ stats: QueueStats) {
            queue = stats.queue
            ready = stats.ready
            pending = stats.pending
            delayed = stats.delayed
            dead = stats.dead
            consumers = stats.consumers
            oldestReadyAgeMs = stats.oldestReadyAgeMilliseconds
            paused = stats.paused
        }
    }

    struct Overview: ResponseEncodable {
        var queues: [QueueView]
        var outbox: Outbox.Stats
    }

    struct JobView: Encodable, Sendable {
        var id: String
        var state: String
        var fields: [String: String]
        var runAt: Int64?
        var consumer: String?
        var idleMs: Int?
    }

    struct DeadView: Encodable, Sendable {
        var id: String
        var fields: [String: String]
        var error: String
        var failedAt: Int64
        var worker: String
    }

    struct Listing<Item: Encodable & Sendable>: ResponseEncodable {
        var items: [Item]
    }

    struct RetryBody: RequestBody {
        static let fields: Set<String> = ["id", "all"]
        var id: String?
        var all: Bool?
    }

    struct Count: ResponseEncodable {
        var count: Int
    }

    /// A live worker: where it runs, what it reads, how many jobs at once, its last heartbeat.
    struct WorkerView: Encodable, Sendable {
        var id: String
        var host: String
        var pid: Int
        var queues: [String]
        var concurrency: Int
        var startedAt: Int64
        var lastSeen: Int64
    }

    /// One queue's last hour, minute by minute (`nil` where no worker sampled it).
    struct ThroughputView: Encodable, Sendable {
        var queue: String
        var minutes: [ThroughputMinute]
    }

    func addRoutes(to router: some RouterMethods<APIContext>) {
        router.get("admin/throughput") { _, context -> Listing<ThroughputView> in
            try Self.requireAdmin(context)
            let queues = try await jobQueue.knownQueues()
            let minutes = try await jobQueue.throughput(queues: queues)
            return Listing(items: queues.map { ThroughputView(queue: $0, minutes: minutes[$0] ?? []) })
        }
        router.get("admin/workers") { _, context -> Listing<WorkerView> in
            try Self.requireAdmin(context)
            return Listing(
                items: try await jobQueue.liveWorkers().map {
                    WorkerView(
                        id: $0.id, host: $0.host, pid: $0.pid, queues: $0.queues, concurrency: $0.concurrency, startedAt: $0.startedAt,
                        lastSeen: $0.lastSeen)
                })
        }
        let admin = router.group("admin/queues")
        admin.get { _, context -> Overview in
            try Self.requireAdmin(context)
            let stats = try await jobQueue.stats(queues: try await jobQueue.knownQueues())
            return Overview(queues: stats.map(QueueView.init), outbox: try await Outbox.stats(client: database, logger: context.logger))
        }
        admin.get(":queue") { _, context -> QueueView in
            let queue = try await known(context)
            return QueueView(try await jobQueue.stats(queues: [queue])[0])
        }
        admin.get(":queue/jobs") { request, context -> Listing<JobView> in
            let queue = try await known(context)
            let limit = try Self.limit(request)
            let jobs: [JobSummary]
            switch request.uri.queryParameters["state"].map(String.init) ?? "ready" {
            case "ready": jobs = try await jobQueue.readyJobs(queue: queue, limit: limit)
            case "pending": jobs = try await jobQueue.pendingJobs(queue: queue, limit: limit)
            case "delayed": jobs = try await jobQueue.delayedJobs(queue: queue, limit: limit)
            default: throw Problem.invalid([Problem.FieldError(field: "state", message: "must be ready, pending or delayed")])
            }
            return Listing(
                items: jobs.map {
                    JobView(
                        id: $0.id, state: "\($0.state)", fields: $0.fields, runAt: $0.runAt, consumer: $0.consumer,
                        idleMs: $0.idleMilliseconds)
                })
        }
        admin.get(":queue/dead") { request, context -> Listing<DeadView> in
            let queue = try await known(context)
            let offset = Int(request.uri.queryParameters["offset"] ?? "0") ?? 0
            let dead = try await jobQueue.deadLetters(queue: queue, offset: max(0, offset), limit: try Self.limit(request))
            return Listing(
                items: dead.map {
                    DeadView(id: $0.fields["id"] ?? "", fields: $0.fields, error: $0.error, failedAt: $0.failedAt, worker: $0.worker)
                })
        }
        admin.post(":queue/dead/retry") { request, context -> Count in
            let queue = try await known(context)
            let body = try await request.json(RetryBody.self, limit: configuration.bodyLimit)
            switch (body.id, body.all) {
            case (let id?, nil), (let id?, false?):
                guard try await jobQueue.retryDead(queue: queue, id: id) else { throw Problem.notFound("no dead letter \(id) in \(queue)") }
                return Count(count: 1)
            case (nil, true?):
                return Count(count: try await jobQueue.retryAllDead(queue: queue))
            default:
                throw Problem.invalid([Problem.FieldError(field: "id", message: "give either an id or \"all\": true")])
            }
        }
        admin.delete(":queue/dead") { _, context -> Count in
            let queue = try await known(context)
            return Count(count: try await jobQueue.purgeDead(queue: queue))
        }
        admin.post(":queue/pause") { _, context -> QueueView in
            let queue = try await known(context)
            try await jobQueue.pause(queue: queue)
            return QueueView(try await jobQueue.stats(queues: [queue])[0])
        }
        admin.post(":queue/resume") { _, context -> QueueView in
            let queue = try await known(context)
            try await jobQueue.resume(queue: queue)
            return QueueView(try await jobQueue.stats(queues: [queue])[0])
        }
    }

    /// Admins only; anyone else learns nothing (404).
    /// Admin routes do not exist for anyone else, anonymous or not: 404 alike.
    static func requireAdmin(_ context: APIContext) throws {
        guard context.identity?.user.isAdmin == true else { throw Problem.notFound() }
    }

    /// The path's queue, when the caller is an admin and Redis knows it.
    func known(_ context: APIContext) async throws -> String {
        try Self.requireAdmin(context)
        let queue = try context.parameters.require("queue")
        guard try await jobQueue.knownQueues().contains(queue) else { throw Problem.notFound("no queue \(queue)") }
        return queue
    }

    static func limit(_ request: Request) throws -> Int {
        guard let text = request.uri.queryParameters["limit"] else { return 50 }
        guard let limit = Int(text), (1...1000).contains(limit) else {
            throw Problem.invalid([Problem.FieldError(field: "limit", message: "must be 1 to 1000")])
        }
        return limit
    }
}
