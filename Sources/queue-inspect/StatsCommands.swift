import ArgumentParser
import Foundation
import Queue
import Store

struct Stats: AsyncParsableCommand {
    static let configuration = CommandConfiguration(abstract: "Ready, pending, delayed and dead jobs per queue.")

    @OptionGroup var global: GlobalOptions
    @Argument(help: "Queues to show; all known queues when none is given.")
    var queues: [String] = []

    func run() async throws {
        try await InspectContext.run(global) { context in
            var names = queues
            if names.isEmpty {
                names = try await context.queue.knownQueues()
            } else {
                for name in names { try await context.requireKnown(name) }
            }
            let stats = try await context.queue.stats(queues: names)
            if global.json {
                context.printJSON(
                    stats.map { s -> [String: Any] in
                        [
                            "queue": s.queue, "ready": s.ready, "pending": s.pending, "delayed": s.delayed, "dead": s.dead,
                            "consumers": s.consumers, "oldest_ready_age_ms": s.oldestReadyAgeMilliseconds.map { $0 as Any } ?? NSNull(),
                            "paused": s.paused,
                        ]
                    })
                return
            }
            printTable(
                ["QUEUE", "READY", "PENDING", "DELAYED", "DEAD", "CONSUMERS", "OLDEST", "PAUSED"],
                stats.map {
                    [
                        $0.queue, "\($0.ready)", "\($0.pending)", "\($0.delayed)", "\($0.dead)", "\($0.consumers)",
                        formatMilliseconds($0.oldestReadyAgeMilliseconds), $0.paused ? "yes" : "no",
                    ]
                })
            if let outbox = try await context.outboxStats() {
                print("")
                print(OutboxCommand.line(outbox))
            }
        }
    }
}

struct OutboxCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "outbox", abstract: "Jobs waiting in the Postgres outbox (needs DATABASE_URL).")

    @OptionGroup var global: GlobalOptions

    func run() async throws {
        try await InspectContext.run(global) { context in
            guard let outbox = try await context.outboxStats() else {
                throw ValidationError("no database: set DATABASE_URL or --database-url")
            }
            if global.json {
                context.printJSON(
                    [
                        "depth": outbox.depth, "oldest_age_ms": outbox.oldestAgeMilliseconds.map { $0 as Any } ?? NSNull(),
                        "failed": outbox.failed,
                    ] as [String: Any])
            } else {
                print(Self.line(outbox))
            }
        }
    }

    static func line(_ outbox: Outbox.Stats) -> String {
        "outbox: \(outbox.depth) waiting, oldest \(formatMilliseconds(outbox.oldestAgeMilliseconds)), \(outbox.failed) set aside"
    }
}

struct Queues: AsyncParsableCommand {
    static let configuration = CommandConfiguration(abstract: "List the known queues.")

    @OptionGroup var global: GlobalOptions

    func run() async throws {
        try await InspectContext.run(global) { context in
            let names = try await context.queue.knownQueues()
            if global.json {
                context.printJSON(names)
            } else {
                names.forEach { print($0) }
            }
        }
    }
}

struct Workers: AsyncParsableCommand {
    static let configuration = CommandConfiguration(abstract: "List live workers (heartbeat within each worker's own --dead-worker-after).")

    @OptionGroup var global: GlobalOptions

    func run() async throws {
        try await InspectContext.run(global) { context in
            let workers = try await context.queue.liveWorkers()
            if global.json {
                context.printJSON(
                    workers.map {
                        [
                            "id": $0.id, "host": $0.host, "pid": $0.pid, "queues": $0.queues, "concurrency": $0.concurrency,
                            "started_at": $0.startedAt, "last_seen": $0.lastSeen,
                            "dead_after_ms": JobQueue.milliseconds($0.deadAfter),
                        ] as [String: Any]
                    })
                return
            }
            printTable(
                ["WORKER", "HOST", "PID", "QUEUES", "CONCURRENCY", "STARTED", "LAST SEEN"],
                workers.map {
                    [
                        $0.id, $0.host, "\($0.pid)", $0.queues.joined(separator: ","), "\($0.concurrency)", formatTime($0.startedAt),
                        formatTime($0.lastSeen),
                    ]
                })
        }
    }
}
