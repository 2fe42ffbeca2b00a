import Foundation
import HarrowTestSupport
import Queue
import Testing
import WorkerPool

/// How many jobs run at once, and that each runs once.
@Suite struct ConcurrencyTests {
    @Test func neverMoreHandlersAtOnceThanTheConcurrency() async throws {
        try await TestRedis.withJobQueue("wp-concurrency") { queue in
            let recorder = RunRecorder()
            var registry = JobRegistry()
            try registry.registerNap(recorder)
            let ids = try await queue.enqueue(batch: Array(repeating: Nap(ms: 300), count: 20)).map(\.id)
            try await withWorker(queue: queue, registry: registry, options: .fast(.strict("naps"), concurrency: 5)) { _ in
                try await eventually("all ran") { recorder.count == 20 }
                try await queue.waitUntilDrained("naps")
            }
            #expect(Set(recorder.runs.map(\.id)) == Set(ids))
            #expect(recorder.maxRunning <= 5)
            // Five at once did happen: the limit is a limit, not a serialisation.
            #expect(recorder.maxRunning == 5)
        }
    }

    @Test func aQueuesConcurrencyLimitIsHonoured() async throws {
        try await TestRedis.withJobQueue("wp-queue-limit") { queue in
            let recorder = RunRecorder()
            var registry = JobRegistry()
            try registry.registerNap(recorder)
            let selection = QueueSelection(
                entries: [QueueSelection.Entry(name: "limited", concurrencyLimit: 2), QueueSelection.Entry(name: "free")],
                weighted: false)
            try await queue.enqueue(batch: Array(repeating: Nap(ms: 300), count: 10), queue: "limited")
            try await queue.enqueue(batch: Array(repeating: Nap(ms: 300), count: 10), queue: "free")
            try await withWorker(queue: queue, registry: registry, options: .fast(selection, concurrency: 10)) { _ in
                try await eventually("all ran", timeout: .seconds(20)) { recorder.count == 20 }
                try await queue.waitUntilDrained("limited")
                try await queue.waitUntilDrained("free")
            }
            #expect(recorder.maxRunning(queue: "limited") <= 2)
            #expect(recorder.maxRunning(queue: "limited") == 2)
            // The other queue is not held to the limit.
            #expect(recorder.maxRunning(queue: "free") > 2)
            #expect(recorder.maxRunning <= 10)
        }
    }

    @Test func twoWorkersRunEveryJobExactlyOnce() async throws {
        try await TestRedis.withJobQueue("wp-two-workers") { queue in
            var registry = JobRegistry()
            try registry.registerDiagnosticJobs()
            let record = queue.recordKey("noop")
            let first = RecordingMiddleware()
            let second = RecordingMiddleware()
            let selection = QueueSelection.strict("default")
            try await withWorker(
                queue: queue, registry: registry, options: .fast(selection, concurrency: 10),
                middleware: [LoggingMiddleware(), MetricsMiddleware(), first]
            ) { one in
                try await withWorker(
                    queue: queue, registry: registry, options: .fast(selection, concurrency: 10),
                    middleware: [LoggingMiddleware(), MetricsMiddleware(), second]
                ) { two in
                    // Both are registered (and so reading) before the jobs arrive, so both get some.
                    try await eventually("both workers live") {
                        Set(try await queue.liveWorkers().map(\.id)).isSuperset(of: [one.id, two.id])
                    }
                    let ids = try await queue.enqueue(batch: Array(repeating: NoopJob(record: record), count: 500)).map(\.id)
                    #expect(Set(ids).count == 500)
                    try await eventually("every job recorded", timeout: .seconds(30)) { try await queue.cardinality(record) == 500 }
                    try await queue.waitUntilDrained("default")
                }
            }
            let runs = first.recorder.runs + second.recorder.runs
            var perJob: [String: Int] = [:]
            for run in runs { perJob[run.id, default: 0] += 1 }
            #expect(perJob.count == 500)
            #expect(perJob.values.allSatisfy { $0 == 1 }, "jobs that ran more than once: \(perJob.filter { $0.value > 1 }.keys.sorted())")
            #expect(first.recorder.count > 0)
            #expect(second.recorder.count > 0)
            #expect(first.recorder.maxRunning <= 10 && second.recorder.maxRunning <= 10)
            #expect((first.outcomeKinds + second.outcomeKinds).allSatisfy { $0 == "succeeded" })
            #expect(try await queue.stats("default").dead == 0)
        }
    }
}
