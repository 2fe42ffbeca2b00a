import Logging
import PostgresNIO
import ServiceLifecycle

/// Ways to get a running Postgres client.
public enum Database {
    /// A pooled client for `configuration`. It connects lazily; run it (it is a `Service`) in
    /// the process's `ServiceGroup`, or use ``withClient(_:logger:_:)`` for a one-off command.
    public static func makeClient(_ configuration: DatabaseConfiguration, logger: Logger) -> PostgresClient {
        PostgresClient(configuration: configuration.clientConfiguration(), backgroundLogger: logger)
    }

    /// Runs `body` with a client that runs for the body's duration, then shuts it down.
    public static func withClient<T: Sendable>(
        _ configuration: DatabaseConfiguration, logger: Logger, _ body: (PostgresClient) async throws -> T
    ) async throws -> T {
        let client = makeClient(configuration, logger: logger)
        return try await withThrowingTaskGroup(of: Void.self) { group in
            group.addTask { await client.run() }
            defer { group.cancelAll() }
            return try await body(client)
        }
    }
}

/// A service that runs a check before the service it wraps: for a process that must not start
/// its work until, say, the database's migrations are in place. A failing check fails the
/// service, and with it the service group.
public struct CheckedService: Service {
    let check: @Sendable () async throws -> Void
    let service: any Service

    public init(_ service: any Service, after check: @escaping @Sendable () async throws -> Void) {
        self.service = service
        self.check = check
    }

    public func run() async throws {
        try await check()
        try await service.run()
    }
}

extension Migrator {
    /// Before a process starts: applies pending migrations when `migrate` is set, else
    /// requires the database to be current. Either way refuses a database that has
    /// migrations this binary does not know or whose text changed.
    public func prepare(migrate: Bool) async throws {
        if migrate {
            let applied = try await self.migrate()
            if !applied.isEmpty { logger.info("migrations applied", metadata: ["versions": "\(applied)"]) }
        } else {
            try await requireCurrent()
        }
    }
}

/// Prepares the database once for every service that needs it: the first caller applies or
/// checks the migrations, the others wait for that outcome.
public actor DatabaseReadiness {
    private let migrator: Migrator
    private let migrate: Bool
    private var preparation: Task<Void, any Error>?

    public init(migrator: Migrator, migrate: Bool) {
        self.migrator = migrator
        self.migrate = migrate
    }

    public func wait() async throws {
        let migrator = self.migrator
        let migrate = self.migrate
        let task = preparation ?? Task { try await migrator.prepare(migrate: migrate) }
        preparation = task
        try await task.value
    }
}

extension PostgresClient {
    /// Runs `body` in a transaction, like `withTransaction`, but throws the body's own error as
    /// it is (postgres-nio wraps it in a `PostgresTransactionError`), so a ``StoreError`` reaches
    /// the caller as one.
    public func inTransaction<T: Sendable>(logger: Logger, _ body: (PostgresConnection) async throws -> T) async throws -> T {
        do {
            return try await withTransaction(logger: logger) { connection in try await body(connection) }
        } catch let error as PostgresTransactionError {
            if let closureError = error.closureError { throw closureError }
            throw error
        }
    }
}
