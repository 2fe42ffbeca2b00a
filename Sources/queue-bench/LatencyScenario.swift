import ArgumentParser
import Foundation
import NIOCore
import Queue

/// Jobs enqueued at a steady rate to an idle worker: how long from the enqueue call to the
/// handler's start (p50, p95, p99, max).
struct LatencyScenario: AsyncParsableCommand {
    static let configuration = CommandConfiguration(commandName: "latency", abstract: "Enqueue-to-start latency at a steady rate.")

    @OptionGroup var options: BenchOptions
    @Option(help: "Jobs per second.") var rate = 1000
    @Option(help: "Seconds to run.") var seconds = 10.0
    @Option(help: "Concurrency of the worker.") var concurrency = 50

    func run() async throws {
        let queue = try BenchSupport.makeQueue(options)
        try await BenchSupport.reset(queue)
        let name = "bench-latency"
        try await queue.prepare(queues: [name])
        let processes = try WorkerProcesses(count: 1, queue: name, concurrency: concurrency, options: options)
        let total = Int(Double(rate) * seconds)
        let clock = ContinuousClock()
        let start = clock.now
        var sent = 0
        // Every millisecond, enqueue the jobs due by then, each stamped just before the call.
        while sent < total {
            let due = min(total, Int(Double(rate) * (clock.now - start).seconds) + 1)
            if due > sent {
                let now = BenchSupport.wallNanoseconds()
                let requests = (sent..<due).map { _ in
                    EnqueueRequest(type: "probe", queue: name, payload: ByteBuffer(string: "{\"t\":\(now)}"))
                }
                try await queue.enqueue(batch: requests)
                sent = due
            }
            try await Task.sleep(until: start + .milliseconds(Int64((Double(sent) / Double(rate)) * 1000)), clock: clock)
        }
        try await BenchSupport.waitUntilEmpty(queue, [name])
        let report = try processes.stop()[0]
        let latencies = report.latenciesNanoseconds
        guard latencies.count >= total else { throw BenchError("the worker saw \(latencies.count) of \(total) probes") }
        func percentile(_ p: Double) -> String {
            let index = min(latencies.count - 1, Int((Double(latencies.count) * p).rounded(.up)) - 1)
            return BenchSupport.format(Double(latencies[max(0, index)]) / 1e6, decimals: 3)
        }
        BenchSupport.emit(
            "latency",
            [
                ("rate", "\(rate)"), ("n", "\(total)"), ("p50_ms", percentile(0.50)), ("p95_ms", percentile(0.95)),
                ("p99_ms", percentile(0.99)), ("max_ms", BenchSupport.format(Double(latencies.last ?? 0) / 1e6, decimals: 3)),
                ("redis", options.mode),
            ])
        try await BenchSupport.reset(queue)
        await queue.redis.close()
    }
}

extension Duration {
    var seconds: Double {
        Double(components.seconds) + Double(components.attoseconds) / 1e18
    }
}
