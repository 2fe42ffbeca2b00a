import ArgumentParser
import Queue

struct Dead: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Dead-lettered jobs: list, retry, purge.", subcommands: [List.self, Retry.self, Purge.self])

    struct List: AsyncParsableCommand {
        static let configuration = CommandConfiguration(commandName: "ls", abstract: "List dead jobs, newest first.")

        @OptionGroup var global: GlobalOptions
        @Argument var queue: String
        @Option(help: "Most jobs to list.") var limit = 50

        func run() async throws {
            try await InspectContext.run(global) { context in
                try await context.requireKnown(queue)
                let letters = try await context.queue.deadLetters(queue: queue, limit: max(1, limit))
                if global.json {
                    context.printJSON(
                        letters.map {
                            ["fields": $0.fields, "error": $0.error, "failed_at": $0.failedAt, "failed_on": $0.worker] as [String: Any]
                        })
                    return
                }
                printTable(
                    ["ID", "TYPE", "ATTEMPT", "FAILED AT", "WORKER", "ERROR"],
                    letters.map { [$0.id, $0.type, "\($0.attempt)", formatTime($0.failedAt), $0.worker, String($0.error.prefix(100))] })
            }
        }
    }

    struct Retry: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Put dead jobs back into the queue with a fresh attempt count.")

        @OptionGroup var global: GlobalOptions
        @Argument var queue: String
        @Argument(help: "The job id; or --all.") var id: String?
        @Flag(help: "Retry every dead job of the queue.") var all = false

        func validate() throws {
            if id != nil && all { throw ValidationError("give a job id or --all, not both") }
            if id == nil && !all { throw ValidationError("give a job id or --all") }
        }

        func run() async throws {
            try await InspectContext.run(global) { context in
                try await context.requireKnown(queue)
                if all {
                    let count = try await context.queue.retryAllDead(queue: queue)
                    if global.json { context.printJSON(["retried": count]) } else { print("retried \(count) jobs") }
                } else if let id {
                    guard try await context.queue.retryDead(queue: queue, id: id) else {
                        InspectContext.fail("no dead job \(id) in queue \(queue)")
                    }
                    if global.json { context.printJSON(["retried": 1]) } else { print("retried \(id)") }
                }
            }
        }
    }

    struct Purge: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Delete every dead job of a queue.")

        @OptionGroup var global: GlobalOptions
        @Argument var queue: String

        func run() async throws {
            try await InspectContext.run(global) { context in
                try await context.requireKnown(queue)
                let count = try await context.queue.purgeDead(queue: queue)
                if global.json { context.printJSON(["purged": count]) } else { print("purged \(count) jobs") }
            }
        }
    }
}

struct Pause: AsyncParsableCommand {
    static let configuration = CommandConfiguration(abstract: "Stop workers from taking jobs from a queue.")

    @OptionGroup var global: GlobalOptions
    @Argument var queue: String

    func run() async throws {
        try await InspectContext.run(global) { context in
            try await context.requireKnown(queue)
            try await context.queue.pause(queue: queue)
            if global.json { context.printJSON(["paused": queue]) } else { print("paused \(queue)") }
        }
    }
}

struct Resume: AsyncParsableCommand {
    static let configuration = CommandConfiguration(abstract: "Let workers take jobs from a paused queue again.")

    @OptionGroup var global: GlobalOptions
    @Argument var queue: String

    func run() async throws {
        try await InspectContext.run(global) { context in
            try await context.requireKnown(queue)
            try await context.queue.resume(queue: queue)
            if global.json { context.printJSON(["resumed": queue]) } else { print("resumed \(queue)") }
        }
    }
}
