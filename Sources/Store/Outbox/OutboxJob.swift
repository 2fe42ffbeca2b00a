import Foundation
import Logging
import PostgresNIO
import Queue

/// A job to enqueue into Redis once the transaction that records it commits: the transactional
/// outbox. Its id is fixed here and becomes the job's id in the queue, so whoever records it can
/// refer to the job at once, and the relay's retries never add it twice.
public struct OutboxJob: Sendable, Hashable {
    public var id: UUID
    public var queue: String
    public var type: String
    /// The job's JSON payload, kept byte for byte.
    public var payload: String
    /// Run no earlier than this; `nil` runs as soon as the relay moves it.
    public var runAt: Date?
    public var uniqueKey: String?
    public var maxAttempts: Int?

    public init(
        id: UUID = UUID(), queue: String, type: String, payload: String, runAt: Date? = nil, uniqueKey: String? = nil,
        maxAttempts: Int? = nil
    ) {
        self.id = id
        self.queue = queue
        self.type = type
        self.payload = payload
        self.runAt = runAt
        self.uniqueKey = uniqueKey
        self.maxAttempts = maxAttempts
    }

    /// The id the job has in the queue.
    public var jobID: String { id.uuidString.lowercased() }

    /// Checks what the queue would refuse, so a bad job fails its caller's transaction rather
    /// than sit in the outbox.
    func validate() throws {
        do {
            try QueueName.validate(queue)
        } catch {
            throw StoreError(.invalid, "outbox job \(jobID): \(error)")
        }
        guard !type.isEmpty else { throw StoreError(.invalid, "outbox job \(jobID) has no type") }
        if let maxAttempts, maxAttempts < 1 { throw StoreError(.invalid, "outbox job \(jobID): maxAttempts must be at least 1") }
    }
}

/// Writing to the outbox.
public enum Outbox {
    /// The channel the outbox's insert trigger notifies.
    public static let channel = "harrow_outbox"

    /// Records `jobs` in the caller's transaction: they reach Redis if and only if it commits.
    public static func enqueue(_ jobs: [OutboxJob], on connection: PostgresConnection, logger: Logger) async throws {
        for job in jobs {
            try job.validate()
            try await connection.query(
                """
                INSERT INTO outbox (id, queue, type, payload, run_at, unique_key, max_attempts)
                VALUES (\(job.id), \(job.queue), \(job.type), \(job.payload), \(job.runAt), \(job.uniqueKey), \(job.maxAttempts))
                """, logger: logger)
        }
    }

    /// What waits in the outbox.
    public struct Stats: Sendable, Hashable, Codable {
        /// Jobs waiting to be moved to Redis.
        public var depth: Int
        /// How long the oldest of them has waited, in ms; `nil` when none waits.
        public var oldestAgeMilliseconds: Int?
        /// Jobs the relay could not move (their error is in `last_error`); they wait for an operator.
        public var failed: Int
    }

    public static func stats(client: PostgresClient, logger: Logger) async throws -> Stats {
        let rows = try await client.query(
            """
            SELECT count(*) FILTER (WHERE failed_at IS NULL)::int8,
                   (extract(epoch FROM now() - min(created_at) FILTER (WHERE failed_at IS NULL)) * 1000)::int8,
                   count(*) FILTER (WHERE failed_at IS NOT NULL)::int8
            FROM outbox
            """, logger: logger)
        for try await (depth, age, failed) in rows.decode((Int, Int?, Int).self) {
            return Stats(depth: depth, oldestAgeMilliseconds: age, failed: failed)
        }
        return Stats(depth: 0, oldestAgeMilliseconds: nil, failed: 0)
    }
}
