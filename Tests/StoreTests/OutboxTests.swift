import Foundation
import HarrowTestSupport
import Logging
import NIOCore
import PostgresNIO
import Queue
import Testing

@testable import Store

/// The transactional outbox against real Postgres and Redis.
@Suite struct OutboxTests {
    static let logger = TestRedis.logger("harrow.test.outbox")

    /// A migrated database and a queue under a prefix of the test's own.
    static func withOutbox(
        _ name: String, redis: RedisConfiguration? = nil, _ body: (PostgresClient, JobQueue) async throws -> Void
    ) async throws {
        try await TestDatabase.withDatabase(name) { client, _ in
            try await Migrator(client: client, logger: logger).migrate()
            let redisClient = RedisClient(configuration: try redis ?? TestRedis.configuration(), logger: logger)
            let queue = JobQueue(redis: redisClient, options: JobQueue.Options(keyPrefix: TestRedis.uniqueKeyPrefix("outbox")))
            do {
                try await body(client, queue)
                await redisClient.close()
            } catch {
                await redisClient.close()
                throw error
            }
        }
    }

    static func record(_ jobs: [OutboxJob], client: PostgresClient) async throws {
        try await client.inTransaction(logger: logger) { connection in
            try await Outbox.enqueue(jobs, on: connection, logger: logger)
        }
    }

    /// Job ids in the queue's stream, in stream order, with their payloads.
    static func streamed(_ queue: JobQueue, _ name: String) async throws -> [(id: String, payload: String)] {
        let reply = try await queue.redis.send("XRANGE", [.string(queue.keys(name).stream), "-", "+"])
        return (reply.array ?? []).compactMap { entry in
            guard let pair = entry.array, pair.count == 2, let flat = pair[1].array else { return nil }
            var fields: [String: String] = [:]
            var index = 0
            while index + 1 < flat.count {
                if let key = flat[index].string { fields[key] = flat[index + 1].string }
                index += 2
            }
            guard let id = fields["id"], let payload = fields["payload"] else { return nil }
            return (id, payload)
        }
    }

    static func depth(_ client: PostgresClient) async throws -> Int {
        try await Outbox.stats(client: client, logger: logger).depth
    }

    static func relay(_ client: PostgresClient, _ queue: JobQueue, batchSize: Int = 500) -> OutboxRelay {
        OutboxRelay(client: client, jobQueue: queue, options: .init(batchSize: batchSize, leaseTTL: nil), logger: logger)
    }

    @Test func onlyCommittedJobsAreRelayedWithTheirIdAndBytes() async throws {
        try await Self.withOutbox("outbox_commit") { client, queue in
            let committed = OutboxJob(queue: "mail", type: "send-mail", payload: #"{"to":"a@example.com","n":1.50,"x":"é"}"#)
            try await Self.record([committed], client: client)
            struct Rollback: Error {}
            await #expect(throws: (any Error).self) {
                try await client.inTransaction(logger: Self.logger) { connection in
                    try await Outbox.enqueue(
                        [OutboxJob(queue: "mail", type: "send-mail", payload: "{}")], on: connection, logger: Self.logger)
                    throw Rollback()
                }
            }
            var stats = try await Outbox.stats(client: client, logger: Self.logger)
            #expect(stats.depth == 1 && stats.failed == 0)
            #expect((stats.oldestAgeMilliseconds ?? -1) >= 0)

            #expect(try await Self.relay(client, queue).relayBatch() == 1)
            let streamed = try await Self.streamed(queue, "mail")
            #expect(streamed.map(\.id) == [committed.jobID])
            #expect(streamed.first?.payload == committed.payload)
            stats = try await Outbox.stats(client: client, logger: Self.logger)
            #expect(stats.depth == 0 && stats.oldestAgeMilliseconds == nil)
        }
    }

    @Test func badJobsFailTheirTransactionAndNothingIsRecorded() async throws {
        try await Self.withOutbox("outbox_bad") { client, _ in
            await #expect(throws: StoreError.self) {
                try await Self.record([OutboxJob(queue: "no spaces", type: "t", payload: "{}")], client: client)
            }
            await #expect(throws: StoreError.self) {
                try await Self.record([OutboxJob(queue: "q", type: "", payload: "{}")], client: client)
            }
            let depth = try await Self.depth(client)
            #expect(depth == 0)
        }
    }

    /// Delayed and unique jobs keep their options through the outbox.
    @Test func runAtAndUniqueKeysSurviveTheRelay() async throws {
        try await Self.withOutbox("outbox_options") { client, queue in
            let later = OutboxJob(queue: "keys", type: "generate-key", payload: "{}", runAt: Date().addingTimeInterval(3600))
            let first = OutboxJob(queue: "keys", type: "generate-key", payload: "{}", uniqueKey: "key-1")
            let second = OutboxJob(queue: "keys", type: "generate-key", payload: "{}", uniqueKey: "key-1")
            try await Self.record([later, first, second], client: client)
            try await Self.relay(client, queue).relayBatch()
            let stats = try await queue.stats(queues: ["keys"])[0]
            #expect(stats.delayed == 1)
            #expect(try await Self.streamed(queue, "keys").map(\.id) == [first.jobID])
            #expect(try await Self.depth(client) == 0)
        }
    }

    /// The relay dies after Redis took the batch but before the delete committed: the rows stay,
    /// and the next relay finds every job enqueued already. Nothing is lost, nothing doubled.
    @Test func aRelayDyingBetweenRedisAndTheDeleteDoublesNothing() async throws {
        try await Self.withOutbox("outbox_crash") { client, queue in
            let jobs = (0..<50).map { OutboxJob(queue: "work", type: "noop", payload: #"{"n":\#($0)}"#) }
            try await Self.record(jobs, client: client)
            struct Crash: Error {}
            let dying = OutboxRelay(
                client: client, jobQueue: queue, options: .init(batchSize: 20, leaseTTL: nil), logger: Self.logger,
                afterEnqueue: { throw Crash() })
            await #expect(throws: (any Error).self) { try await dying.relayBatch() }
            #expect(try await Self.depth(client) == 50)
            #expect(try await Self.streamed(queue, "work").count == 20)

            let relay = Self.relay(client, queue, batchSize: 20)
            while try await relay.relayBatch() > 0 {}
            let streamed = try await Self.streamed(queue, "work")
            #expect(streamed.map(\.id) == jobs.map(\.jobID))
            #expect(try await Self.depth(client) == 0)
        }
    }

    @Test func twoRelaysAtOnceDeliverEachJobOnce() async throws {
        try await Self.withOutbox("outbox_two") { client, queue in
            let jobs = (0..<2000).map { OutboxJob(queue: "work", type: "noop", payload: #"{"n":\#($0)}"#) }
            for chunk in stride(from: 0, to: jobs.count, by: 500) {
                try await Self.record(Array(jobs[chunk..<chunk + 500]), client: client)
            }
            try await withThrowingTaskGroup(of: Void.self) { group in
                for _ in 0..<2 {
                    group.addTask {
                        let relay = Self.relay(client, queue, batchSize: 50)
                        while try await relay.relayBatch() > 0 {}
                    }
                }
                try await group.waitForAll()
            }
            let ids = try await Self.streamed(queue, "work").map(\.id)
            #expect(ids.count == 2000)
            #expect(Set(ids) == Set(jobs.map(\.jobID)))
            #expect(try await Self.depth(client) == 0)
        }
    }

    /// Requests commit while Redis is down; the running relay retries and, once Redis is back,
    /// delivers every job once, in order.
    @Test func jobsCommittedWhileRedisIsDownAreDeliveredWhenItReturns() async throws {
        try await RedisServerProcess.withServer { server in
            try await Self.withOutbox("outbox_redis_down", redis: server.configuration()) { client, queue in
                try await server.stop()
                let relay = OutboxRelay(
                    client: client, jobQueue: queue, options: .init(batchSize: 200, sweepInterval: .milliseconds(100)), logger: Self.logger)
                let running = Task { try await relay.run() }
                let jobs = (0..<1000).map { OutboxJob(queue: "work", type: "noop", payload: #"{"n":\#($0)}"#) }
                for chunk in stride(from: 0, to: jobs.count, by: 100) {
                    try await Self.record(Array(jobs[chunk..<chunk + 100]), client: client)
                }
                try await Task.sleep(for: .milliseconds(300))
                #expect(try await Self.depth(client) == 1000)

                try await server.restart()
                try await eventually("the outbox drained", timeout: .seconds(30)) { try await Self.depth(client) == 0 }
                running.cancel()
                _ = try? await running.value
                let ids = try await Self.streamed(queue, "work").map(\.id)
                #expect(ids == jobs.map(\.jobID))
            }
        }
    }

    /// A notification wakes the relay: a job is in Redis long before the next sweep.
    @Test func aNotificationWakesTheRelay() async throws {
        try await Self.withOutbox("outbox_notify") { client, queue in
            let relay = OutboxRelay(
                client: client, jobQueue: queue, options: .init(sweepInterval: .seconds(60), leaseTTL: nil), logger: Self.logger)
            let running = Task { try await relay.run() }
            // Let the first sweep and the LISTEN happen.
            try await Task.sleep(for: .milliseconds(500))
            let job = OutboxJob(queue: "mail", type: "send-mail", payload: "{}")
            try await Self.record([job], client: client)
            try await eventually("relayed", timeout: .seconds(10)) { try await Self.streamed(queue, "mail").count == 1 }
            running.cancel()
            _ = try? await running.value
        }
    }
}
