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

    public init(client: PostgresClient, logger: Logger) {
        self.client = client
        self.logger = logger
    }

    static let columns = """
        id, project_id, job_id, reason, requested_by, parameters::text, status, exit_status, time_limit_seconds, created_at, \
        started_at, finished_at, canceled_at, log_location, updated_at, \(Cursor.column)
        """
    typealias Row = (UUID, UUID, UUID, String, UUID?, String, String, Int?, Int, Date, Date?, Date?, Date?, String?, Date, Int64)

    static func record(_ row: PostgresRow) throws -> (item: Operation, position: Cursor) {
        let row = try row.decode(Row.self)
        return (
            Operation(
                id: row.0, projectID: row.1, jobID: row.2, reason: try Operation.Reason(stored: row.3, column: "operation reason"),
                requestedBy: row.4, parameters: try [String: String](jsonObject: row.5),
                status: try Operation.Status(stored: row.6, column: "operation status"), exitStatus: row.7, timeLimitSeconds: row.8,
                createdAt: row.9, startedAt: row.10, finishedAt: row.11, canceledAt: row.12, logLocation: row.13, updatedAt: row.14),
            Cursor(createdMicroseconds: row.15, id: row.0)
        )
    }

    /// At most 100 parameters; names of 1 to 200 characters without control characters,
    /// values of at most 64 KiB.
    static func validParameters(_ parameters: [String: String]) throws -> [String: String] {
        guard parameters.count <= 100 else { throw StoreError.invalid("parameters", "an operation takes at most 100 parameters") }
        for (name, value) in parameters {
            guard (1...200).contains(name.count), !name.unicodeScalars.contains(where: { $0.properties.generalCategory == .control }) else {
                throw StoreError.invalid("parameters", "a parameter name must be 1 to 200 characters without control characters")
            }
            guard value.utf8.count <= 65_536 else { throw StoreError.invalid("parameters", "a parameter value must be at most 64 KiB") }
        }
        return parameters
    }

    /// Queues a run of a live job (of `project`, when one is given) with the job's current time
    /// limit, and its `run-operation` queue job (whose id is the operation's): both exist or
    /// neither does.
    public func create(
        job: UUID, project: UUID? = nil, reason: Operation.Reason, requestedBy: UUID?, parameters: [String: String] = [:]
    ) async throws -> Operation {
        let parameters = try Self.validParameters(parameters).jsonText()
        let id = UUID()
        return try await client.write(logger: logger) { connection in
            // FOR SHARE: archiving the job waits until the operation is recorded.
            let inserted = try await connection.first(
                """
                INSERT INTO operations (id, project_id, job_id, reason, requested_by, parameters, time_limit_seconds)
                SELECT \(id), project_id, id, \(reason.rawValue), \(requestedBy), \(parameters)::jsonb, time_limit_seconds FROM jobs
                WHERE id = \(job) AND archived_at IS NULL AND (\(project)::uuid IS NULL OR project_id = \(project)) FOR SHARE
                RETURNING \(unescaped: Self.columns)
                """, logger: logger, Self.record)
            guard let operation = inserted?.item else { throw StoreError.notFound("job") }
            try await Outbox.enqueue([try OutboxJob(RunOperation(operationID: id), id: id)], on: connection, logger: logger)
            try await Self.log("operation.queued", operation, actor: requestedBy, on: connection, logger: logger)
            return operation
        }
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

    /// The project's operations, newest first.
    public func list(project: UUID, page: PageRequest) async throws -> Page<Operation> {
        try await client.read { connection in
            try await connection.page(
                of: "operations", columns: Self.columns, project: project, includeArchived: true, newestFirst: true, page: page,
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

    /// `queued` → `running`: a worker takes the operation. Of two racing workers one gets a
    /// conflict.
    public func start(_ id: UUID) async throws -> Operation {
        try await transition(
            id, from: [.queued], activity: "operation.started", actor: nil,
            """
            UPDATE operations SET status = 'running', started_at = now(), updated_at = now()
            WHERE id = \(id) AND status = 'queued' RETURNING \(unescaped: Self.columns)
            """)
    }

    /// `running` → `succeeded`, `failed` or `timed_out`, with the process's exit status and
    /// where its log is.
    public func finish(_ id: UUID, status: Operation.Status, exitStatus: Int?, logLocation: String?) async throws -> Operation {
        guard [.succeeded, .failed, .timedOut].contains(status) else {
            throw StoreError.invalid("status", "an operation finishes as succeeded, failed or timed_out")
        }
        if let exitStatus, !(Int(Int32.min)...Int(Int32.max)).contains(exitStatus) {
            throw StoreError.invalid("exit_status", "the exit status must be a 32-bit integer")
        }
        let logLocation = try Validate.optionalText(logLocation, field: "log_location", limit: 2048)
        return try await transition(
            id, from: [.running], activity: "operation.\(status.rawValue)", actor: nil,
            """
            UPDATE operations SET status = \(status.rawValue), exit_status = \(exitStatus.map { Int32($0) }),
                log_location = \(logLocation), finished_at = now(), updated_at = now()
            WHERE id = \(id) AND status = 'running' RETURNING \(unescaped: Self.columns)
            """)
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
    private func transition(
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

    private static func log(
        _ name: String, _ operation: Operation, actor: UUID?, on connection: PostgresConnection, logger: Logger
    ) async throws {
        var payload = [
            "operation_id": operation.id.uuidString.lowercased(), "job_id": operation.jobID.uuidString.lowercased(),
            "reason": operation.reason.rawValue,
        ]
        payload["exit_status"] = operation.exitStatus.map(String.init)
        try await ActivityLog.record(name, project: operation.projectID, actor: actor, payload: payload, on: connection, logger: logger)
    }
}
