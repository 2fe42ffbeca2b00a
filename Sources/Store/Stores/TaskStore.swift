import Foundation
import Logging
import PostgresNIO

/// Tasks of a project: named shell scripts that jobs run. Names are unique among a project's
/// live tasks.
public struct TaskStore: Sendable {
    let client: PostgresClient
    let logger: Logger

    public init(client: PostgresClient, logger: Logger) {
        self.client = client
        self.logger = logger
    }

    static let columns = "id, project_id, name, script, created_at, updated_at, archived_at, \(Cursor.column)"
    typealias Row = (UUID, UUID, String, String, Date, Date, Date?, Int64)

    static func record(_ row: Row) -> (item: ShellTask, position: Cursor) {
        (
            ShellTask(id: row.0, projectID: row.1, name: row.2, script: row.3, createdAt: row.4, updatedAt: row.5, archivedAt: row.6),
            Cursor(createdMicroseconds: row.7, id: row.0)
        )
    }

    /// Creates a task in a live project.
    public func create(project: UUID, name: String, script: String, actor: UUID?) async throws -> ShellTask {
        let name = try Validate.name(name)
        let script = try Self.validScript(script)
        return try await client.write(logger: logger) { connection in
            try await connection.lockLiveProject(project, orElse: .notFound("project"), logger: logger)
            try await connection.refuseLiveName(name, table: "tasks", project: project, except: nil, what: "a task", logger: logger)
            let rows = try await connection.query(
                "INSERT INTO tasks (project_id, name, script) VALUES (\(project), \(name), \(script)) RETURNING \(unescaped: Self.columns)",
                logger: logger)
            for try await row in rows.decode(Row.self) {
                let task = Self.record(row).item
                try await ActivityLog.record(
                    "task.created", project: project, actor: actor, payload: Self.payload(task), on: connection, logger: logger)
                return task
            }
            throw StoreError(.conflict, "the task was not created")
        }
    }

    /// The task of `project`; archived ones only with `includeArchived`.
    public func find(_ id: UUID, project: UUID, includeArchived: Bool = false) async throws -> ShellTask {
        try await client.read { connection in
            let rows = try await connection.query(
                """
                SELECT \(unescaped: Self.columns) FROM tasks
                WHERE id = \(id) AND project_id = \(project) AND (archived_at IS NULL OR \(includeArchived))
                """, logger: logger)
            for try await row in rows.decode(Row.self) { return Self.record(row).item }
            throw StoreError.notFound("task")
        }
    }

    /// The project's live tasks, oldest first.
    public func list(project: UUID, page: PageRequest) async throws -> Page<ShellTask> {
        let after = Cursor.bounds(try page.position())
        return try await client.read { connection in
            let rows = try await connection.query(
                """
                SELECT \(unescaped: Self.columns) FROM tasks
                WHERE project_id = \(project) AND archived_at IS NULL
                  AND (\(after.first) OR (created_at, id) > (to_timestamp(0) + \(after.microseconds) * interval '1 microsecond', \(after.id)))
                ORDER BY created_at, id LIMIT \(page.limit + 1)
                """, logger: logger)
            return try await Page(rows.decode(Row.self), limit: page.limit, Self.record)
        }
    }

    /// Changes the name or the script, whichever is given.
    public func update(_ id: UUID, project: UUID, name: String? = nil, script: String? = nil, actor: UUID?) async throws -> ShellTask {
        let name = try name.map { try Validate.name($0) }
        let script = try script.map(Self.validScript)
        return try await client.write(logger: logger) { connection in
            try await connection.lockLiveProject(project, orElse: .notFound("task"), logger: logger)
            if let name {
                try await connection.refuseLiveName(name, table: "tasks", project: project, except: id, what: "a task", logger: logger)
            }
            let rows = try await connection.query(
                """
                UPDATE tasks SET name = coalesce(\(name), name), script = coalesce(\(script), script), updated_at = now()
                WHERE id = \(id) AND project_id = \(project) AND archived_at IS NULL RETURNING \(unescaped: Self.columns)
                """, logger: logger)
            for try await row in rows.decode(Row.self) {
                let task = Self.record(row).item
                try await ActivityLog.record(
                    "task.updated", project: project, actor: actor, payload: Self.payload(task), on: connection, logger: logger)
                return task
            }
            throw StoreError.notFound("task")
        }
    }

    /// Archives the task. A task that live jobs run cannot be archived (conflict): archive or
    /// change those jobs first.
    public func archive(_ id: UUID, project: UUID, actor: UUID?) async throws {
        try await client.write(logger: logger) { connection in
            // Archive first: the row lock makes a concurrent job creation on this task either
            // finish first (and be counted below) or find the task archived.
            let rows = try await connection.query(
                """
                UPDATE tasks SET archived_at = now(), updated_at = now()
                WHERE id = \(id) AND project_id = \(project) AND archived_at IS NULL RETURNING \(unescaped: Self.columns)
                """, logger: logger)
            for try await row in rows.decode(Row.self) {
                try await connection.refuseWhileLiveJobs(use: "task_id", id, what: "task", logger: logger)
                try await ActivityLog.record(
                    "task.archived", project: project, actor: actor, payload: Self.payload(Self.record(row).item), on: connection,
                    logger: logger)
                return
            }
            throw StoreError.notFound("task")
        }
    }

    /// A script: not blank, at most 1 MiB, no NUL (which a text column cannot hold).
    static func validScript(_ script: String) throws -> String {
        guard !script.trimmingWhitespace().isEmpty else { throw StoreError.invalid("script", "script must not be empty") }
        guard script.utf8.count <= 1 << 20 else { throw StoreError.invalid("script", "script must be at most 1 MiB") }
        guard !script.utf8.contains(0) else { throw StoreError.invalid("script", "script must not contain NUL") }
        return script
    }

    private static func payload(_ task: ShellTask) -> [String: String] {
        ["task_id": task.id.uuidString.lowercased(), "name": task.name]
    }
}
