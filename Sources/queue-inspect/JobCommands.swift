import ArgumentParser
import Foundation
import NIOCore
import Queue

struct Jobs: AsyncParsableCommand {
    static let configuration = CommandConfiguration(abstract: "List a queue's ready jobs (or pending or delayed ones).")

    @OptionGroup var global: GlobalOptions
    @Argument var queue: String
    @Flag(help: "Delayed jobs (scheduled and retries), soonest first.") var delayed = false
    @Flag(help: "Pending jobs: delivered to a worker, not yet acknowledged.") var pending = false
    @Option(help: "Most jobs to list.") var limit = 50

    func validate() throws {
        guard !(delayed && pending) else { throw ValidationError("--delayed and --pending exclude each other") }
        guard limit >= 1 else { throw ValidationError("--limit must be at least 1") }
    }

    func run() async throws {
        try await InspectContext.run(global) { context in
            try await context.requireKnown(queue)
            let jobs: [JobSummary]
            if delayed {
                jobs = try await context.queue.delayedJobs(queue: queue, limit: limit)
            } else if pending {
                jobs = try await context.queue.pendingJobs(queue: queue, limit: limit)
            } else {
                jobs = try await context.queue.readyJobs(queue: queue, limit: limit)
            }
            if global.json {
                context.printJSON(jobs.map(\.jsonObject))
                return
            }
            printTable(
                ["ID", "TYPE", "ATTEMPT", "STATE", "DETAIL", "PAYLOAD"],
                jobs.map { job in
                    let detail: String
                    switch job.state {
                    case .delayed: detail = "runs at " + formatTime(job.runAt ?? 0)
                    case .pending: detail = "\(job.consumer ?? "?") idle \(formatMilliseconds(job.idleMilliseconds))"
                    default: detail = "enqueued " + formatTime(Int64(job.fields["enqueued_at"] ?? "") ?? 0)
                    }
                    return [
                        job.id, job.type, job.fields["attempt"] ?? "1", job.state.rawValue, detail,
                        String((job.fields["payload"] ?? "").prefix(60)),
                    ]
                })
        }
    }
}

struct Show: AsyncParsableCommand {
    static let configuration = CommandConfiguration(abstract: "Show one job, wherever it is: ready, pending, delayed or dead.")

    @OptionGroup var global: GlobalOptions
    @Argument var queue: String
    @Argument var id: String

    func run() async throws {
        try await InspectContext.run(global) { context in
            try await context.requireKnown(queue)
            guard let job = try await context.queue.find(queue: queue, id: id) else {
                InspectContext.fail("no job \(id) in queue \(queue)")
            }
            if global.json {
                context.printJSON(job.jsonObject)
                return
            }
            print("state: \(job.state.rawValue)")
            for (key, value) in job.fields.sorted(by: { $0.key < $1.key }) { print("\(key): \(value)") }
            if let entryID = job.entryID { print("entry_id: \(entryID)") }
            if let runAt = job.runAt { print("run_at: \(formatTime(runAt))") }
            if let consumer = job.consumer { print("worker: \(consumer)") }
            if let idle = job.idleMilliseconds { print("idle: \(formatMilliseconds(idle))") }
            if let dead = job.deadLetter {
                print("error: \(dead.error)")
                print("failed_at: \(formatTime(dead.failedAt))")
                print("failed_on: \(dead.worker)")
            }
        }
    }
}

struct Enqueue: AsyncParsableCommand {
    static let configuration = CommandConfiguration(abstract: "Enqueue a job: queue-inspect enqueue default noop '{}'.")

    @OptionGroup var global: GlobalOptions
    @Argument var queue: String
    @Argument var type: String
    @Argument(help: "The payload, a JSON value.") var payload: String
    @Option(help: "Run after this many seconds.") var delay: Double?
    @Option(help: "Unique key: while a job with this key exists, enqueueing another returns its id.") var unique: String?
    @Option(help: "Total runs allowed before the job is dead-lettered (default: the type's, as its workers know it).")
    var maxAttempts: Int?

    func validate() throws {
        do {
            try QueueName.validate(queue)
        } catch {
            throw ValidationError("\(error)")
        }
        guard (try? JSONSerialization.jsonObject(with: Data(payload.utf8), options: [.fragmentsAllowed])) != nil else {
            throw ValidationError("the payload is not valid JSON")
        }
        if let delay { guard delay >= 0 else { throw ValidationError("--delay must not be negative") } }
        if let maxAttempts { guard maxAttempts >= 1 else { throw ValidationError("--max-attempts must be at least 1") } }
        guard !type.isEmpty else { throw ValidationError("the job type must not be empty") }
    }

    func run() async throws {
        try await InspectContext.run(global) { context in
            var options = EnqueueOptions(maxAttempts: maxAttempts, uniqueKey: unique)
            // A delay, not a time of this machine's clock: Redis's clock decides when it is due.
            if let delay { options.delay = .milliseconds(Int64(delay * 1000)) }
            let result = try await context.queue.enqueue(type: type, queue: queue, payload: ByteBuffer(string: payload), options: options)
            if global.json {
                context.printJSON(["id": result.id, "enqueued": result.enqueued])
            } else if result.enqueued {
                print(result.id)
            } else {
                print("\(result.id) (already enqueued with unique key \(unique ?? ""))")
            }
        }
    }
}

struct Delete: AsyncParsableCommand {
    static let configuration = CommandConfiguration(abstract: "Delete a waiting or delayed job (not a running one).")

    @OptionGroup var global: GlobalOptions
    @Argument var queue: String
    @Argument var id: String

    func run() async throws {
        try await InspectContext.run(global) { context in
            try await context.requireKnown(queue)
            try await context.queue.delete(queue: queue, id: id)
            if global.json { context.printJSON(["deleted": id]) } else { print("deleted \(id)") }
        }
    }
}

extension JobSummary {
    var jsonObject: [String: Any] {
        var object: [String: Any] = ["state": state.rawValue, "fields": fields]
        if let entryID { object["entry_id"] = entryID }
        if let runAt { object["run_at"] = runAt }
        if let consumer { object["worker"] = consumer }
        if let idleMilliseconds { object["idle_ms"] = idleMilliseconds }
        if let deadLetter {
            object["error"] = deadLetter.error
            object["failed_at"] = deadLetter.failedAt
            object["failed_on"] = deadLetter.worker
        }
        return object
    }
}
