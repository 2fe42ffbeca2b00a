import Foundation
import HarrowTestSupport
import NIOCore
import Queue
import Testing
import WorkerPool

#if canImport(Glibc)
    import Glibc
#endif

/// Whole `worker` processes: killed mid-job, stopped with SIGTERM, cut off by a Redis restart.
/// Each test runs its own Redis so it can also be restarted, and its own key prefix.
@Suite(.serialized)
struct ProcessLifecycleTests {
    /// Enqueues `count` sleep jobs that record their id in the set `record` when they run.
    private func enqueueSleepJobs(_ queue: JobQueue, name: String, count: Int, ms: Int, record: String) async throws {
        var remaining = count
        while remaining > 0 {
            let batch = min(remaining, 500)
            try await queue.enqueue(batch: Array(repeating: SleepJob(ms: ms, record: record), count: batch), queue: name)
            remaining -= batch
        }
    }

    private func recorded(_ redis: RedisClient, _ key: String) async throws -> Int {
        try await redis.send("SCARD", [.string(key)]).int ?? 0
    }

    private func expectDrained(_ queue: JobQueue, _ name: String) async throws {
        try await eventually("queue \(name) drained", timeout: .seconds(20)) {
            let stats = try await queue.stats(queues: [name])[0]
            return stats.ready == 0 && stats.pending == 0 && stats.delayed == 0
        }
        let stats = try await queue.stats(queues: [name])[0]
        #expect(stats.dead == 0)
    }

    @Test("a worker killed with SIGKILL mid-run: another finishes its jobs; all 2,000 ran, none left pending")
    func killedWorkerJobsAreReclaimed() async throws {
        try await RedisServerProcess.withServer { server in
            let redis = RedisClient(configuration: server.configuration(), logger: TestRedis.logger())
            defer { Task { await redis.close() } }
            let prefix = TestRedis.uniqueKeyPrefix("crash")
            let queue = TestRedis.makeQueue(redis: redis, keyPrefix: prefix)
            let name = "crash"
            try await enqueueSleepJobs(queue, name: name, count: 2000, ms: 20, record: "ran")

            let first = try WorkerProcess(
                queues: name, concurrency: 50, redisURL: server.url(), keyPrefix: prefix, deadWorkerAfter: 2, heartbeatInterval: 0.5)
            try await eventually("the first worker is busy", timeout: .seconds(30)) {
                let ran = try await recorded(redis, "ran")
                let pending = try await queue.stats(queues: [name])[0].pending
                return ran >= 200 && pending > 0
            }
            first.signal(SIGKILL)
            _ = try await first.waitForExit(timeout: .seconds(10))
            let held = try await queue.stats(queues: [name])[0].pending
            #expect(held > 0, "the killed worker held jobs")

            let second = try WorkerProcess(
                queues: name, concurrency: 50, redisURL: server.url(), keyPrefix: prefix, deadWorkerAfter: 2, heartbeatInterval: 0.5)
            try await eventually("all 2,000 jobs ran", timeout: .seconds(90)) { try await recorded(redis, "ran") == 2000 }
            try await expectDrained(queue, name)
            second.signal(SIGTERM)
            #expect(try await second.waitForExit(timeout: .seconds(30)) == 0)
        }
    }

    @Test("Redis restarts mid-run (AOF): the worker reconnects by itself and every job finishes")
    func workerSurvivesRedisRestart() async throws {
        try await RedisServerProcess.withServer(.init(appendOnly: true)) { server in
            let redis = RedisClient(configuration: server.configuration(), logger: TestRedis.logger())
            defer { Task { await redis.close() } }
            let prefix = TestRedis.uniqueKeyPrefix("restart")
            let queue = TestRedis.makeQueue(redis: redis, keyPrefix: prefix)
            let name = "restart"
            try await enqueueSleepJobs(queue, name: name, count: 600, ms: 10, record: "ran")
            let worker = try WorkerProcess(
                queues: name, concurrency: 10, redisURL: server.url(), keyPrefix: prefix, deadWorkerAfter: 10, heartbeatInterval: 1)
            try await eventually("the worker is busy", timeout: .seconds(30)) { try await recorded(redis, "ran") >= 50 }

            try await server.stop()
            try await Task.sleep(for: .seconds(1))
            #expect(worker.isRunning, "the worker keeps running while Redis is down")
            try await server.restart()

            try await enqueueSleepJobs(queue, name: name, count: 100, ms: 10, record: "ran-after")
            try await eventually("every job ran", timeout: .seconds(90)) {
                let before = try await recorded(redis, "ran")
                let after = try await recorded(redis, "ran-after")
                return before == 600 && after == 100
            }
            try await expectDrained(queue, name)
            worker.signal(SIGTERM)
            #expect(try await worker.waitForExit(timeout: .seconds(30)) == 0)
        }
    }

    @Test("SIGTERM: running jobs finish within the shutdown timeout, nothing is left pending")
    func sigtermLetsRunningJobsFinish() async throws {
        try await RedisServerProcess.withServer { server in
            let redis = RedisClient(configuration: server.configuration(), logger: TestRedis.logger())
            defer { Task { await redis.close() } }
            let prefix = TestRedis.uniqueKeyPrefix("term")
            let queue = TestRedis.makeQueue(redis: redis, keyPrefix: prefix)
            let name = "term"
            let worker = try WorkerProcess(
                queues: name, concurrency: 10, redisURL: server.url(), keyPrefix: prefix, shutdownTimeout: 20, logLevel: "debug")
            try await eventually("the worker is live", timeout: .seconds(30)) { !(try await queue.liveWorkers()).isEmpty }
            try await enqueueSleepJobs(queue, name: name, count: 10, ms: 1500, record: "ran")
            // Started, not only delivered: a delivery still on its way when SIGTERM lands is
            // handed back unstarted, which is right but not what this test is about.
            try await eventually("all ten run", timeout: .seconds(10)) {
                worker.log().components(separatedBy: "job started").count - 1 == 10
            }
            worker.signal(SIGTERM)
            #expect(try await worker.waitForExit(timeout: .seconds(30)) == 0)
            #expect(try await recorded(redis, "ran") == 10)
            let stats = try await queue.stats(queues: [name])[0]
            #expect(stats.pending == 0 && stats.ready == 0 && stats.dead == 0)
            #expect(try await queue.liveWorkers().isEmpty, "the worker deregistered")
        }
    }

    @Test("SIGTERM: jobs still running at the shutdown timeout are handed back at once and finish elsewhere")
    func sigtermHandsBackUnfinishedJobs() async throws {
        try await RedisServerProcess.withServer { server in
            let redis = RedisClient(configuration: server.configuration(), logger: TestRedis.logger())
            defer { Task { await redis.close() } }
            let prefix = TestRedis.uniqueKeyPrefix("handback")
            let queue = TestRedis.makeQueue(redis: redis, keyPrefix: prefix)
            let name = "handback"
            let first = try WorkerProcess(queues: name, concurrency: 5, redisURL: server.url(), keyPrefix: prefix, shutdownTimeout: 0.5)
            try await eventually("the worker is live", timeout: .seconds(30)) { !(try await queue.liveWorkers()).isEmpty }
            try await enqueueSleepJobs(queue, name: name, count: 20, ms: 3000, record: "ran")
            try await eventually("five run", timeout: .seconds(10)) { try await queue.stats(queues: [name])[0].pending == 5 }
            first.signal(SIGTERM)
            #expect(try await first.waitForExit(timeout: .seconds(30)) == 0)
            let afterStop = try await queue.stats(queues: [name])[0]
            #expect(afterStop.pending == 0, "nothing waits for a visibility timeout")
            #expect(afterStop.ready == 20, "the five interrupted jobs are back in the stream")
            let handedBack = try await queue.readyJobs(queue: name, limit: 100)
            #expect(handedBack.allSatisfy { $0.fields["attempt"] == "1" }, "a hand-back does not count an attempt")

            let second = try WorkerProcess(queues: name, concurrency: 20, redisURL: server.url(), keyPrefix: prefix)
            try await eventually("all twenty ran", timeout: .seconds(60)) { try await recorded(redis, "ran") == 20 }
            try await expectDrained(queue, name)
            second.signal(SIGTERM)
            #expect(try await second.waitForExit(timeout: .seconds(30)) == 0)
        }
    }
}
