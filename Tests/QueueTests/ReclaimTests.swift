import HarrowTestSupport
import NIOCore
import Testing

@testable import Queue

/// Lifecycle step 6: entries of crashed or silent workers are delivered again, with the
/// attempt counted, and a job out of attempts ends in `dead`.
@Suite("Reclaim")
struct ReclaimTests {
    @Test func reclaimConsumerRedeliversWhatItHeldWithAnAttemptCounted() async throws {
        try await TestRedis.withJobQueue("reclaim-consumer") { queue in
            let name = TestRedis.uniqueQueueName("reclaim-consumer")
            let ids = try await queue.enqueueNumbered(3, queue: name, options: EnqueueOptions(maxAttempts: 5))
            let lastChance = try await queue.enqueue(
                type: "last", queue: name, payload: json(#"{"last":true}"#), options: EnqueueOptions(maxAttempts: 1)
            ).id
            #expect(try await queue.fetchJobs(name, consumer: "dead-1").count == 4)
            let alive = try await queue.enqueueNumbered(1, queue: name)
            let aliveJob = try #require(try await queue.fetchJobs(name, consumer: "alive").first)

            let result = try await queue.reclaimConsumer(queue: name, consumer: "dead-1")
            #expect(result == ReclaimResult(requeued: 3, deadLettered: 1))
            let consumers = try await queue.consumers(queue: name)
            #expect(consumers.map(\.name) == ["alive"])
            #expect(try await queue.pendingEntryIDs(queue: name, consumer: "alive") == [aliveJob.entryID])
            #expect(aliveJob.envelope.id == alive[0])

            let again = try await queue.fetchJobs(name, consumer: "c2")
            #expect(again.map(\.envelope.id) == ids)
            #expect(again.allSatisfy { $0.envelope.attempt == 2 && $0.envelope.maxAttempts == 5 })
            #expect(again.map(\.envelope.payloadString) == (0..<3).map { #"{"n":\#($0)}"# })

            let letter = try #require(try await queue.deadLetters(queue: name).first)
            #expect(letter.id == lastChance)
            #expect(letter.type == "last")
            #expect(letter.payload == #"{"last":true}"#)
            #expect(letter.worker == "dead-1")
            #expect(letter.error.contains("dead-1"), "\(letter.error)")
            #expect(letter.error.contains("no attempts left"), "\(letter.error)")
            #expect(letter.failedAt > 0)

            #expect(try await queue.reclaimConsumer(queue: name, consumer: "dead-1") == ReclaimResult())
            #expect(try await queue.reclaimConsumer(queue: name, consumer: "never-existed") == ReclaimResult())
        }
    }

    @Test func reclaimConsumerWorksThroughMoreThanOneBatch() async throws {
        try await TestRedis.withJobQueue("reclaim-many") { queue in
            let name = TestRedis.uniqueQueueName("reclaim-many")
            let ids = try await queue.enqueueNumbered(250, queue: name)
            #expect(try await queue.fetchJobs(name, consumer: "dead-2", limit: 1000).count == 250)
            #expect(try await queue.reclaimConsumer(queue: name, consumer: "dead-2") == ReclaimResult(requeued: 250))
            let again = try await queue.fetchJobs(name, consumer: "c2", limit: 1000)
            #expect(again.map(\.envelope.id) == ids)
            #expect(again.allSatisfy { $0.envelope.attempt == 2 })
        }
    }

    @Test func reclaimStalledRedeliversOnlyJobsPastTheirVisibilityTimeout() async throws {
        try await TestRedis.withJobQueue("reclaim-stalled") { queue in
            let name = TestRedis.uniqueQueueName("stalled")
            let short = try await queue.enqueue(
                type: "short", queue: name, payload: json("{}"),
                options: EnqueueOptions(visibilityTimeout: .milliseconds(50))
            ).id
            try await queue.enqueue(
                type: "long", queue: name, payload: json("{}"),
                options: EnqueueOptions(visibilityTimeout: .seconds(3600)))
            try await queue.enqueue(type: "default", queue: name, payload: json("{}"))
            let held = try await queue.fetchJobs(name, consumer: "c1")
            try #require(held.count == 3)

            var total = ReclaimResult()
            try await eventually("the 50 ms job is reclaimed") {
                total = total + (try await queue.reclaimStalled(queue: name, minimumIdle: .zero))
                return total.requeued > 0
            }
            #expect(total == ReclaimResult(requeued: 1))
            #expect(try await queue.reclaimStalled(queue: name, minimumIdle: .zero) == ReclaimResult())
            #expect(try await queue.pendingEntryIDs(queue: name, consumer: "c1") == [held[1].entryID, held[2].entryID])

            let again = try await queue.fetchJobs(name, consumer: "c2")
            #expect(again.map(\.envelope.id) == [short])
            #expect(again.first?.envelope.attempt == 2)
            #expect(again.first?.envelope.visibilityTimeout == 50)
        }
    }

    @Test func reclaimStalledDeadLettersAJobWithoutAttemptsLeft() async throws {
        try await TestRedis.withJobQueue("reclaim-stalled-dead") { queue in
            let name = TestRedis.uniqueQueueName("stalled-dead")
            let id = try await queue.enqueue(
                type: "t", queue: name, payload: json("{}"),
                options: EnqueueOptions(maxAttempts: 1, visibilityTimeout: .milliseconds(50))
            ).id
            #expect(try await queue.fetchJobs(name, consumer: "silent").count == 1)
            try await eventually("the job is dead-lettered") {
                try await queue.reclaimStalled(queue: name, minimumIdle: .zero).deadLettered == 1
            }
            let letter = try #require(try await queue.deadLetters(queue: name).first)
            #expect(letter.id == id)
            #expect(letter.worker == "silent")
            #expect(letter.error.contains("no heartbeat"), "\(letter.error)")
            #expect(letter.error.contains("silent"), "\(letter.error)")
            let stats = try await queue.stats(name)
            #expect(stats.pending == 0)
            #expect(stats.ready == 0)
            #expect(stats.dead == 1)
        }
    }

    @Test func reclaimStalledFallsBackToTheDefaultVisibilityTimeout() async throws {
        let options = JobQueue.Options(defaultVisibilityTimeout: .milliseconds(50))
        try await TestRedis.withJobQueue("reclaim-default", options: options) { queue in
            let name = TestRedis.uniqueQueueName("stalled-default")
            let id = try await queue.enqueue(type: "t", queue: name, payload: json("{}")).id
            #expect(try await queue.fetchJobs(name).count == 1)
            try await eventually("the job is reclaimed") {
                try await queue.reclaimStalled(queue: name, minimumIdle: .zero).requeued == 1
            }
            #expect(try await queue.fetchJobs(name, consumer: "c2").map(\.envelope.id) == [id])
        }
    }

    @Test func minimumIdleBoundsTheScan() async throws {
        try await TestRedis.withJobQueue("reclaim-min-idle") { queue in
            let name = TestRedis.uniqueQueueName("min-idle")
            try await queue.enqueue(
                type: "t", queue: name, payload: json("{}"),
                options: EnqueueOptions(visibilityTimeout: .milliseconds(20)))
            #expect(try await queue.fetchJobs(name).count == 1)
            try await eventually("the entry is idle past its visibility timeout") {
                try await queue.pendingJobs(queue: name).first.map { ($0.idleMilliseconds ?? 0) > 40 } ?? false
            }
            #expect(try await queue.reclaimStalled(queue: name, minimumIdle: .seconds(3600)) == ReclaimResult())
            #expect(
                try await queue.reclaimStalled(queue: name, minimumIdle: .milliseconds(20))
                    == ReclaimResult(requeued: 1))
        }
    }

    @Test func refreshKeepsARunningJobFromBeingReclaimed() async throws {
        try await TestRedis.withJobQueue("refresh") { queue in
            let name = TestRedis.uniqueQueueName("refresh")
            let other = TestRedis.uniqueQueueName("refresh-other")
            let options = EnqueueOptions(visibilityTimeout: .milliseconds(1000))
            try await queue.enqueueNumbered(2, queue: name, options: options)
            try await queue.enqueueNumbered(1, queue: other, options: options)
            let held = try await queue.fetchJobs(name, consumer: "c1")
            let heldOther = try await queue.fetchJobs(other, consumer: "c1")
            try #require(held.count == 2 && heldOther.count == 1)
            try await eventually("both entries are idle past the visibility timeout", timeout: .seconds(10)) {
                try await queue.pendingJobs(queue: name).allSatisfy { ($0.idleMilliseconds ?? 0) >= 1000 }
            }

            // The heartbeat of a worker still running the first job (and the one in `other`).
            try await queue.refresh([(name, held[0].entryID), (other, heldOther[0].entryID)], consumer: "c1")
            #expect(try await queue.reclaimStalled(queue: name, minimumIdle: .zero) == ReclaimResult(requeued: 1))
            #expect(try await queue.reclaimStalled(queue: other, minimumIdle: .zero) == ReclaimResult())
            #expect(try await queue.pendingEntryIDs(queue: name, consumer: "c1") == [held[0].entryID])
            let redelivered = try await queue.fetchJobs(name, consumer: "c2")
            #expect(redelivered.map(\.envelope.id) == [held[1].envelope.id])
            try await queue.refresh([], consumer: "c1")
        }
    }
}
