import Foundation
import Logging
import PostgresNIO

/// Projects. A new project gets a default environment named `default`.
public struct ProjectStore: Sendable {
    let client: PostgresClient
    let logger: Logger

    public init(client: PostgresClient, logger: Logger) {
        self.client = client
        self.logger = logger
    }

    static let columns = "id, organization_id, name, created_at, updated_at, archived_at, \(Cursor.column)"
    typealias Row = (UUID, UUID, String, Date, Date, Date?, Int64)

    static func record(_ row: Row) -> (item: Project, position: Cursor) {
        (
            Project(id: row.0, organizationID: row.1, name: row.2, createdAt: row.3, updatedAt: row.4, archivedAt: row.5),
            Cursor(createdMicroseconds: row.6, id: row.0)
        )
    }

    /// Creates a project in a live organization, with its default environment. The organization's
    /// row is share-locked, so an archive running at the same time waits for this project and
    /// archives it too.
    public func create(organization: UUID, name: String, actor: UUID?) async throws -> Project {
        let name = try Validate.name(name)
        return try await client.write(logger: logger) { connection in
            let rows = try await connection.query(
                """
                INSERT INTO projects (organization_id, name)
                SELECT \(organization), \(name)
                WHERE EXISTS (SELECT 1 FROM organizations WHERE id = \(organization) AND archived_at IS NULL FOR SHARE)
                RETURNING \(unescaped: Self.columns)
                """, logger: logger)
            var created: Project?
            for try await row in rows.decode(Row.self) { created = Self.record(row).item }
            guard let project = created else { throw StoreError.notFound("organization") }
            try await connection.query(
                "INSERT INTO environments (project_id, name, is_default) VALUES (\(project.id), 'default', true)", logger: logger)
            try await ActivityLog.record(
                "project.created", project: project.id, organization: organization, actor: actor, payload: ["name": name], on: connection,
                logger: logger)
            return project
        }
    }

    /// The project; archived ones only with `includeArchived`.
    public func find(_ id: UUID, includeArchived: Bool = false) async throws -> Project {
        try await client.read { connection in
            let rows = try await connection.query(
                "SELECT \(unescaped: Self.columns) FROM projects WHERE id = \(id) AND (archived_at IS NULL OR \(includeArchived))",
                logger: logger)
            for try await row in rows.decode(Row.self) { return Self.record(row).item }
            throw StoreError.notFound("project")
        }
    }

    /// The organization's live projects, oldest first.
    public func list(organization: UUID, page: PageRequest) async throws -> Page<Project> {
        let after = Cursor.bounds(try page.position())
        return try await client.read { connection in
            let rows = try await connection.query(
                """
                SELECT \(unescaped: Self.columns) FROM projects
                WHERE organization_id = \(organization) AND archived_at IS NULL
                  AND (\(after.first) OR (created_at, id) > (to_timestamp(0) + \(after.microseconds) * interval '1 microsecond', \(after.id)))
                ORDER BY created_at, id LIMIT \(page.limit + 1)
                """, logger: logger)
            var found: [(item: Project, position: Cursor)] = []
            for try await row in rows.decode(Row.self) { found.append(Self.record(row)) }
            return Page(rows: found, limit: page.limit)
        }
    }

    /// Renames the project.
    public func update(_ id: UUID, name: String, actor: UUID?) async throws -> Project {
        let name = try Validate.name(name)
        return try await client.write(logger: logger) { connection in
            let rows = try await connection.query(
                """
                UPDATE projects SET name = \(name), updated_at = now()
                WHERE id = \(id) AND archived_at IS NULL RETURNING \(unescaped: Self.columns)
                """, logger: logger)
            for try await row in rows.decode(Row.self) {
                let project = Self.record(row).item
                try await ActivityLog.record(
                    "project.updated", project: id, organization: project.organizationID, actor: actor, payload: ["name": name],
                    on: connection, logger: logger)
                return project
            }
            throw StoreError.notFound("project")
        }
    }

    /// Archives the project and everything under it, in one transaction.
    public func archive(_ id: UUID, actor: UUID?) async throws {
        try await client.write(logger: logger) { connection in
            try await Archiver.archiveProject(id, actor: actor, on: connection, logger: logger)
        }
    }
}
