import Foundation
import Logging
import PostgresNIO

/// Which activities reach which notifier: a glob over activity names, for one job or for the
/// whole project.
public struct NotificationRuleStore: Sendable {
    let client: PostgresClient
    let logger: Logger

    public init(client: PostgresClient, logger: Logger) {
        self.client = client
        self.logger = logger
    }

    static let columns = "id, project_id, notifier_id, job_id, activity_pattern, created_at, updated_at, archived_at, \(Cursor.column)"
    typealias Row = (UUID, UUID, UUID, UUID?, String, Date, Date, Date?, Int64)

    static func record(_ row: PostgresRow) throws -> (item: NotificationRule, position: Cursor) {
        let row = try row.decode(Row.self)
        return (
            NotificationRule(
                id: row.0, projectID: row.1, notifierID: row.2, jobID: row.3, activityPattern: row.4, createdAt: row.5, updatedAt: row.6,
                archivedAt: row.7),
            Cursor(createdMicroseconds: row.8, id: row.0)
        )
    }

    /// A glob over activity names: 1 to 200 of lowercase letters, digits, `.`, `_`, `*` and `?`.
    static func validPattern(_ pattern: String) throws -> String {
        let pattern = pattern.trimmingWhitespace()
        guard (1...200).contains(pattern.count) else {
            throw StoreError.invalid("activity_pattern", "the activity pattern must be 1 to 200 characters")
        }
        guard
            pattern.unicodeScalars.allSatisfy({ ("a"..."z").contains($0) || ("0"..."9").contains($0) || "._*?".unicodeScalars.contains($0) }
            )
        else {
            throw StoreError.invalid(
                "activity_pattern", "the activity pattern may hold only lowercase letters, digits, '.', '_', '*' and '?'")
        }
        return pattern
    }

    /// Creates a rule sending activities that match `activityPattern` (of `job`, or of the
    /// whole project when `job` is `nil`) to a live notifier; notifier and job must be live and
    /// of `project`.
    public func create(
        project: UUID, notifier: UUID, job: UUID?, activityPattern: String, actor: UUID?
    ) async throws -> NotificationRule {
        let pattern = try Self.validPattern(activityPattern)
        return try await client.write(logger: logger) { connection in
            if let job { try await connection.requireLive("jobs", job, project: project, notFound: "job", logger: logger) }
            let inserted = try await connection.first(
                """
                INSERT INTO notification_rules (project_id, notifier_id, job_id, activity_pattern)
                SELECT \(project), \(notifier), \(job), \(pattern)
                WHERE EXISTS (SELECT 1 FROM notifiers WHERE id = \(notifier) AND project_id = \(project) AND archived_at IS NULL FOR SHARE)
                RETURNING \(unescaped: Self.columns)
                """, logger: logger, Self.record)
            guard let rule = inserted?.item else { throw StoreError.notFound("notifier") }
            try await Self.log("notification_rule.created", rule, actor: actor, on: connection, logger: logger)
            return rule
        }
    }

    /// The rule of `project`; archived ones only with `includeArchived`.
    public func find(_ id: UUID, project: UUID, includeArchived: Bool = false) async throws -> NotificationRule {
        try await client.read { connection in
            try await connection.find(
                id, in: "notification_rules", columns: Self.columns, project: project, includeArchived: includeArchived,
                notFound: "notification rule",
                logger: logger, Self.record)
        }
    }

    /// The project's live rules, oldest first.
    public func list(project: UUID, page: PageRequest) async throws -> Page<NotificationRule> {
        try await client.read { connection in
            try await connection.page(
                of: "notification_rules", columns: Self.columns, project: project, page: page, logger: logger, Self.record)
        }
    }

    /// Replaces the rule's job (`nil`: the whole project) and pattern; it keeps its notifier.
    public func update(_ id: UUID, project: UUID, job: UUID?, activityPattern: String, actor: UUID?) async throws -> NotificationRule {
        let pattern = try Self.validPattern(activityPattern)
        return try await client.write(logger: logger) { connection in
            if let job { try await connection.requireLive("jobs", job, project: project, notFound: "job", logger: logger) }
            let updated = try await connection.first(
                """
                UPDATE notification_rules SET job_id = \(job), activity_pattern = \(pattern), updated_at = now()
                WHERE id = \(id) AND project_id = \(project) AND archived_at IS NULL RETURNING \(unescaped: Self.columns)
                """, logger: logger, Self.record)
            guard let rule = updated?.item else { throw StoreError.notFound("notification rule") }
            try await Self.log("notification_rule.updated", rule, actor: actor, on: connection, logger: logger)
            return rule
        }
    }

    /// Archives the rule.
    public func archive(_ id: UUID, project: UUID, actor: UUID?) async throws {
        try await client.write(logger: logger) { connection in
            let rule = try await connection.archive(
                id, in: "notification_rules", columns: Self.columns, project: project, notFound: "notification rule", logger: logger,
                Self.record)
            try await Self.log("notification_rule.archived", rule, actor: actor, on: connection, logger: logger)
        }
    }

    /// The live rules of `project` whose glob matches the activity `name`: the project-wide
    /// ones, and those of `job` when the activity is about one. Rules of an archived notifier
    /// never match.
    public func matching(activity name: String, project: UUID, job: UUID?) async throws -> [NotificationRule] {
        let candidates = try await client.read { connection in
            try await connection.all(
                """
                SELECT \(unescaped: Self.columns) FROM notification_rules r
                WHERE project_id = \(project) AND archived_at IS NULL AND (job_id IS NULL OR job_id = \(job))
                  AND EXISTS (SELECT 1 FROM notifiers n WHERE n.id = r.notifier_id AND n.archived_at IS NULL)
                ORDER BY created_at, id
                """, logger: logger, { try Self.record($0).item })
        }
        return candidates.filter { $0.matches(activity: name) }
    }

    private static func log(
        _ name: String, _ rule: NotificationRule, actor: UUID?, on connection: PostgresConnection, logger: Logger
    ) async throws {
        var payload = [
            "notification_rule_id": rule.id.uuidString.lowercased(), "notifier_id": rule.notifierID.uuidString.lowercased(),
            "activity_pattern": rule.activityPattern,
        ]
        payload["job_id"] = rule.jobID?.uuidString.lowercased()
        try await ActivityLog.record(name, project: rule.projectID, actor: actor, payload: payload, on: connection, logger: logger)
    }
}
