import Foundation
import Logging
import PostgresNIO

/// When jobs run by themselves: a cron spec in a time zone, or one time.
///
/// Every change that moves a schedule's next fire time sets `next_fire_at` and notifies
/// ``channel`` in its transaction, so sleeping schedulers recompute their wait.
public struct ScheduleStore: Sendable {
    /// The notification channel of schedule changes.
    public static let channel = "harrow_schedules"

    let client: PostgresClient
    let logger: Logger

    public init(client: PostgresClient, logger: Logger) {
        self.client = client
        self.logger = logger
    }

    static let columns = """
        id, project_id, job_id, cron, run_at, time_zone, description, disabled_at, disabled_reason, created_by, created_at, \
        updated_at, archived_at, catch_up, overlap, next_fire_at, \(Cursor.column)
        """
    typealias Row = (
        UUID, UUID, UUID, String?, Date?, String, String?, Date?, String?, UUID?, Date, Date, Date?, String, String, Date?, Int64
    )

    static func record(_ row: PostgresRow) throws -> (item: Schedule, position: Cursor) {
        let row = try row.decode(Row.self)
        return (
            Schedule(
                id: row.0, projectID: row.1, jobID: row.2, cron: row.3, runAt: row.4, timeZone: row.5, description: row.6,
                disabledAt: row.7,
                disabledReason: row.8, createdBy: row.9, createdAt: row.10, updatedAt: row.11, archivedAt: row.12,
                catchUp: try Schedule.CatchUp(stored: row.13, column: "schedule catch_up"),
                overlap: try Schedule.Overlap(stored: row.14, column: "schedule overlap"), nextFireAt: row.15),
            Cursor(createdMicroseconds: row.16, id: row.0)
        )
    }

    /// What a schedule says, checked: exactly one of a cron spec and a time, a known time
    /// zone, a description of at most 1000 characters.
    struct Spec {
        var cron: String?
        var runAt: Date?
        var timeZone: String
        var description: String?
        var catchUp: Schedule.CatchUp
        var overlap: Schedule.Overlap
        /// The first fire time after the spec was checked.
        var nextFireAt: Date?
        /// The cron spec as parsed, when there is one.
        var cronSpec: CronSpec?

        init(
            cron: String?, runAt: Date?, timeZone: String, description: String?, catchUp: Schedule.CatchUp, overlap: Schedule.Overlap,
            now: Date = Date()
        ) throws {
            let cron = cron.map { $0.trimmingWhitespace() }.flatMap { $0.isEmpty ? nil : $0 }
            guard (cron == nil) != (runAt == nil) else {
                throw StoreError.invalid("cron", "a schedule has either a cron spec or a run-at time, not both")
            }
            let timeZone = timeZone.trimmingWhitespace()
            guard let zone = TimeZone(identifier: timeZone) else {
                throw StoreError.invalid("time_zone", "the time zone is not a known IANA time zone")
            }
            let spec = try cron.map { try CronSpec($0, timeZone: zone) }
            cronSpec = spec
            self.cron = spec?.text
            self.runAt = runAt
            // A time already past is due at once: `catchUp` says whether it still runs.
            nextFireAt = runAt ?? spec?.nextFireTimes(after: now, count: 1).first
            self.catchUp = catchUp
            self.overlap = overlap
            // As given: Foundation's canonical name of `UTC` is `GMT`.
            self.timeZone = timeZone
            self.description = try Validate.optionalText(description, field: "description", limit: 1000)
        }
    }

    /// The next `count` fire times of `cron` read in `timeZone`, checked as ``create(project:job:cron:runAt:timeZone:description:catchUp:overlap:actor:)``
    /// checks them (a field error names what is wrong), for editors that show them as one types.
    public static func preview(cron: String, timeZone: String, count: Int = 5, after now: Date = Date()) throws -> [Date] {
        let spec = try Spec(cron: cron, runAt: nil, timeZone: timeZone, description: nil, catchUp: .once, overlap: .allow, now: now)
        return spec.cronSpec?.nextFireTimes(after: now, count: count) ?? []
    }

    /// Creates a schedule of a live job of `project`: `cron` (read in `timeZone`) or `runAt`,
    /// not both.
    public func create(
        project: UUID, job: UUID, cron: String?, runAt: Date?, timeZone: String = "UTC", description: String? = nil,
        catchUp: Schedule.CatchUp = .once, overlap: Schedule.Overlap = .allow, actor: UUID?
    ) async throws -> Schedule {
        let spec = try Spec(
            cron: cron, runAt: runAt, timeZone: timeZone, description: description, catchUp: catchUp, overlap: overlap)
        return try await client.write(logger: logger) { connection in
            let inserted = try await connection.first(
                """
                INSERT INTO schedules (
                    project_id, job_id, cron, run_at, time_zone, description, catch_up, overlap, next_fire_at, created_by)
                SELECT \(project), \(job), \(spec.cron), \(spec.runAt), \(spec.timeZone), \(spec.description),
                    \(spec.catchUp.rawValue), \(spec.overlap.rawValue), \(spec.nextFireAt), \(actor)
                WHERE EXISTS (SELECT 1 FROM jobs WHERE id = \(job) AND project_id = \(project) AND archived_at IS NULL FOR SHARE)
                RETURNING \(unescaped: Self.columns)
                """, logger: logger, Self.record)
            guard let schedule = inserted?.item else { throw StoreError.notFound("job") }
            try await Self.log("schedule.created", schedule, actor: actor, on: connection, logger: logger)
            try await Self.notify(on: connection, logger: logger)
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

    /// Replaces what the schedule says, under the same rules as
    /// ``create(project:job:cron:runAt:timeZone:description:catchUp:overlap:actor:)``. When its
    /// spec, time or zone changes, its next fire time is computed again from now: an edited
    /// schedule never keeps its old time.
    public func update(
        _ id: UUID, project: UUID, cron: String?, runAt: Date?, timeZone: String = "UTC", description: String? = nil,
        catchUp: Schedule.CatchUp = .once, overlap: Schedule.Overlap = .allow, actor: UUID?
    ) async throws -> Schedule {
        let spec = try Spec(
            cron: cron, runAt: runAt, timeZone: timeZone, description: description, catchUp: catchUp, overlap: overlap)
        return try await change(
            id, project: project, activity: "schedule.updated", actor: actor,
            """
            UPDATE schedules SET cron = \(spec.cron), run_at = \(spec.runAt), time_zone = \(spec.timeZone),
                description = \(spec.description), catch_up = \(spec.catchUp.rawValue), overlap = \(spec.overlap.rawValue),
                next_fire_at = CASE
                    WHEN disabled_at IS NOT NULL THEN NULL
                    -- The same times: keep a pending fire (the edit may land between a fire time and its claim).
                    WHEN cron IS NOT DISTINCT FROM \(spec.cron) AND run_at IS NOT DISTINCT FROM \(spec.runAt)
                        AND time_zone = \(spec.timeZone) THEN next_fire_at
                    ELSE \(spec.nextFireAt)::timestamptz END,
                updated_at = now()
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
            UPDATE schedules SET disabled_at = coalesce(disabled_at, now()), disabled_reason = \(reason), next_fire_at = NULL,
                updated_at = now()
            WHERE id = \(id) AND project_id = \(project) AND archived_at IS NULL RETURNING \(unescaped: Self.columns)
            """)
    }

    /// Lets the schedule fire again, from its next time after now (times that passed while it
    /// was disabled are not missed fires). Its job must be live: a schedule disabled because its
    /// job was archived stays disabled; so does a one-time schedule whose time has passed.
    public func enable(_ id: UUID, project: UUID, actor: UUID?, now: Date = Date()) async throws -> Schedule {
        try await client.write(logger: logger) { connection in
            guard
                let current = try await connection.first(
                    """
                    SELECT \(unescaped: Self.columns) FROM schedules
                    WHERE id = \(id) AND project_id = \(project) AND archived_at IS NULL FOR UPDATE
                    """, logger: logger, Self.record)?.item
            else { throw StoreError.notFound("schedule") }
            let next = current.specFireTimes(after: now, count: 1).first
            if current.disabledAt != nil, current.runAt != nil, next == nil {
                throw StoreError(.conflict, "the schedule's time has passed: give it a new run_at")
            }
            guard
                let schedule = try await connection.first(
                    """
                    UPDATE schedules s SET disabled_at = NULL, disabled_reason = NULL,
                        next_fire_at = CASE WHEN disabled_at IS NULL THEN next_fire_at ELSE \(next)::timestamptz END,
                        updated_at = now()
                    WHERE id = \(id) AND EXISTS (SELECT 1 FROM jobs j WHERE j.id = s.job_id AND j.archived_at IS NULL FOR SHARE)
                    RETURNING \(unescaped: Self.columns)
                    """, logger: logger, Self.record)?.item
            else { throw StoreError(.conflict, "the schedule's job is archived") }
            try await Self.log("schedule.enabled", schedule, actor: actor, on: connection, logger: logger)
            try await Self.notify(on: connection, logger: logger)
            return schedule
        }
    }

    /// Archives the schedule.
    public func archive(_ id: UUID, project: UUID, actor: UUID?) async throws {
        _ = try await change(
            id, project: project, activity: "schedule.archived", actor: actor,
            """
            UPDATE schedules SET archived_at = now(), next_fire_at = NULL, updated_at = now()
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
            try await Self.notify(on: connection, logger: logger)
            return schedule
        }
    }

    /// Wakes the schedulers when the transaction commits.
    static func notify(on connection: PostgresConnection, logger: Logger) async throws {
        try await connection.query("SELECT pg_notify(\(channel), '')", logger: logger)
    }

    static func log(
        _ name: String, _ schedule: Schedule, actor: UUID?, on connection: PostgresConnection, logger: Logger
    ) async throws {
        var payload = ["schedule_id": schedule.id.uuidString.lowercased(), "job_id": schedule.jobID.uuidString.lowercased()]
        payload["reason"] = name == "schedule.disabled" ? schedule.disabledReason : nil
        try await ActivityLog.record(name, project: schedule.projectID, actor: actor, payload: payload, on: connection, logger: logger)
    }
}
