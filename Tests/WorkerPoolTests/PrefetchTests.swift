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
            // Long enough that the first is still running when the stop comes, on a loaded
            // machine too (300 ms was not: it ended first and the next one started).
            let ids = try await queue.enqueue(batch: Array(repeating: Nap(ms: 1500), count: 4)).map(\.id)
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

    // MARK: Automatic prefetch

    /// Short jobs: once their pace is known the worker holds more than its slots (one round trip
    /// brings many), and every job still runs once within the concurrency.
    @Test func automaticPrefetchFetchesAheadOfShortJobs() async throws {
        try await TestRedis.withJobQueue("wp-prefetch-auto") { queue in
            let recorder = RunRecorder()
            var registry = JobRegistry()
            try registry.registerNap(recorder)
            let ids = try await queue.enqueue(batch: Array(repeating: Nap(ms: 1), count: 400)).map(\.id)
            var options = Worker.Options.fast(.strict("naps"), concurrency: 2)
            options.prefetch = nil
            let held = Locked(0)
            try await withWorker(queue: queue, registry: registry, options: options) { worker in
                try await eventually("all ran", timeout: .seconds(30), poll: .milliseconds(5)) {
                    let pending = try await queue.pendingEntryIDs(queue: "naps", consumer: worker.id).count
                    held.withLock { $0 = max($0, pending) }
                    return recorder.count >= 400
                }
                try await queue.waitUntilDrained("naps")
            }
            #expect(held.value > 2, "the worker held at most \(held.value) jobs: it never fetched ahead")
            #expect(recorder.count == 400 && Set(recorder.runs.map(\.id)) == Set(ids))
            #expect(recorder.maxRunning <= 2)
        }
    }

    /// Jobs prefetched behind a job that runs long go back to the stream once every slot has
    /// stayed busy past the stall limit, and another worker runs them meanwhile.
    @Test func automaticPrefetchHandsBackJobsStuckBehindALongOne() async throws {
        try await TestRedis.withJobQueue("wp-prefetch-stall") { queue in
            let recorder = RunRecorder()
            var registry = JobRegistry()
            try registry.registerNap(recorder)
            var options = Worker.Options.fast(.strict("naps"), concurrency: 1)
            options.prefetch = nil
            options.prefetchStall = .milliseconds(300)
            try await withWorker(queue: queue, registry: registry, options: options) { first in
                // Its pace: short jobs, so it will fetch ahead.
                try await queue.enqueue(batch: Array(repeating: Nap(ms: 1), count: 30))
                try await eventually("warmed up") { recorder.count == 30 }
                _ = try await queue.enqueue(Nap(ms: 4000))
                try await eventually("the long one runs") { recorder.running == 1 }
                try await queue.enqueue(batch: Array(repeating: Nap(ms: 1), count: 20))
                // Fetched ahead behind the long job (the window is deep for 1 ms jobs), then
                // handed back: the first worker holds only its running job again.
                try await eventually("handed back", timeout: .seconds(3), poll: .milliseconds(20)) {
                    let held = try await queue.pendingEntryIDs(queue: "naps", consumer: first.id).count
                    let ready = try await queue.stats("naps").ready
                    return held == 1 && ready == 20
                }
                // A second worker runs them while the long one still runs on the first.
                var second = Worker.Options.fast(.strict("naps"), concurrency: 4)
                second.prefetch = 0
                try await withWorker(queue: queue, registry: registry, options: second) { _ in
                    // Runs are counted as they start: 30, the long one, and these 20.
                    try await eventually("the others ran", timeout: .seconds(10)) { recorder.count == 51 && recorder.running == 1 }
                }
                #expect(recorder.running == 1, "the long job still runs")
                try await eventually("the long one ended", timeout: .seconds(10)) { recorder.running == 0 }
            }
            #expect(try await queue.stats("naps").pending == 0)
        }
    }

    /// The stream runs dry right after one fetch took long jobs for every slot and short ones
    /// behind them: the short ones still go back once the slots stay busy (the fetch loop used to
    /// block on Redis instead, which a finished job never woke, and kept them for good).
    @Test func automaticPrefetchHandsBackWhenTheStreamRunsDry() async throws {
        try await TestRedis.withJobQueue("wp-prefetch-dry") { queue in
            let recorder = RunRecorder()
            var registry = JobRegistry()
            try registry.registerNap(recorder)
            var options = Worker.Options.fast(.strict("naps"), concurrency: 2)
            options.prefetch = nil
            options.prefetchStall = .milliseconds(300)
            try await withWorker(queue: queue, registry: registry, options: options) { worker in
                try await queue.enqueue(batch: Array(repeating: Nap(ms: 1), count: 30))
                try await eventually("warmed up") { recorder.count == 30 && recorder.running == 0 }
                // One batch, so one fetch takes all six: two long ones start, four wait.
                try await queue.enqueue(batch: [Nap(ms: 3000), Nap(ms: 3000)] + Array(repeating: Nap(ms: 1), count: 4))
                try await eventually("handed back", timeout: .seconds(2), poll: .milliseconds(20)) {
                    let held = try await queue.pendingEntryIDs(queue: "naps", consumer: worker.id).count
                    let ready = try await queue.stats("naps").ready
                    return held == 2 && ready == 4 && recorder.running == 2
                }
                try await eventually("all ran", timeout: .seconds(10)) { recorder.count == 36 && recorder.running == 0 }
            }
        }
    }
}
