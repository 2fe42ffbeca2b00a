import Logging
import PostgresNIO

/// Applies ``Migration``s in order, each in its own transaction, under a Postgres advisory lock:
/// two processes that migrate at once apply each migration once (the second waits, then finds
/// nothing to do). `schema_migrations` records each version with its checksum, and a database
/// holding a migration this binary does not know, or one whose text changed, is refused.
public struct Migrator: Sendable {
    /// The advisory lock's key: "harrow" in ASCII.
    static let lockKey: Int64 = 0x68_61_72_72_6f_77

    public let client: PostgresClient
    public let migrations: [Migration]
    let logger: Logger

    public init(client: PostgresClient, migrations: [Migration] = Migration.all, logger: Logger) {
        self.client = client
        self.migrations = migrations.sorted { $0.version < $1.version }
        self.logger = logger
    }

    /// What the database has, next to what this binary knows.
    public struct Status: Sendable, Hashable {
        /// Versions applied, in order.
        public var applied: [Int]
        /// Migrations this binary would apply.
        public var pending: [Migration]
    }

    /// Applies every pending migration. Returns the versions applied by this call.
    @discardableResult
    public func migrate() async throws -> [Int] {
        try await client.withConnection { connection in
            try await connection.query("SELECT pg_advisory_lock(\(Self.lockKey))", logger: logger)
            do {
                let applied = try await applyPending(on: connection)
                try await connection.query("SELECT pg_advisory_unlock(\(Self.lockKey))", logger: logger)
                return applied
            } catch {
                // The lock belongs to the session: unlock, or the pooled connection keeps it.
                _ = try? await connection.query("SELECT pg_advisory_unlock(\(Self.lockKey))", logger: logger)
                throw error
            }
        }
    }

    /// Checks the database against this binary: throws for an unknown or altered migration, and
    /// returns what is applied and what is pending.
    public func status() async throws -> Status {
        try await client.withConnection { connection in
            let recorded = try await recordedMigrations(on: connection)
            try verify(recorded)
            let applied = Set(recorded.map(\.version))
            return Status(applied: recorded.map(\.version), pending: migrations.filter { !applied.contains($0.version) })
        }
    }

    /// Throws unless every migration of this binary is applied and nothing else is: what a
    /// process that does not migrate checks before it starts.
    public func requireCurrent() async throws {
        let status = try await status()
        if let first = status.pending.first {
            throw StoreError(
                .migration,
                "the database lacks \(status.pending.count) migration(s) from version \(first.version) (\(first.name)) on: "
                    + "run `migrate`, or start with --migrate")
        }
    }

    private func applyPending(on connection: PostgresConnection) async throws -> [Int] {
        try await connection.query(
            """
            CREATE TABLE IF NOT EXISTS schema_migrations (
                version integer PRIMARY KEY,
                name text NOT NULL,
                checksum text NOT NULL,
                applied_at timestamptz NOT NULL DEFAULT now()
            )
            """, logger: logger)
        let recorded = try await recordedMigrations(on: connection)
        try verify(recorded)
        let done = Set(recorded.map(\.version))
        var applied: [Int] = []
        for migration in migrations where !done.contains(migration.version) {
            logger.info("applying migration", metadata: ["version": "\(migration.version)", "name": "\(migration.name)"])
            let statements = SQLScript.statements(in: migration.sql)
            try await connection.withTransaction(logger: logger) { connection in
                for statement in statements {
                    try await connection.query(PostgresQuery(unsafeSQL: statement), logger: logger)
                }
                try await connection.query(
                    "INSERT INTO schema_migrations (version, name, checksum) VALUES (\(migration.version), \(migration.name), \(migration.checksum))",
                    logger: logger)
            }
            applied.append(migration.version)
        }
        return applied
    }

    private struct Recorded {
        var version: Int
        var name: String
        var checksum: String
    }

    private func recordedMigrations(on connection: PostgresConnection) async throws -> [Recorded] {
        let exists = try await connection.query("SELECT to_regclass('schema_migrations') IS NOT NULL", logger: logger)
        var tableExists = false
        for try await value in exists.decode(Bool.self) { tableExists = value }
        guard tableExists else { return [] }
        let rows = try await connection.query("SELECT version, name, checksum FROM schema_migrations ORDER BY version", logger: logger)
        var recorded: [Recorded] = []
        for try await (version, name, checksum) in rows.decode((Int, String, String).self) {
            recorded.append(Recorded(version: version, name: name, checksum: checksum))
        }
        return recorded
    }

    private func verify(_ recorded: [Recorded]) throws {
        let known = Dictionary(uniqueKeysWithValues: migrations.map { ($0.version, $0) })
        for row in recorded {
            guard let migration = known[row.version] else {
                throw StoreError(
                    .migration,
                    "the database has migration \(row.version) (\(row.name)), which this binary does not know: it was migrated by a newer Harrow"
                )
            }
            guard migration.checksum == row.checksum else {
                throw StoreError(
                    .migration,
                    "migration \(row.version) (\(row.name)) applied to the database differs from this binary's (checksum \(row.checksum.prefix(12)) ≠ \(migration.checksum.prefix(12)))"
                )
            }
        }
    }
}
