import Foundation
import Logging
import PostgresNIO

/// What runs a job when a repository's refs change.
public struct GitTriggerStore: Sendable {
    let client: PostgresClient
    let logger: Logger

    public init(client: PostgresClient, logger: Logger) {
        self.client = client
        self.logger = logger
    }

    static let columns =
        "id, project_id, repository_id, job_id, name, ref_pattern, change_type, created_at, updated_at, archived_at, \(Cursor.column)"
    typealias Row = (UUID, UUID, UUID, UUID, String, String, String, Date, Date, Date?, Int64)

    static func record(_ row: PostgresRow) throws -> (item: GitTrigger, position: Cursor) {
        let row = try row.decode(Row.self)
        return (
            GitTrigger(
                id: row.0, projectID: row.1, repositoryID: row.2, jobID: row.3, name: row.4, refPattern: row.5,
                changeType: try GitTrigger.ChangeType(stored: row.6, column: "change type"), createdAt: row.7, updatedAt: row.8,
                archivedAt: row.9),
            Cursor(createdMicroseconds: row.10, id: row.0)
        )
    }

    /// A ref pattern that compiles as a regular expression, at most 1000 characters.
    static func validPattern(_ pattern: String) throws -> String {
        guard !pattern.isEmpty, pattern.count <= 1000 else {
            throw StoreError.invalid("ref_pattern", "the ref pattern must be 1 to 1000 characters")
        }
        do {
            _ = try Regex(pattern)
        } catch {
            throw StoreError.invalid("ref_pattern", "the ref pattern is not a valid regular expression")
        }
        return pattern
    }

    /// Creates a trigger of a live repository and a live job, both of `project`, and schedules
    /// polls of the repository if none were.
    public func create(
        project: UUID, repository: UUID, job: UUID, name: String, refPattern: String = ".*", changeType: GitTrigger.ChangeType,
        actor: UUID?
    ) async throws -> GitTrigger {
        let name = try Validate.name(name)
        let pattern = try Self.validPattern(refPattern)
        return try await client.write(logger: logger) { connection in
            try await connection.requireLive("jobs", job, project: project, notFound: "job", logger: logger)
            // A watched repository is polled: one that was not is due now (its first poll records
            // its refs; changes after that run triggers). The row lock also keeps the repository
            // live until the trigger is recorded.
            let scheduled = try await connection.first(
                """
                UPDATE repositories SET next_poll_at = coalesce(next_poll_at, now())
                WHERE id = \(repository) AND project_id = \(project) AND archived_at IS NULL RETURNING id
                """, logger: logger, { try $0.decode(UUID.self) })
            guard scheduled != nil else { throw StoreError.notFound("repository") }
            try await connection.query(
                "SELECT pg_notify(\(RepositoryPollStore.channel), \(repository.uuidString.lowercased()))", logger: logger)
            let inserted = try await connection.first(
                """
                INSERT INTO git_triggers (project_id, repository_id, job_id, name, ref_pattern, change_type)
                SELECT \(project), \(repository), \(job), \(name), \(pattern), \(changeType.rawValue)
                WHERE EXISTS (
                    SELECT 1 FROM repositories WHERE id = \(repository) AND project_id = \(project) AND archived_at IS NULL FOR SHARE)
                RETURNING \(unescaped: Self.columns)
                """, logger: logger, Self.record)
            guard let trigger = inserted?.item else { throw StoreError.notFound("repository") }
            try await Self.log("git_trigger.created", trigger, actor: actor, on: connection, logger: logger)
            return trigger
        }
    }

    /// The trigger of `project`; archived ones only with `includeArchived`.
    public func find(_ id: UUID, project: UUID, includeArchived: Bool = false) async throws -> GitTrigger {
        try await client.read { connection in
            try await connection.find(
                id, in: "git_triggers", columns: Self.columns, project: project, includeArchived: includeArchived, notFound: "git trigger",
                logger: logger, Self.record)
        }
    }

    /// The project's live triggers, oldest first.
    public func list(project: UUID, page: PageRequest) async throws -> Page<GitTrigger> {
        try await client.read { connection in
            try await connection.page(of: "git_triggers", columns: Self.columns, project: project, page: page, logger: logger, Self.record)
        }
    }

    /// The live triggers of a repository, oldest first: what a check that saw its refs change
    /// runs.
    public func triggers(forRepository repository: UUID) async throws -> [GitTrigger] {
        try await client.read { connection in
            try await connection.all(
                """
                SELECT \(unescaped: Self.columns) FROM git_triggers
                WHERE repository_id = \(repository) AND archived_at IS NULL ORDER BY created_at, id
                """, logger: logger, { try Self.record($0).item })
        }
    }

    /// Renames the trigger and replaces its ref pattern and change type.
    public func update(
        _ id: UUID, project: UUID, name: String, refPattern: String, changeType: GitTrigger.ChangeType, actor: UUID?
    ) async throws -> GitTrigger {
        let name = try Validate.name(name)
        let pattern = try Self.validPattern(refPattern)
        return try await client.write(logger: logger) { connection in
            let updated = try await connection.first(
                """
                UPDATE git_triggers SET name = \(name), ref_pattern = \(pattern), change_type = \(changeType.rawValue), updated_at = now()
                WHERE id = \(id) AND project_id = \(project) AND archived_at IS NULL RETURNING \(unescaped: Self.columns)
                """, logger: logger, Self.record)
            guard let trigger = updated?.item else { throw StoreError.notFound("git trigger") }
            try await Self.log("git_trigger.updated", trigger, actor: actor, on: connection, logger: logger)
            return trigger
        }
    }

    /// Archives the trigger.
    public func archive(_ id: UUID, project: UUID, actor: UUID?) async throws {
        try await client.write(logger: logger) { connection in
            let trigger = try await connection.archive(
                id, in: "git_triggers", columns: Self.columns, project: project, notFound: "git trigger", logger: logger, Self.record)
            try await Self.log("git_trigger.archived", trigger, actor: actor, on: connection, logger: logger)
        }
    }

    private static func log(
        _ name: String, _ trigger: GitTrigger, actor: UUID?, on connection: PostgresConnection, logger: Logger
    ) async throws {
        try await ActivityLog.record(
            name, project: trigger.projectID, actor: actor,
            payload: [
                "git_trigger_id": trigger.id.uuidString.lowercased(), "repository_id": trigger.repositoryID.uuidString.lowercased(),
                "job_id": trigger.jobID.uuidString.lowercased(), "name": trigger.name,
            ], on: connection, logger: logger)
    }
}
