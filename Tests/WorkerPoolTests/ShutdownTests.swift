import Foundation
import HarrowTestSupport
import Queue
import Testing
import WorkerPool

/// Graceful shutdown of a worker running in this process.
@Suite struct ShutdownTests {
    @Test func runningJobsFinishWithinTheShutdownTimeout() async throws {
        try await TestRedis.withJobQueue("wp-drain") { queue in
            var registry = JobRegistry()
            try registry.registerDiagnosticJobs()
            let record = queue.recordKey("slept")
            let recording = RecordingMiddleware()
            let ids = try await queue.enqueue(batch: Array(repeating: SleepJob(ms: 1000, record: record), count: 10)).map(\.id)
            let options = Worker.Options.fast(.strict("default"), concurrency: 10, shutdownTimeout: .seconds(5))
            let workerID = try await withWorker(queue: queue, registry: registry, options: options, middleware: [recording]) { worker in
                try await eventually("all ten running") { recording.recorder.running == 10 }
                try await worker.stop()
                return worker.id
            }
            #expect(recording.recorder.count == 10)
            #expect(recording.outcomeKinds == Array(repeating: "succeeded", count: 10))
            #expect(try await queue.cardinality(record) == 10)
            let stats = try await queue.stats("default")
            #expect(stats.ready == 0 && stats.pending == 0 && stats.delayed == 0 && stats.dead == 0)
            #expect(Set(recording.recorder.runs.map(\.id)) == Set(ids))
            #expect(try await queue.liveWorkers().contains { $0.id == workerID } == false)
            #expect(try await queue.consumers(queue: "default").contains { $0.name == workerID } == false)
        }
    }

    @Test func jobsStillRunningAtTheShutdownTimeoutAreHandedBack() async throws {
        try await TestRedis.withJobQueue("wp-hand-back") { queue in
            var registry = JobRegistry()
            try registry.registerDiagnosticJobs()
            let record = queue.recordKey("slept")
            let recording = RecordingMiddleware()
            let ids = try await queue.enqueue(batch: Array(repeating: SleepJob(ms: 10_000, record: record), count: 10)).map(\.id)
            let options = Worker.Options.fast(.strict("default"), concurrency: 10, shutdownTimeout: .milliseconds(200))
            let workerID = try await withWorker(queue: queue, registry: registry, options: options, middleware: [recording]) { worker in
                try await eventually("all ten running") { recording.recorder.running == 10 }
                #expect(try await queue.liveWorkers().contains { $0.id == worker.id })
                // The jobs would take 10 s; the worker stops long before.
                try await worker.stop(within: .seconds(9))
                return worker.id
            }
            #expect(recording.recorder.running == 0)
            #expect(recording.outcomeKinds == Array(repeating: "handedBack", count: 10))
            #expect(try await queue.cardinality(record) == 0)
            let stats = try await queue.stats("default")
            #expect(stats.ready == 10)
            #expect(stats.pending == 0)
            #expect(stats.delayed == 0 && stats.dead == 0)
            // Back as they were: same jobs, attempt not counted.
            let ready = try await queue.readyJobs(queue: "default")
            #expect(Set(ready.map(\.id)) == Set(ids))
            #expect(ready.allSatisfy { $0.fields["attempt"] == "1" })
            #expect(try await queue.liveWorkers().contains { $0.id == workerID } == false)
            #expect(try await queue.consumers(queue: "default").contains { $0.name == workerID } == false)
        }
    }

    @Test func handedBackJobsRunOnTheNextWorker() async throws {
        try await TestRedis.withJobQueue("wp-hand-back-rerun") { queue in
            let recorder = RunRecorder()
            var registry = JobRegistry()
            try registry.register(Nap.self) { job, context in
                try await recorder.track(context) {
                    // Long the first time round, short once handed back.
                    let ms = recorder.runs(id: context.id).count == 1 ? job.ms : 1
                    try await Task.sleep(for: .milliseconds(ms))
                }
            }
            let ids = try await queue.enqueue(batch: Array(repeating: Nap(ms: 10_000), count: 3)).map(\.id)
            try await withWorker(
                queue: queue, registry: registry, options: .fast(.strict("naps"), shutdownTimeout: .milliseconds(100))
            ) { worker in
                try await eventually("all three running") { recorder.running == 3 }
                try await worker.stop(within: .seconds(9))
            }
            try await withWorker(queue: queue, registry: registry, options: .fast(.strict("naps"))) { _ in
                try await eventually("all ran again") { recorder.count == 6 }
                try await queue.waitUntilDrained("naps")
            }
            for id in ids {
                #expect(recorder.runs(id: id).map(\.attempt) == [1, 1])
            }
            #expect(try await queue.stats("naps").dead == 0)
        }
    }

    /// Cancelling the worker's task (as a `ServiceGroup` does to every service when another one
    /// ends or fails) interrupts running jobs: they are handed back, not failed.
    @Test func cancellingTheWorkersTaskHandsRunningJobsBack() async throws {
        try await TestRedis.withJobQueue("wp-cancel") { queue in
            let recording = RecordingMiddleware()
            var registry = JobRegistry()
            try registry.register(Nap.self) { job, _ in try await Task.sleep(for: .milliseconds(job.ms)) }
            let ids = try await queue.enqueue(batch: Array(repeating: Nap(ms: 10_000), count: 3), options: EnqueueOptions(maxAttempts: 1))
                .map(\.id)
            let worker = Worker(
                queue: queue, registry: registry, options: .fast(.strict("naps")), middleware: [recording],
                logger: TestRedis.logger("harrow.test.worker"))
            let task = Task { try await worker.run() }
            try await eventually("all three running") { recording.recorder.running == 3 }
            task.cancel()
            try await withDeadline(.seconds(10), "worker stops once cancelled") { try await task.value }

            let stats = try await queue.stats("naps")
            #expect(stats.pending == 0)
            #expect(try await queue.liveWorkers().contains { $0.id == worker.options.workerID } == false)
            let ready = try await queue.readyJobs(queue: "naps")
            #expect(recording.outcomeKinds == ["handedBack", "handedBack", "handedBack"])
            #expect(stats.dead == 0)
            #expect(stats.ready == 3)
            #expect(Set(ready.map(\.id)) == Set(ids))
        }
    }
}
