import Foundation
import HarrowTestSupport
import Metrics
import MetricsTestKit
import Queue
import Testing
import WorkerPool

/// Middleware around handlers, and the metrics middleware's figures.
@Suite struct MiddlewareTests {
    /// Appends what it sees to a shared log, tagged with its name and the run's attempt.
    struct Tracing: JobMiddleware {
        let name: String
        let log: Locked<[String]>

        func run(_ context: JobContext, next: @Sendable (JobContext) async throws -> Void) async throws {
            log.withLock { $0.append("\(name).before#\(context.attempt)") }
            do {
                try await next(context)
            } catch {
                log.withLock { $0.append("\(name).threw#\(context.attempt)") }
                throw error
            }
            log.withLock { $0.append("\(name).after#\(context.attempt)") }
        }

        func finished(_ context: JobContext, outcome: JobOutcome, duration: Duration) {
            log.withLock { $0.append("\(name).finished#\(context.attempt):\(outcome.kind)") }
        }
    }

    struct FailsOnce: Job {
        static let name = "fails-once"
        static let queue = "traced"
        static var retryPolicy: RetryPolicy { RetryPolicy(maxAttempts: 3, backoff: .constant(.milliseconds(20))) }
    }

    @Test func middlewareWrapsEveryRunOutermostFirst() async throws {
        try await TestRedis.withJobQueue("wp-middleware") { queue in
            let log = Locked<[String]>([])
            var registry = JobRegistry()
            try registry.register(FailsOnce.self) { _, context in
                log.withLock { $0.append("handler#\(context.attempt)") }
                if context.attempt == 1 { throw TestFailure("first run fails") }
            }
            try await queue.enqueue(FailsOnce())
            let middleware: [any JobMiddleware] = [Tracing(name: "outer", log: log), Tracing(name: "inner", log: log)]
            try await withWorker(
                queue: queue, registry: registry, options: .fast(.strict("traced")), middleware: middleware
            ) { _ in
                try await eventually("two runs finished") { log.value.filter { $0.contains("finished") }.count == 4 }
                try await queue.waitUntilDrained("traced")
            }
            #expect(
                log.value == [
                    "outer.before#1", "inner.before#1", "handler#1", "inner.threw#1", "outer.threw#1",
                    "outer.finished#1:retried", "inner.finished#1:retried",
                    "outer.before#2", "inner.before#2", "handler#2", "inner.after#2", "outer.after#2",
                    "outer.finished#2:succeeded", "inner.finished#2:succeeded",
                ])
        }
    }

    /// Refuses to call the handler: the run fails as if the handler had thrown.
    struct Gatekeeper: JobMiddleware {
        func run(_ context: JobContext, next: @Sendable (JobContext) async throws -> Void) async throws {
            throw JobFailure.permanent("refused by middleware")
        }
    }

    @Test func middlewareCanStopARun() async throws {
        try await TestRedis.withJobQueue("wp-middleware-stop") { queue in
            let recorder = RunRecorder()
            var registry = JobRegistry()
            try registry.register(Greeting.self) { _, context in recorder.record(context) }
            let id = try await queue.enqueue(Greeting(name: "never")).id
            let recording = RecordingMiddleware()
            try await withWorker(
                queue: queue, registry: registry, options: .fast(.strict("greetings")), middleware: [recording, Gatekeeper()]
            ) { _ in
                try await eventually("dead") { try await queue.stats("greetings").dead == 1 }
            }
            #expect(recorder.count == 0)
            #expect(recording.recorder.runs.map(\.id) == [id])
            #expect(recording.outcomeKinds == ["dead"])
            #expect(try await queue.deadLetters(queue: "greetings").first?.error == "refused by middleware")
        }
    }

    struct Outcome: Job {
        static let name = "metered"
        static let queue = "metered"
        static var retryPolicy: RetryPolicy { RetryPolicy(maxAttempts: 2, backoff: .constant(.milliseconds(20))) }
        /// `ok`, `flaky` (fails on attempt 1) or `poison` (always fails).
        var behaviour: String
    }

    struct Other: Job {
        static let name = "metered-other"
        static let queue = "metered"
    }

    /// Every metrics assertion lives here; the factory is bound task-locally to this test's
    /// worker, so other tests' workers never touch it.
    @Test func metricsMiddlewareCountsOutcomesByQueueAndType() async throws {
        try await TestRedis.withJobQueue("wp-metrics") { queue in
            let metrics = TestMetrics()
            var registry = JobRegistry()
            try registry.register(Outcome.self) { job, context in
                switch job.behaviour {
                case "flaky" where context.attempt == 1: throw TestFailure("flaky")
                case "poison": throw TestFailure("poison")
                default: break
                }
            }
            try registry.register(Other.self) { _, _ in }
            try await queue.enqueue(batch: ["ok", "ok", "flaky", "poison"].map { Outcome(behaviour: $0) })
            try await queue.enqueue(Other())
            try await withMetricsFactory(metrics) {
                try await withWorker(
                    queue: queue, registry: registry, options: .fast(.strict("metered")), middleware: [MetricsMiddleware()]
                ) { _ in
                    try await eventually("settled") {
                        let stats = try await queue.stats("metered")
                        return stats.dead == 1 && stats.ready == 0 && stats.pending == 0 && stats.delayed == 0
                    }
                    // `finished` runs right after the outcome is recorded in Redis.
                    try await eventually("counted") {
                        metrics.counterTotal(label: "harrow_jobs_processed_total", dimensions: [("queue", "metered")]) == 4
                    }
                }
            }
            let metered = [("queue", "metered"), ("type", "metered")]
            let other = [("queue", "metered"), ("type", "metered-other")]
            #expect(metrics.counterTotal(label: "harrow_jobs_processed_total", dimensions: metered) == 3)
            #expect(metrics.counterTotal(label: "harrow_jobs_processed_total", dimensions: other) == 1)
            #expect(metrics.counterTotal(label: "harrow_jobs_retried_total", dimensions: metered) == 2)
            #expect(metrics.counterTotal(label: "harrow_jobs_dead_total", dimensions: metered) == 1)
            #expect(metrics.counterTotal(label: "harrow_jobs_failed_total", dimensions: metered) == 3)
            #expect(metrics.counterTotal(label: "harrow_jobs_retried_total", dimensions: other) == 0)
            #expect(metrics.counterTotal(label: "harrow_jobs_dead_total", dimensions: other) == 0)
            // One duration per run (4 jobs, 2 of them twice) and one queue time per run.
            let durations = try metrics.expectTimer("harrow_job_duration_seconds", metered)
            #expect(durations.values.count == 6)
            let queueTimes = try metrics.expectTimer("harrow_job_queue_time_seconds", metered)
            #expect(queueTimes.values.count == 6)
            #expect(queueTimes.values.allSatisfy { $0 >= 0 })
            #expect(try metrics.expectTimer("harrow_job_duration_seconds", other).values.count == 1)
        }
    }
}
