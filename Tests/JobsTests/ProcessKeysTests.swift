import Foundation
import HarrowTestSupport
import PostgresNIO
import Store
import Testing

/// `worker` as a process: it generates keys (its relay moves the outbox's `generate-key` jobs
/// to the `keys` queue, its pool runs them), and `worker keys` queues rekeys.
@Suite struct ProcessKeysTests {
    @Test func theWorkerGeneratesKeysAndKeysCommandsQueueRekeys() async throws {
        try await TestDatabase.withDatabase("proc_keys") { client, configuration in
            let logger = TestRedis.logger()
            try await Migrator(client: client, logger: logger).migrate()
            let key = SecretKeyring.Key.generate()
            var environment = ProcessInfo.processInfo.environment
            environment["DATABASE_URL"] =
                "postgres://\(configuration.username)@\(configuration.host):\(configuration.port)/\(configuration.database)"
            environment["HARROW_SECRET_KEY"] = key.base64
            environment["LOG_LEVEL"] = "info"
            let keyring = SecretKeyring(current: key)
            let user = try await UserStore(client: client, logger: logger).create(
                email: "ops-\(TestRedis.randomHex())@example.com", name: "Ops", passwordHash: "$2b$12$hash")
            let organization = try await OrganizationStore(client: client, logger: logger).create(name: "Acme", owner: user.id)
            let project = try await ProjectStore(client: client, logger: logger).create(
                organization: organization.id, name: "Web", actor: user.id)
            let keys = SSHKeyStore(client: client, keyring: keyring, logger: logger)
            let sshKey = try await keys.create(project: project.id, name: "restored", actor: nil)
            // As after restoring a backup without the outbox: the key waits for a job nobody queued.
            try await client.query("DELETE FROM outbox")

            let missing = try await BuiltExecutables.run("worker", ["keys", "rekey-missing"], environment: environment)
            #expect(missing.status == 0, "\(missing.stderr)")
            #expect(missing.stdout.contains("queued 1 generate-key job(s)"), "\(missing.stdout)")

            let prefix = TestRedis.uniqueKeyPrefix("proc-keys")
            let worker = try RunningExecutable(
                "worker", ["--queues", "keys", "--redis-url", TestRedis.url, "--key-prefix", prefix], environment: environment)

            var first: SSHKey?
            try await eventually("the key is generated", timeout: .seconds(60)) {
                first = try await keys.find(sshKey.id, project: project.id)
                return first?.status == .present
            }
            let fingerprint = try #require(first?.fingerprint)

            let refused = try await BuiltExecutables.run("worker", ["keys", "rekey"], environment: environment)
            #expect(refused.status != 0)
            #expect(refused.stderr.contains("--yes"), "\(refused.stderr)")
            let rekey = try await BuiltExecutables.run("worker", ["keys", "rekey", "--yes"], environment: environment)
            #expect(rekey.status == 0, "\(rekey.stderr)")
            #expect(rekey.stdout.contains("queued 1 generate-key job(s)"), "\(rekey.stdout)")
            try await eventually("the key is replaced", timeout: .seconds(60)) {
                try await keys.find(sshKey.id, project: project.id).fingerprint != fingerprint
            }

            worker.signal(SIGTERM)
            #expect(try await worker.waitForExit() == 0, "\(worker.log())")
            _ = try await TestRedis.withClient { redis in try await TestRedis.deleteKeys(prefix: prefix, on: redis) }
        }
    }
}
