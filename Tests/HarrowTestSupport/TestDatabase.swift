import Foundation
import Logging
import PostgresNIO
import Store

/// The Postgres that tests run against. `DATABASE_URL` names a server and a database to connect
/// to first (`scripts/test` points it at a private cluster's `postgres` database); every test
/// gets a fresh database of its own there, dropped afterwards, so tests run in parallel.
public enum TestDatabase {
    public static var serverConfiguration: DatabaseConfiguration {
        get throws {
            let url = ProcessInfo.processInfo.environment["DATABASE_URL"] ?? ""
            // No default: against a server that is not there, the pool retries for a minute
            // before it fails, which hides the cause.
            guard !url.isEmpty else { throw StoreError(.invalid, "DATABASE_URL is not set: run the tests with scripts/test") }
            var configuration = try DatabaseConfiguration(url: url)
            configuration.maximumConnections = 4
            return configuration
        }
    }

    /// Runs `body` with a client of a new, empty database named after `name`, then drops it.
    public static func withDatabase<T: Sendable>(
        _ name: String, _ body: (PostgresClient, DatabaseConfiguration) async throws -> T
    ) async throws -> T {
        let server = try serverConfiguration
        let database = "t_\(name.lowercased().filter { $0.isLetter || $0.isNumber || $0 == "_" })_\(TestRedis.randomHex())"
        _ = try await withClient(server) { admin in
            try await admin.query(PostgresQuery(unsafeSQL: "CREATE DATABASE \"\(database)\""))
        }
        var configuration = server
        configuration.database = database
        do {
            let result = try await withClient(configuration) { client in try await body(client, configuration) }
            try await drop(database, server: server)
            return result
        } catch {
            try? await drop(database, server: server)
            throw error
        }
    }

    /// Runs `body` with a client of `configuration` that runs for the body's duration.
    public static func withClient<T: Sendable>(
        _ configuration: DatabaseConfiguration, _ body: (PostgresClient) async throws -> T
    ) async throws -> T {
        try await Database.withClient(configuration, logger: TestRedis.logger("harrow.test.pg"), body)
    }

    private static func drop(_ database: String, server: DatabaseConfiguration) async throws {
        _ = try await withClient(server) { admin in
            try await admin.query(PostgresQuery(unsafeSQL: "DROP DATABASE IF EXISTS \"\(database)\" WITH (FORCE)"))
        }
    }
}
