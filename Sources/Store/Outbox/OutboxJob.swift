import Foundation
import JobContracts
import Logging
import PostgresNIO

/// A job to enqueue into Redis once the transaction that records it commits: the transactional
/// outbox. It is made from a job's contract, whose queue, type name and policy (attempts,
/// timeout, visibility timeout) it carries to the relay. Its id is fixed here and becomes the
/// job's id in the queue, so whoever records it can refer to the job at once, and the relay's
/// retries never add it twice.
public struct OutboxJob: Sendable, Hashable {
    public var id: UUID
    public var queue: String
    public var type: String
    /// The job's JSON payload, kept byte for byte.
    public var payload: String
    /// Run no earlier than this; `nil` runs as soon as the relay moves it.
    public var runAt: Date?
    public var uniqueKey: String?
    /// Runs allowed, from the contract; `nil` only in rows written before the outbox carried the
    /// policy, as are the two below: the queue's defaults then apply.
    public var maxAttempts: Int?
    /// How long one run may take.
    public var timeout: Duration?
    /// How long a running job may go without a heartbeat before it is redelivered.
    public var visibilityTimeout: Duration?

    /// The outbox entry of `job`: its contract's queue, name and policy, and its unique key
    /// unless `uniqueKey` is given.
    public init<Contract: JobContract>(_ job: Contract, id: UUID = UUID(), runAt: Date? = nil, uniqueKey: String? = nil) throws {
        self.init(
            id: id, queue: Contract.queue, type: Contract.name, payload: try job.payload(), runAt: runAt,
            uniqueKey: uniqueKey ?? job.uniqueKey, maxAttempts: Contract.retries.maxAttempts, timeout: Contract.timeout,
            visibilityTimeout: Contract.visibilityTimeout)
    }

    /// A row as stored.
    init(
        id: UUID, queue: String, type: String, payload: String, runAt: Date?, uniqueKey: String?, maxAttempts: Int?,
        timeout: Duration?, visibilityTimeout: Duration?
    ) {
        self.id = id
        self.queue = queue
        self.type = type
        self.payload = payload
        self.runAt = runAt
        self.uniqueKey = uniqueKey
        self.maxAttempts = maxAttempts
        self.timeout = timeout
        self.visibilityTimeout = visibilityTimeout
    }

    /// The id the job has in the queue.
    public var jobID: String { id.uuidString.lowercased() }

    /// Checks what no contract should get wrong, so such a job fails its caller's transaction
    /// rather than sit in the outbox. (The relay checks the queue name against the queue's rules.)
    func validate() throws {
        guard !queue.isEmpty else { throw StoreError(.invalid, "outbox job \(jobID) has no queue") }
        guard !type.isEmpty else { throw StoreError(.invalid, "outbox job \(jobID) has no type") }
        if let maxAttempts, maxAttempts < 1 { throw StoreError(.invalid, "outbox job \(jobID): maxAttempts must be at least 1") }
        for (name, value) in [("timeout", timeout), ("visibility timeout", visibilityTimeout)] {
            if let value, value <= .zero { throw StoreError(.invalid, "outbox job \(jobID): the \(name) must be positive") }
        }
    }
}
