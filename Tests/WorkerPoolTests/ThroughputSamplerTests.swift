import Foundation
import HarrowTestSupport
import Queue
import Testing
import WorkerPool

/// The sampler loop every worker may host: it records each queue's throughput for dashboards.
@Suite struct ThroughputSamplerTests {
    @Test func aRunningWorkerSamplesTheQueuesItServes() async throws {
        try await TestRedis.withJobQueue("wp-sampler") { queue in
            var registry = JobRegistry()
            try registry.register(Greeting.self) { _, _ in }
            try await withWorker(queue: queue, registry: registry, options: .fast(.strict("greetings"))) { _ in
                // A first reading of the queue the worker made, then three jobs after it.
                try await eventually("a first sample", timeout: .seconds(30), poll: .milliseconds(100)) {
                    try await queue.redis.send("ZCARD", [.string(queue.keys("greetings").throughput)]).int ?? 0 > 0
                }
                _ = try await queue.enqueue(batch: (1...3).map { Greeting(name: "n\($0)") })
                try await queue.waitUntilDrained("greetings")
                // The sampler's turns come every few seconds; the three jobs show in one of them.
                try await eventually("a sample counts the three jobs", timeout: .seconds(30), poll: .milliseconds(200)) {
                    let minutes = try await queue.throughput(queues: ["greetings"], minutes: 2)["greetings"] ?? []
                    let finished = minutes.compactMap(\.finished).reduce(0, +)
                    let added = minutes.compactMap(\.added).reduce(0, +)
                    return finished == 3 && added == 3
                }
            }
        }
    }
}
