import Foundation
import Logging
import PostgresNIO

/// The outbox table: jobs recorded in the transaction of the change that asks for them, and
/// what the relay does with them.
public enum Outbox {
    /// The channel the outbox's insert trigger notifies.
    public static let channel = "harrow_outbox"

    /// Records `jobs` in the caller's transaction: they reach Redis if and only if it commits.
    public static func enqueue(_ jobs: [OutboxJob], on connection: PostgresConnection, logger: Logger) async throws {
        for job in jobs {
            try job.validate()
            try await connection.query(
                """
                INSERT INTO outbox (id, queue, type, payload, run_at, unique_key, max_attempts, timeout_ms, visibility_timeout_ms)
                VALUES (\(job.id), \(job.queue), \(job.type), \(job.payload), \(job.runAt), \(job.uniqueKey), \(job.maxAttempts),
                        \(job.timeout.map(milliseconds)), \(job.visibilityTimeout.map(milliseconds)))
                """, logger: logger)
        }
    }

    /// Locks and returns up to `limit` of the oldest rows waiting to be moved, in the caller's
    /// transaction; rows another transaction holds are skipped, so relays never wait on each other.
    public static func claim(limit: Int, on connection: PostgresConnection, logger: Logger) async throws -> [OutboxJob] {
        let rows = try await connection.query(
            """
            SELECT id, queue, type, payload, run_at, unique_key, max_attempts, timeout_ms, visibility_timeout_ms FROM outbox
            WHERE failed_at IS NULL ORDER BY seq LIMIT \(limit) FOR UPDATE SKIP LOCKED
            """, logger: logger)
        var jobs: [OutboxJob] = []
        for try await (id, queue, type, payload, runAt, uniqueKey, maxAttempts, timeout, visibilityTimeout) in rows.decode(
            (UUID, String, String, String, Date?, String?, Int?, Int64?, Int64?).self)
        {
            jobs.append(
                OutboxJob(
                    id: id, queue: queue, type: type, payload: payload, runAt: runAt, uniqueKey: uniqueKey, maxAttempts: maxAttempts,
                    timeout: timeout.map { .milliseconds($0) }, visibilityTimeout: visibilityTimeout.map { .milliseconds($0) }))
        }
        return jobs
    }

    /// Deletes rows the relay moved, in its transaction.
    public static func delete(_ ids: [UUID], on connection: PostgresConnection, logger: Logger) async throws {
        try await connection.query("DELETE FROM outbox WHERE id = ANY(\(ids))", logger: logger)
    }

    /// Sets a row the queue would refuse aside with the reason: it waits for an operator instead
    /// of holding up the rows behind it.
    public static func setAside(_ id: UUID, reason: String, on connection: PostgresConnection, logger: Logger) async throws {
        try await connection.query("UPDATE outbox SET failed_at = now(), last_error = \(reason) WHERE id = \(id)", logger: logger)
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

    /// Whole milliseconds of a duration, as the outbox stores policies.
    static func milliseconds(_ duration: Duration) -> Int64 {
        duration.components.seconds * 1000 + duration.components.attoseconds / 1_000_000_000_000_000
    }
}
