import Foundation
import Logging
import PostgresNIO

/// Who belongs to an organization or a project, with which role. A user's role in a project is
/// the higher of their project role and their organization role. An organization and a project
/// keep at least one owner: demoting or removing the last one is a conflict.
public struct MembershipStore: Sendable {
    let client: PostgresClient
    let logger: Logger

    public init(client: PostgresClient, logger: Logger) {
        self.client = client
        self.logger = logger
    }

    /// A membership row joined with its user (`m`, `u`); the position is the membership's
    /// `created_at` with the user's id as the tiebreaker, since the tables have no id of their own.
    static let columns =
        "\(UserStore.joinedColumns), m.role, m.created_at, m.updated_at, (extract(epoch FROM m.created_at) * 1000000)::int8"
    typealias Row = (UUID, String, String, Date?, Date?, Bool, Date, Date, String, Date, Date, Int64)

    static func record(_ row: Row, scope: Membership.Scope) throws -> (item: Membership, position: Cursor) {
        let user = UserStore.record((row.0, row.1, row.2, row.3, row.4, row.5, row.6, row.7))
        return (
            Membership(scope: scope, user: user, role: try Role(stored: row.8, column: "role"), createdAt: row.9, updatedAt: row.10),
            Cursor(createdMicroseconds: row.11, id: row.0)
        )
    }

    /// Adds `user` to a live organization or project with `role`. A member already is a
    /// duplicate; use ``changeRole(of:in:to:actor:actorRole:)``.
    public func add(_ user: UUID, to scope: Membership.Scope, role: Role, actor: UUID?) async throws -> Membership {
        try await client.write(logger: logger) { connection in
            let organization = try await Self.lockParent(of: scope, exclusive: false, on: connection, logger: logger)
            let rows = try await connection.query(
                """
                WITH m AS (
                    INSERT INTO \(unescaped: scope.table) (\(unescaped: scope.column), user_id, role) VALUES (\(scope.id), \(user), \(role.rawValue))
                    RETURNING user_id, role, created_at, updated_at)
                SELECT \(unescaped: Self.columns) FROM m JOIN users u ON u.id = m.user_id
                """, logger: logger)
            for try await row in rows.decode(Row.self) {
                let membership = try Self.record(row, scope: scope).item
                try await Self.recordActivity(
                    "membership.created", scope, organization: organization, user: user, role: role, actor: actor, on: connection,
                    logger: logger)
                return membership
            }
            throw StoreError.notFound("user")
        }
    }

    /// Gives a member another role. `actorRole` is the caller's own role there (`nil` for a
    /// platform admin): nobody changes a member whose current role is above their own, and
    /// neither an organization nor a project is left without an owner.
    public func changeRole(
        of user: UUID, in scope: Membership.Scope, to role: Role, actor: UUID?, actorRole: Role?
    ) async throws
        -> Membership
    {
        try await client.write(logger: logger) { connection in
            let organization = try await Self.lockParent(of: scope, exclusive: true, on: connection, logger: logger)
            try await Self.requireAtMost(actorRole, member: user, in: scope, verb: "change", on: connection, logger: logger)
            let rows = try await connection.query(
                """
                WITH m AS (
                    UPDATE \(unescaped: scope.table) SET role = \(role.rawValue), updated_at = now()
                    WHERE \(unescaped: scope.column) = \(scope.id) AND user_id = \(user) RETURNING user_id, role, created_at, updated_at)
                SELECT \(unescaped: Self.columns) FROM m JOIN users u ON u.id = m.user_id
                """, logger: logger)
            for try await row in rows.decode(Row.self) {
                let membership = try Self.record(row, scope: scope).item
                try await Self.requireOwner(of: scope, on: connection, logger: logger)
                try await Self.recordActivity(
                    "membership.updated", scope, organization: organization, user: user, role: role, actor: actor, on: connection,
                    logger: logger)
                return membership
            }
            throw StoreError.notFound("membership")
        }
    }

    /// Removes a member: the row is deleted, the activity remains. `actorRole` as in
    /// ``changeRole(of:in:to:actor:actorRole:)``.
    public func remove(_ user: UUID, from scope: Membership.Scope, actor: UUID?, actorRole: Role?) async throws {
        try await client.write(logger: logger) { connection in
            let organization = try await Self.lockParent(of: scope, exclusive: true, on: connection, logger: logger)
            try await Self.requireAtMost(actorRole, member: user, in: scope, verb: "remove", on: connection, logger: logger)
            let rows = try await connection.query(
                """
                DELETE FROM \(unescaped: scope.table) WHERE \(unescaped: scope.column) = \(scope.id) AND user_id = \(user) RETURNING role
                """, logger: logger)
            for try await role in rows.decode(String.self) {
                try await Self.requireOwner(of: scope, on: connection, logger: logger)
                try await Self.recordActivity(
                    "membership.deleted", scope, organization: organization, user: user, role: try Role(stored: role, column: "role"),
                    actor: actor,
                    on: connection, logger: logger)
                return
            }
            throw StoreError.notFound("membership")
        }
    }

    /// The members of an organization or project, in the order they joined.
    public func list(_ scope: Membership.Scope, page: PageRequest) async throws -> Page<Membership> {
        let after = Cursor.bounds(try page.position())
        return try await client.read { connection in
            let rows = try await connection.query(
                """
                SELECT \(unescaped: Self.columns) FROM \(unescaped: scope.table) m JOIN users u ON u.id = m.user_id
                WHERE m.\(unescaped: scope.column) = \(scope.id)
                  AND (\(after.first) OR (m.created_at, m.user_id) > (to_timestamp(0) + \(after.microseconds) * interval '1 microsecond', \(after.id)))
                ORDER BY m.created_at, m.user_id LIMIT \(page.limit + 1)
                """, logger: logger)
            return try await Page(rows.decode(Row.self), limit: page.limit) { row in try Self.record(row, scope: scope) }
        }
    }

    /// The user's role in a live project: the higher of their project role and their role in
    /// the project's organization; `nil` when they have neither or the project is archived.
    public func effectiveRole(user: UUID, project: UUID) async throws -> Role? {
        try await client.read { connection in
            let rows = try await connection.query(
                """
                SELECT pm.role, om.role FROM projects p
                LEFT JOIN project_memberships pm ON pm.project_id = p.id AND pm.user_id = \(user)
                LEFT JOIN organization_memberships om ON om.organization_id = p.organization_id AND om.user_id = \(user)
                WHERE p.id = \(project) AND p.archived_at IS NULL
                """, logger: logger)
            for try await (projectRole, organizationRole) in rows.decode((String?, String?).self) {
                return try [projectRole, organizationRole].compactMap { try $0.map { try Role(stored: $0, column: "role") } }.max()
            }
            return nil
        }
    }

    /// The user's role in a live organization; `nil` when they are not a member (or it is
    /// archived). Project memberships do not count here.
    public func organizationRole(user: UUID, organization: UUID) async throws -> Role? {
        try await client.read { connection in
            let rows = try await connection.query(
                """
                SELECT m.role FROM organization_memberships m JOIN organizations o ON o.id = m.organization_id
                WHERE m.organization_id = \(organization) AND m.user_id = \(user) AND o.archived_at IS NULL
                """, logger: logger)
            for try await role in rows.decode(String.self) { return try Role(stored: role, column: "role") }
            return nil
        }
    }

    /// Whether `user` is a member of a live project of the live `organization`: who sees an
    /// organization through its projects (as `OrganizationStore.list(visibleTo:page:)` lists it).
    public func hasProject(user: UUID, in organization: UUID) async throws -> Bool {
        try await client.read { connection in
            let rows = try await connection.query(
                """
                SELECT EXISTS (SELECT 1 FROM project_memberships pm JOIN projects p ON p.id = pm.project_id
                               JOIN organizations o ON o.id = p.organization_id
                               WHERE o.id = \(organization) AND pm.user_id = \(user) AND p.archived_at IS NULL AND o.archived_at IS NULL)
                """, logger: logger)
            for try await found in rows.decode(Bool.self) { return found }
            return false
        }
    }

    /// Whether `user` is a member of the organization of `scope` (the organization itself, or
    /// the project's): members of one project alone are not.
    public func sharesOrganization(_ user: UUID, with scope: Membership.Scope) async throws -> Bool {
        try await client.read { connection in
            let rows = try await connection.query(
                """
                SELECT EXISTS (SELECT 1 FROM organization_memberships m JOIN \(unescaped: scope.parent) s
                               ON m.organization_id = s.\(unescaped: scope.organizationColumn)
                               WHERE s.id = \(scope.id) AND m.user_id = \(user))
                """, logger: logger)
            for try await shares in rows.decode(Bool.self) { return shares }
            return false
        }
    }

    /// Gives `user` `role` in `scope` inside the caller's transaction, keeping a higher role
    /// they have already: accepting an invitation never demotes anyone.
    static func grant(
        _ role: Role, to user: UUID, in scope: Membership.Scope, actor: UUID?, on connection: PostgresConnection, logger: Logger
    ) async throws {
        let organization = try await lockParent(of: scope, exclusive: false, on: connection, logger: logger)
        // Roles from lowest to highest: array_position ranks them in SQL.
        let ranks = Role.allCases.sorted().map(\.rawValue)
        let rows = try await connection.query(
            """
            INSERT INTO \(unescaped: scope.table) AS m (\(unescaped: scope.column), user_id, role) VALUES (\(scope.id), \(user), \(role.rawValue))
            ON CONFLICT (\(unescaped: scope.column), user_id) DO UPDATE SET role = excluded.role, updated_at = now()
            WHERE array_position(\(ranks)::text[], excluded.role) > array_position(\(ranks)::text[], m.role)
            RETURNING xmax = 0
            """, logger: logger)
        for try await inserted in rows.decode(Bool.self) {
            try await recordActivity(
                inserted ? "membership.created" : "membership.updated", scope, organization: organization, user: user, role: role,
                actor: actor, on: connection, logger: logger)
        }
    }

    /// Locks the live organization or project of `scope` until the transaction ends and
    /// returns its organization's id. Changes that may take away an organization's last owner
    /// lock it exclusively, so two of them cannot each count the other's owner.
    private static func lockParent(
        of scope: Membership.Scope, exclusive: Bool, on connection: PostgresConnection, logger: Logger
    ) async throws -> UUID {
        let rows = try await connection.query(
            """
            SELECT \(unescaped: scope.organizationColumn) FROM \(unescaped: scope.parent) WHERE id = \(scope.id) AND archived_at IS NULL
            FOR \(unescaped: exclusive ? "NO KEY UPDATE" : "SHARE")
            """, logger: logger)
        for try await organization in rows.decode(UUID.self) { return organization }
        throw StoreError.notFound(scope.name)
    }

    /// Throws a conflict when the change left an organization, or a project, without an owner.
    /// A project's owners are its own and its organization's (a project role is the higher of
    /// the two), so a project whose organization has an owner always has one.
    private static func requireOwner(of scope: Membership.Scope, on connection: PostgresConnection, logger: Logger) async throws {
        let rows: PostgresRowSequence
        switch scope {
        case .organization(let id):
            rows = try await connection.query(
                "SELECT EXISTS (SELECT 1 FROM organization_memberships WHERE organization_id = \(id) AND role = 'owner')", logger: logger)
        case .project(let id):
            rows = try await connection.query(
                """
                SELECT EXISTS (SELECT 1 FROM project_memberships WHERE project_id = \(id) AND role = 'owner')
                    OR EXISTS (SELECT 1 FROM organization_memberships om JOIN projects p ON p.organization_id = om.organization_id
                               WHERE p.id = \(id) AND om.role = 'owner')
                """, logger: logger)
        }
        for try await hasOwner in rows.decode(Bool.self) where !hasOwner {
            throw StoreError(.conflict, "the \(scope.name) needs an owner: make another member the owner first")
        }
    }

    /// Refuses (403) when the member's current role in `scope` is above `actorRole`; `nil`
    /// (a platform admin) may change anyone. Read under the parent's lock, so the role checked
    /// is the role changed.
    private static func requireAtMost(
        _ actorRole: Role?, member user: UUID, in scope: Membership.Scope, verb: String, on connection: PostgresConnection,
        logger: Logger
    ) async throws {
        guard let actorRole else { return }
        let rows = try await connection.query(
            "SELECT role FROM \(unescaped: scope.table) WHERE \(unescaped: scope.column) = \(scope.id) AND user_id = \(user)",
            logger: logger)
        for try await stored in rows.decode(String.self) {
            let current = try Role(stored: stored, column: "role")
            if current > actorRole {
                throw StoreError(
                    .forbidden, "you cannot \(verb) a member whose role is \(current.rawValue): yours is \(actorRole.rawValue)")
            }
        }
    }

    private static func recordActivity(
        _ name: String, _ scope: Membership.Scope, organization: UUID, user: UUID, role: Role, actor: UUID?,
        on connection: PostgresConnection, logger: Logger
    ) async throws {
        var project: UUID?
        if case .project(let id) = scope { project = id }
        try await ActivityLog.record(
            name, project: project, organization: organization, actor: actor,
            payload: ["user_id": user.uuidString.lowercased(), "role": role.rawValue], on: connection, logger: logger)
    }
}

extension UserStore {
    /// ``columns`` of a user joined as `u`, in the order ``record(_:)`` reads them.
    static let joinedColumns = "u.id, u.email, u.name, u.email_verified_at, u.blocked_at, u.is_admin, u.created_at, u.updated_at"
}

extension Membership.Scope {
    /// The organization's or project's id.
    public var id: UUID {
        switch self {
        case .organization(let id), .project(let id): id
        }
    }

    // Table and column names for queries: constants, never input.

    var name: String {
        switch self {
        case .organization: "organization"
        case .project: "project"
        }
    }

    var table: String { "\(name)_memberships" }
    var column: String { "\(name)_id" }
    var parent: String { "\(name)s" }
    /// The column of `parent` that holds the organization's id.
    var organizationColumn: String {
        switch self {
        case .organization: "id"
        case .project: "organization_id"
        }
    }
}
