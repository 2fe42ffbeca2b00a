import Foundation
import HarrowTestSupport
import Logging
import Queue
import Testing
import WorkerPool

/// A worker against a Redis that goes away, and jobs whose consumer is gone or stalled.
@Suite struct ResilienceTests {
    /// A worker keeps running through a Redis outage of about a second, and every job enqueued
    /// before or after it completes.
    ///
    /// This also guards the fix of a hang (see `aCommandOnAClosedConnectionFailsInsteadOfHanging`):
    /// a command racing the connection drop never completed, so one of the worker's tasks could
    /// hang for good, leaving jobs undone or the worker unable to stop.
    @Test func aWorkerOutlivesARedisOutageAndEveryJobCompletes() async throws {
        try await RedisServerProcess.withServer(RedisServerProcess.Options(appendOnly: true)) { server in
            let client = RedisClient(configuration: server.configuration(), logger: TestRedis.logger("harrow.test.redis"))
            defer { Task { await client.close() } }
            // A short visibility timeout, so a job whose outcome could not be recorded while Redis
            // was away is redelivered soon.
            let queue = JobQueue(
                redis: client,
                options: JobQueue.Options(keyPrefix: TestRedis.uniqueKeyPrefix("wp-outage"), defaultVisibilityTimeout: .seconds(2)))
            let recorder = RunRecorder()
            var registry = JobRegistry()
            try registry.registerNap(recorder)
            let record = queue.recordKey("done")
            var ids = try await queue.enqueue(batch: Array(repeating: Nap(ms: 100, record: record), count: 20)).map(\.id)
            let options = Worker.Options.fast(.strict("naps"), concurrency: 4)
            try await withWorker(queue: queue, registry: registry, options: options) { worker in
                try await eventually("some jobs done before the outage") { try await queue.cardinality(record) >= 4 }
                try await server.stop()
                try await Task.sleep(for: .seconds(1))
                try await server.restart()
                // Enqueue more once Redis is back (the client may still be backing off). Fixed ids,
                // so an enqueue retried after a failure that did reach Redis adds no new job.
                for _ in 0..<20 {
                    let id = JobID.make()
                    try await eventually("enqueued after the outage") {
                        try await queue.enqueue(Nap(ms: 10, record: record), options: EnqueueOptions(id: id))
                        return true
                    }
                    ids.append(id)
                }
                try await eventually("every job done", timeout: .seconds(20)) { try await queue.cardinality(record) == 40 }
                try await queue.waitUntilDrained("naps", timeout: .seconds(20))
                #expect(try await queue.liveWorkers().contains { $0.id == worker.id })
                // Stopping must not hang on a task left behind by the outage.
                try await worker.stop(within: .seconds(10))
            }
            let members = try await client.send("SMEMBERS", [.string(record)]).array?.compactMap(\.string) ?? []
            #expect(Set(members) == Set(ids))
            #expect(Set(recorder.runs.map(\.id)) == Set(ids))
            #expect(try await queue.stats("naps").dead == 0)
            #expect(try await queue.liveWorkers().contains { $0.id == options.workerID } == false)
        }
    }

    /// Sources/Queue/Redis/RedisConnection.swift, `sendRaw` and `pipeline`, wrote the request with
    /// `channel.writeAndFlush(request, promise: nil)`. Once the channel had closed, NIO had removed
    /// `RedisChannelHandler` from the pipeline, the write failed at the head of the pipeline, and
    /// nothing ever completed the request's reply promise: the caller waited forever (no error,
    /// and no command timeout either, since the handler never saw the request).
    @Test func aCommandOnAClosedConnectionFailsInsteadOfHanging() async throws {
        let connection = try await RedisConnection.connect(configuration: try TestRedis.configuration(), logger: TestRedis.logger())
        await connection.close()
        let outcome = try await withDeadline(.seconds(5), "PING on a closed connection") { () async -> String in
            do {
                _ = try await connection.send(RedisCommand("PING"))
                return "a reply"
            } catch let error as RedisError {
                return "\(error.code)"
            } catch {
                return "\(error)"
            }
        }
        #expect(outcome == "connectionClosed")
    }

    @Test func aDeadConsumersJobIsReclaimedAndRun() async throws {
        try await TestRedis.withJobQueue("wp-ghost") { queue in
            let recorder = RunRecorder()
            var registry = JobRegistry()
            try registry.register(Greeting.self) { _, context in recorder.record(context) }
            let id = try await queue.enqueue(Greeting(name: "haunted")).id
            // A consumer that takes the job and vanishes without ever being a live worker.
            let taken = try await queue.fetchReady(FetchRequest(queues: [("greetings", 10)], total: 10), consumer: "ghost")
            #expect(taken.deliveries.map(\.entryID).count == 1)
            #expect(try await queue.stats("greetings").pending == 1)

            let options = Worker.Options.fast(.strict("greetings"), deadWorkerAfter: .milliseconds(300))
            let workerID = try await withWorker(queue: queue, registry: registry, options: options) { worker in
                try await eventually("the job ran") { recorder.count == 1 }
                try await queue.waitUntilDrained("greetings")
                return worker.id
            }
            let run = try #require(recorder.runs.first)
            #expect(run.id == id)
            #expect(run.attempt == 2)  // the ghost's delivery counted
            #expect(run.workerID == workerID)
            #expect(recorder.count == 1)
            #expect(try await queue.consumers(queue: "greetings").contains { $0.name == "ghost" } == false)
            #expect(try await queue.stats("greetings").dead == 0)
        }
    }

    @Test func aStalledJobOfALiveWorkerIsReclaimedAfterItsVisibilityTimeout() async throws {
        try await TestRedis.withJobQueue("wp-stalled") { queue in
            let recorder = RunRecorder()
            var registry = JobRegistry()
            try registry.register(Greeting.self) { _, context in recorder.record(context) }
            let id = try await queue.enqueue(Greeting(name: "stuck"), options: EnqueueOptions(visibilityTimeout: .seconds(1))).id
            // A worker that stays alive (heartbeats) but holds the job without running it.
            let zombie = WorkerInfo(
                id: "zombie", host: "nowhere", pid: 1, queues: ["greetings"], concurrency: 1,
                startedAt: WallClock.system.milliseconds())
            try await queue.heartbeat(zombie, ttl: .seconds(10))
            let taken = try await queue.fetchReady(FetchRequest(queues: [("greetings", 1)], total: 1), consumer: "zombie")
            #expect(taken.deliveries.count == 1)
            let heartbeats = Task {
                while !Task.isCancelled {
                    try? await queue.heartbeat(zombie, ttl: .seconds(10))
                    try? await Task.sleep(for: .milliseconds(50))
                }
            }
            defer { heartbeats.cancel() }

            // The zombie heartbeats far more often than `deadWorkerAfter` (3 s), so only the
            // job's visibility timeout can get the job back.
            try await withWorker(queue: queue, registry: registry, options: .fast(.strict("greetings"))) { _ in
                try await eventually("the job ran") { recorder.count == 1 }
                try await queue.waitUntilDrained("greetings")
                #expect(try await queue.liveWorkers().contains { $0.id == "zombie" })
                #expect(try await queue.consumers(queue: "greetings").contains { $0.name == "zombie" })
            }
            heartbeats.cancel()
            #expect(recorder.runs.map(\.id) == [id])
            #expect(recorder.runs.map(\.attempt) == [2])
        }
    }
}
