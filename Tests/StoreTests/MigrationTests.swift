import Foundation
import HarrowTestSupport
import Logging
import PostgresNIO
import Testing

@testable import Store

@Suite struct MigrationTests {
    static let logger = TestRedis.logger("harrow.test.migrate")

    static func tables(_ client: PostgresClient) async throws -> Set<String> {
        let rows = try await client.query("SELECT table_name::text FROM information_schema.tables WHERE table_schema = 'public'")
        var names = Set<String>()
        for try await name in rows.decode(String.self) { names.insert(name) }
        return names
    }

    static func recordedVersions(_ client: PostgresClient) async throws -> [Int] {
        var versions: [Int] = []
        for try await version in try await client.query("SELECT version FROM schema_migrations ORDER BY version").decode(Int.self) {
            versions.append(version)
        }
        return versions
    }

    @Test func theDomainMigratesAnEmptyDatabaseOnce() async throws {
        try await TestDatabase.withDatabase("migrate_empty") { client, _ in
            let migrator = Migrator(client: client, logger: Self.logger)
            #expect(try await migrator.status().pending.map(\.version) == Migration.all.map(\.version))
            await #expect(throws: StoreError.self) { try await migrator.requireCurrent() }
            #expect(try await migrator.migrate() == Migration.all.map(\.version))
            let tables = try await Self.tables(client)
            for table in [
                "users", "sessions", "organizations", "projects", "environments", "secrets", "tasks", "jobs", "repositories",
                "ssh_keys", "schedules", "git_triggers", "webhooks", "notifiers", "notification_rules", "operations", "activities",
                "job_runs", "outbox", "schema_migrations",
            ] {
                #expect(tables.contains(table), "missing table \(table)")
            }
            #expect(try await migrator.migrate() == [])
            try await migrator.requireCurrent()
            #expect(try await Self.recordedVersions(client) == Migration.all.map(\.version))
        }
    }

    /// Two processes starting at once: the advisory lock makes the second wait, then find
    /// nothing left to do.
    @Test func concurrentMigrationsApplyEachMigrationOnce() async throws {
        try await TestDatabase.withDatabase("migrate_concurrent") { _, configuration in
            let slow = [
                Migration(version: 1, name: "slow", sql: "SELECT pg_sleep(0.3); CREATE TABLE first_table (id int);"),
                Migration(version: 2, name: "second", sql: "CREATE TABLE second_table (id int);"),
            ]
            let results = try await withThrowingTaskGroup(of: [Int].self) { group in
                for _ in 0..<3 {
                    group.addTask {
                        try await TestDatabase.withClient(configuration) { client in
                            try await Migrator(client: client, migrations: slow, logger: Self.logger).migrate()
                        }
                    }
                }
                var results: [[Int]] = []
                for try await result in group { results.append(result) }
                return results
            }
            #expect(results.sorted { $0.count > $1.count } == [[1, 2], [], []])
            let recorded = try await TestDatabase.withClient(configuration) { client in try await Self.recordedVersions(client) }
            #expect(recorded == [1, 2])
        }
    }

    @Test func aMigrationThisBinaryDoesNotKnowIsRefused() async throws {
        try await TestDatabase.withDatabase("migrate_unknown") { client, _ in
            let first = Migration(version: 1, name: "one", sql: "CREATE TABLE one (id int)")
            let second = Migration(version: 2, name: "two", sql: "CREATE TABLE two (id int)")
            try await Migrator(client: client, migrations: [first, second], logger: Self.logger).migrate()
            let older = Migrator(client: client, migrations: [first], logger: Self.logger)
            let error = await #expect(throws: StoreError.self) { try await older.migrate() }
            #expect(error?.code == .migration)
            #expect(error?.message.contains("migration 2 (two)") == true)
            await #expect(throws: StoreError.self) { try await older.requireCurrent() }
        }
    }

    @Test func anAlteredMigrationIsRefused() async throws {
        try await TestDatabase.withDatabase("migrate_altered") { client, _ in
            try await Migrator(
                client: client, migrations: [Migration(version: 1, name: "one", sql: "CREATE TABLE one (id int)")], logger: Self.logger
            ).migrate()
            let altered = Migrator(
                client: client, migrations: [Migration(version: 1, name: "one", sql: "CREATE TABLE one (id bigint)")], logger: Self.logger)
            let error = await #expect(throws: StoreError.self) { try await altered.migrate() }
            #expect(error?.message.contains("differs") == true)
            await #expect(throws: StoreError.self) { try await altered.status() }
        }
    }

    /// Migration 7 gives existing organizations, SSH keys and secrets their creator where the
    /// database knows it: the actor of the record's `.created` activity, else an organization's
    /// first owner; nobody otherwise.
    @Test func creatorsAreBackfilledWhereTheDatabaseKnowsThem() async throws {
        try await TestDatabase.withDatabase("migrate_creators") { client, _ in
            try await Migrator(client: client, migrations: Migration.all.filter { $0.version < 7 }, logger: Self.logger).migrate()
            let (ada, bob, cy) = (UUID(), UUID(), UUID())
            for (id, name) in [(ada, "ada"), (bob, "bob"), (cy, "cy")] {
                try await client.query(
                    "INSERT INTO users (id, email, name, password_hash) VALUES (\(id), \(name + "@example.com"), \(name), 'x')")
            }
            // Logged: Ada created it, says its activity; Bob became an owner before her membership was written.
            let (logged, unlogged, ownerless) = (UUID(), UUID(), UUID())
            for id in [logged, unlogged, ownerless] {
                try await client.query("INSERT INTO organizations (id, name) VALUES (\(id), 'Acme')")
            }
            try await client.query(
                """
                INSERT INTO organization_memberships (organization_id, user_id, role, created_at) VALUES
                    (\(logged), \(bob), 'owner', now() - interval '2 days'), (\(logged), \(ada), 'owner', now() - interval '1 day'),
                    (\(unlogged), \(ada), 'member', now() - interval '3 days'), (\(unlogged), \(cy), 'owner', now() - interval '2 days'),
                    (\(unlogged), \(bob), 'owner', now() - interval '1 day'), (\(ownerless), \(ada), 'member', now())
                """)
            try await client.query(
                "INSERT INTO activities (name, organization_id, actor_id) VALUES ('organization.created', \(logged), \(ada))")
            let project = UUID()
            let environment = UUID()
            try await client.query("INSERT INTO projects (id, organization_id, name) VALUES (\(project), \(logged), 'Web')")
            try await client.query("INSERT INTO environments (id, project_id, name) VALUES (\(environment), \(project), 'prod')")
            let (key, unloggedKey, secret) = (UUID(), UUID(), UUID())
            for id in [key, unloggedKey] {
                try await client.query("INSERT INTO ssh_keys (id, project_id, name) VALUES (\(id), \(project), 'deploy')")
            }
            try await client.query(
                "INSERT INTO secrets (id, project_id, environment_id, name, kind) VALUES (\(secret), \(project), \(environment), 'KEY', 'ssh')"
            )
            try await client.query(
                """
                INSERT INTO activities (name, project_id, actor_id, payload) VALUES
                    ('ssh_key.created', \(project), \(bob), jsonb_build_object('ssh_key_id', \(key.uuidString.lowercased()))),
                    ('ssh_key.created', \(project), NULL, jsonb_build_object('ssh_key_id', \(unloggedKey.uuidString.lowercased()))),
                    ('secret.created', \(project), \(cy), jsonb_build_object('secret_id', \(secret.uuidString.lowercased())))
                """)

            #expect(try await Migrator(client: client, logger: Self.logger).migrate() == Migration.all.map(\.version).filter { $0 >= 7 })
            func creator(_ table: String, _ id: UUID) async throws -> UUID? {
                try await client.value(PostgresQuery(unsafeSQL: "SELECT created_by FROM \(table) WHERE id = '\(id)'"), as: UUID?.self)
                    ?? nil
            }
            #expect(try await creator("organizations", logged) == ada)
            #expect(try await creator("organizations", unlogged) == cy)
            #expect(try await creator("organizations", ownerless) == nil)
            #expect(try await creator("ssh_keys", key) == bob)
            #expect(try await creator("ssh_keys", unloggedKey) == nil)
            #expect(try await creator("secrets", secret) == cy)
        }
    }

    /// A migration fails as a whole: none of its statements stay, and it is not recorded.
    @Test func aFailingMigrationLeavesNothingBehind() async throws {
        try await TestDatabase.withDatabase("migrate_failing") { client, _ in
            let broken = Migration(version: 1, name: "broken", sql: "CREATE TABLE half (id int); CREATE TABLE half (id int);")
            await #expect(throws: (any Error).self) {
                try await Migrator(client: client, migrations: [broken], logger: Self.logger).migrate()
            }
            let tables = try await Self.tables(client)
            #expect(tables == ["schema_migrations"])
            let recorded = try await Self.recordedVersions(client)
            #expect(recorded == [])
            // The lock was released: a fixed migration goes through on the same pool.
            let fixed = Migration(version: 1, name: "fixed", sql: "CREATE TABLE whole (id int);")
            let applied = try await Migrator(client: client, migrations: [fixed], logger: Self.logger).migrate()
            #expect(applied == [1])
        }
    }
}
