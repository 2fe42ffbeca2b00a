import Foundation

/// `run-operation` (queue `operations`): runs an operation, a task's script on an executor, and
/// records its outcome. Payload: `{"operation_id": "<uuid>"}`; the job's id is the operation's.
public struct RunOperation: JobContract, Hashable {
    public static let name = "run-operation"
    public static let queue = "operations"
    /// One run: a script with side effects (a deploy) is not idempotent, so the queue never
    /// runs it again on its own; a person retries the operation. A run whose worker died is
    /// reclaimed into the dead list ("no attempts left"), not run a second time.
    public static let retries = Retries(maxAttempts: 1, backoff: .constant(.seconds(60)))
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
