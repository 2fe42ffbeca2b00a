import Foundation
import HarrowTestSupport
import Jobs
import Logging
import PostgresNIO
import Queue
import ServiceLifecycle
import ServiceLifecycleTestKit
import Store
import WorkerPool

/// A migrated database of the test's own with a project in it, the test Redis, and a worker
/// running the platform's jobs on them.
struct JobsHarness: Sendable {
    let database: PostgresClient
    let redis: RedisClient
    let keyPrefix: String
    let jobQueue: JobQueue
    let keyring: SecretKeyring
    let project: UUID
    let environment: UUID
    let logger: Logger

    static func with(
        _ name: String, register: @Sendable (JobsHarness, inout JobRegistry) throws -> Void,
        _ body: (JobsHarness) async throws -> Void
    ) async throws {
        try await TestDatabase.withDatabase(name) { database, _ in
            let logger = TestRedis.logger("harrow.test.jobs")
            try await Migrator(client: database, logger: logger).migrate()
            let user = try await UserStore(client: database, logger: logger).create(
                email: "owner-\(TestRedis.randomHex())@example.com", name: "Owner", passwordHash: "$2b$12$hash")
            let organization = try await OrganizationStore(client: database, logger: logger).create(name: "Acme", owner: user.id)
            let project = try await ProjectStore(client: database, logger: logger).create(
                organization: organization.id, name: "Web", actor: user.id)
            let environment = try await EnvironmentStore(client: database, logger: logger).create(
                project: project.id, name: "staging", variables: [:], isDefault: false, actor: user.id)
            let redis = try TestRedis.makeClient()
            let keyPrefix = TestRedis.uniqueKeyPrefix("jobs")
            let jobQueue = JobQueue(redis: redis, options: JobQueue.Options(keyPrefix: keyPrefix))
            let harness = JobsHarness(
                database: database, redis: redis, keyPrefix: keyPrefix, jobQueue: jobQueue, keyring: SecretKeyring(current: .generate()),
                project: project.id,
                environment: environment.id, logger: logger)
            var registry = JobRegistry()
            try register(harness, &registry)
            let worker = Worker(
                queue: jobQueue, registry: registry,
                options: Worker.Options(
                    queues: try QueueSelection(parsing: "keys,mail,status,webhooks,default"), concurrency: 4,
                    heartbeatInterval: .milliseconds(200), deadWorkerAfter: .seconds(3), blockTimeout: .milliseconds(200)),
                logger: logger)
            do {
                try await testGracefulShutdown { trigger in
                    let running = Task { try await worker.run() }
                    do {
                        try await body(harness)
                    } catch {
                        trigger.triggerGracefulShutdown()
                        try? await running.value
                        throw error
                    }
                    trigger.triggerGracefulShutdown()
                    try await running.value
                }
                await redis.close()
            } catch {
                await redis.close()
                throw error
            }
        }
    }

    var keyPairs: KeyPairStore { KeyPairStore(client: database, keyring: keyring, logger: logger) }
    var sshKeys: SSHKeyStore { SSHKeyStore(client: database, keyring: keyring, logger: logger) }
    var secrets: SecretStore { SecretStore(client: database, keyring: keyring, logger: logger) }
}

extension JobsHarness {
    /// A harness whose worker runs the platform's jobs, configured by `configure` (which gets
    /// a configuration with the harness's key prefix).
    static func withPlatformJobs(
        _ name: String, configure: @escaping @Sendable (inout PlatformJobs.Configuration) throws -> Void = { _ in },
        _ body: (JobsHarness) async throws -> Void
    ) async throws {
        try await with(
            name,
            register: { harness, registry in
                var configuration = PlatformJobs.Configuration(keyPrefix: harness.keyPrefix)
                try configure(&configuration)
                try PlatformJobs(
                    database: harness.database, redis: harness.redis, keyring: harness.keyring, configuration: configuration,
                    logger: harness.logger
                ).register(in: &registry)
            }, body)
    }
}
