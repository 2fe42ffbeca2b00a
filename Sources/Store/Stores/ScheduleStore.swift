import Foundation
import Logging
import PostgresNIO

/// When jobs run by themselves: a cron spec in a time zone, or one time.
public struct ScheduleStore: Sendable {
    let client: PostgresClient
    let logger: Logger

    public init(client: PostgresClient, logger: Logger) {
        self.client = client
        self.logger = logger
    }

    static let columns = """
        id, project_id, job_id, cron, run_at, time_zone, description, disabled_at, disabled_reason, created_by, created_at, \
        updated_at, archived_at, \(Cursor.column)
        """
    typealias Row = (UUID, UUID, UUID, String?, Date?, String, String?, Date?, String?, UUID?, Date, Date, Date?, Int64)

    static func record(_ row: PostgresRow) throws -> (item: Schedule, position: Cursor) {
        let row = try row.decode(Row.self)
        return (
            Schedule(
                id: row.0, projectID: row.1, jobID: row.2, cron: row.3, runAt: row.4, timeZone: row.5, description: row.6,
                disabledAt: row.7,
                disabledReason: row.8, createdBy: row.9, createdAt: row.10, updatedAt: row.11, archivedAt: row.12),
            Cursor(createdMicroseconds: row.13, id: row.0)
        )
    }

    /// What a schedule says, checked: exactly one of a cron spec and a time, a known time
    /// zone, a description of at most 1000 characters.
    struct Spec {
        var cron: String?
        var runAt: Date?
        var timeZone: String
        var description: String?

        init(cron: String?, runAt: Date?, timeZone: String, description: String?) throws {
            let cron = cron.map { $0.trimmingWhitespace() }.flatMap { $0.isEmpty ? nil : $0 }
            guard (cron == nil) != (runAt == nil) else {
                throw StoreError.invalid("cron", "a schedule has either a cron spec or a run-at time, not both")
            }
            let timeZone = timeZone.trimmingWhitespace()
            guard let zone = TimeZone(identifier: timeZone) else {
                throw StoreError.invalid("time_zone", "the time zone is not a known IANA time zone")
            }
            self.cron = try cron.map { try CronSpec($0, timeZone: zone).text }
            self.runAt = runAt
            // As given: Foundation's canonical name of `UTC` is `GMT`.
            self.timeZone = timeZone
            self.description = try Validate.optionalText(description, field: "description", limit: 1000)
        }
    }

    /// Creates a schedule of a live job of `project`: `cron` (read in `timeZone`) or `runAt`,
    /// not both.
    public func create(
        project: UUID, job: UUID, cron: String?, runAt: Date?, timeZone: String = "UTC", description: String? = nil, actor: UUID?
    ) async throws -> Schedule {
        let spec = try Spec(cron: cron, runAt: runAt, timeZone: timeZone, description: description)
        return try await client.write(logger: logger) { connection in
            let inserted = try await connection.first(
                """
                INSERT INTO schedules (project_id, job_id, cron, run_at, time_zone, description, created_by)
                SELECT \(project), \(job), \(spec.cron), \(spec.runAt), \(spec.timeZone), \(spec.description), \(actor)
                WHERE EXISTS (SELECT 1 FROM jobs WHERE id = \(job) AND project_id = \(project) AND archived_at IS NULL FOR SHARE)
                RETURNING \(unescaped: Self.columns)
                """, logger: logger, Self.record)
            guard let schedule = inserted?.item else { throw StoreError.notFound("job") }
            try await Self.log("schedule.created", schedule, actor: actor, on: connection, logger: logger)
            return schedule
        }
    }

    /// The schedule of `project`; archived ones only with `includeArchived`.
    public func find(_ id: UUID, project: UUID, includeArchived: Bool = false) async throws -> Schedule {
        try await client.read { connection in
            try await connection.find(
                id, in: "schedules", columns: Self.columns, project: project, includeArchived: includeArchived, notFound: "schedule",
                logger: logger, Self.record)
        }
    }

    /// The project's live schedules, enabled or not, oldest first.
    public func list(project: UUID, page: PageRequest) async throws -> Page<Schedule> {
        try await client.read { connection in
            try await connection.page(of: "schedules", columns: Self.columns, project: project, page: page, logger: logger, Self.record)
        }
    }

    /// The live schedules of a job of `project`, oldest first.
    public func list(project: UUID, job: UUID, page: PageRequest) async throws -> Page<Schedule> {
        try await client.read { connection in
            try await connection.page(
                of: "schedules", columns: Self.columns, project: project, job: job, page: page, logger: logger, Self.record)
        }
    }

    /// Replaces what the schedule says, under the same rules as ``create(project:job:cron:runAt:timeZone:description:actor:)``.
    public func update(
        _ id: UUID, project: UUID, cron: String?, runAt: Date?, timeZone: String = "UTC", description: String? = nil, actor: UUID?
    ) async throws -> Schedule {
        let spec = try Spec(cron: cron, runAt: runAt, timeZone: timeZone, description: description)
        return try await change(
            id, project: project, activity: "schedule.updated", actor: actor,
            """
            UPDATE schedules SET cron = \(spec.cron), run_at = \(spec.runAt), time_zone = \(spec.timeZone),
                description = \(spec.description), updated_at = now()
            WHERE id = \(id) AND project_id = \(project) AND archived_at IS NULL RETURNING \(unescaped: Self.columns)
            """)
    }

    /// Stops the schedule from firing, saying why. Disabling a disabled schedule updates the
    /// reason and keeps the time it was first disabled.
    public func disable(_ id: UUID, project: UUID, reason: String, actor: UUID?) async throws -> Schedule {
        let reason = try Validate.optionalText(reason, field: "reason", limit: 500) ?? "disabled"
        return try await change(
            id, project: project, activity: "schedule.disabled", actor: actor,
            """
            UPDATE schedules SET disabled_at = coalesce(disabled_at, now()), disabled_reason = \(reason), updated_at = now()
            WHERE id = \(id) AND project_id = \(project) AND archived_at IS NULL RETURNING \(unescaped: Self.columns)
            """)
    }

    /// Lets the schedule fire again. Its job must be live: a schedule disabled because its job
    /// was archived stays disabled.
    public func enable(_ id: UUID, project: UUID, actor: UUID?) async throws -> Schedule {
        do {
            return try await change(
                id, project: project, activity: "schedule.enabled", actor: actor,
                """
                UPDATE schedules s SET disabled_at = NULL, disabled_reason = NULL, updated_at = now()
                WHERE id = \(id) AND project_id = \(project) AND archived_at IS NULL
                  AND EXISTS (SELECT 1 FROM jobs j WHERE j.id = s.job_id AND j.archived_at IS NULL FOR SHARE)
                RETURNING \(unescaped: Self.columns)
                """)
        } catch let error as StoreError where error.code == .notFound {
            // Tell an archived job from a missing schedule.
            _ = try await find(id, project: project)
            throw StoreError(.conflict, "the schedule's job is archived")
        }
    }

    /// Archives the schedule.
    public func archive(_ id: UUID, project: UUID, actor: UUID?) async throws {
        _ = try await change(
            id, project: project, activity: "schedule.archived", actor: actor,
            """
            UPDATE schedules SET archived_at = now(), updated_at = now()
            WHERE id = \(id) AND project_id = \(project) AND archived_at IS NULL RETURNING \(unescaped: Self.columns)
            """)
    }

    /// Runs an update of one live schedule and logs `activity`; `notFound` when it matched none.
    private func change(_ id: UUID, project: UUID, activity: String, actor: UUID?, _ update: PostgresQuery) async throws -> Schedule {
        try await client.write(logger: logger) { connection in
            guard let schedule = try await connection.first(update, logger: logger, Self.record)?.item else {
                throw StoreError.notFound("schedule")
            }
            try await Self.log(activity, schedule, actor: actor, on: connection, logger: logger)
            return schedule
        }
    }

    private static func log(
        _ name: String, _ schedule: Schedule, actor: UUID?, on connection: PostgresConnection, logger: Logger
    ) async throws {
        var payload = ["schedule_id": schedule.id.uuidString.lowercased(), "job_id": schedule.jobID.uuidString.lowercased()]
        payload["reason"] = name == "schedule.disabled" ? schedule.disabledReason : nil
        try await ActivityLog.record(name, project: schedule.projectID, actor: actor, payload: payload, on: connection, logger: logger)
    }
}
