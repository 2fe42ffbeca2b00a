import Foundation
import Logging
import PostgresNIO

/// Jobs of a project: a task run in an environment of the same project, with a time limit.
/// Names are unique among a project's live jobs. Archiving a job disables its schedules and
/// archives what would start it (see ``Archiver``).
public struct JobStore: Sendable {
    let client: PostgresClient
    let logger: Logger

    public init(client: PostgresClient, logger: Logger) {
        self.client = client
        self.logger = logger
    }

    static let columns =
        "id, project_id, task_id, environment_id, name, time_limit_seconds, created_at, updated_at, archived_at, \(Cursor.column)"
    typealias Row = (UUID, UUID, UUID, UUID, String, Int32, Date, Date, Date?, Int64)

    static func record(_ row: Row) -> (item: JobDefinition, position: Cursor) {
        (
            JobDefinition(
                id: row.0, projectID: row.1, taskID: row.2, environmentID: row.3, name: row.4, timeLimitSeconds: Int(row.5),
                createdAt: row.6, updatedAt: row.7, archivedAt: row.8),
            Cursor(createdMicroseconds: row.9, id: row.0)
        )
    }

    /// Creates a job of a live project that runs a live task of the project in a live
    /// environment of the project. Another project's task or environment, or an archived one,
    /// is not found, naming the field.
    public func create(
        project: UUID, name: String, task: UUID, environment: UUID, timeLimitSeconds: Int = JobDefinition.defaultTimeLimitSeconds,
        actor: UUID?
    ) async throws -> JobDefinition {
        let name = try Validate.name(name)
        let timeLimit = try Self.validTimeLimit(timeLimitSeconds)
        return try await client.write(logger: logger) { connection in
            try await connection.lockLiveProject(project, orElse: .notFound("project"), logger: logger)
            try await connection.refuseLiveName(name, table: "jobs", project: project, except: nil, what: "a job", logger: logger)
            try await Self.requireLive(task: task, environment: environment, project: project, on: connection, logger: logger)
            let rows = try await connection.query(
                """
                INSERT INTO jobs (project_id, task_id, environment_id, name, time_limit_seconds)
                VALUES (\(project), \(task), \(environment), \(name), \(timeLimit)) RETURNING \(unescaped: Self.columns)
                """, logger: logger)
            for try await row in rows.decode(Row.self) {
                let job = Self.record(row).item
                try await ActivityLog.record(
                    "job.created", project: project, actor: actor, payload: Self.payload(job), on: connection, logger: logger)
                return job
            }
            throw StoreError(.conflict, "the job was not created")
        }
    }

    /// The job of `project`; archived ones only with `includeArchived`.
    public func find(_ id: UUID, project: UUID, includeArchived: Bool = false) async throws -> JobDefinition {
        try await client.read { connection in
            let rows = try await connection.query(
                """
                SELECT \(unescaped: Self.columns) FROM jobs
                WHERE id = \(id) AND project_id = \(project) AND (archived_at IS NULL OR \(includeArchived))
                """, logger: logger)
            for try await row in rows.decode(Row.self) { return Self.record(row).item }
            throw StoreError.notFound("job")
        }
    }

    /// The project's live jobs, oldest first.
    public func list(project: UUID, page: PageRequest) async throws -> Page<JobDefinition> {
        let after = Cursor.bounds(try page.position())
        return try await client.read { connection in
            let rows = try await connection.query(
                """
                SELECT \(unescaped: Self.columns) FROM jobs
                WHERE project_id = \(project) AND archived_at IS NULL
                  AND (\(after.first) OR (created_at, id) > (to_timestamp(0) + \(after.microseconds) * interval '1 microsecond', \(after.id)))
                ORDER BY created_at, id LIMIT \(page.limit + 1)
                """, logger: logger)
            return try await Page(rows.decode(Row.self), limit: page.limit, Self.record)
        }
    }

    /// Changes what is given and keeps the rest; a new task or environment must be live and
    /// of the same project.
    public func update(
        _ id: UUID, project: UUID, name: String? = nil, task: UUID? = nil, environment: UUID? = nil, timeLimitSeconds: Int? = nil,
        actor: UUID?
    ) async throws -> JobDefinition {
        let name = try name.map { try Validate.name($0) }
        let timeLimit = try timeLimitSeconds.map(Self.validTimeLimit)
        return try await client.write(logger: logger) { connection in
            try await connection.lockLiveProject(project, orElse: .notFound("job"), logger: logger)
            if let name {
                try await connection.refuseLiveName(name, table: "jobs", project: project, except: id, what: "a job", logger: logger)
            }
            try await Self.requireLive(task: task, environment: environment, project: project, on: connection, logger: logger)
            let rows = try await connection.query(
                """
                UPDATE jobs SET name = coalesce(\(name), name), task_id = coalesce(\(task), task_id),
                    environment_id = coalesce(\(environment), environment_id),
                    time_limit_seconds = coalesce(\(timeLimit), time_limit_seconds), updated_at = now()
                WHERE id = \(id) AND project_id = \(project) AND archived_at IS NULL RETURNING \(unescaped: Self.columns)
                """, logger: logger)
            for try await row in rows.decode(Row.self) {
                let job = Self.record(row).item
                try await ActivityLog.record(
                    "job.updated", project: project, actor: actor, payload: Self.payload(job), on: connection, logger: logger)
                return job
            }
            throw StoreError.notFound("job")
        }
    }

    /// Archives the job: its schedules are disabled and its triggers, webhooks and
    /// notification rules archived, in the same transaction.
    public func archive(_ id: UUID, project: UUID, actor: UUID?) async throws {
        try await client.write(logger: logger) { connection in
            try await Archiver.archiveJob(id, project: project, actor: actor, on: connection, logger: logger)
        }
    }

    /// Checks that the given task and environment are live rows of `project`, and keeps them
    /// so (`FOR SHARE`) until the transaction ends: archiving them waits, then sees this job.
    /// The composite foreign keys refuse another project's rows too, but not archived ones.
    private static func requireLive(
        task: UUID?, environment: UUID?, project: UUID, on connection: PostgresConnection, logger: Logger
    ) async throws {
        guard task != nil || environment != nil else { return }
        let rows = try await connection.query(
            """
            SELECT \(task)::uuid IS NULL
                   OR EXISTS (SELECT 1 FROM tasks WHERE id = \(task) AND project_id = \(project) AND archived_at IS NULL FOR SHARE),
                   \(environment)::uuid IS NULL
                   OR EXISTS (SELECT 1 FROM environments WHERE id = \(environment) AND project_id = \(project) AND archived_at IS NULL FOR SHARE)
            """, logger: logger)
        for try await (taskIsLive, environmentIsLive) in rows.decode((Bool, Bool).self) {
            if !taskIsLive { throw StoreError(.notFound, "task not found", field: "task_id") }
            if !environmentIsLive { throw StoreError(.notFound, "environment not found", field: "environment_id") }
        }
    }

    /// A time limit: a positive number of seconds that fits the column.
    static func validTimeLimit(_ seconds: Int) throws -> Int32 {
        guard seconds > 0, let value = Int32(exactly: seconds) else {
            throw StoreError.invalid("time_limit_seconds", "the time limit must be a positive number of seconds")
        }
        return value
    }

    private static func payload(_ job: JobDefinition) -> [String: String] {
        ["job_id": job.id.uuidString.lowercased(), "name": job.name]
    }
}
