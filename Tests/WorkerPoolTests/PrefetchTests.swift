import HarrowTestSupport
import Queue
import Testing
import WorkerPool

/// A worker that fetches jobs ahead of its free slots (`Worker.Options.prefetch`).
@Suite struct PrefetchTests {
    @Test func prefetchedJobsEachRunOnceWithinTheConcurrency() async throws {
        try await TestRedis.withJobQueue("wp-prefetch-all") { queue in
            let recorder = RunRecorder()
            var registry = JobRegistry()
            try registry.registerNap(recorder)
            let ids = try await queue.enqueue(batch: Array(repeating: Nap(ms: 2), count: 300)).map(\.id)
            try await withWorker(queue: queue, registry: registry, options: .fast(.strict("naps"), concurrency: 4, prefetch: 8)) { _ in
                try await eventually("all ran", timeout: .seconds(20)) { recorder.count >= 300 }
                try await queue.waitUntilDrained("naps")
            }
            #expect(recorder.count == 300)
            #expect(Set(recorder.runs.map(\.id)) == Set(ids))
            #expect(recorder.maxRunning <= 4)
            let stats = try await queue.stats("naps")
            #expect(stats.ready == 0 && stats.pending == 0 && stats.dead == 0)
        }
    }

    @Test func aQueuesConcurrencyLimitHoldsWithPrefetch() async throws {
        try await TestRedis.withJobQueue("wp-prefetch-limit") { queue in
            let recorder = RunRecorder()
            var registry = JobRegistry()
            try registry.registerNap(recorder)
            let selection = QueueSelection(
                entries: [QueueSelection.Entry(name: "limited", concurrencyLimit: 2), QueueSelection.Entry(name: "free")], weighted: false)
            try await queue.enqueue(batch: Array(repeating: Nap(ms: 200), count: 10), queue: "limited")
            try await queue.enqueue(batch: Array(repeating: Nap(ms: 200), count: 10), queue: "free")
            try await withWorker(queue: queue, registry: registry, options: .fast(selection, concurrency: 6, prefetch: 10)) { _ in
                try await eventually("all ran", timeout: .seconds(20)) { recorder.count == 20 }
                try await queue.waitUntilDrained("limited")
                try await queue.waitUntilDrained("free")
            }
            #expect(recorder.maxRunning <= 6)
            #expect(recorder.maxRunning(queue: "limited") == 2)
            #expect(recorder.maxRunning(queue: "free") > 2)
        }
    }

    /// Prefetched jobs that never started go back to the stream as they were at shutdown.
    @Test func prefetchedJobsAreHandedBackAtShutdown() async throws {
        try await TestRedis.withJobQueue("wp-prefetch-hand-back") { queue in
            let recorder = RunRecorder()
            var registry = JobRegistry()
            try registry.registerNap(recorder)
            let ids = try await queue.enqueue(batch: Array(repeating: Nap(ms: 300), count: 4)).map(\.id)
            let options = Worker.Options.fast(.strict("naps"), concurrency: 1, prefetch: 3)
            try await withWorker(queue: queue, registry: registry, options: options) { worker in
                try await eventually("one runs, three wait in the worker") {
                    let stats = try await queue.stats("naps")
                    return recorder.running == 1 && stats.pending == 4 && stats.ready == 0
                }
                try await worker.stop()
            }
            // The running one finished; the three that waited did not start.
            #expect(recorder.count == 1)
            let stats = try await queue.stats("naps")
            #expect(stats.ready == 3 && stats.pending == 0 && stats.dead == 0)
            let ready = try await queue.readyJobs(queue: "naps")
            #expect(Set(ready.map(\.id)) == Set(ids).subtracting(recorder.runs.map(\.id)))
            #expect(ready.allSatisfy { $0.fields["attempt"] == "1" })
        }
    }

    /// Jobs waiting in the worker longer than their visibility timeout are heartbeated like
    /// running ones, so the reclaimer does not hand them to anyone else meanwhile.
    @Test func prefetchedJobsAreKeptFromTheReclaimerByHeartbeats() async throws {
        try await TestRedis.withJobQueue("wp-prefetch-heartbeat") { queue in
            let recorder = RunRecorder()
            var registry = JobRegistry()
            try registry.registerNap(recorder)
            var ids: [String] = []
            for _ in 0..<3 {
                ids.append(try await queue.enqueue(Nap(ms: 1500), options: EnqueueOptions(visibilityTimeout: .seconds(1))).id)
            }
            let options = Worker.Options.fast(.strict("naps"), concurrency: 1, prefetch: 2)
            try await withWorker(queue: queue, registry: registry, options: options) { _ in
                try await eventually("all ran", timeout: .seconds(20)) { recorder.count >= 3 && recorder.running == 0 }
                try await queue.waitUntilDrained("naps")
            }
            #expect(recorder.runs.map(\.id).sorted() == ids.sorted())
            #expect(recorder.runs.allSatisfy { $0.attempt == 1 })
        }
    }
}
