import Foundation
import HarrowTestSupport
import NIOCore
import NIOPosix
import Queue
import ServiceLifecycleTestKit
import Testing
import WorkerPool

/// The worker's promises on every path (issue 12): each test reproduces a defect a review found
/// and failed before its fix.
@Suite struct WorkerPromiseTests {
    /// Runs for `ms` and gets a long visibility timeout from its type, not from its envelope.
    struct Patient: Job {
        static let name = "patient"
        static let queue = "patience"
        static var visibilityTimeout: Duration? { .seconds(30) }
        var ms: Int
    }

    /// Always fails; two attempts allowed by its type.
    struct Doomed: Job {
        static let name = "doomed"
        static let queue = "doom"
        static var retryPolicy: RetryPolicy { RetryPolicy(maxAttempts: 2, backoff: .constant(.milliseconds(50))) }
    }

    /// Ignores cancellation: runs its full `ms` whatever happens.
    struct Stubborn: Job {
        static let name = "stubborn"
        static let queue = "stubborn"
        var ms: Int
    }

    /// Waits `duration` without honouring cancellation.
    static func sleepIgnoringCancellation(_ duration: Duration) async {
        // In a task of its own, which the job's cancellation does not reach. (A loop of
        // cancelled sleeps would spin without ever suspending, and hold the worker's event
        // loop, which no real handler that waits does.)
        await Task { try? await Task.sleep(for: duration) }.value
    }

    /// Holds its thread for `ms` without ever suspending: a handler that breaks the rules.
    struct Spinner: Job {
        static let name = "spinner"
        static let queue = "spin"
        var ms: Int
    }

    // MARK: A handler that blocks its thread

    /// Review of the executor change: the worker's heartbeats shared the jobs' event loop, so a
    /// handler that blocked it stopped them, and after `deadWorkerAfter` the reclaimer would run
    /// its job a second time. Heartbeats now have a thread and a connection of their own.
    @Test func aHandlerThatBlocksItsThreadDoesNotStopTheHeartbeats() async throws {
        try await TestRedis.withJobQueue("wp-spin") { queue in
            let recorder = RunRecorder()
            var registry = JobRegistry()
            try registry.register(Spinner.self) { job, context in
                await recorder.track(context) {
                    let end = ContinuousClock.now + .milliseconds(job.ms)
                    while ContinuousClock.now < end {}
                }
            }
            // Watched over a connection on a thread of its own, which the spin cannot hold.
            let group = MultiThreadedEventLoopGroup(numberOfThreads: 1)
            let observerClient = RedisClient(
                configuration: queue.redis.configuration, eventLoopGroup: group, logger: TestRedis.logger("harrow.test.redis"))
            let observer = JobQueue(redis: observerClient, options: queue.options)
            // The worker on event loops of its own too: the spin holds its loop for 3 s, which
            // on the shared loops would stall every other test's connections meanwhile.
            let workerGroup = MultiThreadedEventLoopGroup(numberOfThreads: 1)
            let workerClient = RedisClient(
                configuration: queue.redis.configuration, eventLoopGroup: workerGroup, logger: TestRedis.logger("harrow.test.redis"))
            let workerQueue = JobQueue(redis: workerClient, options: queue.options)
            var options = Worker.Options.fast(.strict("spin"), concurrency: 1, runsMaintenance: false)
            options.heartbeatInterval = .milliseconds(200)
            try await withWorker(queue: workerQueue, registry: registry, options: options) { worker in
                try await eventually("registered") { try await queue.liveWorkers().contains { $0.id == worker.id } }
                try await queue.enqueue(Spinner(ms: 3000))
                try await eventually("spinning") { recorder.running == 1 }
                func lastSeen() async throws -> Int64 {
                    try await observer.liveWorkers().first { $0.id == worker.id }?.lastSeen ?? 0
                }
                let before = try await lastSeen()
                try await Task.sleep(for: .milliseconds(1500))
                let after = try await lastSeen()
                #expect(recorder.running == 1, "the job should still be spinning")
                #expect(after - before >= 600, "heartbeats stopped while a handler held the jobs' thread: \(after - before) ms")
                try await eventually("spun", timeout: .seconds(10)) { recorder.running == 0 && recorder.count == 1 }
            }
            await observerClient.close()
            await workerClient.close()
            try await group.shutdownGracefully()
            try await workerGroup.shutdownGracefully()
        }
    }

    // MARK: Defects 1 and 2: a job added by plain XADD gets its type's policy

    @Test func aPlainXADDJobIsNotReclaimedWithinItsTypesVisibilityTimeout() async throws {
        // The queue's default is 1 s; the type says 30 s. The job runs 3 s without the worker
        // refreshing it (a third of 30 s is not due yet): only the type's timeout keeps the
        // reclaimer away.
        let options = JobQueue.Options(defaultVisibilityTimeout: .seconds(1))
        try await TestRedis.withJobQueue("wp-plain-visibility", options: options) { queue in
            let recorder = RunRecorder()
            var registry = JobRegistry()
            try registry.register(Patient.self) { job, context in
                try await recorder.track(context) { try await Task.sleep(for: .milliseconds(job.ms)) }
            }
            try await queue.prepare(queues: ["patience"])
            try await withWorker(queue: queue, registry: registry, options: .fast(.strict("patience"))) { _ in
                try await eventually("the worker announced its types") {
                    try await queue.redis.send("EXISTS", [.string(queue.keys("patience").policies)]).int == 1
                }
                try await queue.redis.send(
                    "XADD", [.string(queue.keys("patience").stream), "*", "type", "patient", "payload", #"{"ms":3000}"#])
                try await eventually("it ran", timeout: .seconds(10)) { recorder.count >= 1 && recorder.running == 0 }
                try await queue.waitUntilDrained("patience")
            }
            #expect(recorder.count == 1, "redelivered while running: \(recorder.runs)")
        }
    }

    @Test func aPlainXADDJobGetsItsTypesRetryLimit() async throws {
        try await TestRedis.withJobQueue("wp-plain-attempts") { queue in
            let recorder = RunRecorder()
            var registry = JobRegistry()
            try registry.register(Doomed.self) { _, context in
                recorder.record(context)
                throw TestFailure("no")
            }
            try await queue.prepare(queues: ["doom"])
            try await withWorker(queue: queue, registry: registry, options: .fast(.strict("doom"))) { _ in
                try await queue.redis.send("XADD", [.string(queue.keys("doom").stream), "*", "type", "doomed", "payload", "{}"])
                try await eventually("dead-lettered", timeout: .seconds(20)) { try await queue.stats("doom").dead == 1 }
            }
            #expect(recorder.count == 2, "ran \(recorder.count) times")
            #expect(recorder.runs.allSatisfy { $0.maxAttempts == 2 })
            let letter = try #require(try await queue.deadLetters(queue: "doom").first)
            #expect(letter.error.contains("attempt 2 of 2"), "\(letter.error)")
        }
    }

    // MARK: Defect 4: shutdown never hands back a job that is still running

    @Test func aJobThatIgnoresCancellationIsNotHandedBackWhileItRuns() async throws {
        try await TestRedis.withJobQueue("wp-stubborn") { queue in
            let recorder = RunRecorder()
            var registry = JobRegistry()
            try registry.register(Stubborn.self) { job, context in
                await recorder.track(context) { await Self.sleepIgnoringCancellation(.milliseconds(job.ms)) }
            }
            // Longer than the 10 s the worker used to wait for cancelled jobs before handing them back.
            let id = try await queue.enqueue(Stubborn(ms: 12_000)).id
            // Only the second worker reclaims, so it is the one that would take a job left behind.
            let first = Worker.Options.fast(
                .strict("stubborn"), shutdownTimeout: .milliseconds(100), cancellationGrace: .milliseconds(100), runsMaintenance: false)
            let second = Worker.Options.fast(.strict("stubborn"), deadWorkerAfter: .seconds(3))
            try await withWorker(queue: queue, registry: registry, options: first) { stubborn in
                try await eventually("the job started") { recorder.running == 1 }
                // Another worker on the queue, whose reclaimer would hand it a job left behind.
                try await withWorker(queue: queue, registry: registry, options: second) { _ in
                    // Stopping waits for the job, which keeps its entry (and heartbeat) meanwhile.
                    try await stubborn.stop(within: .seconds(20))
                    #expect(recorder.running == 0)
                    try await queue.waitUntilDrained("stubborn")
                    try await Task.sleep(for: .seconds(2))
                }
            }
            #expect(recorder.runs.map(\.id) == [id], "started again while running: \(recorder.runs)")
            let stats = try await queue.stats("stubborn")
            #expect(stats.ready == 0 && stats.pending == 0 && stats.dead == 0)
        }
    }

    @Test func prefetchedJobsGoBackAsSoonAsShutdownBegins() async throws {
        try await TestRedis.withJobQueue("wp-prefetch-back") { queue in
            let recorder = RunRecorder()
            var registry = JobRegistry()
            try registry.registerNap(recorder)
            try await queue.enqueue(Nap(ms: 10_000))
            try await queue.enqueue(batch: Array(repeating: Nap(ms: 10), count: 3))
            let options = Worker.Options.fast(.strict("naps"), concurrency: 1, prefetch: 3)
            try await withWorker(queue: queue, registry: registry, options: options) { worker in
                try await eventually("one running, three prefetched") {
                    let stats = try await queue.stats("naps")
                    return recorder.running == 1 && stats.pending == 4
                }
                worker.trigger.triggerGracefulShutdown()
                try await eventually("the prefetched jobs are back while the first still runs", timeout: .seconds(5)) {
                    let stats = try await queue.stats("naps")
                    return stats.ready == 3 && stats.pending == 1
                }
                #expect(recorder.running == 1)
                try await worker.stop(within: .seconds(20))
            }
            #expect(recorder.count == 1)
        }
    }

    @Test func aCancelledWorkerWaitsForItsJobsToWindDown() async throws {
        try await TestRedis.withJobQueue("wp-cancelled") { queue in
            let ended = Locked(false)
            let started = Locked(false)
            var registry = JobRegistry()
            try registry.register(Stubborn.self) { job, _ in
                started.withLock { $0 = true }
                do { try await Task.sleep(for: .milliseconds(job.ms)) } catch {
                    // Cleaning up after the cancellation takes a moment.
                    await Self.sleepIgnoringCancellation(.milliseconds(300))
                    ended.withLock { $0 = true }
                    throw error
                }
            }
            try await queue.enqueue(Stubborn(ms: 60_000))
            let worker = Worker(
                queue: queue, registry: registry, options: .fast(.strict("stubborn")), middleware: [],
                logger: TestRedis.logger("harrow.test.worker"))
            let task = Task { try await worker.run() }
            // The handler itself, not the fetch: a job fetched but not started is handed back unrun.
            try await eventually("the job runs") { started.value }
            task.cancel()
            try await withDeadline(.seconds(10), "the cancelled worker returns") { try await task.value }
            #expect(ended.value, "run() returned while the job was still winding down")
            let stats = try await queue.stats("stubborn")
            #expect(stats.ready == 1 && stats.pending == 0, "\(stats)")
        }
    }

    @Test func aUniqueJobRunningLongerThanUniqueForKeepsItsLock() async throws {
        try await TestRedis.withJobQueue("wp-unique-long") { queue in
            let recorder = RunRecorder()
            var registry = JobRegistry()
            try registry.registerNap(recorder)
            let unique = EnqueueOptions(uniqueKey: "long")
            let id = try await queue.enqueue(Nap(ms: 6000), options: unique).id
            try await withWorker(queue: queue, registry: registry, options: .fast(.strict("naps"))) { _ in
                try await eventually("it runs") { recorder.running == 1 }
                // As if its uniqueFor were almost used up while it runs: the heartbeats (every
                // 100 ms) must lengthen it again. Waiting for that instead of sleeping a fixed time
                // keeps a loaded machine, whose heartbeats come late, from failing the test.
                let lock = queue.keys("naps").unique("long")
                try await queue.redis.send("PEXPIRE", [.string(lock), "2000"])
                try await eventually("a heartbeat lengthens the lock", timeout: .seconds(4)) {
                    let ttl = try await queue.redis.send("PTTL", [.string(lock)])
                    return (ttl.int ?? 0) > 2000
                }
                let duplicate = try await queue.enqueue(Nap(ms: 0), options: unique)
                #expect(duplicate.id == id && !duplicate.enqueued, "a duplicate was enqueued while the job ran")
                try await queue.waitUntilDrained("naps")
            }
            #expect(recorder.runs.map(\.id) == [id])
        }
    }

    // MARK: Defect 5: due times come from Redis's clock, not the worker's

    /// Fails its first run and asks to be retried shortly.
    struct Flaky: Job {
        static let name = "flaky"
        static let queue = "flaky"
    }

    @Test func aWorkerWhoseClockIsAnHourAheadRetriesAndDelaysOnTime() async throws {
        // The queue and its worker read a clock an hour ahead of Redis's (and of this machine's).
        let options = JobQueue.Options(clock: WallClock.system.shifted(by: .seconds(3600)))
        try await TestRedis.withJobQueue("wp-skewed", options: options) { queue in
            let recorder = RunRecorder()
            var registry = JobRegistry()
            try registry.register(Flaky.self) { _, context in
                recorder.record(context)
                if context.attempt == 1 { throw JobFailure.retry(after: .milliseconds(300)) }
            }
            let retried = try await queue.enqueue(Flaky()).id
            let delayed = try await queue.enqueue(Flaky(), options: .delayed(by: .milliseconds(300))).id
            try await withWorker(queue: queue, registry: registry, options: .fast(.strict("flaky"))) { _ in
                try await eventually("the retry and the delayed job ran", timeout: .seconds(10)) {
                    recorder.runs(id: retried).count == 2 && recorder.runs(id: delayed).count == 2
                }
            }
            #expect(recorder.runs(id: retried).map(\.attempt) == [1, 2])
            #expect(try await queue.stats("flaky").delayed == 0)
        }
    }

    // MARK: Defect 9: a visibility timeout within reach of the heartbeat is refused

    @Test func aVisibilityTimeoutShorterThanThreeHeartbeatsIsRefusedAtStart() async throws {
        struct Hasty: Job {
            static let name = "hasty"
            static var visibilityTimeout: Duration? { .milliseconds(250) }
        }
        // A registry for the default 5 s heartbeat refuses the type at once.
        var strict = JobRegistry()
        #expect(throws: WorkerError.self) { try strict.register(Hasty.self) { _, _ in } }
        try await TestRedis.withJobQueue("wp-hasty") { queue in
            // Registered for workers that beat every 50 ms, it meets one that beats every 100 ms.
            var registry = JobRegistry(heartbeatInterval: .milliseconds(50))
            try registry.register(Hasty.self) { _, _ in }
            // Heartbeats every 100 ms: 250 ms is less than three of them.
            let worker = Worker(
                queue: queue, registry: registry, options: .fast(.strict("default")), middleware: [],
                logger: TestRedis.logger("harrow.test.worker"))
            let outcome = try await withDeadline(.seconds(5), "run() refuses") { () async -> String in
                do {
                    try await worker.run()
                    return "ran"
                } catch let error as WorkerError {
                    return error.message
                } catch {
                    return "\(error)"
                }
            }
            #expect(outcome.contains("hasty") && outcome.contains("heartbeat"), "\(outcome)")
        }
    }
}
