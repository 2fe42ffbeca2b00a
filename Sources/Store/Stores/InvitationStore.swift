import Foundation
import Logging
import PostgresNIO

/// Invitations to an organization or one of its projects. Only the user whose email matches the
/// invitation's (in any case) can answer it; to anyone else it does not exist. Accepting adds
/// the membership in the same transaction.
public struct InvitationStore: Sendable {
    /// How long an invitation stays open unless told otherwise: 7 days.
    public static let defaultLifetime = Duration.seconds(7 * 86_400)

    let client: PostgresClient
    let logger: Logger

    public init(client: PostgresClient, logger: Logger) {
        self.client = client
        self.logger = logger
    }

    static let columns = """
        id, organization_id, project_id, email, role, invited_by, created_at, expires_at, accepted_at, refused_at, archived_at,
        \(Cursor.column)
        """
    typealias Row = (UUID, UUID, UUID?, String, String, UUID, Date, Date, Date?, Date?, Date?, Int64)

    static func record(_ row: Row) throws -> (item: Invitation, position: Cursor) {
        (
            Invitation(
                id: row.0, organizationID: row.1, projectID: row.2, email: row.3, role: try Role(stored: row.4, column: "role"),
                invitedBy: row.5,
                createdAt: row.6, expiresAt: row.7, acceptedAt: row.8, refusedAt: row.9, archivedAt: row.10),
            Cursor(createdMicroseconds: row.11, id: row.0)
        )
    }

    /// Invites `email` to a live organization, or to a live `project` of it, with `role`.
    /// A project of another organization is not found (`project_id`). `outbox` names the jobs
    /// (the invitation mail) to enqueue in the same transaction.
    public func create(
        organization: UUID, project: UUID? = nil, email: String, role: Role, invitedBy: UUID, expiresIn: Duration = defaultLifetime,
        outbox: @Sendable (Invitation) throws -> [OutboxJob] = { _ in [] }
    ) async throws -> Invitation {
        let email = email.trimmingWhitespace()
        guard email.count <= 320, email.contains("@") else { throw StoreError.invalid("email", "the email address is not valid") }
        let lifetime = expiresIn.components.seconds
        guard (1...366 * 86_400).contains(lifetime) else {
            throw StoreError.invalid("expires_at", "an invitation expires between 1 second and a year after it is sent")
        }
        return try await client.write(logger: logger) { connection in
            // FOR SHARE holds off archiving the organization or project, which archives their
            // open invitations, until this one is in.
            let live = try await connection.query(
                """
                SELECT EXISTS (SELECT 1 FROM organizations WHERE id = \(organization) AND archived_at IS NULL FOR SHARE),
                       \(project)::uuid IS NULL OR EXISTS (SELECT 1 FROM projects WHERE id = \(project) AND archived_at IS NULL FOR SHARE)
                """, logger: logger)
            for try await (organizationIsLive, projectIsLive) in live.decode((Bool, Bool).self) {
                guard organizationIsLive else { throw StoreError.notFound("organization") }
                guard projectIsLive else { throw StoreError(.notFound, "project not found", field: "project_id") }
            }
            let rows = try await connection.query(
                """
                INSERT INTO invitations (organization_id, project_id, email, role, invited_by, expires_at)
                VALUES (\(organization), \(project), \(email), \(role.rawValue), \(invitedBy), now() + \(lifetime) * interval '1 second')
                RETURNING \(unescaped: Self.columns)
                """, logger: logger)
            for try await row in rows.decode(Row.self) {
                let invitation = try Self.record(row).item
                try await Self.recordActivity("invitation.created", invitation, actor: invitedBy, on: connection, logger: logger)
                try await Outbox.enqueue(try outbox(invitation), on: connection, logger: logger)
                return invitation
            }
            throw StoreError(.conflict, "the invitation was not created")
        }
    }

    /// An invitation of `organization`, open or not, for its managers.
    public func find(_ id: UUID, organization: UUID) async throws -> Invitation {
        try await client.read { connection in
            let rows = try await connection.query(
                "SELECT \(unescaped: Self.columns) FROM invitations WHERE id = \(id) AND organization_id = \(organization)",
                logger: logger)
            for try await row in rows.decode(Row.self) { return try Self.record(row).item }
            throw StoreError.notFound("invitation")
        }
    }

    /// The organization's open invitations (to it or its projects), oldest first: not
    /// answered, not expired, not archived.
    public func listOpen(organization: UUID, page: PageRequest) async throws -> Page<Invitation> {
        let after = Cursor.bounds(try page.position())
        return try await client.read { connection in
            let rows = try await connection.query(
                """
                SELECT \(unescaped: Self.columns) FROM invitations
                WHERE organization_id = \(organization) AND archived_at IS NULL AND accepted_at IS NULL AND refused_at IS NULL
                  AND expires_at > now()
                  AND (\(after.first) OR (created_at, id) > (to_timestamp(0) + \(after.microseconds) * interval '1 microsecond', \(after.id)))
                ORDER BY created_at, id LIMIT \(page.limit + 1)
                """, logger: logger)
            return try await Page(rows.decode(Row.self), limit: page.limit, Self.record)
        }
    }

    /// Accepts the invitation for `user` and gives them its role in its organization or
    /// project (keeping a higher role they have). Not found unless it is addressed to the
    /// user's email; a conflict when it was answered already or has expired.
    public func accept(_ id: UUID, by user: User) async throws -> Invitation {
        try await answer(id, by: user, accept: true)
    }

    /// Refuses the invitation, on the same terms as ``accept(_:by:)``.
    public func refuse(_ id: UUID, by user: User) async throws -> Invitation {
        try await answer(id, by: user, accept: false)
    }

    /// Withdraws an open invitation of `organization` (it is archived).
    public func revoke(_ id: UUID, organization: UUID, actor: UUID?) async throws {
        try await client.write(logger: logger) { connection in
            let rows = try await connection.query(
                """
                UPDATE invitations SET archived_at = now()
                WHERE id = \(id) AND organization_id = \(organization) AND archived_at IS NULL AND accepted_at IS NULL AND refused_at IS NULL
                RETURNING \(unescaped: Self.columns)
                """, logger: logger)
            for try await row in rows.decode(Row.self) {
                try await Self.recordActivity("invitation.revoked", try Self.record(row).item, actor: actor, on: connection, logger: logger)
                return
            }
            throw StoreError.notFound("invitation")
        }
    }

    private func answer(_ id: UUID, by user: User, accept: Bool) async throws -> Invitation {
        // The email is compared with the user's row, not the caller's copy, which may be stale;
        // a blocked user answers nothing.
        let column = accept ? "accepted_at" : "refused_at"
        return try await client.write(logger: logger) { connection in
            let rows = try await connection.query(
                """
                UPDATE invitations i SET \(unescaped: column) = now()
                WHERE i.id = \(id) AND i.archived_at IS NULL AND i.accepted_at IS NULL AND i.refused_at IS NULL AND i.expires_at > now()
                  AND EXISTS (SELECT 1 FROM users u WHERE u.id = \(user.id) AND lower(u.email) = lower(i.email) AND u.blocked_at IS NULL)
                RETURNING \(unescaped: Self.columns)
                """, logger: logger)
            for try await row in rows.decode(Row.self) {
                let invitation = try Self.record(row).item
                if accept {
                    let scope = invitation.projectID.map(Membership.Scope.project) ?? .organization(invitation.organizationID)
                    try await MembershipStore.grant(
                        invitation.role, to: user.id, in: scope, actor: user.id, on: connection, logger: logger)
                }
                try await Self.recordActivity(
                    accept ? "invitation.accepted" : "invitation.refused", invitation, actor: user.id, on: connection, logger: logger)
                return invitation
            }
            // Say why only to the invitee: for anyone else the invitation does not exist.
            let why = try await connection.query(
                """
                SELECT accepted_at IS NOT NULL OR refused_at IS NOT NULL FROM invitations i
                WHERE i.id = \(id) AND i.archived_at IS NULL
                  AND EXISTS (SELECT 1 FROM users u WHERE u.id = \(user.id) AND lower(u.email) = lower(i.email) AND u.blocked_at IS NULL)
                """, logger: logger)
            for try await answered in why.decode(Bool.self) {
                throw StoreError(.conflict, answered ? "the invitation was answered already" : "the invitation has expired")
            }
            throw StoreError.notFound("invitation")
        }
    }

    private static func recordActivity(
        _ name: String, _ invitation: Invitation, actor: UUID?, on connection: PostgresConnection, logger: Logger
    ) async throws {
        try await ActivityLog.record(
            name, project: invitation.projectID, organization: invitation.organizationID, actor: actor,
            // No address: a project's feed is readable by its guests, who may not belong to the
            // organization (member addresses are shown only within it).
            payload: ["invitation_id": invitation.id.uuidString.lowercased(), "role": invitation.role.rawValue],
            on: connection, logger: logger)
    }
}
