import Foundation
import Logging
import PostgresNIO

/// Organizations, and the membership of the user who creates one (its owner).
public struct OrganizationStore: Sendable {
    let client: PostgresClient
    let logger: Logger
    /// Its ``UserQuotas/organizations`` limit applies to ``create(name:owner:)``.
    let quotas: UserQuotas

    public init(client: PostgresClient, logger: Logger, quotas: UserQuotas = .unlimited) {
        self.client = client
        self.logger = logger
        self.quotas = quotas
    }

    static let columns = "id, name, created_at, updated_at, archived_at, \(Cursor.column)"
    typealias Row = (UUID, String, Date, Date, Date?, Int64)

    static func record(_ row: Row) -> (item: Organization, position: Cursor) {
        (
            Organization(id: row.0, name: row.1, createdAt: row.2, updatedAt: row.3, archivedAt: row.4),
            Cursor(createdMicroseconds: row.5, id: row.0)
        )
    }

    /// Creates an organization owned, and created, by `owner`, within their quota of
    /// organizations (``StoreError`` `quotaExceeded` past it).
    public func create(name: String, owner: UUID) async throws -> Organization {
        let name = try Validate.name(name)
        return try await client.write(logger: logger) { connection in
            try await connection.requireQuota(.organizations, of: quotas, for: owner, logger: logger)
            let rows = try await connection.query(
                "INSERT INTO organizations (name, created_by) VALUES (\(name), \(owner)) RETURNING \(unescaped: Self.columns)",
                logger: logger)
            var created: Organization?
            for try await row in rows.decode(Row.self) { created = Self.record(row).item }
            guard let organization = created else { throw StoreError(.conflict, "the organization was not created") }
            try await connection.query(
                "INSERT INTO organization_memberships (organization_id, user_id, role) VALUES (\(organization.id), \(owner), 'owner')",
                logger: logger)
            try await ActivityLog.record(
                "organization.created", organization: organization.id, actor: owner, payload: ["name": name], on: connection, logger: logger
            )
            return organization
        }
    }

    /// The organization; archived ones only with `includeArchived`.
    public func find(_ id: UUID, includeArchived: Bool = false) async throws -> Organization {
        try await client.read { connection in
            let rows = try await connection.query(
                """
                SELECT \(unescaped: Self.columns) FROM organizations
                WHERE id = \(id) AND (archived_at IS NULL OR \(includeArchived))
                """, logger: logger)
            for try await row in rows.decode(Row.self) { return Self.record(row).item }
            throw StoreError.notFound("organization")
        }
    }

    /// The organizations `user` belongs to, directly or through one of their projects.
    public func list(visibleTo user: UUID, page: PageRequest) async throws -> Page<Organization> {
        let after = Cursor.bounds(try page.position())
        return try await client.read { connection in
            let rows = try await connection.query(
                """
                SELECT \(unescaped: Self.columns) FROM organizations o
                WHERE archived_at IS NULL
                  AND (EXISTS (SELECT 1 FROM organization_memberships m WHERE m.organization_id = o.id AND m.user_id = \(user))
                       OR EXISTS (SELECT 1 FROM project_memberships pm JOIN projects p ON p.id = pm.project_id
                                  WHERE p.organization_id = o.id AND pm.user_id = \(user) AND p.archived_at IS NULL))
                  AND (\(after.first) OR (created_at, id) > (to_timestamp(0) + \(after.microseconds) * interval '1 microsecond', \(after.id)))
                ORDER BY created_at, id LIMIT \(page.limit + 1)
                """, logger: logger)
            var found: [(item: Organization, position: Cursor)] = []
            for try await row in rows.decode(Row.self) { found.append(Self.record(row)) }
            return Page(rows: found, limit: page.limit)
        }
    }

    /// Renames the organization.
    public func update(_ id: UUID, name: String, actor: UUID?) async throws -> Organization {
        let name = try Validate.name(name)
        return try await client.write(logger: logger) { connection in
            let rows = try await connection.query(
                """
                UPDATE organizations SET name = \(name), updated_at = now()
                WHERE id = \(id) AND archived_at IS NULL RETURNING \(unescaped: Self.columns)
                """, logger: logger)
            for try await row in rows.decode(Row.self) {
                try await ActivityLog.record(
                    "organization.updated", organization: id, actor: actor, payload: ["name": name], on: connection, logger: logger)
                return Self.record(row).item
            }
            throw StoreError.notFound("organization")
        }
    }

    /// Archives the organization and everything under it, in one transaction.
    public func archive(_ id: UUID, actor: UUID?) async throws {
        try await client.write(logger: logger) { connection in
            try await Archiver.archiveOrganization(id, actor: actor, on: connection, logger: logger)
        }
    }
}
