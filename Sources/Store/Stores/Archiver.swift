import Foundation
import Logging
import PostgresNIO

/// Soft deletion down the tree, inside the caller's transaction: archiving an organization
/// archives its projects and everything under them; archiving a job disables its schedules and
/// archives what would fire it.
enum Archiver {
    /// Tables whose rows belong to a project (`project_id`), archived with it.
    static let projectChildren = [
        "environments", "secrets", "tasks", "jobs", "ssh_keys", "repositories", "schedules", "git_triggers", "webhooks", "notifiers",
        "notification_rules",
    ]

    static func archiveOrganization(_ id: UUID, actor: UUID?, on connection: PostgresConnection, logger: Logger) async throws {
        let archived = try await connection.query(
            "UPDATE organizations SET archived_at = now(), updated_at = now() WHERE id = \(id) AND archived_at IS NULL RETURNING id",
            logger: logger)
        guard try await archived.decode(UUID.self).contains(where: { _ in true }) else { throw StoreError.notFound("organization") }
        var projects: [UUID] = []
        let rows = try await connection.query(
            """
            UPDATE projects SET archived_at = now(), updated_at = now()
            WHERE organization_id = \(id) AND archived_at IS NULL RETURNING id
            """, logger: logger)
        for try await project in rows.decode(UUID.self) { projects.append(project) }
        try await archiveChildren(of: projects, on: connection, logger: logger)
        try await connection.query(
            """
            UPDATE invitations SET archived_at = now()
            WHERE organization_id = \(id) AND archived_at IS NULL AND accepted_at IS NULL AND refused_at IS NULL
            """, logger: logger)
        try await ActivityLog.record(
            "organization.archived", organization: id, actor: actor, payload: ["projects": "\(projects.count)"], on: connection,
            logger: logger)
    }

    static func archiveProject(_ id: UUID, actor: UUID?, on connection: PostgresConnection, logger: Logger) async throws {
        let rows = try await connection.query(
            """
            UPDATE projects SET archived_at = now(), updated_at = now() WHERE id = \(id) AND archived_at IS NULL
            RETURNING organization_id
            """, logger: logger)
        var organization: UUID?
        for try await value in rows.decode(UUID.self) { organization = value }
        guard let organization else { throw StoreError.notFound("project") }
        try await archiveChildren(of: [id], on: connection, logger: logger)
        try await connection.query(
            """
            UPDATE invitations SET archived_at = now()
            WHERE project_id = \(id) AND archived_at IS NULL AND accepted_at IS NULL AND refused_at IS NULL
            """, logger: logger)
        try await ActivityLog.record(
            "project.archived", project: id, organization: organization, actor: actor, on: connection, logger: logger)
    }

    /// Archives a job of `project`; its schedules stop (disabled, with the reason) and the
    /// triggers, webhooks, notification rules and job notifiers that would run it are archived.
    static func archiveJob(_ id: UUID, project: UUID, actor: UUID?, on connection: PostgresConnection, logger: Logger) async throws {
        // Schedules before the job, in the order a firing scheduler locks them (the schedule,
        // then its job): the other order deadlocks against it. Rolled back if the job is not found.
        try await connection.query(
            """
            UPDATE schedules SET disabled_at = now(), disabled_reason = 'job archived', next_fire_at = NULL, updated_at = now()
            WHERE job_id = \(id) AND project_id = \(project) AND disabled_at IS NULL
            """, logger: logger)
        let rows = try await connection.query(
            """
            UPDATE jobs SET archived_at = now(), updated_at = now()
            WHERE id = \(id) AND project_id = \(project) AND archived_at IS NULL RETURNING id
            """, logger: logger)
        guard try await rows.decode(UUID.self).contains(where: { _ in true }) else { throw StoreError.notFound("job") }
        // Notifiers that run the job go too, and with them every rule that sends to them.
        for table in ["git_triggers", "webhooks", "notification_rules", "notifiers"] {
            try await connection.query(
                "UPDATE \(unescaped: table) SET archived_at = now(), updated_at = now() WHERE job_id = \(id) AND archived_at IS NULL",
                logger: logger)
        }
        try await connection.query(
            """
            UPDATE notification_rules r SET archived_at = now(), updated_at = now() FROM notifiers n
            WHERE r.notifier_id = n.id AND n.job_id = \(id) AND r.archived_at IS NULL
            """, logger: logger)
        try await ActivityLog.record(
            "job.archived", project: project, actor: actor, payload: ["job_id": id.uuidString.lowercased()], on: connection, logger: logger)
    }

    private static func archiveChildren(of projects: [UUID], on connection: PostgresConnection, logger: Logger) async throws {
        guard !projects.isEmpty else { return }
        // Schedules before jobs, in the order a firing scheduler locks them (the schedule, then
        // its job): the other order deadlocks against it.
        try await connection.query(
            """
            UPDATE schedules SET disabled_at = now(), disabled_reason = 'project archived', next_fire_at = NULL
            WHERE project_id = ANY(\(projects)) AND disabled_at IS NULL
            """, logger: logger)
        for table in projectChildren {
            try await connection.query(
                """
                UPDATE \(unescaped: table) SET archived_at = now(), updated_at = now()
                WHERE project_id = ANY(\(projects)) AND archived_at IS NULL
                """, logger: logger)
        }
    }
}
