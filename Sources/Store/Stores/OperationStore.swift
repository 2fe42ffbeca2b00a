import Foundation
import JobContracts
import Logging
import PostgresNIO

/// Operations, the runs of jobs, and their state machine. Queuing one records it and its
/// `run-operation` queue job in one transaction; every transition is a single conditional
/// `UPDATE`, so of two workers racing for the same transition exactly one wins and the other
/// gets a conflict naming the status it found.
public struct OperationStore: Sendable {
    let client: PostgresClient
    let logger: Logger
    /// Its ``UserQuotas/queuedOperations`` limit applies to operations a user requests (a run or a
    /// retry); those without a requester (webhooks) are not counted.
    let quotas: UserQuotas

    public init(client: PostgresClient, logger: Logger, quotas: UserQuotas = .unlimited) {
        self.client = client
        self.logger = logger
        self.quotas = quotas
    }

    static let columns = """
        id, project_id, job_id, reason, requested_by, parameters::text, status, exit_status, time_limit_seconds, created_at, \
        started_at, finished_at, canceled_at, log_location, updated_at, runner, lease_expires_at, failure_reason, checkouts::text, \
        retry_of, \(Cursor.column)
        """
    typealias Row = (
        UUID, UUID, UUID, String, UUID?, String, String, Int?, Int, Date, Date?, Date?, Date?, String?, Date, String?, Date?, String?,
        String, UUID?, Int64
    )

    static func record(_ row: PostgresRow) throws -> (item: Operation, position: Cursor) {
        let row = try row.decode(Row.self)
        return (
            Operation(
                id: row.0, projectID: row.1, jobID: row.2, reason: try Operation.Reason(stored: row.3, column: "operation reason"),
                requestedBy: row.4, parameters: try [String: String](jsonObject: row.5),
                status: try Operation.Status(stored: row.6, column: "operation status"), exitStatus: row.7, timeLimitSeconds: row.8,
                createdAt: row.9, startedAt: row.10, finishedAt: row.11, canceledAt: row.12, logLocation: row.13, updatedAt: row.14,
                runner: row.15, leaseExpiresAt: row.16,
                failureReason: try row.17.map { try Operation.FailureReason(stored: $0, column: "operation failure reason") },
                checkouts: try [String: String](jsonObject: row.18), retryOf: row.19),
            Cursor(createdMicroseconds: row.20, id: row.0)
        )
    }

    /// At most 100 parameters, named like shell variables (they reach the script as
    /// `HARROW_PARAM_<NAME>`), with values of at most 64 KiB and no NUL.
    static func validParameters(_ parameters: [String: String]) throws -> [String: String] {
        guard parameters.count <= 100 else { throw StoreError.invalid("parameters", "an operation takes at most 100 parameters") }
        for (name, value) in parameters {
            guard EnvironmentStore.isVariableName(name) else {
                throw StoreError.invalid(
                    "parameters", "parameter names start with a letter or an underscore and contain only letters, digits and underscores")
            }
            guard value.utf8.count <= 65_536 else { throw StoreError.invalid("parameters", "a parameter value must be at most 64 KiB") }
            guard !value.utf8.contains(0) else { throw StoreError.invalid("parameters", "a parameter value must not contain NUL") }
        }
        // Each becomes HARROW_PARAM_<NAME upper-cased>: two names one variable would be a coin toss.
        guard Set(parameters.keys.map { $0.uppercased() }).count == parameters.count else {
            throw StoreError.invalid("parameters", "parameter names must differ in more than case (each becomes HARROW_PARAM_<NAME>)")
        }
        return parameters
    }

    /// Queues a run of a live job (of `project`, when one is given) with the job's current time
    /// limit, and its `run-operation` queue job (whose id is the operation's): both exist or
    /// neither does. Within `requestedBy`'s quota of queued operations.
    public func create(
        job: UUID, project: UUID? = nil, reason: Operation.Reason, requestedBy: UUID?, parameters: [String: String] = [:]
    ) async throws -> Operation {
        let parameters = try Self.validParameters(parameters)
        return try await client.write(logger: logger) { connection in
            try await connection.requireQuota(.queuedOperations, of: quotas, for: requestedBy, logger: logger)
            guard
                let operation = try await Self.queue(
                    job: job, project: project, reason: reason, requestedBy: requestedBy, parameters: parameters, on: connection,
                    logger: logger)
            else { throw StoreError.notFound("job") }
            return operation
        }
    }

    /// Records a queued run of a live job, its `run-operation` outbox job and its activity on
    /// `connection`, in the caller's transaction; `nil` when the job is not live (or not of
    /// `project`). `parameters` must have passed ``validParameters(_:)``.
    static func queue(
        job: UUID, project: UUID?, reason: Operation.Reason, requestedBy: UUID?, parameters: [String: String],
        on connection: PostgresConnection, logger: Logger
    ) async throws -> Operation? {
        let parameters = try parameters.jsonText()
        let id = UUID()
        // FOR SHARE: archiving the job waits until the operation is recorded.
        let inserted = try await connection.first(
            """
            INSERT INTO operations (id, project_id, job_id, reason, requested_by, parameters, time_limit_seconds)
            SELECT \(id), project_id, id, \(reason.rawValue), \(requestedBy), \(parameters)::jsonb, time_limit_seconds FROM jobs
            WHERE id = \(job) AND archived_at IS NULL AND (\(project)::uuid IS NULL OR project_id = \(project)) FOR SHARE
            RETURNING \(unescaped: Self.columns)
            """, logger: logger, Self.record)
        guard let operation = inserted?.item else { return nil }
        try await Outbox.enqueue([try OutboxJob(RunOperation(operationID: id), id: id)], on: connection, logger: logger)
        try await Self.log("operation.queued", operation, actor: requestedBy, on: connection, logger: logger)
        return operation
    }

    /// The operation of `project`; of any project for a worker, which knows only the id.
    public func find(_ id: UUID, project: UUID? = nil) async throws -> Operation {
        let found = try await client.read { connection in
            try await connection.first(
                """
                SELECT \(unescaped: Self.columns) FROM operations
                WHERE id = \(id) AND (\(project)::uuid IS NULL OR project_id = \(project))
                """, logger: logger, Self.record)
        }
        guard let operation = found?.item else { throw StoreError.notFound("operation") }
        return operation
    }

    /// The project's operations, newest first; only those in `statuses` when given.
    public func list(project: UUID, statuses: [Operation.Status]? = nil, page: PageRequest) async throws -> Page<Operation> {
        try await client.read { connection in
            try await connection.page(
                of: "operations", columns: Self.columns, project: project, statuses: statuses?.map(\.rawValue), includeArchived: true,
                newestFirst: true, page: page,
                logger: logger, Self.record)
        }
    }

    /// The operations of a job of `project`, newest first.
    public func list(project: UUID, job: UUID, page: PageRequest) async throws -> Page<Operation> {
        try await client.read { connection in
            try await connection.page(
                of: "operations", columns: Self.columns, project: project, job: job, includeArchived: true, newestFirst: true, page: page,
                logger: logger, Self.record)
        }
    }

    /// `queued` or `running` → `canceled`, for an operation of `project`. The worker running it
    /// sees the status and stops.
    public func cancel(_ id: UUID, project: UUID, actor: UUID?) async throws -> Operation {
        try await transition(
            id, project: project, from: [.queued, .running], activity: "operation.canceled", actor: actor,
            """
            UPDATE operations SET status = 'canceled', canceled_at = now(), updated_at = now()
            WHERE id = \(id) AND project_id = \(project) AND status IN ('queued', 'running') RETURNING \(unescaped: Self.columns)
            """)
    }

    /// Runs a conditional update of one operation and logs `activity`. When it matched
    /// nothing, says why: no such operation, or one in a status not in `from`.
    func transition(
        _ id: UUID, project: UUID? = nil, from: [Operation.Status], activity: String, actor: UUID?, _ update: PostgresQuery
    ) async throws -> Operation {
        try await client.write(logger: logger) { connection in
            if let operation = try await connection.first(update, logger: logger, Self.record)?.item {
                try await Self.log(activity, operation, actor: actor, on: connection, logger: logger)
                return operation
            }
            let current = try await connection.first(
                "SELECT status FROM operations WHERE id = \(id) AND (\(project)::uuid IS NULL OR project_id = \(project))",
                logger: logger, { try Operation.Status(stored: $0.decode(String.self), column: "operation status") })
            guard let current else { throw StoreError.notFound("operation") }
            let expected = from.map(\.rawValue).joined(separator: " or ")
            throw StoreError(.conflict, "the operation is \(current.rawValue), not \(expected)")
        }
    }

    static func log(
        _ name: String, _ operation: Operation, actor: UUID?, on connection: PostgresConnection, logger: Logger
    ) async throws {
        var payload = [
            "operation_id": operation.id.uuidString.lowercased(), "job_id": operation.jobID.uuidString.lowercased(),
            "reason": operation.reason.rawValue,
        ]
        payload["exit_status"] = operation.exitStatus.map(String.init)
        payload["failure_reason"] = operation.failureReason?.rawValue
        payload["runner"] = operation.runner
        payload["retry_of"] = operation.retryOf?.uuidString.lowercased()
        try await ActivityLog.record(name, project: operation.projectID, actor: actor, payload: payload, on: connection, logger: logger)
    }
}
