import Foundation
import HarrowTestSupport
import Logging
import PostgresNIO

@testable import Store

/// A migrated database of the test's own, with the stores on it.
struct Stores {
    let client: PostgresClient
    let logger: Logger

    var users: UserStore { UserStore(client: client, logger: logger) }
    var organizations: OrganizationStore { OrganizationStore(client: client, logger: logger) }
    var projects: ProjectStore { ProjectStore(client: client, logger: logger) }

    static func with(_ name: String, _ body: (Stores) async throws -> Void) async throws {
        try await TestDatabase.withDatabase(name) { client, _ in
            let logger = TestRedis.logger("harrow.test.store")
            try await Migrator(client: client, logger: logger).migrate()
            try await body(Stores(client: client, logger: logger))
        }
    }

    /// A user with a unique email.
    func user(_ name: String = "Ada") async throws -> User {
        try await users.create(email: "\(name.lowercased())-\(TestRedis.randomHex())@example.com", name: name, passwordHash: "$2b$12$hash")
    }

    /// Runs raw SQL in a store transaction, so its refusals come back as store errors.
    func write(_ query: PostgresQuery) async throws {
        _ = try await client.write(logger: logger) { connection in
            try await connection.query(query, logger: logger)
        }
    }
}
