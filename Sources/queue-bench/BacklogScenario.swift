import ArgumentParser
import Foundation
import NIOCore
import Queue

/// What a backlog costs Redis: N `noop` jobs queued and none running, Redis's `used_memory`
/// before and after, per job.
struct BacklogScenario: AsyncParsableCommand {
    static let configuration = CommandConfiguration(commandName: "backlog", abstract: "Redis memory per queued job.")

    @OptionGroup var options: BenchOptions
    @Option(help: "Jobs to queue.") var jobs = 1_000_000

    func run() async throws {
        let queue = try BenchSupport.makeQueue(options)
        try await BenchSupport.reset(queue)
        let name = "bench-backlog"
        try await queue.prepare(queues: [name])
        let before = try await Self.usedMemory(queue)
        try await BenchSupport.enqueueNoops(jobs, queue: name, on: queue)
        let after = try await Self.usedMemory(queue)
        BenchSupport.emit(
            "backlog",
            [
                ("n", "\(jobs)"), ("redis_bytes_per_job", BenchSupport.format(Double(after - before) / Double(jobs), decimals: 1)),
                ("redis_used_mb", BenchSupport.format(Double(after) / 1_048_576)), ("redis", options.mode),
            ])
        try await BenchSupport.reset(queue)
        await queue.redis.close()
    }

    /// `used_memory` from `INFO memory`, in bytes.
    static func usedMemory(_ queue: JobQueue) async throws -> Int {
        let info = try await queue.redis.send("INFO", ["memory"]).string ?? ""
        for line in info.split(whereSeparator: \.isNewline) where line.hasPrefix("used_memory:") {
            if let bytes = Int(line.dropFirst("used_memory:".count).trimmingCharacters(in: .whitespaces)) { return bytes }
        }
        throw BenchError("INFO memory has no used_memory")
    }
}
