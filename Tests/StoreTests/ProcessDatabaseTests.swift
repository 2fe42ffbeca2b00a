import Foundation
import HarrowTestSupport
import PostgresNIO
import Queue
import Testing

@testable import Store

/// `worker` and `queue-inspect` as processes with a database.
@Suite struct ProcessDatabaseTests {
    static func environment(_ configuration: DatabaseConfiguration, key: String? = SecretKeyring.Key.generate().base64) -> [String: String]
    {
        var environment = ProcessInfo.processInfo.environment
        environment["DATABASE_URL"] =
            "postgres://\(configuration.username)@\(configuration.host):\(configuration.port)/\(configuration.database)"
        environment["HARROW_SECRET_KEY"] = key
        environment["LOG_LEVEL"] = "info"
        return environment
    }

    @Test func migrateAppliesOnceThenReportsTheDatabaseCurrent() async throws {
        try await TestDatabase.withDatabase("proc_migrate") { _, configuration in
            let environment = Self.environment(configuration)
            let first = try await BuiltExecutables.run("worker", ["migrate"], environment: environment)
            #expect(first.status == 0, "\(first.stderr)")
            #expect(first.stdout.contains("applied \(Migration.all.map(\.version).map(String.init).joined(separator: ", "))"))
            let second = try await BuiltExecutables.run("worker", ["migrate"], environment: environment)
            #expect(second.status == 0)
            #expect(second.stdout.contains("the database is current"))
        }
    }

    @Test func aWorkerRefusesToStartWithoutTheKeyOrAgainstAnUnmigratedDatabase() async throws {
        try await TestDatabase.withDatabase("proc_refuse") { _, configuration in
            let arguments = ["--queues", "work", "--redis-url", TestRedis.url, "--key-prefix", TestRedis.uniqueKeyPrefix("refuse")]
            let noKey = try await BuiltExecutables.run("worker", arguments, environment: Self.environment(configuration, key: nil))
            #expect(noKey.status != 0)
            #expect(noKey.stderr.contains("HARROW_SECRET_KEY is not set"))

            let shortKey = Data(repeating: 1, count: 8).base64EncodedString()
            let badKey = try await BuiltExecutables.run("worker", arguments, environment: Self.environment(configuration, key: shortKey))
            #expect(badKey.status != 0)
            #expect(badKey.stderr.contains("32 bytes"))
            #expect(!badKey.stderr.contains(shortKey))

            let unmigrated = try await BuiltExecutables.run("worker", arguments, environment: Self.environment(configuration))
            #expect(unmigrated.status != 0)
            #expect(unmigrated.stderr.contains("run `migrate`"), "\(unmigrated.stderr)")

            let badURL = try await BuiltExecutables.run(
                "worker", arguments + ["--database-url", "postgres://u:hunter2@h:99999/d"], environment: Self.environment(configuration))
            #expect(badURL.status != 0)
            #expect(!badURL.stderr.contains("hunter2"))
        }
    }

    /// End to end: `worker --migrate` migrates, its relay moves a committed outbox row into
    /// Redis, its pool runs the job, and it stops cleanly on SIGTERM.
    @Test func aWorkerWithADatabaseRelaysTheOutboxAndRunsTheJob() async throws {
        try await TestDatabase.withDatabase("proc_relay") { client, configuration in
            let prefix = TestRedis.uniqueKeyPrefix("proc-relay")
            let worker = try RunningExecutable(
                "worker", ["--migrate", "--queues", "work", "--redis-url", TestRedis.url, "--key-prefix", prefix],
                environment: Self.environment(configuration))

            let logger = TestRedis.logger()
            try await eventually("migrated", timeout: .seconds(30)) {
                try await Migrator(client: client, logger: logger).status().pending.isEmpty
            }
            let record = "\(prefix):record:ran"
            let job = try OutboxJob(NoopContract(record: record))
            try await client.inTransaction(logger: logger) { connection in
                try await Outbox.enqueue([job], on: connection, logger: logger)
            }
            try await TestRedis.withClient { redis in
                try await eventually("the job ran", timeout: .seconds(30)) {
                    try await redis.send("SISMEMBER", [.string(record), .string(job.jobID)]).int == 1
                }
                try await TestRedis.deleteKeys(prefix: prefix, on: redis)
            }
            #expect(try await Outbox.stats(client: client, logger: logger).depth == 0)

            let inspect = try await BuiltExecutables.run(
                "queue-inspect", ["outbox", "--json", "--redis-url", TestRedis.url, "--key-prefix", prefix],
                environment: Self.environment(configuration))
            #expect(inspect.status == 0, "\(inspect.stderr)")
            #expect(inspect.stdout.contains(#""depth" : 0"#))

            worker.signal(SIGTERM)
            #expect(try await worker.waitForExit() == 0, "\(worker.log())")
        }
    }

    /// With a database and no `--queues`, a worker reads every queue where it has a handler for
    /// a platform job's contract, then `default`, and names at start-up each contract it has no
    /// handler for, whose queue it leaves alone so those jobs wait instead of failing here (here
    /// without SMTP_URL: send-mail too, so `mail` is left alone).
    @Test func aWorkerWithADatabaseReadsTheContractsQueuesItCanServeAndNamesThoseItCannot() async throws {
        try await TestDatabase.withDatabase("proc_default_queues") { _, configuration in
            let prefix = TestRedis.uniqueKeyPrefix("proc-default-queues")
            var environment = Self.environment(configuration)
            environment["HARROW_QUEUES"] = nil
            environment["SMTP_URL"] = nil
            let worker = try RunningExecutable(
                "worker", ["--migrate", "--redis-url", TestRedis.url, "--key-prefix", prefix], environment: environment)
            try await TestRedis.withClient { redis in
                let queue = JobQueue(redis: redis, options: JobQueue.Options(keyPrefix: prefix))
                try await eventually("the worker registered", timeout: .seconds(30)) { try await !queue.liveWorkers().isEmpty }
                #expect(try await queue.liveWorkers().first?.queues == ["keys", "operations", "status", "git", "webhooks", "default"])
                try await TestRedis.deleteKeys(prefix: prefix, on: redis)
            }
            worker.signal(SIGTERM)
            #expect(try await worker.waitForExit() == 0, "\(worker.log())")
            let log = worker.log()
            #expect(log.contains("no handler for send-mail jobs, so this worker leaves their queue mail alone"), "\(log)")
            for type in ["generate-key", "post-status", "run-operation", "poll-repo"] {
                #expect(!log.contains("no handler for \(type)"), "\(log)")
            }
        }
    }

    /// A worker killed (SIGKILL) while its relay drains a large outbox: a second worker
    /// finishes the outbox, and every job is in Redis exactly once.
    @Test func aRelayKilledMidDrainLosesNothingAndDoublesNothing() async throws {
        try await TestDatabase.withDatabase("proc_relay_kill") { client, configuration in
            let logger = TestRedis.logger()
            try await Migrator(client: client, logger: logger).migrate()
            let prefix = TestRedis.uniqueKeyPrefix("proc-relay-kill")
            // The workers read another queue: the relayed jobs stay in their stream to be counted.
            let jobs = try (0..<20_000).map { try OutboxJob(NoopContract(n: $0)) }
            for chunk in stride(from: 0, to: jobs.count, by: 2_000) {
                try await client.inTransaction(logger: logger) { connection in
                    try await Outbox.enqueue(Array(jobs[chunk..<chunk + 2_000]), on: connection, logger: logger)
                }
            }
            func startWorker() throws -> Process {
                let process = Process()
                process.executableURL = BuiltExecutables.url("worker")
                process.arguments = ["--queues", "elsewhere", "--redis-url", TestRedis.url, "--key-prefix", prefix, "--log-level", "error"]
                process.environment = Self.environment(configuration)
                process.standardOutput = FileHandle.nullDevice
                process.standardError = FileHandle.nullDevice
                try process.runWithUnblockedSignals()
                return process
            }
            let first = try startWorker()
            defer { if first.isRunning { kill(first.processIdentifier, SIGKILL) } }
            try await eventually("the relay is mid-drain", timeout: .seconds(60), poll: .milliseconds(5)) {
                try await Outbox.stats(client: client, logger: logger).depth < jobs.count
            }
            kill(first.processIdentifier, SIGKILL)
            try await eventually("the first worker is gone") { !first.isRunning }
            let left = try await Outbox.stats(client: client, logger: logger).depth
            #expect(left > 0, "killed before the outbox drained (else this proves less)")

            let second = try startWorker()
            defer { if second.isRunning { kill(second.processIdentifier, SIGKILL) } }
            // The dead worker's relay lease runs out first (15 s at most).
            try await eventually("the second relay drained the outbox", timeout: .seconds(60)) {
                try await Outbox.stats(client: client, logger: logger).depth == 0
            }
            kill(second.processIdentifier, SIGTERM)
            try await eventually("the second worker exits", timeout: .seconds(30)) { !second.isRunning }

            try await TestRedis.withClient { redis in
                var ids: [String] = []
                var start = "-"
                while true {
                    let reply = try await redis.send(
                        "XRANGE",
                        [.string(QueueKeys(prefix: prefix, queue: NoopContract.queue).stream), .string(start), "+", "COUNT", "5000"])
                    let entries = reply.array ?? []
                    for entry in entries {
                        guard let pair = entry.array, let flat = pair[1].array else { continue }
                        if let index = flat.firstIndex(where: { $0.string == "id" }), index + 1 < flat.count,
                            let id = flat[index + 1].string
                        {
                            ids.append(id)
                        }
                    }
                    guard entries.count == 5000, let last = entries.last?.array?.first?.string else { break }
                    start = "(" + last
                }
                #expect(ids.count == jobs.count)
                #expect(Set(ids) == Set(jobs.map(\.jobID)))
                try await TestRedis.deleteKeys(prefix: prefix, on: redis)
            }
        }
    }
}
