import HarrowTestSupport
import NIOCore
import Testing

@testable import Queue

/// Lifecycle steps 3, 4, 7 and 8: acknowledge, retry through `delayed`, promote, hand back.
@Suite("Acknowledge, retry and hand back")
struct AcknowledgeRetryTests {
    @Test func acknowledgeRemovesJobsFromTheStream() async throws {
        try await TestRedis.withJobQueue("ack") { queue in
            let first = TestRedis.uniqueQueueName("ack-1")
            let second = TestRedis.uniqueQueueName("ack-2")
            try await queue.enqueueNumbered(3, queue: first)
            try await queue.enqueueNumbered(2, queue: second)
            let jobs = try await queue.fetchJobs(first) + queue.fetchJobs(second)
            try #require(jobs.count == 5)
            #expect(try await queue.stats(first).pending == 3)

            // One call acknowledges jobs of several queues.
            try await queue.acknowledge(jobs)
            for name in [first, second] {
                let stats = try await queue.stats(name)
                #expect(stats.ready == 0)
                #expect(stats.pending == 0)
                #expect(try await queue.redis.send("XLEN", [.string(queue.keys(name).stream)]) == .integer(0))
            }
            // Acknowledging again, or nothing, is harmless.
            try await queue.acknowledge(jobs)
            try await queue.acknowledge([Acknowledgement]())
            #expect(try await queue.fetch(first).isEmpty)
        }
    }

    @Test func retryReschedulesTheJobWithItsNewAttempt() async throws {
        try await TestRedis.withJobQueue("retry") { queue in
            let name = TestRedis.uniqueQueueName("retry")
            let id = try await queue.enqueue(
                type: "flaky", queue: name, payload: json(#"{"k":"v"}"#), options: EnqueueOptions(maxAttempts: 5)
            ).id
            let job = try #require(try await queue.fetchJobs(name).first)
            var next = job.envelope
            next.attempt += 1
            let before = nowMilliseconds()
            #expect(try await queue.retry(entryID: job.entryID, envelope: next, delay: .seconds(3600)))
            let after = nowMilliseconds()

            var stats = try await queue.stats(name)
            #expect(stats.ready == 0)
            #expect(stats.pending == 0)
            #expect(stats.delayed == 1)
            let found = try #require(try await queue.find(queue: name, id: id))
            #expect(found.state == .delayed)
            let runAt = try #require(found.runAt)
            // Due an hour after Redis's now (the same clock as this machine's here).
            #expect(runAt >= before + 3_600_000 - 5 && runAt <= after + 3_600_000 + 5)
            #expect(found.fields["attempt"] == "2")
            #expect(found.fields["max_attempts"] == "5")
            #expect(try await queue.promoteDue(queue: name).moved == 0)
            #expect(try await queue.fetch(name).isEmpty)

            // A retry of an entry that is no longer pending changes nothing.
            #expect(try await queue.retry(entryID: job.entryID, envelope: next, delay: .zero) == false)
            #expect(try await queue.find(queue: name, id: id)?.runAt == runAt)

            // Rescheduled into the past, it is promoted at once, with its attempt and fields.
            try await queue.redis.send(
                "ZADD", [.string(queue.keys(name).delayed), "XX", .int(Int(nowMilliseconds() - 1)), .string(id)])
            #expect(try await queue.promoteDue(queue: name).moved == 1)
            let again = try #require(try await queue.fetchJobs(name).first)
            #expect(again.envelope.id == id)
            #expect(again.envelope.attempt == 2)
            #expect(again.envelope.maxAttempts == 5)
            #expect(again.envelope.type == "flaky")
            #expect(again.envelope.payloadString == #"{"k":"v"}"#)
            #expect(again.entryID != job.entryID)
            stats = try await queue.stats(name)
            #expect(stats.delayed == 0)
            #expect(stats.pending == 1)
        }
    }

    @Test func retryWithAShortDelayComesBackWhenDue() async throws {
        try await TestRedis.withJobQueue("retry-short") { queue in
            let name = TestRedis.uniqueQueueName("retry-short")
            let id = try await queue.enqueue(type: "t", queue: name, payload: json("{}")).id
            let job = try #require(try await queue.fetchJobs(name).first)
            var next = job.envelope
            next.attempt = 2
            #expect(try await queue.retry(entryID: job.entryID, envelope: next, delay: .milliseconds(100)))
            try await eventually("the retry is promoted") { try await queue.promoteDue(queue: name).moved == 1 }
            let again = try await queue.fetchJobs(name)
            #expect(again.map(\.envelope.id) == [id])
            #expect(again.map(\.envelope.attempt) == [2])
        }
    }

    @Test func handBackReturnsEntriesWithoutCountingAnAttempt() async throws {
        try await TestRedis.withJobQueue("hand-back") { queue in
            let name = TestRedis.uniqueQueueName("hand-back")
            let ids = try await queue.enqueueNumbered(3, queue: name)
            let held = try await queue.fetchJobs(name, consumer: "leaving")
            try #require(held.count == 3)
            let other = try await queue.enqueueNumbered(1, queue: name)
            let othersJob = try #require(try await queue.fetchJobs(name, consumer: "staying").first)

            // Only entries `leaving` holds go back; one held by someone else is not touched.
            let returned = try await queue.handBack(
                queue: name, entryIDs: held.prefix(2).map(\.entryID) + [othersJob.entryID], consumer: "leaving")
            #expect(returned == 2)
            var stats = try await queue.stats(name)
            #expect(stats.ready == 2)
            #expect(stats.pending == 2)
            #expect(try await queue.pendingEntryIDs(queue: name, consumer: "leaving") == [held[2].entryID])
            #expect(try await queue.pendingEntryIDs(queue: name, consumer: "staying") == [othersJob.entryID])
            #expect(othersJob.envelope.id == other[0])

            let again = try await queue.fetchJobs(name, consumer: "next")
            #expect(again.map(\.envelope.id) == Array(ids.prefix(2)))
            #expect(again.allSatisfy { $0.envelope.attempt == 1 })
            #expect(again.map(\.envelope.payloadString) == [#"{"n":0}"#, #"{"n":1}"#])
            #expect(try await queue.handBack(queue: name, entryIDs: [], consumer: "leaving") == 0)
            stats = try await queue.stats(name)
            #expect(stats.pending == 4)
        }
    }
}
