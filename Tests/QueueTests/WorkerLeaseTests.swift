import Foundation
import HarrowTestSupport
import NIOCore
import Testing

@testable import Queue

/// Keys shared by every queue of a prefix: leases and the live-workers set. Each test has a
/// key prefix of its own (``TestRedis/withJobQueue(_:options:configure:_:)``), so no other
/// test's workers or leases are in sight.
@Suite("Leases and workers")
struct WorkerLeaseTests {
    @Test func leaseIsHeldByOneHolderAtATime() async throws {
        try await TestRedis.withJobQueue("lease") { queue in
            #expect(try await queue.acquireLease("promoter", holder: "A", ttl: .seconds(30)))
            #expect(try await queue.acquireLease("promoter", holder: "B", ttl: .seconds(30)) == false)
            // Renewing extends the holder's lease.
            try await queue.redis.send("PEXPIRE", [.string(queue.globalKeys.lease("promoter")), 5000])
            #expect(try await queue.acquireLease("promoter", holder: "A", ttl: .seconds(30)))
            let ttl = try await queue.redis.send("PTTL", [.string(queue.globalKeys.lease("promoter"))]).int ?? 0
            #expect(ttl > 5000 && ttl <= 30_000)
            // Other leases are independent.
            #expect(try await queue.acquireLease("reclaimer", holder: "B", ttl: .seconds(30)))

            // Only the holder can release it.
            try await queue.releaseLease("promoter", holder: "B")
            #expect(try await queue.acquireLease("promoter", holder: "B", ttl: .seconds(30)) == false)
            try await queue.releaseLease("promoter", holder: "A")
            #expect(try await queue.acquireLease("promoter", holder: "B", ttl: .seconds(30)))
            #expect(try await queue.acquireLease("promoter", holder: "A", ttl: .seconds(30)) == false)
        }
    }

    @Test func leaseExpiresAfterItsTTL() async throws {
        try await TestRedis.withJobQueue("lease-ttl") { queue in
            #expect(try await queue.acquireLease("scheduler", holder: "A", ttl: .seconds(2)))
            #expect(try await queue.acquireLease("scheduler", holder: "B", ttl: .seconds(30)) == false)
            try await eventually("the lease of A expires") {
                try await queue.acquireLease("scheduler", holder: "B", ttl: .seconds(30))
            }
            #expect(try await queue.acquireLease("scheduler", holder: "A", ttl: .seconds(30)) == false)
        }
    }

    @Test func heartbeatRegistersALiveWorkerUntilItDeregisters() async throws {
        try await TestRedis.withJobQueue("heartbeat") { queue in
            let queues = [TestRedis.uniqueQueueName("hb-1"), TestRedis.uniqueQueueName("hb-2")]
            let startedAt = nowMilliseconds() - 5000
            let worker = WorkerInfo(
                id: "worker-a", host: "host-1", pid: 4242, queues: queues, concurrency: 20, startedAt: startedAt)
            let before = nowMilliseconds()
            try await queue.heartbeat(worker, ttl: .seconds(60))
            let after = nowMilliseconds()

            let live = try await queue.liveWorkers()
            try #require(live.count == 1)
            #expect(live[0].id == "worker-a")
            #expect(live[0].host == "host-1")
            #expect(live[0].pid == 4242)
            #expect(live[0].queues == queues)
            #expect(live[0].concurrency == 20)
            #expect(live[0].startedAt == startedAt)
            // lastSeen is the server's clock; it runs on this machine.
            #expect(live[0].lastSeen >= before - 1000 && live[0].lastSeen <= after + 1000)
            #expect(try await queue.knownQueues() == queues.sorted())
            let ttl = try await queue.redis.send("PTTL", [.string(queue.globalKeys.worker("worker-a"))]).int ?? 0
            #expect(ttl > 0 && ttl <= 60_000)

            try await queue.deregister(workerID: "worker-a")
            #expect(try await queue.liveWorkers().isEmpty)
            #expect(try await queue.redis.send("EXISTS", [.string(queue.globalKeys.worker("worker-a"))]) == .integer(0))
        }
    }

    @Test func liveWorkersLeavesOutWorkersSilentForLongerThanMaxAge() async throws {
        try await TestRedis.withJobQueue("live-workers") { queue in
            let silent = WorkerInfo(id: "silent", host: "h", pid: 1, queues: [], concurrency: 1, startedAt: 0)
            try await queue.heartbeat(silent, ttl: .seconds(60))
            // Two seconds, not less: on a loaded machine (the cluster pass of scripts/test) the
            // fresh beat below can take half a second to be read back.
            try await eventually("the silent worker is older than 2 s") {
                try await queue.liveWorkers(maxAge: .seconds(2)).isEmpty
            }
            let fresh = WorkerInfo(id: "fresh", host: "h", pid: 2, queues: [], concurrency: 1, startedAt: 0)
            try await queue.heartbeat(fresh, ttl: .seconds(60))
            #expect(try await queue.liveWorkers(maxAge: .seconds(2)).map(\.id) == ["fresh"])
            #expect(try await queue.liveWorkers(maxAge: .seconds(60)).map(\.id).sorted() == ["fresh", "silent"])
        }
    }

    @Test func reclaimDeadWorkersRequeuesWhatADeadWorkerHeldAndForgetsIt() async throws {
        try await TestRedis.withJobQueue("dead-workers") { queue in
            let name = TestRedis.uniqueQueueName("dead-workers")
            // Long enough that w-live, heartbeating on every try, never looks dead on a loaded machine.
            let deadAfter = Duration.seconds(2)
            let live = WorkerInfo(id: "w-live", host: "h", pid: 1, queues: [name], concurrency: 4, startedAt: 0)
            let dead = WorkerInfo(id: "w-dead", host: "h", pid: 2, queues: [name], concurrency: 4, startedAt: 0)
            try await queue.heartbeat(live, ttl: .seconds(60))
            try await queue.heartbeat(dead, ttl: .seconds(60))
            let ids = try await queue.enqueueNumbered(3, queue: name)
            let liveJob = try #require(try await queue.fetchJobs(name, consumer: "w-live", limit: 1).first)
            let deadJobs = try await queue.fetchJobs(name, consumer: "w-dead", limit: 2)
            #expect(deadJobs.map(\.envelope.id) == Array(ids.dropFirst()))

            // w-live keeps heartbeating; w-dead has stopped.
            var total = ReclaimResult()
            try await eventually("w-dead is found dead", timeout: .seconds(10)) {
                try await queue.heartbeat(live, ttl: .seconds(60))
                total = total + (try await queue.reclaimDeadWorkers(deadAfter: deadAfter))
                return total.requeued >= 2
            }
            #expect(total == ReclaimResult(requeued: 2))

            let workers = try await queue.redis.send("ZRANGE", [.string(queue.globalKeys.workers), "0", "-1"])
            #expect(workers.array?.compactMap(\.string) == ["w-live"])
            #expect(try await queue.consumers(queue: name).map(\.name) == ["w-live"])
            #expect(try await queue.pendingEntryIDs(queue: name, consumer: "w-live") == [liveJob.entryID])
            let redelivered = try await queue.fetchJobs(name, consumer: "w-new")
            #expect(redelivered.map(\.envelope.id) == Array(ids.dropFirst()))
            #expect(redelivered.allSatisfy { $0.envelope.attempt == 2 })
        }
    }

    @Test func reclaimDeadWorkersAlsoRequeuesConsumersThatNeverHeartbeat() async throws {
        try await TestRedis.withJobQueue("dead-unregistered") { queue in
            let name = TestRedis.uniqueQueueName("unregistered")
            let id = try await queue.enqueue(type: "t", queue: name, payload: json("{}")).id
            #expect(try await queue.fetchJobs(name, consumer: "ghost").count == 1)
            try await eventually("the ghost consumer is reclaimed") {
                try await queue.reclaimDeadWorkers(deadAfter: .milliseconds(100)).requeued == 1
            }
            #expect(try await queue.consumers(queue: name).isEmpty)
            #expect(try await queue.fetchJobs(name, consumer: "c2").map(\.envelope.id) == [id])
        }
    }
}
