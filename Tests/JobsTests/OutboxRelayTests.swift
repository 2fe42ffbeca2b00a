import Foundation
import HarrowTestSupport
import JobContracts
import Logging
import NIOCore
import PostgresNIO
import Queue
import Store
import Testing

@testable import Jobs

/// The transactional outbox and its relay against real Postgres and Redis.
@Suite struct OutboxRelayTests {
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

    /// A job whose contract names a queue Redis keys cannot hold.
    struct BadQueue: JobContract {
        static let name = "bad-queue"
        static let queue = "no spaces"
        static let retries = Retries(maxAttempts: 1, backoff: .polynomial)
        static let timeout: Duration = .seconds(1)
        static let visibilityTimeout: Duration? = nil
    }

    /// A job whose contract has no name.
    struct Nameless: JobContract {
        static let name = ""
        static let queue = "work"
        static let retries = Retries(maxAttempts: 1, backoff: .polynomial)
        static let timeout: Duration = .seconds(1)
        static let visibilityTimeout: Duration? = nil
    }

    static let mail = SendMail(template: "password-reset", to: "a@example.com", data: ["name": "Zoë", "link": "l"])

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
        OutboxRelay(client: client, jobQueue: queue, options: .init(batchSize: batchSize), logger: logger)
    }

    @Test func onlyCommittedJobsAreRelayedWithTheirIdAndBytes() async throws {
        try await Self.withOutbox("outbox_commit") { client, queue in
            let committed = try OutboxJob(Self.mail)
            try await Self.record([committed], client: client)
            struct Rollback: Error {}
            await #expect(throws: (any Error).self) {
                try await client.inTransaction(logger: Self.logger) { connection in
                    try await Outbox.enqueue([try OutboxJob(Self.mail)], on: connection, logger: Self.logger)
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

    @Test func aJobWithoutANameFailsItsTransactionAndNothingIsRecorded() async throws {
        try await Self.withOutbox("outbox_bad") { client, _ in
            await #expect(throws: StoreError.self) {
                try await Self.record([try OutboxJob(NoopContract()), try OutboxJob(Nameless())], client: client)
            }
            let depth = try await Self.depth(client)
            #expect(depth == 0)
        }
    }

    /// A job whose queue the queue refuses is set aside with the reason, for an operator; the
    /// jobs around it move.
    @Test func aJobTheQueueRefusesIsSetAsideAndTheOthersMove() async throws {
        try await Self.withOutbox("outbox_refused") { client, queue in
            let jobs = [try OutboxJob(NoopContract(n: 1)), try OutboxJob(BadQueue()), try OutboxJob(NoopContract(n: 2))]
            try await Self.record(jobs, client: client)
            #expect(try await Self.relay(client, queue).relayBatch() == 3)
            #expect(try await Self.streamed(queue, "work").map(\.id) == [jobs[0].jobID, jobs[2].jobID])
            let stats = try await Outbox.stats(client: client, logger: Self.logger)
            #expect(stats.depth == 0 && stats.failed == 1)
            let error = try await client.value("SELECT last_error FROM outbox WHERE id = \(jobs[1].id)", as: String.self) ?? ""
            #expect(error.contains("invalid queue name"), "\(error)")
            #expect(try await Self.relay(client, queue).relayBatch() == 0)
        }
    }

    /// A job moved through the outbox carries its contract's policy into Redis: before the
    /// outbox carried it, `send-mail` arrived with 25 attempts and no timeouts, and the worker
    /// trusted that envelope.
    @Test func aJobArrivesWithItsContractsPolicy() async throws {
        try await Self.withOutbox("outbox_policy") { client, queue in
            let job = try OutboxJob(Self.mail)
            try await Self.record([job], client: client)
            try await Self.relay(client, queue).relayBatch()
            let ready = try await queue.readyJobs(queue: SendMail.queue)
            #expect(ready.map(\.id) == [job.jobID])
            #expect(ready.first?.type == "send-mail")
            #expect(ready.first?.fields["max_attempts"] == "10")
            #expect(ready.first?.fields["timeout"] == "120000")
            #expect(ready.first?.fields["visibility_timeout"] == "60000")
        }
    }

    /// Delayed and unique jobs keep their options through the outbox.
    @Test func runAtAndUniqueKeysSurviveTheRelay() async throws {
        try await Self.withOutbox("outbox_options") { client, queue in
            let later = try OutboxJob(NoopContract(n: 1), runAt: Date().addingTimeInterval(3600))
            let first = try OutboxJob(NoopContract(n: 2), uniqueKey: "key-1")
            let second = try OutboxJob(NoopContract(n: 3), uniqueKey: "key-1")
            // A contract's own unique key: one poll per repository.
            let repository = UUID()
            let poll = try OutboxJob(PollRepo(repositoryID: repository))
            let again = try OutboxJob(PollRepo(repositoryID: repository))
            try await Self.record([later, first, second, poll, again], client: client)
            try await Self.relay(client, queue).relayBatch()
            let stats = try await queue.stats(queues: ["work"])[0]
            #expect(stats.delayed == 1)
            #expect(try await Self.streamed(queue, "work").map(\.id) == [first.jobID])
            #expect(try await Self.streamed(queue, PollRepo.queue).map(\.id) == [poll.jobID])
            #expect(try await Self.depth(client) == 0)
        }
    }

    /// The relay dies after Redis took the batch but before the delete committed: the rows stay,
    /// and the next relay finds every job enqueued already. Nothing is lost, nothing doubled.
    @Test func aRelayDyingBetweenRedisAndTheDeleteDoublesNothing() async throws {
        try await Self.withOutbox("outbox_crash") { client, queue in
            let jobs = try (0..<50).map { try OutboxJob(NoopContract(n: $0)) }
            try await Self.record(jobs, client: client)
            struct Crash: Error {}
            let dying = OutboxRelay(
                client: client, jobQueue: queue, options: .init(batchSize: 20), logger: Self.logger,
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

    /// `--durable-enqueue`: while no replica confirms, the relay's batch fails with
    /// `notReplicated` and the rows stay (the jobs are in Redis all the same); once a replica
    /// has them, the next batch confirms, deletes the rows and adds nothing twice.
    @Test func aDurableRelayKeepsItsRowsUntilAReplicaHasTheJobs() async throws {
        try await RedisServerProcess.withServer { primary in
            try await RedisServerProcess.withServer { replica in
                try await TestDatabase.withDatabase("outbox_durable") { client, _ in
                    try await Migrator(client: client, logger: Self.logger).migrate()
                    let redis = RedisClient(configuration: primary.configuration(), logger: Self.logger)
                    defer { Task { await redis.close() } }
                    let queue = JobQueue(
                        redis: redis,
                        options: JobQueue.Options(
                            keyPrefix: TestRedis.uniqueKeyPrefix("outbox-durable"), replicasToConfirm: 1,
                            replicationTimeout: .milliseconds(200)))
                    let jobs = try (0..<3).map { try OutboxJob(NoopContract(n: $0)) }
                    try await Self.record(jobs, client: client)
                    await #expect {
                        try await Self.relay(client, queue).relayBatch()
                    } throws: { ($0 as? QueueError)?.code == .notReplicated }
                    #expect(try await Self.depth(client) == 3, "the rows went before a replica had the jobs")
                    #expect(try await Self.streamed(queue, "work").count == 3)

                    let replicaClient = RedisClient(configuration: replica.configuration(), logger: Self.logger)
                    defer { Task { await replicaClient.close() } }
                    try await replicaClient.send("REPLICAOF", ["127.0.0.1", .int(primary.port)])
                    try await eventually("the replica is in sync", timeout: .seconds(20)) {
                        (try await replicaClient.send("INFO", ["replication"]).string ?? "").contains("master_link_status:up")
                    }
                    #expect(try await Self.relay(client, queue).relayBatch() == 3)
                    #expect(try await Self.depth(client) == 0)
                    #expect(try await Self.streamed(queue, "work").map(\.id) == jobs.map(\.jobID), "a job was added twice")
                }
            }
        }
    }

    @Test func twoRelaysAtOnceDeliverEachJobOnce() async throws {
        try await Self.withOutbox("outbox_two") { client, queue in
            let jobs = try (0..<2000).map { try OutboxJob(NoopContract(n: $0)) }
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
                let jobs = try (0..<1000).map { try OutboxJob(NoopContract(n: $0)) }
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
                client: client, jobQueue: queue, options: .init(sweepInterval: .seconds(60)), logger: Self.logger)
            let running = Task { try await relay.run() }
            // Let the first sweep and the LISTEN happen.
            try await Task.sleep(for: .milliseconds(500))
            let job = try OutboxJob(Self.mail)
            try await Self.record([job], client: client)
            try await eventually("relayed", timeout: .seconds(10)) { try await Self.streamed(queue, "mail").count == 1 }
            running.cancel()
            _ = try? await running.value
        }
    }
}
