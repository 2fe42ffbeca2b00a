import HarrowTestSupport
import NIOCore
import Testing

@testable import Queue

/// What operators see: stats, listings of each state, and finding one job.
@Suite("Stats and listings")
struct InspectionTests {
    @Test func statsOfAnUnknownQueueAreZero() async throws {
        try await TestRedis.withJobQueue("stats-empty") { queue in
            let name = TestRedis.uniqueQueueName("nothing")
            let stats = try await queue.stats(name)
            #expect(
                stats
                    == QueueStats(
                        queue: name, ready: 0, pending: 0, delayed: 0, dead: 0, consumers: 0,
                        oldestReadyAgeMilliseconds: nil,
                        paused: false))
            #expect(try await queue.stats(queues: []).isEmpty)
        }
    }

    @Test func statsCountEveryState() async throws {
        try await TestRedis.withJobQueue("stats") { queue in
            let name = TestRedis.uniqueQueueName("stats")
            let other = TestRedis.uniqueQueueName("stats-other")
            try await queue.enqueueNumbered(5, queue: name)
            try await queue.enqueueNumbered(2, queue: name, options: .delayed(by: .seconds(3600)))
            try await queue.enqueueNumbered(1, queue: other)
            try await Task.sleep(for: .milliseconds(30))

            let running = try await queue.fetchJobs(name, consumer: "c1", limit: 2)
            let failing = try #require(try await queue.fetchJobs(name, consumer: "c2", limit: 1).first)
            try await queue.deadLetter(
                queue: name, entryID: failing.entryID, fields: failing.envelope.fields, error: "e", worker: "c2")
            #expect(running.count == 2)

            var stats = try await queue.stats(queues: [name, other])
            try #require(stats.count == 2)
            #expect(stats[0].queue == name)
            #expect(stats[0].ready == 2)
            #expect(stats[0].pending == 2)
            #expect(stats[0].delayed == 2)
            #expect(stats[0].dead == 1)
            #expect(stats[0].consumers == 2)
            #expect(stats[0].paused == false)
            // The oldest ready job was enqueued before the 30 ms pause.
            let age = try #require(stats[0].oldestReadyAgeMilliseconds)
            #expect(age >= 25 && age < 60_000)
            #expect(stats[1].queue == other)
            #expect(stats[1].ready == 1)
            #expect(stats[1].consumers == 0)

            try await queue.acknowledge(running)
            #expect(try await queue.fetchJobs(name, consumer: "c1").count == 2)
            try await queue.pause(queue: name)
            stats = try await queue.stats(queues: [name])
            #expect(stats[0].paused)
            #expect(stats[0].ready == 0)
            #expect(stats[0].pending == 2)
            #expect(stats[0].oldestReadyAgeMilliseconds == nil)
        }
    }

    @Test func listingsShowEachStateWithItsDetails() async throws {
        try await TestRedis.withJobQueue("listings") { queue in
            let name = TestRedis.uniqueQueueName("listings")
            let ids = try await queue.enqueueNumbered(4, queue: name, type: "listed")
            let soonAt = nowMilliseconds() + 1_800_000
            let laterAt = nowMilliseconds() + 3_600_000
            let later = try await queue.enqueue(
                type: "later", queue: name, payload: json("{}"), options: EnqueueOptions(runAt: laterAt)
            ).id
            let soon = try await queue.enqueue(
                type: "soon", queue: name, payload: json("{}"), options: EnqueueOptions(runAt: soonAt)
            ).id
            let running = try await queue.fetchJobs(name, consumer: "holder", limit: 2)

            let ready = try await queue.readyJobs(queue: name)
            #expect(ready.map(\.id) == [ids[2], ids[3]])
            #expect(ready.allSatisfy { $0.state == .ready && $0.type == "listed" && $0.entryID != nil })
            #expect(ready.first?.fields["payload"] == #"{"n":2}"#)
            #expect(try await queue.readyJobs(queue: name, limit: 1).map(\.id) == [ids[2]])

            let pending = try await queue.pendingJobs(queue: name)
            #expect(pending.map(\.id) == [ids[0], ids[1]])
            #expect(pending.map(\.entryID) == running.map(\.entryID))
            #expect(pending.allSatisfy { $0.state == .pending && $0.consumer == "holder" })
            #expect(pending.allSatisfy { ($0.idleMilliseconds ?? -1) >= 0 })
            #expect(pending.first?.fields["payload"] == #"{"n":0}"#)

            let delayed = try await queue.delayedJobs(queue: name)
            #expect(delayed.map(\.id) == [soon, later])
            #expect(delayed.map(\.runAt) == [soonAt, laterAt])
            #expect(delayed.map(\.type) == ["soon", "later"])
            #expect(delayed.allSatisfy { $0.state == .delayed })
            #expect(try await queue.delayedJobs(queue: name, limit: 1).map(\.id) == [soon])
        }
    }

    @Test func findLocatesAJobInEachState() async throws {
        try await TestRedis.withJobQueue("find") { queue in
            let name = TestRedis.uniqueQueueName("find")
            let ids = try await queue.enqueueNumbered(3, queue: name)
            let runAt = nowMilliseconds() + 3_600_000
            let delayedID = try await queue.enqueue(
                type: "t", queue: name, payload: json("{}"), options: EnqueueOptions(runAt: runAt)
            ).id
            let jobs = try await queue.fetchJobs(name, consumer: "finder", limit: 2)
            try await queue.deadLetter(
                queue: name, entryID: jobs[1].entryID, fields: jobs[1].envelope.fields, error: "gone", worker: "finder")

            let ready = try #require(try await queue.find(queue: name, id: ids[2]))
            #expect(ready.state == .ready)
            #expect(ready.id == ids[2])
            #expect(ready.fields["payload"] == #"{"n":2}"#)

            let pending = try #require(try await queue.find(queue: name, id: ids[0]))
            #expect(pending.state == .pending)
            #expect(pending.consumer == "finder")
            #expect(pending.entryID == jobs[0].entryID)
            #expect(pending.idleMilliseconds != nil)

            let delayed = try #require(try await queue.find(queue: name, id: delayedID))
            #expect(delayed.state == .delayed)
            #expect(delayed.runAt == runAt)
            #expect(delayed.fields["id"] == delayedID)

            let dead = try #require(try await queue.find(queue: name, id: ids[1]))
            #expect(dead.state == .dead)
            #expect(dead.deadLetter?.error == "gone")
            #expect(dead.deadLetter?.worker == "finder")

            #expect(try await queue.find(queue: name, id: JobID.make()) == nil)
        }
    }

    @Test func consumersListsWhoHoldsWhat() async throws {
        try await TestRedis.withJobQueue("consumers") { queue in
            let name = TestRedis.uniqueQueueName("consumers")
            #expect(try await queue.consumers(queue: name).isEmpty)
            try await queue.enqueueNumbered(3, queue: name)
            _ = try await queue.fetchJobs(name, consumer: "a", limit: 2)
            _ = try await queue.fetchJobs(name, consumer: "b", limit: 1)
            let consumers = try await queue.consumers(queue: name).sorted { $0.name < $1.name }
            #expect(consumers.map(\.name) == ["a", "b"])
            #expect(consumers.map(\.pending) == [2, 1])
            #expect(consumers.allSatisfy { $0.idle >= .zero })
        }
    }
}
