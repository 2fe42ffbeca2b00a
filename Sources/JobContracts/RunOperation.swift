import Foundation

/// `run-operation` (queue `operations`): runs an operation, a task's script on an executor, and
/// records its outcome. Payload: `{"operation_id": "<uuid>"}`; the job's id is the operation's.
public struct RunOperation: JobContract, Hashable {
    public static let name = "run-operation"
    public static let queue = "operations"
    /// The queue's attempts guard the run's set-up, never the script: the handler claims the
    /// operation once in Postgres, so a redelivered job finds it running and either leaves it
    /// to its live runner or fails it as `worker_lost`; it never runs the script twice. A
    /// failure before the script started (the git host unreachable, the database away) gives
    /// the operation back and retries with backoff, about 8 minutes in all; the last attempt
    /// fails the operation instead.
    public static let retries = Retries(maxAttempts: 6, backoff: .exponential(base: .seconds(15), maximum: .seconds(600)))
    /// A backstop only: the handler enforces the operation's own time limit (15 minutes unless
    /// its job says otherwise) and records `timed_out`; this cancels a run that outlives any
    /// sensible limit.
    public static let timeout: Duration = .seconds(24 * 3600)
    /// Two minutes without a heartbeat (24 missed beats of 5 s) before a run counts as lost:
    /// a busy host does not lose its run, a dead one is noticed soon.
    public static let visibilityTimeout: Duration? = .seconds(120)

    public var operationID: UUID

    public init(operationID: UUID) {
        self.operationID = operationID
    }

    enum CodingKeys: String, CodingKey {
        case operationID = "operation_id"
    }

    /// The id in lowercase, as the store writes ids.
    public func encode(to encoder: any Encoder) throws {
        var container = encoder.container(keyedBy: CodingKeys.self)
        try container.encodeID(operationID, forKey: .operationID)
    }
}
