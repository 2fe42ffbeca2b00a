import Foundation
import HarrowTestSupport
import NIOCore
import Queue
import Testing
import WorkerPool

/// A job's way through a running worker: success, retries, permanent failures, dead letters,
/// undecodable payloads, malformed entries, unknown types and timeouts.
@Suite struct JobLifecycleTests {
    // MARK: Success

    @Test func aJobRunsAndIsAcknowledged() async throws {
        try await TestRedis.withJobQueue("wp-ack") { queue in
            let recorder = RunRecorder()
            let names = Locked<[String]>([])
            var registry = JobRegistry()
            try registry.register(Greeting.self) { job, context in
                recorder.record(context)
                names.withLock { $0.append(job.name) }
            }
            let id = try await queue.enqueue(Greeting(name: "ada")).id
            try await withWorker(queue: queue, registry: registry, options: .fast(.strict("greetings"))) { _ in
                try await eventually("the job ran") { recorder.count == 1 }
                try await queue.waitUntilDrained("greetings")
            }
            #expect(recorder.runs.map(\.id) == [id])
            #expect(recorder.runs.first?.attempt == 1)
            #expect(recorder.runs.first?.type == "greeting")
            #expect(names.value == ["ada"])
            let stats = try await queue.stats("greetings")
            #expect(stats.ready == 0 && stats.pending == 0 && stats.delayed == 0 && stats.dead == 0)
            // Acknowledged means deleted from the stream, not just acked.
            #expect(try await queue.find(queue: "greetings", id: id) == nil)
        }
    }

    @Test func typedEnqueueUsesTheTypesQueueAndPolicyAndBatchesRun() async throws {
        try await TestRedis.withJobQueue("wp-typed") { queue in
            let recorder = RunRecorder()
            var registry = JobRegistry()
            try registry.register(Greeting.self) { _, context in recorder.record(context) }

            let single = try await queue.enqueue(Greeting(name: "one"))
            let batch = try await queue.enqueue(batch: (1...5).map { Greeting(name: "batch-\($0)") })
            let elsewhere = try await queue.enqueue(Greeting(name: "elsewhere"), queue: "other-greetings")
            #expect(batch.count == 5)
            #expect(batch.allSatisfy { $0.enqueued })
            let allIDs = [single.id] + batch.map(\.id) + [elsewhere.id]
            #expect(Set(allIDs).count == 7)

            // The envelope carries the type's name, queue, attempts and timeout.
            let waiting = try #require(try await queue.find(queue: "greetings", id: single.id))
            #expect(waiting.state == .ready)
            #expect(waiting.fields["type"] == "greeting")
            #expect(waiting.fields["queue"] == "greetings")
            #expect(waiting.fields["attempt"] == "1")
            #expect(waiting.fields["max_attempts"] == "4")
            #expect(waiting.fields["timeout"] == "30000")
            #expect(waiting.fields["payload"] == #"{"name":"one"}"#)
            #expect(try await queue.stats("greetings").ready == 6)
            #expect(try await queue.stats("other-greetings").ready == 1)

            try await withWorker(queue: queue, registry: registry, options: .fast(.strict("greetings", "other-greetings"))) { _ in
                try await eventually("all seven ran") { recorder.count == 7 }
                try await queue.waitUntilDrained("greetings")
                try await queue.waitUntilDrained("other-greetings")
            }
            #expect(Set(recorder.runs.map(\.id)) == Set(allIDs))
            #expect(recorder.runs(id: elsewhere.id).map(\.queue) == ["other-greetings"])
            #expect(recorder.runs.allSatisfy { $0.attempt == 1 && $0.maxAttempts == 4 })
        }
    }

    // MARK: Retries

    struct Flaky: Job {
        static let name = "flaky"
        static let queue = "flaky"
        static var retryPolicy: RetryPolicy { RetryPolicy(maxAttempts: 5, backoff: .constant(.milliseconds(50))) }
        var failures: Int
    }

    @Test func aRetryableErrorIsRetriedWithTheTypesBackoffUntilItSucceeds() async throws {
        try await TestRedis.withJobQueue("wp-retry") { queue in
            let recorder = RunRecorder()
            var registry = JobRegistry()
            try registry.register(Flaky.self) { job, context in
                recorder.record(context)
                if context.attempt <= job.failures { throw TestFailure("failure number \(context.attempt)") }
            }
            let id = try await queue.enqueue(Flaky(failures: 2)).id
            try await withWorker(queue: queue, registry: registry, options: .fast(.strict("flaky"))) { _ in
                try await eventually("three runs") { recorder.count == 3 }
                try await queue.waitUntilDrained("flaky")
            }
            #expect(recorder.runs.map(\.attempt) == [1, 2, 3])
            #expect(recorder.runs.allSatisfy { $0.id == id && $0.maxAttempts == 5 })
            let stats = try await queue.stats("flaky")
            #expect(stats.dead == 0)
            #expect(try await queue.find(queue: "flaky", id: id) == nil)
        }
    }

    // MARK: Permanent failures and requested delays

    struct Doomed: Job {
        static let name = "doomed"
        static let queue = "doomed"
        static var retryPolicy: RetryPolicy { RetryPolicy(maxAttempts: 10, backoff: .constant(.milliseconds(10))) }
        var account: Int
    }

    @Test func aPermanentFailureGoesStraightToDeadWithItsMessage() async throws {
        try await TestRedis.withJobQueue("wp-permanent") { queue in
            let recorder = RunRecorder()
            var registry = JobRegistry()
            try registry.register(Doomed.self) { job, context in
                recorder.record(context)
                throw JobFailure.permanent("account \(job.account) is gone")
            }
            let id = try await queue.enqueue(Doomed(account: 42)).id
            let workerID = try await withWorker(queue: queue, registry: registry, options: .fast(.strict("doomed"))) { worker in
                try await eventually("dead-lettered") { try await queue.stats("doomed").dead == 1 }
                return worker.id
            }
            #expect(recorder.runs.map(\.attempt) == [1])
            let letter = try #require(try await queue.deadLetters(queue: "doomed").first)
            #expect(letter.id == id)
            #expect(letter.error == "account 42 is gone")
            #expect(letter.attempt == 1)
            #expect(letter.type == "doomed")
            #expect(letter.payload == #"{"account":42}"#)
            #expect(letter.worker == workerID)
            let stats = try await queue.stats("doomed")
            #expect(stats.ready == 0 && stats.pending == 0 && stats.delayed == 0)
        }
    }

    struct RateLimited: Job {
        static let name = "rate-limited"
        static let queue = "limited"
        /// The backoff is an hour, so a retry due in seconds can only come from the request.
        static var retryPolicy: RetryPolicy { RetryPolicy(maxAttempts: 5, backoff: .constant(.seconds(3600))) }
    }

    @Test func aRequestedRetryDelayIsHonouredInsteadOfTheBackoff() async throws {
        try await TestRedis.withJobQueue("wp-retry-after") { queue in
            let recorder = RunRecorder()
            var registry = JobRegistry()
            try registry.register(RateLimited.self) { _, context in
                recorder.record(context)
                throw JobFailure.retry(after: .seconds(20), "429 Too Many Requests")
            }
            let before = WallClock.system.milliseconds()
            let id = try await queue.enqueue(RateLimited()).id
            let after = try await withWorker(queue: queue, registry: registry, options: .fast(.strict("limited"))) { _ in
                try await eventually("scheduled again") { try await queue.stats("limited").delayed == 1 }
                return WallClock.system.milliseconds()
            }
            let delayed = try #require(try await queue.find(queue: "limited", id: id))
            #expect(delayed.state == .delayed)
            #expect(delayed.fields["attempt"] == "2")
            let runAt = try #require(delayed.runAt)
            // Scheduled at (the worker's now) + 20 s, the worker's now lying between the two readings.
            #expect(runAt >= before + 20_000)
            #expect(runAt <= after + 20_000)
            #expect(recorder.count == 1)
            let stats = try await queue.stats("limited")
            #expect(stats.ready == 0 && stats.pending == 0 && stats.dead == 0)
        }
    }

    // MARK: Snoozes

    struct Sleepy: Job {
        static let name = "sleepy"
        static let queue = "sleepy"
        /// Two attempts, so a snooze that used one would dead-letter the job by its second.
        static var retryPolicy: RetryPolicy { RetryPolicy(maxAttempts: 2, backoff: .constant(.milliseconds(10))) }
        var snoozes: Int
    }

    /// A snooze puts the job back for later as it was: three snoozes of a job allowed two
    /// attempts, and it still runs, on attempt 1 every time, and succeeds.
    @Test func aSnoozedJobRunsAgainWithoutUsingAnAttempt() async throws {
        try await TestRedis.withJobQueue("wp-snooze") { queue in
            let recorder = RunRecorder()
            let middleware = RecordingMiddleware()
            var registry = JobRegistry()
            try registry.register(Sleepy.self) { job, context in
                let earlier = recorder.runs(id: context.id).count
                recorder.record(context)
                if earlier < job.snoozes { throw JobFailure.snooze(after: .milliseconds(20), "at a limit (\(earlier + 1))") }
            }
            let id = try await queue.enqueue(Sleepy(snoozes: 3)).id
            try await withWorker(queue: queue, registry: registry, options: .fast(.strict("sleepy")), middleware: [middleware]) { _ in
                try await eventually("four runs and a success") { middleware.outcomeKinds.last == "succeeded" }
                try await queue.waitUntilDrained("sleepy")
            }
            #expect(middleware.outcomeKinds == ["snoozed", "snoozed", "snoozed", "succeeded"])
            #expect(recorder.runs.map(\.attempt) == [1, 1, 1, 1])
            #expect(recorder.runs.allSatisfy { $0.id == id && $0.maxAttempts == 2 })
            let stats = try await queue.stats("sleepy")
            #expect(stats.dead == 0)
        }
    }

    // MARK: Poison jobs

    struct Poison: Job {
        static let name = "poison"
        static let queue = "poison"
        static var retryPolicy: RetryPolicy { RetryPolicy(maxAttempts: 3, backoff: .constant(.milliseconds(20))) }
    }

    @Test func aPoisonJobIsDeadAfterItsAttemptsAndRetryDeadRunsItAgain() async throws {
        try await TestRedis.withJobQueue("wp-poison") { queue in
            let recorder = RunRecorder()
            var registry = JobRegistry()
            try registry.register(Poison.self) { _, context in
                recorder.record(context)
                throw TestFailure("poisoned on attempt \(context.attempt)")
            }
            let id = try await queue.enqueue(Poison()).id
            try await withWorker(queue: queue, registry: registry, options: .fast(.strict("poison"))) { _ in
                try await eventually("dead-lettered") { try await queue.stats("poison").dead == 1 }
                #expect(recorder.runs.map(\.attempt) == [1, 2, 3])
                let letter = try #require(try await queue.deadLetters(queue: "poison").first)
                #expect(letter.id == id)
                #expect(letter.attempt == 3)
                #expect(letter.error == "poisoned on attempt 3 (attempt 3 of 3)")
                #expect(letter.fields["max_attempts"] == "3")

                // Back from the dead with a fresh attempt count: it runs (and dies) again.
                #expect(try await queue.retryDead(queue: "poison", id: id))
                try await eventually("ran again") { recorder.count >= 4 }
                try await eventually("dead again") {
                    let stats = try await queue.stats("poison")
                    return stats.dead == 1 && stats.ready == 0 && stats.pending == 0 && stats.delayed == 0
                }
            }
            #expect(recorder.runs.map(\.attempt) == [1, 2, 3, 1, 2, 3])
            #expect(recorder.runs.allSatisfy { $0.id == id })
            let letters = try await queue.deadLetters(queue: "poison")
            #expect(letters.count == 1)
            #expect(letters.first?.error == "poisoned on attempt 3 (attempt 3 of 3)")
        }
    }

    // MARK: Bad input

    @Test func aPayloadThatDoesNotDecodeIsDeadWithoutRunningTheHandler() async throws {
        try await TestRedis.withJobQueue("wp-undecodable") { queue in
            let recorder = RunRecorder()
            var registry = JobRegistry()
            try registry.register(Greeting.self) { _, context in recorder.record(context) }
            let wrongShape = try await queue.enqueue(EnqueueRequest(type: "greeting", queue: "greetings", json: #"{"nom": 7}"#)).id
            let notJSON = try await queue.enqueue(EnqueueRequest(type: "greeting", queue: "greetings", json: "hello")).id
            let good = try await queue.enqueue(Greeting(name: "fine")).id
            try await withWorker(queue: queue, registry: registry, options: .fast(.strict("greetings"))) { _ in
                try await eventually("two dead letters") { try await queue.stats("greetings").dead == 2 }
                try await eventually("the good one ran") { recorder.count == 1 }
                try await queue.waitUntilDrained("greetings")
            }
            #expect(recorder.runs.map(\.id) == [good])
            let letters = Dictionary(uniqueKeysWithValues: try await queue.deadLetters(queue: "greetings").map { ($0.id, $0) })
            let shape = try #require(letters[wrongShape])
            #expect(shape.error.contains("payload does not decode as greeting"))
            #expect(shape.error.contains("missing field name"))
            #expect(shape.attempt == 1)
            #expect(shape.payload == #"{"nom": 7}"#)
            let text = try #require(letters[notJSON])
            #expect(text.error.contains("payload does not decode as greeting"))
            #expect(text.error.contains("invalid JSON"))
        }
    }

    @Test func aMalformedEntryIsDeadLetteredAndTheWorkerGoesOn() async throws {
        try await TestRedis.withJobQueue("wp-malformed") { queue in
            let recorder = RunRecorder()
            var registry = JobRegistry()
            try registry.register(Greeting.self) { _, context in recorder.record(context) }
            try await queue.prepare(queues: ["greetings"])
            let stream = queue.keys("greetings").stream
            // What another language might add by mistake: no type, and a non-numeric attempt.
            try await queue.redis.send("XADD", [.string(stream), "*", "payload", "{}", "note", "no type"])
            try await queue.redis.send("XADD", [.string(stream), "*", "type", "greeting", "payload", #"{"name":"x"}"#, "attempt", "two"])
            try await withWorker(queue: queue, registry: registry, options: .fast(.strict("greetings"))) { _ in
                try await eventually("both dead-lettered") { try await queue.stats("greetings").dead == 2 }
                // Jobs enqueued afterwards still run.
                let later = try await queue.enqueue(batch: [Greeting(name: "a"), Greeting(name: "b")]).map(\.id)
                try await eventually("later jobs ran") { Set(recorder.runs.map(\.id)) == Set(later) }
                try await queue.waitUntilDrained("greetings")
            }
            let letters = try await queue.deadLetters(queue: "greetings")
            let errors = Set(letters.map(\.error))
            #expect(errors == ["malformed job entry: missing field type", "malformed job entry: field attempt is not an integer"])
            #expect(letters.contains { $0.fields["note"] == "no type" })
            #expect(recorder.count == 2)
        }
    }

    @Test func anUnknownTypeIsRetriedWithBackoffThenDead() async throws {
        try await TestRedis.withJobQueue("wp-unknown") { queue in
            let recorder = RunRecorder()
            var registry = JobRegistry()
            try registry.register(Greeting.self) { _, context in recorder.record(context) }
            let before = WallClock.system.milliseconds()
            let retried = try await queue.enqueue(EnqueueRequest(type: "mystery", queue: "greetings", json: "{}")).id
            let once = try await queue.enqueue(
                EnqueueRequest(type: "mystery", queue: "greetings", json: "{}", options: EnqueueOptions(maxAttempts: 1))
            ).id
            let after = try await withWorker(queue: queue, registry: registry, options: .fast(.strict("greetings"))) { _ in
                try await eventually("one delayed, one dead") {
                    let stats = try await queue.stats("greetings")
                    return stats.delayed == 1 && stats.dead == 1
                }
                return WallClock.system.milliseconds()
            }
            // Another deploy may know the type: it is retried, with backoff (the default policy:
            // 1⁴ + 15 s plus up to 18 s of jitter after attempt 1).
            let delayed = try #require(try await queue.find(queue: "greetings", id: retried))
            #expect(delayed.state == .delayed)
            #expect(delayed.fields["attempt"] == "2")
            let runAt = try #require(delayed.runAt)
            #expect(runAt >= before + 16_000)
            #expect(runAt <= after + 34_000)

            let letter = try #require(try await queue.deadLetters(queue: "greetings").first)
            #expect(letter.id == once)
            #expect(letter.error.contains("unknown job type mystery"))
            #expect(letter.attempt == 1)
            #expect(recorder.count == 0)
        }
    }

    // MARK: Timeouts

    struct Slow: Job {
        static let name = "slow"
        static let queue = "slow"
        static var timeout: Duration { .milliseconds(100) }
        static var retryPolicy: RetryPolicy { RetryPolicy(maxAttempts: 2, backoff: .constant(.milliseconds(50))) }
    }

    @Test func aJobOverItsTimeoutIsCancelledAndRetriedThenDead() async throws {
        try await TestRedis.withJobQueue("wp-timeout") { queue in
            let recorder = RunRecorder()
            let cancelled = Locked(0)
            var registry = JobRegistry()
            try registry.register(Slow.self) { _, context in
                try await recorder.track(context) {
                    do {
                        try await Task.sleep(for: .seconds(10))
                    } catch {
                        if Task.isCancelled { cancelled.withLock { $0 += 1 } }
                        throw error
                    }
                }
            }
            let id = try await queue.enqueue(Slow()).id
            try await withWorker(queue: queue, registry: registry, options: .fast(.strict("slow"))) { _ in
                try await eventually("dead after two timeouts") { try await queue.stats("slow").dead == 1 }
            }
            #expect(recorder.runs.map(\.attempt) == [1, 2])
            #expect(cancelled.value == 2)
            #expect(recorder.running == 0)
            let letter = try #require(try await queue.deadLetters(queue: "slow").first)
            #expect(letter.id == id)
            #expect(letter.error.hasPrefix("timed out after"))
            #expect(letter.error.hasSuffix("(attempt 2 of 2)"))
            let stats = try await queue.stats("slow")
            #expect(stats.ready == 0 && stats.pending == 0 && stats.delayed == 0)
        }
    }

    @Test func theEnvelopesTimeoutOverridesTheTypes() async throws {
        try await TestRedis.withJobQueue("wp-timeout-override") { queue in
            let recorder = RunRecorder()
            var registry = JobRegistry()
            try registry.register(Nap.self) { job, context in
                try await recorder.track(context) { try await Task.sleep(for: .milliseconds(job.ms)) }
            }
            // The type allows 5 minutes; this job allows 100 ms and sleeps 10 s.
            let id = try await queue.enqueue(Nap(ms: 10_000), options: EnqueueOptions(maxAttempts: 1, timeout: .milliseconds(100))).id
            try await withWorker(queue: queue, registry: registry, options: .fast(.strict("naps"))) { _ in
                try await eventually("dead") { try await queue.stats("naps").dead == 1 }
            }
            let letter = try #require(try await queue.deadLetters(queue: "naps").first)
            #expect(letter.id == id)
            #expect(letter.error.hasPrefix("timed out after"))
            #expect(recorder.count == 1)
        }
    }

    // MARK: Delays, uniqueness, heartbeats

    @Test func aDelayedJobIsPromotedAndRunsWhenDue() async throws {
        try await TestRedis.withJobQueue("wp-delayed") { queue in
            let recorder = RunRecorder()
            let ranAt = Locked<[Int64]>([])
            var registry = JobRegistry()
            try registry.register(Greeting.self) { _, context in
                recorder.record(context)
                ranAt.withLock { $0.append(WallClock.system.milliseconds()) }
            }
            let runAt = WallClock.system.milliseconds() + 1000
            let id = try await queue.enqueue(Greeting(name: "later"), options: .delayed(by: .seconds(1))).id
            #expect(try await queue.find(queue: "greetings", id: id)?.state == .delayed)
            try await withWorker(queue: queue, registry: registry, options: .fast(.strict("greetings"))) { _ in
                try await eventually("the job ran") { recorder.count == 1 }
                try await queue.waitUntilDrained("greetings")
            }
            #expect(recorder.runs.map(\.id) == [id])
            #expect(recorder.runs.first?.attempt == 1)
            // Not before it was due.
            #expect(try #require(ranAt.value.first) >= runAt)
        }
    }

    @Test func aUniqueJobsLockIsReleasedWhenItSucceedsOrDies() async throws {
        try await TestRedis.withJobQueue("wp-unique") { queue in
            let recorder = RunRecorder()
            var registry = JobRegistry()
            try registry.register(Greeting.self) { _, context in recorder.record(context) }
            try registry.register(Doomed.self) { _, context in
                recorder.record(context)
                throw JobFailure.permanent("no")
            }
            let unique = EnqueueOptions(uniqueKey: "report-7")
            let first = try await queue.enqueue(Greeting(name: "one"), options: unique)
            #expect(first.enqueued)
            // While it waits, the key is taken.
            let duplicate = try await queue.enqueue(Greeting(name: "two"), options: unique)
            #expect(!duplicate.enqueued)
            #expect(duplicate.id == first.id)
            let doomed = try await queue.enqueue(Doomed(account: 1), options: EnqueueOptions(uniqueKey: "account-1"))
            #expect(doomed.enqueued)
            try await withWorker(queue: queue, registry: registry, options: .fast(.strict("greetings", "doomed"))) { _ in
                try await eventually("both ran") { recorder.count == 2 }
                try await queue.waitUntilDrained("greetings")
                try await eventually("dead") { try await queue.stats("doomed").dead == 1 }
                // Acknowledged (lock released with the ack) and dead-lettered: the keys are free again.
                try await eventually("the lock is released") {
                    try await queue.enqueue(Greeting(name: "three"), options: unique).enqueued
                }
                #expect(try await queue.enqueue(Doomed(account: 1), options: EnqueueOptions(uniqueKey: "account-1")).enqueued)
                try await eventually("all four ran") { recorder.count == 4 }
            }
        }
    }

    @Test func aLongJobIsKeptFromTheReclaimerByHeartbeats() async throws {
        try await TestRedis.withJobQueue("wp-heartbeat") { queue in
            let recorder = RunRecorder()
            var registry = JobRegistry()
            try registry.registerNap(recorder)
            // Runs three times its visibility timeout; the reclaimer looks every 200 ms.
            let id = try await queue.enqueue(Nap(ms: 3000), options: EnqueueOptions(visibilityTimeout: .seconds(1))).id
            try await withWorker(queue: queue, registry: registry, options: .fast(.strict("naps"))) { _ in
                try await eventually("ran", timeout: .seconds(15)) { recorder.count >= 1 && recorder.running == 0 }
                try await queue.waitUntilDrained("naps")
            }
            #expect(recorder.runs.map(\.id) == [id])
            #expect(recorder.runs.map(\.attempt) == [1])
        }
    }
}
