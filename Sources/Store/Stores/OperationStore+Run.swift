import Foundation
import JobContracts
import Logging
import PostgresNIO

/// The runner's side of an operation: claiming it once, holding it with a lease, giving it
/// back before the script started, and recording its outcome with everything the outcome
/// causes, each in one transaction.
extension OperationStore {
    /// What ``claim(_:runner:lease:publicURL:)`` found.
    public enum Claim: Sendable, Hashable {
        /// This runner holds the operation now: run it, renewing the lease.
        case claimed(Operation)
        /// Another runner holds it under a live lease: nothing to do.
        case heldElsewhere(runner: String)
        /// It was running under a runner whose lease ran out, and is now `failed` with
        /// `worker_lost`: the script is not run again.
        case lost(Operation)
        /// It is over (canceled while queued, or finished): nothing to do.
        case over(Operation)
    }

    /// How a run ended, as the runner saw it.
    public struct Outcome: Sendable, Hashable {
        /// `succeeded`, `failed`, `timed_out` or `canceled`.
        public var status: Operation.Status
        public var exitStatus: Int?
        public var failureReason: Operation.FailureReason?
        /// The commit checked out of each repository, by name.
        public var checkouts: [String: String]
        /// The last lines of the log, secrets masked, for the failure mail.
        public var logTail: [String]

        public init(
            status: Operation.Status, exitStatus: Int? = nil, failureReason: Operation.FailureReason? = nil,
            checkouts: [String: String] = [:], logTail: [String] = []
        ) {
            self.status = status
            self.exitStatus = exitStatus
            self.failureReason = failureReason
            self.checkouts = checkouts
            self.logTail = logTail
        }
    }

    /// `queued` → `running` for `runner`, with a lease of `lease` from now, in one conditional
    /// update: of any number of deliveries of the operation's job, one claims it. A delivery
    /// that finds it running under an expired lease fails it as `worker_lost` rather than run
    /// the script again: deploys are not idempotent.
    public func claim(_ id: UUID, runner: String, lease: Duration, publicURL: String) async throws -> Claim {
        let runner = try Self.validRunner(runner)
        return try await client.write(logger: logger) { connection in
            let claimed = try await connection.first(
                """
                UPDATE operations SET status = 'running', runner = \(runner), lease_expires_at = now() + \(Self.interval(lease))::interval,
                    started_at = now(), updated_at = now()
                WHERE id = \(id) AND status = 'queued' RETURNING \(unescaped: Self.columns)
                """, logger: logger, Self.record)
            if let operation = claimed?.item {
                try await Self.log("operation.started", operation, actor: nil, on: connection, logger: logger)
                try await OperationConsequences.enqueueStatus(of: operation, on: connection, logger: logger)
                return .claimed(operation)
            }
            let leaseLive = try await connection.first(
                "SELECT coalesce(lease_expires_at > now(), false) FROM operations WHERE id = \(id) FOR UPDATE", logger: logger,
                { try $0.decode(Bool.self) })
            guard let leaseLive,
                let operation = try await connection.first(
                    "SELECT \(unescaped: Self.columns) FROM operations WHERE id = \(id)", logger: logger, Self.record)?.item
            else { throw StoreError.notFound("operation") }
            switch operation.status {
            case .running where leaseLive:
                return .heldElsewhere(runner: operation.runner ?? "")
            case .running:
                let lost = try await Self.failLost(ids: [operation.id], publicURL: publicURL, on: connection, logger: logger)
                return .lost(lost.first ?? operation)
            default:
                return .over(operation)
            }
        }
    }

    /// Extends `runner`'s lease on the operation and says where it stands: `running`, or
    /// `canceled` (the runner stops the script). `nil` when the runner no longer holds it (its
    /// lease ran out and it was failed as `worker_lost`): the runner stops too.
    public func renewLease(_ id: UUID, runner: String, lease: Duration) async throws -> Operation.Status? {
        try await client.write(logger: logger) { connection in
            try await connection.first(
                """
                UPDATE operations SET lease_expires_at = now() + \(Self.interval(lease))::interval
                WHERE id = \(id) AND runner = \(runner) AND finished_at IS NULL AND status IN ('running', 'canceled')
                RETURNING status
                """, logger: logger, { try Operation.Status(stored: $0.decode(String.self), column: "operation status") })
        }
    }

    /// `running` → `queued`: the runner gives the operation back before its script started
    /// (the git host was unreachable, say), so a later delivery of its job claims it again.
    /// `false` when the runner did not hold it any more.
    public func release(_ id: UUID, runner: String) async throws -> Bool {
        try await client.write(logger: logger) { connection in
            try await connection.first(
                """
                UPDATE operations SET status = 'queued', runner = NULL, lease_expires_at = NULL, started_at = NULL, updated_at = now()
                WHERE id = \(id) AND runner = \(runner) AND status = 'running' RETURNING 1::int4
                """, logger: logger, { try $0.decode(Int32.self) }) != nil
        }
    }

    /// Records how `runner`'s run ended, in one transaction: the status (an operation canceled
    /// while it ran stays `canceled`), exit status, failure reason, checkouts and end time; the
    /// archived log; the activity; and through the outbox the commit status and the mails of
    /// the notification rules the activity matches. Throws a conflict when the runner no
    /// longer holds the operation.
    public func complete(
        _ id: UUID, runner: String, outcome: Outcome, log: OperationLogArchive.Log?, publicURL: String
    ) async throws -> Operation {
        guard [.succeeded, .failed, .timedOut, .canceled].contains(outcome.status) else {
            throw StoreError.invalid("status", "an operation ends as succeeded, failed, timed_out or canceled")
        }
        if let exitStatus = outcome.exitStatus, !(Int(Int32.min)...Int(Int32.max)).contains(exitStatus) {
            throw StoreError.invalid("exit_status", "the exit status must be a 32-bit integer")
        }
        let checkouts = try outcome.checkouts.jsonText()
        return try await client.write(logger: logger) { connection in
            let before = try await connection.first(
                """
                SELECT status FROM operations WHERE id = \(id) AND runner = \(runner) AND finished_at IS NULL
                    AND status IN ('running', 'canceled') FOR UPDATE
                """, logger: logger, { try Operation.Status(stored: $0.decode(String.self), column: "operation status") })
            guard let before else { throw StoreError(.conflict, "the operation is no longer held by this runner") }
            let status = before == .canceled ? .canceled : outcome.status
            let updated = try await connection.first(
                """
                UPDATE operations SET status = \(status.rawValue), exit_status = \(outcome.exitStatus.map { Int32($0) }),
                    failure_reason = \(outcome.failureReason?.rawValue), checkouts = \(checkouts)::jsonb, finished_at = now(),
                    canceled_at = CASE WHEN \(status.rawValue) = 'canceled' THEN coalesce(canceled_at, now()) ELSE canceled_at END,
                    updated_at = now()
                WHERE id = \(id) RETURNING \(unescaped: Self.columns)
                """, logger: logger, Self.record)
            guard let operation = updated?.item else { throw StoreError.notFound("operation") }
            if let log { try await OperationLogArchive.store(log, of: id, on: connection, logger: logger) }
            // An operation canceled while it ran has its activity from the cancel request.
            if before != .canceled {
                try await Self.log("operation.\(status.rawValue)", operation, actor: nil, on: connection, logger: logger)
            }
            try await OperationConsequences.enqueue(
                after: operation, activity: "operation.\(status.rawValue)", logTail: outcome.logTail, publicURL: publicURL,
                on: connection, logger: logger)
            return operation
        }
    }

    /// Fails the running operations whose lease ran out (their worker died) as `worker_lost`,
    /// at most `limit` at a time, and closes canceled ones whose runner died before it could
    /// record their end. Any number of workers may sweep at once: each row changes once.
    public func failLostRuns(publicURL: String, limit: Int = 100) async throws -> [Operation] {
        try await client.write(logger: logger) { connection in
            _ = try await connection.query(
                """
                UPDATE operations SET finished_at = now(), updated_at = now()
                WHERE status = 'canceled' AND finished_at IS NULL AND runner IS NOT NULL AND lease_expires_at < now()
                """, logger: logger)
            let ids = try await connection.all(
                """
                SELECT id FROM operations WHERE status = 'running' AND lease_expires_at < now()
                ORDER BY lease_expires_at LIMIT \(Int64(limit)) FOR UPDATE SKIP LOCKED
                """, logger: logger, { try $0.decode(UUID.self) })
            return try await Self.failLost(ids: ids, publicURL: publicURL, on: connection, logger: logger)
        }
    }

    /// Fails the given running operations, whose lease ran out, as `worker_lost`, with their
    /// activity and consequences, in the caller's transaction.
    static func failLost(ids: [UUID], publicURL: String, on connection: PostgresConnection, logger: Logger) async throws -> [Operation] {
        guard !ids.isEmpty else { return [] }
        let failed = try await connection.all(
            """
            UPDATE operations SET status = 'failed', failure_reason = 'worker_lost', finished_at = now(), updated_at = now()
            WHERE id = ANY(\(ids)) AND status = 'running' AND lease_expires_at < now() RETURNING \(unescaped: Self.columns)
            """, logger: logger, { try Self.record($0).item })
        for operation in failed {
            try await Self.log("operation.failed", operation, actor: nil, on: connection, logger: logger)
            try await OperationConsequences.enqueue(
                after: operation, activity: "operation.failed", logTail: [], publicURL: publicURL, on: connection, logger: logger)
        }
        return failed
    }

    /// Queues a new operation of the same job with the same parameters, reason `retry`, for a
    /// finished operation of `project`. The job's current time limit applies; `actor`'s quota of
    /// queued operations too.
    public func retry(_ id: UUID, project: UUID, actor: UUID?) async throws -> Operation {
        let newID = UUID()
        return try await client.write(logger: logger) { connection in
            try await connection.requireQuota(.queuedOperations, of: quotas, for: actor, logger: logger)
            let found = try await connection.first(
                "SELECT status, runner IS NOT NULL AND finished_at IS NULL FROM operations WHERE id = \(id) AND project_id = \(project)",
                logger: logger,
                { row in
                    let (status, stopping) = try row.decode((String, Bool).self)
                    return (try Operation.Status(stored: status, column: "operation status"), stopping)
                })
            guard let (original, stopping) = found else { throw StoreError.notFound("operation") }
            guard original.isFinal else {
                throw StoreError(.conflict, "the operation is \(original.rawValue): only a finished one is retried")
            }
            // A canceled run whose script is still being stopped: a retry would run beside it.
            guard !stopping else {
                throw StoreError(.conflict, "the operation's script is still being stopped: retry it once it has ended")
            }
            let inserted = try await connection.first(
                """
                INSERT INTO operations (id, project_id, job_id, reason, requested_by, parameters, time_limit_seconds, retry_of)
                SELECT \(newID), o.project_id, o.job_id, 'retry', \(actor), o.parameters, j.time_limit_seconds, o.id
                FROM operations o JOIN jobs j ON j.id = o.job_id AND j.archived_at IS NULL
                WHERE o.id = \(id) FOR SHARE OF j
                RETURNING \(unescaped: Self.columns)
                """, logger: logger, Self.record)
            guard let operation = inserted?.item else { throw StoreError.notFound("job") }
            try await Outbox.enqueue([try OutboxJob(RunOperation(operationID: newID), id: newID)], on: connection, logger: logger)
            try await Self.log("operation.queued", operation, actor: actor, on: connection, logger: logger)
            return operation
        }
    }

    /// A worker's identity: 1 to 200 characters without control characters.
    static func validRunner(_ runner: String) throws -> String {
        guard (1...200).contains(runner.count), !runner.unicodeScalars.contains(where: { $0.properties.generalCategory == .control }) else {
            throw StoreError.invalid("runner", "a runner's name must be 1 to 200 characters without control characters")
        }
        return runner
    }

    /// A duration as a Postgres interval literal in milliseconds.
    static func interval(_ duration: Duration) -> String {
        let milliseconds = duration.components.seconds * 1000 + duration.components.attoseconds / 1_000_000_000_000_000
        return "\(max(1, milliseconds)) milliseconds"
    }
}
