import HarrowTestSupport
import NIOCore
import Testing

@testable import Queue

/// "While a job with this key is waiting, delayed or running, enqueueing another with the same
/// key returns the first one's id instead of adding a job."
@Suite("Unique jobs")
struct UniqueJobTests {
    static let unique = EnqueueOptions(uniqueKey: "report-42")

    @Test func duplicateReturnsTheWaitingOrRunningJobUntilItIsAcknowledged() async throws {
        try await TestRedis.withJobQueue("unique") { queue in
            let name = TestRedis.uniqueQueueName("unique")
            let first = try await queue.enqueue(
                type: "report", queue: name, payload: json(#"{"v":1}"#), options: Self.unique)
            #expect(first.enqueued)

            let duplicate = try await queue.enqueue(
                type: "report", queue: name, payload: json(#"{"v":2}"#), options: Self.unique)
            #expect(duplicate == EnqueueResult(id: first.id, enqueued: false))
            #expect(try await queue.stats(name).ready == 1)

            // Running holds the key too.
            let job = try #require(try await queue.fetchJobs(name).first)
            #expect(job.envelope.uniqueKey == "report-42")
            #expect(job.envelope.payloadString == #"{"v":1}"#)
            #expect(
                try await queue.enqueue(type: "report", queue: name, payload: json("{}"), options: Self.unique).enqueued
                    == false)

            try await queue.acknowledge([job])
            let next = try await queue.enqueue(
                type: "report", queue: name, payload: json(#"{"v":3}"#), options: Self.unique)
            #expect(next.enqueued)
            #expect(next.id != first.id)
            #expect(try await queue.fetchJobs(name).map(\.envelope.payloadString) == [#"{"v":3}"#])
        }
    }

    @Test func duplicatesWithinOneBatchGetTheFirstJobsID() async throws {
        try await TestRedis.withJobQueue("unique-batch") { queue in
            let name = TestRedis.uniqueQueueName("unique-batch")
            let results = try await queue.enqueue(batch: [
                EnqueueRequest(type: "t", queue: name, json: "{}", options: Self.unique),
                EnqueueRequest(type: "t", queue: name, json: "{}"),
                EnqueueRequest(type: "t", queue: name, json: "{}", options: Self.unique),
            ])
            #expect(results.map(\.enqueued) == [true, true, false])
            #expect(results[2].id == results[0].id)
            #expect(try await queue.stats(name).ready == 2)
        }
    }

    @Test func keysAreScopedToTheirQueue() async throws {
        try await TestRedis.withJobQueue("unique-scope") { queue in
            let first = TestRedis.uniqueQueueName("scope-1")
            let second = TestRedis.uniqueQueueName("scope-2")
            let inFirst = try await queue.enqueue(type: "t", queue: first, payload: json("{}"), options: Self.unique)
            let inSecond = try await queue.enqueue(type: "t", queue: second, payload: json("{}"), options: Self.unique)
            #expect(inFirst.enqueued && inSecond.enqueued)
            #expect(inFirst.id != inSecond.id)
        }
    }

    @Test func delayedJobHoldsItsKeyUntilItRunsAndIsAcknowledged() async throws {
        try await TestRedis.withJobQueue("unique-delayed") { queue in
            let name = TestRedis.uniqueQueueName("unique-delayed")
            var options = Self.unique
            options.delay = .milliseconds(500)
            let first = try await queue.enqueue(type: "t", queue: name, payload: json("{}"), options: options)
            #expect(first.enqueued)
            #expect(try await queue.stats(name).delayed == 1)
            #expect(
                try await queue.enqueue(type: "t", queue: name, payload: json("{}"), options: Self.unique).id
                    == first.id)

            try await eventually("promoted") { try await queue.promoteDue(queue: name).moved == 1 }
            let job = try #require(try await queue.fetchJobs(name).first)
            #expect(job.envelope.id == first.id)
            #expect(job.envelope.uniqueKey == "report-42")
            #expect(
                try await queue.enqueue(type: "t", queue: name, payload: json("{}"), options: Self.unique).enqueued
                    == false)
            try await queue.acknowledge([job])
            #expect(try await queue.enqueue(type: "t", queue: name, payload: json("{}"), options: Self.unique).enqueued)
        }
    }

    @Test func keyIsFreeAfterTheJobIsDeadLettered() async throws {
        try await TestRedis.withJobQueue("unique-dead") { queue in
            let name = TestRedis.uniqueQueueName("unique-dead")
            let first = try await queue.enqueue(type: "t", queue: name, payload: json("{}"), options: Self.unique)
            let job = try #require(try await queue.fetchJobs(name).first)
            #expect(
                try await queue.deadLetter(
                    queue: name, entryID: job.entryID, fields: job.envelope.fields, error: "e", worker: "w"))
            let next = try await queue.enqueue(type: "t", queue: name, payload: json("{}"), options: Self.unique)
            #expect(next.enqueued)
            #expect(next.id != first.id)
        }
    }

    @Test func lockExpiresAfterUniqueFor() async throws {
        try await TestRedis.withJobQueue("unique-ttl") { queue in
            let name = TestRedis.uniqueQueueName("unique-ttl")
            let options = EnqueueOptions(uniqueKey: "short", uniqueFor: .milliseconds(100))
            let first = try await queue.enqueue(type: "t", queue: name, payload: json("{}"), options: options)
            #expect(first.enqueued)
            // The lock lives as long as asked (seen on a long one: the short one may be gone already).
            try await queue.enqueue(
                type: "t", queue: name, payload: json("{}"),
                options: EnqueueOptions(uniqueKey: "long", uniqueFor: .seconds(600)))
            let ttl = try await queue.redis.send("PTTL", [.string(queue.keys(name).unique("long"))]).int ?? -1
            #expect(ttl > 500_000 && ttl <= 600_000)
            var second: EnqueueResult?
            try await eventually("the lock expires") {
                second = try await queue.enqueue(type: "t", queue: name, payload: json("{}"), options: options)
                return second?.enqueued == true
            }
            #expect(second?.id != first.id)
            #expect(try await queue.stats(name).ready == 3)
        }
    }

    @Test func finishingAnOlderJobDoesNotReleaseTheKeyOfANewerOne() async throws {
        try await TestRedis.withJobQueue("unique-owner") { queue in
            let name = TestRedis.uniqueQueueName("unique-owner")
            let short = EnqueueOptions(uniqueKey: "k", uniqueFor: .milliseconds(50))
            let old = try await queue.enqueue(type: "t", queue: name, payload: json("{}"), options: short)
            var newer: EnqueueResult?
            try await eventually("the old lock expires") {
                newer = try await queue.enqueue(
                    type: "t", queue: name, payload: json("{}"), options: EnqueueOptions(uniqueKey: "k"))
                return newer?.enqueued == true
            }
            let jobs = try await queue.fetchJobs(name)
            let oldJob = try #require(jobs.first { $0.envelope.id == old.id })
            try await queue.acknowledge([oldJob])
            let third = try await queue.enqueue(
                type: "t", queue: name, payload: json("{}"), options: EnqueueOptions(uniqueKey: "k"))
            #expect(third == EnqueueResult(id: try #require(newer?.id), enqueued: false))
        }
    }

    /// A deleted job is neither waiting, delayed nor running, yet ``JobQueue/delete(queue:id:)``
    /// leaves its uniqueness lock behind: for up to `uniqueFor` (a day by default) every
    /// enqueue with that key is refused in favour of a job that no longer exists.
    @Test(arguments: [false, true])
    func deletingAUniqueJobFreesItsKey(delayed: Bool) async throws {
        try await TestRedis.withJobQueue("unique-delete") { queue in
            let name = TestRedis.uniqueQueueName("unique-delete")
            var options = Self.unique
            if delayed { options.runAt = nowMilliseconds() + 3_600_000 }
            let first = try await queue.enqueue(type: "t", queue: name, payload: json("{}"), options: options)
            try await queue.delete(queue: name, id: first.id)
            #expect(try await queue.find(queue: name, id: first.id) == nil)
            let next = try await queue.enqueue(type: "t", queue: name, payload: json("{}"), options: Self.unique)
            #expect(next.enqueued, "the key still points at deleted job \(first.id)")
        }
    }

    /// When the reclaimer dead-letters a job that ran out of attempts (its worker died), the
    /// job is dead, so its key must be free again, as after ``JobQueue/deadLetter(queue:entryID:fields:error:worker:)``.
    /// The reclaim script pushes the dead letter but never deletes the lock.
    @Test func keyIsFreeAfterTheReclaimerDeadLettersTheJob() async throws {
        try await TestRedis.withJobQueue("unique-reclaim-dead") { queue in
            let name = TestRedis.uniqueQueueName("unique-reclaim")
            var options = Self.unique
            options.maxAttempts = 1
            let first = try await queue.enqueue(type: "t", queue: name, payload: json("{}"), options: options)
            #expect(try await queue.fetchJobs(name, consumer: "dead-1").count == 1)
            #expect(
                try await queue.reclaimConsumer(queue: name, consumer: "dead-1")
                    == ReclaimResult(requeued: 0, deadLettered: 1))
            #expect(try await queue.deadLetters(queue: name).map(\.id) == [first.id])
            let next = try await queue.enqueue(type: "t", queue: name, payload: json("{}"), options: Self.unique)
            #expect(next.enqueued, "the key still points at dead job \(first.id)")
        }
    }
}
