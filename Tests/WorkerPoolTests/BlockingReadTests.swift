import Foundation
import HarrowTestSupport
import Queue
import Testing
import WorkerPool

/// Jobs that reach an idle worker while it waits in its blocking read must be held to the same
/// rules as any other: per-queue concurrency limits, pauses, and never more jobs taken than free
/// slots. (These tests found the worker's first design, which took jobs with
/// `XREADGROUP … BLOCK`, breaking all three; it now only waits with `XREAD … BLOCK` and then
/// fetches with the script that honours them.)
///
/// Every test here first waits until the worker sits in its blocking read (a warm-up job, then a
/// long block timeout and no jobs), then adds jobs, several at once in one MULTI/EXEC so that the
/// read receives them in one reply.
@Suite struct BlockingReadTests {
    static let longBlock = Duration.seconds(10)

    @Test func jobsArrivingDuringABlockingReadRunAndAreAcknowledged() async throws {
        try await TestRedis.withJobQueue("wp-blocked") { queue in
            let recorder = RunRecorder()
            var registry = JobRegistry()
            try registry.registerNap(recorder)
            try await withWorker(
                queue: queue, registry: registry, options: .fast(.strict("naps"), blockTimeout: Self.longBlock)
            ) { worker in
                try await queue.waitUntilBlocked(worker, queue: "naps", recorder: recorder)
                let ids = (0..<5).map { _ in JobID.make() }
                try await queue.addAtomically("naps", try ids.map { try JobEnvelope.fields(of: Nap(ms: 1), queue: "naps", id: $0) })
                try await eventually("all ran") { Set(recorder.runs.map(\.id)).isSuperset(of: ids) }
                try await queue.waitUntilDrained("naps")
            }
            #expect(recorder.count == 6)
        }
    }

    @Test func aQueuesConcurrencyLimitHoldsForJobsFromTheBlockingRead() async throws {
        try await TestRedis.withJobQueue("wp-blocked-limit") { queue in
            let recorder = RunRecorder()
            var registry = JobRegistry()
            try registry.registerNap(recorder)
            let selection = QueueSelection(entries: [QueueSelection.Entry(name: "naps", concurrencyLimit: 2)], weighted: false)
            try await withWorker(
                queue: queue, registry: registry, options: .fast(selection, concurrency: 10, blockTimeout: Self.longBlock)
            ) { worker in
                try await queue.waitUntilBlocked(worker, queue: "naps", recorder: recorder)
                try await queue.addAtomically(
                    "naps", try (0..<8).map { _ in try JobEnvelope.fields(of: Nap(ms: 200), queue: "naps") })
                try await eventually("all ran", timeout: .seconds(15)) { recorder.count == 1 + 8 }
                try await queue.waitUntilDrained("naps")
            }
            #expect(recorder.maxRunning(queue: "naps") <= 2)
        }
    }

    /// A queue paused while the worker waits on it delivers nothing.
    @Test func aQueuePausedDuringTheBlockingReadDeliversNothing() async throws {
        try await TestRedis.withJobQueue("wp-blocked-pause") { queue in
            let recorder = RunRecorder()
            var registry = JobRegistry()
            try registry.registerNap(recorder)
            try await withWorker(
                queue: queue, registry: registry, options: .fast(.strict("naps"), blockTimeout: Self.longBlock)
            ) { worker in
                try await queue.waitUntilBlocked(worker, queue: "naps", recorder: recorder)
                try await queue.pause(queue: "naps")
                let id = try await queue.enqueue(Nap(ms: 1)).id
                try await Task.sleep(for: .milliseconds(500))
                #expect(recorder.runs(id: id).isEmpty)
                try await queue.resume(queue: "naps")
                try await eventually("ran after resume", timeout: .seconds(15)) { recorder.runs(id: id).count == 1 }
            }
        }
    }

    /// Two jobs land at once while the only slot is free: the worker takes one; the other stays
    /// in the stream (not held by the worker, so its short visibility timeout cannot expire) and
    /// runs once, after the first.
    @Test
    func aJobArrivingWhileNoSlotIsFreeIsTakenOnlyOnce() async throws {
        try await TestRedis.withJobQueue("wp-blocked-overflow") { queue in
            let recorder = RunRecorder()
            var registry = JobRegistry()
            try registry.registerNap(recorder)
            try await withWorker(
                queue: queue, registry: registry,
                options: .fast(.strict("long", "short"), concurrency: 1, blockTimeout: Self.longBlock)
            ) { worker in
                try await queue.waitUntilBlocked(worker, queue: "long", recorder: recorder)
                let long = try JobEnvelope.fields(of: Nap(ms: 2500), queue: "long")
                let shortID = JobID.make()
                // A visibility timeout shorter than the long job: harmless while the job waits in
                // the stream, and refreshed by heartbeats while it runs.
                let short = try JobEnvelope.fields(of: Nap(ms: 1), queue: "short", id: shortID, visibility: 1000)
                let both = [
                    RedisCommand("XADD", [.string(queue.keys("long").stream), "*"] + long),
                    RedisCommand("XADD", [.string(queue.keys("short").stream), "*"] + short),
                ]
                // On a cluster the two queues' slots may not share a transaction: one pipeline,
                // sent to both masters at once.
                let commands = TestRedis.isCluster ? both : [RedisCommand("MULTI")] + both + [RedisCommand("EXEC")]
                _ = try await queue.redis.pipeline(commands)
                try await eventually("both ran", timeout: .seconds(15)) {
                    recorder.runs(queue: "short").count >= 1 && recorder.runs(queue: "long").count == 2
                }
                try await queue.waitUntilDrained("long")
                try await queue.waitUntilDrained("short")
                // Time for a second, redelivered run to happen if it is going to.
                try await Task.sleep(for: .milliseconds(500))
                #expect(recorder.runs(id: shortID).count == 1, "runs: \(recorder.runs.map { "\($0.queue)#\($0.attempt)" })")
            }
        }
    }
}
