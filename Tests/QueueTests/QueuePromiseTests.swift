import Foundation
import HarrowTestSupport
import NIOCore
import Testing

@testable import Queue

/// The queue's promises on every path, not only the typed-enqueue one (issue 12): each test
/// reproduces a defect a review found, against real Redis, and failed before its fix.
@Suite("Queue promises")
struct QueuePromiseTests {
    // MARK: Defect 8: a plain-XADD job keeps the id of its first delivery

    @Test func aJobAddedWithoutAnIDKeepsItsFirstEntryIDThroughHandBackAndReclaim() async throws {
        try await TestRedis.withJobQueue("promise-id") { queue in
            let name = TestRedis.uniqueQueueName("promise-id")
            try await queue.prepare(queues: [name])
            let entryID = try #require(
                try await queue.redis.send("XADD", [.string(queue.keys(name).stream), "*", "type", "t", "payload", "{}"]).string)
            let first = try #require(try await queue.fetchJobs(name, consumer: "c1").first)
            #expect(first.envelope.id == entryID)

            #expect(try await queue.handBack(queue: name, entryIDs: [first.entryID], consumer: "c1") == 1)
            let second = try #require(try await queue.fetchJobs(name, consumer: "c1").first)
            #expect(second.entryID != entryID)
            #expect(second.envelope.id == entryID, "hand-back gave the job a new id")

            _ = try await queue.reclaimConsumer(queue: name, consumer: "c1")
            let third = try #require(try await queue.fetchJobs(name, consumer: "c2").first)
            #expect(third.envelope.attempt == 2)
            #expect(third.envelope.id == entryID, "reclaim gave the job a new id")
        }
    }

    // MARK: Defect 7: a stale acknowledgement leaves the redelivery's unique lock alone

    @Test func aStaleAcknowledgementDoesNotReleaseTheUniqueLockOfTheRedelivery() async throws {
        let options = JobQueue.Options(defaultVisibilityTimeout: .milliseconds(1))
        try await TestRedis.withJobQueue("promise-stale-ack", options: options) { queue in
            let name = TestRedis.uniqueQueueName("stale-ack")
            let unique = EnqueueOptions(uniqueKey: "k")
            let id = try await queue.enqueue(type: "t", queue: name, payload: json("{}"), options: unique).id
            let stale = try #require(try await queue.fetchJobs(name, consumer: "slow").first)
            try await Task.sleep(for: .milliseconds(20))
            #expect(try await queue.reclaimStalled(queue: name, minimumIdle: .zero) == ReclaimResult(requeued: 1))
            let redelivered = try #require(try await queue.fetchJobs(name, consumer: "fast").first)
            #expect(redelivered.envelope.id == id)

            // The slow worker finishes late: its entry is no longer pending, so its ack changes nothing.
            try await queue.acknowledge([stale])
            let duplicate = try await queue.enqueue(type: "t", queue: name, payload: json("{}"), options: unique)
            #expect(duplicate == EnqueueResult(id: id, enqueued: false), "the stale ack released the running job's lock")

            try await queue.acknowledge([redelivered])
            #expect(try await queue.enqueue(type: "t", queue: name, payload: json("{}"), options: unique).enqueued)
        }
    }

    // MARK: Defect 6: a unique lock lives as long as its job

    @Test func aDelayedUniqueJobHoldsItsLockUntilItRunsEvenPastUniqueFor() async throws {
        try await TestRedis.withJobQueue("promise-unique-delay") { queue in
            let name = TestRedis.uniqueQueueName("unique-delay")
            for options in [
                EnqueueOptions(runAt: nowMilliseconds() + 3_600_000, uniqueKey: "at", uniqueFor: .seconds(60)),
                EnqueueOptions(delay: .seconds(3600), uniqueKey: "after", uniqueFor: .seconds(60)),
            ] {
                let first = try await queue.enqueue(type: "t", queue: name, payload: json("{}"), options: options)
                #expect(first.enqueued)
                // The lock outlives the wait: an hour until the job is due, then the minute asked for.
                let ttl = try #require(try await queue.redis.send("PTTL", [.string(queue.keys(name).unique(options.uniqueKey!))]).int)
                #expect(ttl > 3_600_000, "the lock expires \(ttl) ms from now, before the job is due")
                let second = try await queue.enqueue(type: "t", queue: name, payload: json("{}"), options: options)
                #expect(second == EnqueueResult(id: first.id, enqueued: false))
            }
        }
    }

    @Test func aRetriedUniqueJobKeepsItsLockWhileItWaits() async throws {
        try await TestRedis.withJobQueue("promise-unique-retry") { queue in
            let name = TestRedis.uniqueQueueName("unique-retry")
            let options = EnqueueOptions(uniqueKey: "k", uniqueFor: .seconds(60))
            let id = try await queue.enqueue(type: "t", queue: name, payload: json("{}"), options: options).id
            let job = try #require(try await queue.fetchJobs(name).first)
            var next = job.envelope
            next.attempt += 1
            #expect(try await queue.retry(entryID: job.entryID, envelope: next, delay: .seconds(3600)))
            let ttl = try #require(try await queue.redis.send("PTTL", [.string(queue.keys(name).unique("k"))]).int)
            #expect(ttl > 3_600_000, "the lock expires \(ttl) ms from now, before the retry is due")
            let duplicate = try await queue.enqueue(type: "t", queue: name, payload: json("{}"), options: options)
            #expect(duplicate == EnqueueResult(id: id, enqueued: false))
        }
    }

    @Test func retryingADeadUniqueJobRetakesItsLockOrRefusesWhileAnotherHoldsIt() async throws {
        try await TestRedis.withJobQueue("promise-unique-dead") { queue in
            let name = TestRedis.uniqueQueueName("unique-dead")
            let unique = EnqueueOptions(maxAttempts: 1, uniqueKey: "k")
            let dead = try await queue.enqueue(type: "t", queue: name, payload: json(#"{"v":1}"#), options: unique).id
            let job = try #require(try await queue.fetchJobs(name).first)
            #expect(try await queue.deadLetter(queue: name, entryID: job.entryID, fields: job.envelope.fields, error: "x", worker: "w"))

            // Another job took the key meanwhile: retrying the dead one would run two at once.
            let holder = try await queue.enqueue(type: "t", queue: name, payload: json(#"{"v":2}"#), options: unique)
            #expect(holder.enqueued)
            await #expect(throws: QueueError.self) { try await queue.retryDead(queue: name, id: dead) }
            #expect(try await queue.stats(name).dead == 1)
            #expect(try await queue.stats(name).ready == 1)

            let running = try #require(try await queue.fetchJobs(name).first)
            try await queue.acknowledge([running])
            #expect(try await queue.retryDead(queue: name, id: dead))
            let duplicate = try await queue.enqueue(type: "t", queue: name, payload: json("{}"), options: unique)
            #expect(duplicate == EnqueueResult(id: dead, enqueued: false), "the retried job runs without its lock")
        }
    }

    @Test func retryingEveryDeadJobKeepsThoseWhoseUniqueKeyIsHeld() async throws {
        try await TestRedis.withJobQueue("promise-unique-dead-all") { queue in
            let name = TestRedis.uniqueQueueName("unique-dead-all")
            let first = try await queue.enqueue(
                type: "t", queue: name, payload: json("{}"), options: EnqueueOptions(maxAttempts: 1, uniqueKey: "a")
            ).id
            let second = try await queue.enqueue(
                type: "t", queue: name, payload: json("{}"), options: EnqueueOptions(maxAttempts: 1, uniqueKey: "b")
            ).id
            for job in try await queue.fetchJobs(name) {
                try await queue.deadLetter(queue: name, entryID: job.entryID, fields: job.envelope.fields, error: "x", worker: "w")
            }
            let holder = try await queue.enqueue(type: "t", queue: name, payload: json("{}"), options: EnqueueOptions(uniqueKey: "a"))
            #expect(holder.enqueued)

            #expect(try await queue.retryAllDead(queue: name) == 1)
            #expect(try await queue.deadLetters(queue: name).map(\.id) == [first])
            #expect(Set(try await queue.streamEntries(name).compactMap { $0["id"] }) == [holder.id, second])
            let duplicate = try await queue.enqueue(type: "t", queue: name, payload: json("{}"), options: EnqueueOptions(uniqueKey: "b"))
            #expect(duplicate == EnqueueResult(id: second, enqueued: false))
        }
    }

    // MARK: Defect 10: scripts write their destination before they remove the entry

    @Test func aDeadLetterThatCannotBeWrittenLeavesTheJobPending() async throws {
        try await TestRedis.withJobQueue("promise-dead-wrongtype") { queue in
            let name = TestRedis.uniqueQueueName("dead-wrongtype")
            try await queue.enqueueNumbered(1, queue: name)
            let job = try #require(try await queue.fetchJobs(name).first)
            try await queue.redis.send("SET", [.string(queue.keys(name).dead), "not a list"])
            await #expect(throws: RedisError.self) {
                try await queue.deadLetter(queue: name, entryID: job.entryID, fields: job.envelope.fields, error: "x", worker: "w")
            }
            try await queue.redis.send("DEL", [.string(queue.keys(name).dead)])
            #expect(try await queue.pendingEntryIDs(queue: name, consumer: "c1") == [job.entryID], "the job was lost")
        }
    }

    @Test func aRetryThatCannotBeScheduledLeavesTheJobPending() async throws {
        try await TestRedis.withJobQueue("promise-retry-wrongtype") { queue in
            let name = TestRedis.uniqueQueueName("retry-wrongtype")
            try await queue.enqueueNumbered(1, queue: name)
            let job = try #require(try await queue.fetchJobs(name).first)
            try await queue.redis.send("SET", [.string(queue.keys(name).delayed), "not a sorted set"])
            var next = job.envelope
            next.attempt += 1
            await #expect(throws: RedisError.self) {
                try await queue.retry(entryID: job.entryID, envelope: next, delay: .seconds(1))
            }
            try await queue.redis.send("DEL", [.string(queue.keys(name).delayed)])
            #expect(try await queue.pendingEntryIDs(queue: name, consumer: "c1") == [job.entryID], "the job was lost")
        }
    }

    @Test func aReclaimThatCannotDeadLetterLeavesTheJobPending() async throws {
        try await TestRedis.withJobQueue("promise-reclaim-wrongtype") { queue in
            let name = TestRedis.uniqueQueueName("reclaim-wrongtype")
            try await queue.enqueueNumbered(1, queue: name, options: EnqueueOptions(maxAttempts: 1))
            let job = try #require(try await queue.fetchJobs(name, consumer: "gone").first)
            try await queue.redis.send("SET", [.string(queue.keys(name).dead), "not a list"])
            await #expect(throws: RedisError.self) { try await queue.reclaimConsumer(queue: name, consumer: "gone") }
            try await queue.redis.send("DEL", [.string(queue.keys(name).dead)])
            #expect(try await queue.pendingEntryIDs(queue: name, consumer: "gone") == [job.entryID], "the job was lost")
        }
    }

    @Test func aDeduplicatedEnqueueThatFailedCanBeRepeated() async throws {
        try await TestRedis.withJobQueue("promise-dedup-marker") { queue in
            let name = TestRedis.uniqueQueueName("dedup-marker")
            try await queue.prepare(queues: [name])
            let id = JobID.make()
            let options = EnqueueOptions(id: id, deduplicateFor: .seconds(60))
            // The stream is briefly something else: the enqueue fails and the caller (the outbox
            // relay) will try again with the same id.
            try await queue.redis.send("RENAME", [.string(queue.keys(name).stream), .string(queue.keys(name).stream + ".aside")])
            try await queue.redis.send("SET", [.string(queue.keys(name).stream), "not a stream"])
            await #expect(throws: (any Error).self) {
                try await queue.enqueue(type: "t", queue: name, payload: json("{}"), options: options)
            }
            try await queue.redis.send("DEL", [.string(queue.keys(name).stream)])
            try await queue.redis.send("RENAME", [.string(queue.keys(name).stream + ".aside"), .string(queue.keys(name).stream)])

            let retried = try await queue.enqueue(type: "t", queue: name, payload: json("{}"), options: options)
            #expect(retried == EnqueueResult(id: id, enqueued: true), "the failed enqueue left its marker: the job is lost")
            #expect(try await queue.stats(name).ready == 1)
        }
    }

    // MARK: Minor: a pipeline that meets NOSCRIPT keeps its order

    @Test func aBatchOnAServerThatDoesNotKnowTheScriptsKeepsItsOrder() async throws {
        try await RedisServerProcess.withServer { server in
            let client = RedisClient(configuration: server.configuration(), logger: TestRedis.logger())
            let queue = JobQueue(redis: client)
            let name = "order"
            let results = try await queue.enqueue(batch: [
                EnqueueRequest(type: "a", queue: name, json: "{}", options: EnqueueOptions(uniqueKey: "a")),
                EnqueueRequest(type: "b", queue: name, json: "{}"),
                EnqueueRequest(type: "c", queue: name, json: "{}", options: EnqueueOptions(uniqueKey: "c")),
                EnqueueRequest(type: "d", queue: name, json: "{}"),
            ])
            #expect(results.allSatisfy { $0.enqueued })
            #expect(try await queue.streamEntries(name).compactMap { $0["type"] } == ["a", "b", "c", "d"])
            await client.close()
        }
    }
}
