import ArgumentParser
import Foundation
import NIOCore
import Queue

/// Enqueue `noop` jobs as fast as possible: one call per job from many concurrent callers, or
/// in batches (one round trip per batch).
///
/// `--queues N` spreads the jobs evenly over N queues (on a Redis Cluster, over the masters: each
/// caller's calls and each batch take the queues in turn), and Redis's CPU is read on each master.
/// `--durable` waits for a replica to confirm every enqueue (`replicasToConfirm: 1`).
struct EnqueueScenario: AsyncParsableCommand {
    static let configuration = CommandConfiguration(commandName: "enqueue", abstract: "Enqueue rate, one call per job or batched.")

    @OptionGroup var options: BenchOptions
    @Option(help: "Jobs to enqueue.") var jobs = 100_000
    @Option(help: "Concurrent callers, each enqueueing one job per call.") var callers = 50
    @Option(help: "Enqueue in batches of this size instead of one job per call.") var batch: Int?
    @Option(help: "Queues the jobs are spread over evenly (on a cluster, over the masters).") var queues = 1
    @Flag(help: "Durable enqueues: each waits until a replica confirmed it (WAIT 1).") var durable = false

    func run() async throws {
        let queue = try BenchSupport.makeQueue(options, replicasToConfirm: durable ? 1 : 0)
        try await BenchSupport.reset(queue)
        let names = try await BenchSupport.queueNames(queues, base: "bench-enqueue", redis: queue.redis)
        let nodes = try await BenchSupport.redisNodes(serving: names, redis: queue.redis)
        try await queue.prepare(queues: names)
        let payload = ByteBuffer(string: "{}")
        let before = try await BenchSupport.RedisCounters.read(queue.redis, nodes: nodes)
        let clock = ContinuousClock()
        let start = clock.now
        if let batch {
            var remaining = jobs
            let requests = names.map { EnqueueRequest(type: "noop", queue: $0, payload: payload) }
            while remaining > 0 {
                let count = min(batch, remaining)
                try await queue.enqueue(batch: (0..<count).map { requests[$0 % requests.count] })
                remaining -= count
            }
        } else {
            let perCaller = jobs / callers
            let extra = jobs % callers
            try await withThrowingTaskGroup(of: Void.self) { group in
                for caller in 0..<callers {
                    let count = perCaller + (caller < extra ? 1 : 0)
                    group.addTask {
                        for index in 0..<count {
                            try await queue.enqueue(type: "noop", queue: names[(caller + index) % names.count], payload: payload)
                        }
                    }
                }
                try await group.waitForAll()
            }
        }
        let elapsed = clock.now - start
        let after = try await BenchSupport.RedisCounters.read(queue.redis, nodes: nodes)
        let length = try await BenchSupport.streamLength(queue, names)
        guard length == jobs else {
            throw ValidationError("expected \(jobs) jobs in the streams, found \(length)")
        }
        let seconds = Double(elapsed.components.seconds) + Double(elapsed.components.attoseconds) / 1e18
        BenchSupport.emit(
            batch == nil ? "enqueue_single" : "enqueue_batch",
            [
                ("n", "\(jobs)"), (batch == nil ? "callers" : "batch", "\(batch ?? callers)"), ("queues", "\(queues)"),
                ("durable", durable ? "1" : "0"), ("jobs_per_s", BenchSupport.format(Double(jobs) / seconds, decimals: 0)),
            ] + BenchSupport.RedisCounters.fields(before, after, jobs: jobs) + [("redis", options.mode)])
        try await BenchSupport.reset(queue)
        await queue.redis.close()
    }
}
