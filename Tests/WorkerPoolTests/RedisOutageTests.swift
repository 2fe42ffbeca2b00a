import Foundation
import HarrowTestSupport
import Queue
import Testing
import WorkerPool

/// A Redis outage longer than both `deadWorkerAfter` and the visibility timeout must not make
/// live workers look dead (issue 12, defect 3): after the restart, every pending entry's idle
/// time and every heartbeat's age include the downtime.
@Suite struct RedisOutageTests {
    /// Runs until the test lets it finish (or its worker stops).
    struct Vigil: Job {
        static let name = "vigil"
        static let queue = "vigils"
        static var timeout: Duration { .seconds(600) }
    }

    @Test func aJobRunningThroughALongOutageStartsExactlyOnce() async throws {
        try await RedisServerProcess.withServer(RedisServerProcess.Options(appendOnly: true)) { server in
            let prefix = TestRedis.uniqueKeyPrefix("wp-long-outage")
            let released = Locked(false)
            let recorder = RunRecorder()
            var registry = JobRegistry()
            try registry.register(Vigil.self) { _, context in
                try await recorder.track(context) {
                    while !released.value { try await Task.sleep(for: .milliseconds(100)) }
                }
            }
            // Two workers with the default timings (heartbeat 5 s, dead after 30 s, visibility
            // 60 s, reclaimer every 5 s), each with a client of its own, as two processes would.
            func makeQueue() throws -> JobQueue {
                let client = RedisClient(configuration: server.configuration(), logger: TestRedis.logger("harrow.test.redis"))
                return JobQueue(redis: client, options: JobQueue.Options(keyPrefix: prefix))
            }
            let first = try makeQueue()
            let second = try makeQueue()
            func options(_ name: String) -> Worker.Options {
                Worker.Options(queues: .strict("vigils"), workerID: "\(name)-\(TestRedis.randomHex())")
            }
            let id = try await first.enqueue(Vigil()).id
            try await withWorker(queue: first, registry: registry, options: options("first")) { _ in
                try await withWorker(queue: second, registry: registry, options: options("second")) { _ in
                    try await eventually("the job started", timeout: .seconds(10)) { recorder.running == 1 }
                    try await server.stop()
                    try await Task.sleep(for: .seconds(65))
                    try await server.restart()
                    // Longer than a dead-worker timeout and several reclaimer turns after the restart.
                    try await Task.sleep(for: .seconds(45))
                    #expect(recorder.runs.count == 1, "started again after the outage: \(recorder.runs)")
                    released.withLock { $0 = true }
                    try await eventually("the job finished", timeout: .seconds(30)) {
                        try await first.stats("vigils").pending == 0 && recorder.running == 0
                    }
                }
            }
            #expect(recorder.runs.map(\.id) == [id])
            await first.redis.close()
            await second.redis.close()
        }
    }
}
