import HarrowTestSupport
import NIOCore
import Testing

@testable import Queue

@Suite("Pause and delete")
struct PauseDeleteTests {
    @Test func pausedQueueIsSkippedAndReportedUntilResumed() async throws {
        try await TestRedis.withJobQueue("pause") { queue in
            let paused = TestRedis.uniqueQueueName("paused")
            let open = TestRedis.uniqueQueueName("open")
            let pausedIDs = try await queue.enqueueNumbered(2, queue: paused)
            let openIDs = try await queue.enqueueNumbered(1, queue: open)
            try await queue.pause(queue: paused)
            #expect(try await queue.stats(paused).paused)
            #expect(try await queue.stats(open).paused == false)

            let request = FetchRequest(queues: [(paused, 10), (open, 10)], total: 10)
            let fetched = try await queue.fetchReady(request, consumer: "c1")
            #expect(fetched.paused == [paused])
            #expect(fetched.deliveries.compactMap(\.job).map(\.envelope.id) == openIDs)
            #expect(try await queue.stats(paused).ready == 2)

            // Pausing twice is harmless; resuming makes the jobs fetchable again.
            try await queue.pause(queue: paused)
            try await queue.resume(queue: paused)
            #expect(try await queue.stats(paused).paused == false)
            let resumed = try await queue.fetchReady(request, consumer: "c1")
            #expect(resumed.paused.isEmpty)
            #expect(resumed.deliveries.compactMap(\.job).map(\.envelope.id) == pausedIDs)
            await #expect(throws: QueueError.self) { try await queue.pause(queue: "no spaces allowed") }
        }
    }

    /// A single queue is fetched without the script; a pause that lands after one fetch still
    /// keeps the next from running anything: what it took goes back, ready, unrun.
    @Test func aSingleQueuePausedBetweenFetchesHandsBackWhatItTook() async throws {
        try await TestRedis.withJobQueue("pause-between") { queue in
            let name = TestRedis.uniqueQueueName("pause-between")
            let request = FetchRequest(queues: [(name, 2)], total: 2)
            let ids = try await queue.enqueueNumbered(4, queue: name)
            let first = try await queue.fetchReady(request, consumer: "c1")
            #expect(first.deliveries.compactMap(\.job).map(\.envelope.id) == Array(ids.prefix(2)))
            try await queue.pause(queue: name)

            let paused = try await queue.fetchReady(request, consumer: "c1")
            #expect(paused.paused == [name])
            #expect(paused.deliveries.isEmpty)
            var stats = try await queue.stats(name)
            #expect(stats.ready == 2 && stats.pending == 2)
            #expect(try await queue.pendingEntryIDs(queue: name, consumer: "c1").count == 2)
            // While paused, fetches take nothing at all.
            #expect(try await queue.fetchReady(request, consumer: "c1").deliveries.isEmpty)
            stats = try await queue.stats(name)
            #expect(stats.ready == 2 && stats.pending == 2)

            try await queue.resume(queue: name)
            let resumed = try await queue.fetchReady(request, consumer: "c1")
            #expect(resumed.paused.isEmpty)
            #expect(Set(resumed.deliveries.compactMap(\.job).map(\.envelope.id)) == Set(ids.suffix(2)))
            #expect(resumed.deliveries.compactMap(\.job).allSatisfy { $0.envelope.attempt == 1 })
        }
    }

    @Test func pausingAnUnknownQueueRegistersIt() async throws {
        try await TestRedis.withJobQueue("pause-new") { queue in
            let name = TestRedis.uniqueQueueName("pause-new")
            try await queue.pause(queue: name)
            #expect(try await queue.knownQueues() == [name])
            let fetched = try await queue.fetchReady(FetchRequest(queues: [(name, 1)], total: 1), consumer: "c1")
            #expect(fetched.paused == [name])
        }
    }

    @Test func deleteRemovesAReadyJob() async throws {
        try await TestRedis.withJobQueue("delete-ready") { queue in
            let name = TestRedis.uniqueQueueName("delete-ready")
            let ids = try await queue.enqueueNumbered(3, queue: name)
            try await queue.delete(queue: name, id: ids[1])
            #expect(try await queue.find(queue: name, id: ids[1]) == nil)
            #expect(try await queue.stats(name).ready == 2)
            #expect(try await queue.fetchJobs(name).map(\.envelope.id) == [ids[0], ids[2]])
        }
    }

    @Test func deleteRemovesADelayedJob() async throws {
        try await TestRedis.withJobQueue("delete-delayed") { queue in
            let name = TestRedis.uniqueQueueName("delete-delayed")
            let id = try await queue.enqueue(
                type: "t", queue: name, payload: json("{}"), options: .delayed(by: .seconds(3600))
            ).id
            try await queue.delete(queue: name, id: id)
            #expect(try await queue.stats(name).delayed == 0)
            #expect(try await queue.redis.send("EXISTS", [.string(queue.keys(name).job(id))]) == .integer(0))
            #expect(try await queue.find(queue: name, id: id) == nil)
            let again = await #expect(throws: QueueError.self) { try await queue.delete(queue: name, id: id) }
            #expect(again?.code == .jobNotFound)
        }
    }

    @Test func aRunningJobCannotBeDeleted() async throws {
        try await TestRedis.withJobQueue("delete-running") { queue in
            let name = TestRedis.uniqueQueueName("delete-running")
            let id = try await queue.enqueue(type: "t", queue: name, payload: json("{}")).id
            let job = try #require(try await queue.fetchJobs(name).first)
            let error = await #expect(throws: QueueError.self) { try await queue.delete(queue: name, id: id) }
            #expect(error?.code == .jobIsRunning)
            #expect(error?.message.contains(id) == true)
            // Still there, still pending.
            #expect(try await queue.find(queue: name, id: id)?.state == .pending)
            #expect(try await queue.pendingEntryIDs(queue: name, consumer: "c1") == [job.entryID])
        }
    }

    @Test func deletingAnUnknownJobFails() async throws {
        try await TestRedis.withJobQueue("delete-unknown") { queue in
            let name = TestRedis.uniqueQueueName("delete-unknown")
            try await queue.enqueueNumbered(2, queue: name)
            let error = await #expect(throws: QueueError.self) { try await queue.delete(queue: name, id: JobID.make()) }
            #expect(error?.code == .jobNotFound)
            let empty = await #expect(throws: QueueError.self) {
                try await queue.delete(queue: TestRedis.uniqueQueueName("never-used"), id: "x")
            }
            #expect(empty?.code == .jobNotFound)
            #expect(try await queue.stats(name).ready == 2)
        }
    }

    @Test func deleteFindsAJobBeyondTheFirstPageOfTheStream() async throws {
        try await TestRedis.withJobQueue("delete-deep") { queue in
            let name = TestRedis.uniqueQueueName("delete-deep")
            let ids = try await queue.enqueueNumbered(1205, queue: name)
            try await queue.delete(queue: name, id: ids[1203])
            #expect(try await queue.stats(name).ready == 1204)
            #expect(try await queue.find(queue: name, id: ids[1204])?.state == .ready)
            #expect(try await queue.find(queue: name, id: ids[1203]) == nil)
        }
    }
}
