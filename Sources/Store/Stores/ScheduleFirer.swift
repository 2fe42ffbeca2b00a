import Foundation
import Logging
import PostgresNIO

/// Fires due schedules, each exactly once however many schedulers run: a schedule is claimed
/// with `FOR UPDATE SKIP LOCKED`, and in the claiming transaction its operation, the
/// operation's `run-operation` outbox job and the activities are written and its next fire time
/// is advanced. A scheduler that comes second finds the row locked (and skips it) or already
/// advanced (and not due).
public struct ScheduleFirer: Sendable {
    let client: PostgresClient
    let logger: Logger

    public init(client: PostgresClient, logger: Logger) {
        self.client = client
        self.logger = logger
    }

    /// What happened to one due schedule.
    public struct Outcome: Sendable, Hashable {
        public var scheduleID: UUID
        /// The operation it queued, when it fired.
        public var operationID: UUID?
        /// Fire times it missed (see ``FirePlan``).
        public var missed: Int
        /// Whether it did not fire because the job's previous run had not finished.
        public var skipped: Bool
        /// When it fires next; `nil` when it was disabled.
        public var nextFireAt: Date?
    }

    /// A schedule that could not be handled; the others go on without it.
    public struct Failure: Error, Sendable {
        public var scheduleID: UUID
        public var error: any Error
    }

    /// Fires the schedules due at `now` (the database's clock when `nil`, so that workers whose
    /// clocks disagree agree on what is due), one transaction each, until none is left or
    /// `limit` were handled. Schedules other schedulers hold are left to them. A schedule whose
    /// handling fails is left for the next call and the others go on; its failure is in
    /// `failures`.
    public func fireDue(now: Date? = nil, limit: Int = 500) async throws -> (outcomes: [Outcome], failures: [Failure]) {
        var outcomes: [Outcome] = []
        var failures: [Failure] = []
        while outcomes.count + failures.count < limit {
            do {
                guard let outcome = try await fireOne(now: now, skipping: failures.map(\.scheduleID)) else { break }
                outcomes.append(outcome)
            } catch let failure as Failure {
                failures.append(failure)
            }
        }
        return (outcomes, failures)
    }

    /// The earliest next fire time of an enabled schedule, or `nil` when none will fire.
    public func nextDue() async throws -> Date? {
        try await client.read { connection in
            try await connection.first(
                """
                SELECT min(next_fire_at) FROM schedules WHERE disabled_at IS NULL AND archived_at IS NULL
                """, logger: logger, { try $0.decode(Date?.self) }) ?? nil
        }
    }

    /// Gives recurring schedules without a next fire time (those created before the scheduler
    /// existed, or written by an older API server) their first time after `now`. Returns how
    /// many it set.
    @discardableResult
    public func backfillNextFireTimes(now: Date = Date()) async throws -> Int {
        try await client.write(logger: logger) { connection in
            let rows = try await connection.query(
                """
                SELECT \(unescaped: ScheduleStore.columns) FROM schedules
                WHERE next_fire_at IS NULL AND cron IS NOT NULL AND disabled_at IS NULL AND archived_at IS NULL
                FOR UPDATE SKIP LOCKED
                """, logger: logger)
            var set = 0
            for try await row in rows {
                let schedule = try ScheduleStore.record(row).item
                guard let next = schedule.specFireTimes(after: now, count: 1).first else { continue }
                try await connection.query(
                    "UPDATE schedules SET next_fire_at = \(next) WHERE id = \(schedule.id)", logger: logger)
                set += 1
            }
            return set
        }
    }

    /// Claims and handles the most overdue schedule but those in `skipping`; `nil` when none is
    /// due (or every due one is held by another scheduler). Throws ``Failure`` when the claimed
    /// schedule could not be handled (its transaction is rolled back).
    func fireOne(now: Date?, skipping: [UUID]) async throws -> Outcome? {
        var claimed: UUID?
        do {
            return try await client.write(logger: logger) { connection in
                var at = now ?? Date()
                if now == nil,
                    let database = try await connection.first(
                        "SELECT transaction_timestamp()", logger: logger, { try $0.decode(Date.self) })
                {
                    at = database
                }
                guard
                    let schedule = try await connection.first(
                        """
                        SELECT \(unescaped: ScheduleStore.columns) FROM schedules
                        WHERE next_fire_at <= \(at) AND disabled_at IS NULL AND archived_at IS NULL AND id <> ALL(\(skipping))
                        ORDER BY next_fire_at LIMIT 1 FOR UPDATE SKIP LOCKED
                        """, logger: logger, ScheduleStore.record)?.item,
                    let due = schedule.nextFireAt
                else { return nil }
                claimed = schedule.id
                return try await handle(schedule, due: due, now: at, on: connection)
            }
        } catch {
            guard let claimed else { throw error }
            throw Failure(scheduleID: claimed, error: error)
        }
    }

    private func handle(_ schedule: Schedule, due: Date, now: Date, on connection: PostgresConnection) async throws -> Outcome {
        let cron = schedule.cronSpec
        if schedule.cron != nil, cron == nil {
            try await disable(schedule, reason: "its cron spec or time zone can no longer be read", on: connection)
            return Outcome(scheduleID: schedule.id, missed: 0, skipped: false)
        }
        let plan = FirePlan(cron: cron, due: due, now: now, catchUp: schedule.catchUp)
        var outcome = Outcome(scheduleID: schedule.id, missed: plan.missed, skipped: false, nextFireAt: plan.nextFireAt)
        if let span = plan.missedSpan {
            try await record(
                "schedule.missed", schedule,
                ["count": "\(plan.missed)", "first": Self.timestamp(span.lowerBound), "last": Self.timestamp(span.upperBound)],
                on: connection)
        }
        if plan.fires {
            if schedule.overlap == .skip, try await hasUnfinishedRun(job: schedule.jobID, on: connection) {
                outcome.skipped = true
                try await record("schedule.skipped", schedule, ["reason": "the previous run has not finished"], on: connection)
            } else if let operation = try await OperationStore.queue(
                job: schedule.jobID, project: schedule.projectID, reason: .schedule, requestedBy: nil,
                parameters: ["schedule_id": schedule.id.uuidString.lowercased()], on: connection, logger: logger)
            {
                outcome.operationID = operation.id
            } else {
                // Archiving a job disables its schedules in the same transaction; this is a
                // guard, not a path that should be taken.
                try await disable(schedule, reason: "job archived", on: connection)
                outcome.nextFireAt = nil
                return outcome
            }
        }
        if schedule.runAt != nil {
            let reason =
                outcome.skipped ? "skipped: the previous run had not finished" : plan.fires ? "ran once" : "its time was missed"
            try await disable(schedule, reason: reason, on: connection)
            outcome.nextFireAt = nil
        } else if let next = plan.nextFireAt {
            try await connection.query(
                "UPDATE schedules SET next_fire_at = \(next) WHERE id = \(schedule.id)", logger: logger)
        } else {
            try await disable(schedule, reason: "its cron spec has no time left", on: connection)
        }
        return outcome
    }

    private func hasUnfinishedRun(job: UUID, on connection: PostgresConnection) async throws -> Bool {
        try await connection.first(
            "SELECT EXISTS (SELECT 1 FROM operations WHERE job_id = \(job) AND status IN ('queued', 'running'))", logger: logger,
            { try $0.decode(Bool.self) }) ?? false
    }

    private func disable(_ schedule: Schedule, reason: String, on connection: PostgresConnection) async throws {
        let disabled = try await connection.first(
            """
            UPDATE schedules SET disabled_at = now(), disabled_reason = \(reason), next_fire_at = NULL, updated_at = now()
            WHERE id = \(schedule.id) RETURNING \(unescaped: ScheduleStore.columns)
            """, logger: logger, ScheduleStore.record)
        if let disabled = disabled?.item {
            try await ScheduleStore.log("schedule.disabled", disabled, actor: nil, on: connection, logger: logger)
        }
    }

    private func record(_ name: String, _ schedule: Schedule, _ extra: [String: String], on connection: PostgresConnection) async throws {
        var payload = ["schedule_id": schedule.id.uuidString.lowercased(), "job_id": schedule.jobID.uuidString.lowercased()]
        payload.merge(extra) { current, _ in current }
        try await ActivityLog.record(name, project: schedule.projectID, actor: nil, payload: payload, on: connection, logger: logger)
    }

    private static func timestamp(_ date: Date) -> String {
        date.formatted(.iso8601)
    }
}
