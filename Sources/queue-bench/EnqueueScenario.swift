import ArgumentParser
import Foundation
import NIOCore
import Queue

/// Enqueue `noop` jobs as fast as possible: one call per job from many concurrent callers, or
/// in batches (one round trip per batch).
struct EnqueueScenario: AsyncParsableCommand {
    static let configuration = CommandConfiguration(commandName: "enqueue", abstract: "Enqueue rate, one call per job or batched.")

    @OptionGroup var options: BenchOptions
    @Option(help: "Jobs to enqueue.") var jobs = 100_000
    @Option(help: "Concurrent callers, each enqueueing one job per call.") var callers = 50
    @Option(help: "Enqueue in batches of this size instead of one job per call.") var batch: Int?

    func run() async throws {
        let queue = try BenchSupport.makeQueue(options)
        try await BenchSupport.reset(queue)
        let name = "bench-enqueue"
        try await queue.prepare(queues: [name])
        let payload = ByteBuffer(string: "{}")
        let before = try await BenchSupport.RedisCounters.read(queue.redis)
        let clock = ContinuousClock()
        let start = clock.now
        if let batch {
            var remaining = jobs
            let request = EnqueueRequest(type: "noop", queue: name, payload: payload)
            while remaining > 0 {
                let count = min(batch, remaining)
                try await queue.enqueue(batch: Array(repeating: request, count: count))
                remaining -= count
            }
        } else {
            let perCaller = jobs / callers
            let extra = jobs % callers
            try await withThrowingTaskGroup(of: Void.self) { group in
                for caller in 0..<callers {
                    let count = perCaller + (caller < extra ? 1 : 0)
                    group.addTask {
                        for _ in 0..<count {
                            try await queue.enqueue(type: "noop", queue: name, payload: payload)
                        }
                    }
                }
                try await group.waitForAll()
            }
        }
        let elapsed = clock.now - start
        let after = try await BenchSupport.RedisCounters.read(queue.redis)
        let length = try await queue.redis.send("XLEN", [.string(queue.keys(name).stream)]).int ?? 0
        guard length == jobs else {
            throw ValidationError("expected \(jobs) jobs in the stream, found \(length)")
        }
        let seconds = Double(elapsed.components.seconds) + Double(elapsed.components.attoseconds) / 1e18
        BenchSupport.emit(
            batch == nil ? "enqueue_single" : "enqueue_batch",
            [
                ("n", "\(jobs)"), (batch == nil ? "callers" : "batch", "\(batch ?? callers)"),
                ("jobs_per_s", BenchSupport.format(Double(jobs) / seconds, decimals: 0)),
                ("redis_cpu_us_per_job", BenchSupport.format((after.cpuMicroseconds - before.cpuMicroseconds) / Double(jobs), decimals: 2)),
                ("redis_cmds_per_job", BenchSupport.format(Double(after.commands - before.commands) / Double(jobs), decimals: 3)),
                ("redis", options.mode),
            ])
        try await BenchSupport.reset(queue)
        await queue.redis.close()
    }
}
