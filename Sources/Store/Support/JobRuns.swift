import Crypto
import Foundation
import Logging
import PostgresNIO

/// The record of queue jobs whose side effects are done (`job_runs`), which makes handlers
/// idempotent under at-least-once delivery: a handler records its job in the transaction of its
/// side effects, and a redelivered job finds the record and changes nothing.
public enum JobRuns {
    /// Records that queue job `jobID` finished with `outcome`, in the caller's transaction.
    /// `false` when it was recorded already (the caller should roll back what it did). A second
    /// transaction recording the same job waits for the first, then gets `false`.
    public static func record(
        _ jobID: String, type: String, outcome: String, on connection: PostgresConnection, logger: Logger
    ) async throws -> Bool {
        let rows = try await connection.query(
            """
            INSERT INTO job_runs (job_id, type, outcome) VALUES (\(key(jobID)), \(type), \(outcome))
            ON CONFLICT (job_id) DO NOTHING RETURNING 1::int4
            """, logger: logger)
        for try await _ in rows.decode(Int32.self) { return true }
        return false
    }

    /// How queue job `jobID` finished, or `nil` when it has no record.
    public static func outcome(of jobID: String, client: PostgresClient, logger: Logger) async throws -> String? {
        try await client.read { connection in
            try await connection.first(
                "SELECT outcome FROM job_runs WHERE job_id = \(key(jobID))", logger: logger, { try $0.decode(String.self) })
        }
    }

    /// Records a job that finished with no side effects to protect (its record was gone, say),
    /// so a redelivery learns it from the record too.
    public static func record(_ jobID: String, type: String, outcome: String, client: PostgresClient, logger: Logger) async throws {
        try await client.write(logger: logger) { connection in
            _ = try await record(jobID, type: type, outcome: outcome, on: connection, logger: logger)
        }
    }

    /// What ``claim(_:type:staleAfter:client:logger:)`` found.
    public enum Claim: Sendable, Hashable {
        /// This delivery holds the job: do the side effect, then ``finish(_:outcome:client:logger:)``
        /// (or ``release(_:client:logger:)`` when it failed).
        case claimed
        /// Another delivery finished the job with this outcome.
        case done(String)
        /// Another delivery claimed the job less than `staleAfter` ago and may be doing it now.
        case busy
    }

    /// Claims queue job `jobID` for a side effect no transaction can cover (a mail): two
    /// deliveries of one job at once cannot both go on. A claim older than `staleAfter` is a
    /// delivery that died, and is taken over.
    public static func claim(
        _ jobID: String, type: String, staleAfter: Duration, client: PostgresClient, logger: Logger
    ) async throws -> Claim {
        let stale = Double(staleAfter.components.seconds) + Double(staleAfter.components.attoseconds) / 1e18
        return try await client.write(logger: logger) { connection in
            let claimed = try await connection.first(
                """
                INSERT INTO job_runs (job_id, type, outcome) VALUES (\(key(jobID)), \(type), 'claimed')
                ON CONFLICT (job_id) DO UPDATE SET finished_at = now()
                WHERE job_runs.outcome = 'claimed' AND job_runs.finished_at < now() - make_interval(secs => \(stale))
                RETURNING 1::int4
                """, logger: logger, { try $0.decode(Int32.self) })
            if claimed != nil { return .claimed }
            let outcome = try await connection.first(
                "SELECT outcome FROM job_runs WHERE job_id = \(key(jobID))", logger: logger, { try $0.decode(String.self) })
            return outcome == "claimed" || outcome == nil ? .busy : .done(outcome ?? "")
        }
    }

    /// Records the outcome of a job this delivery claimed.
    public static func finish(_ jobID: String, outcome: String, client: PostgresClient, logger: Logger) async throws {
        _ = try await client.write(logger: logger) { connection in
            try await connection.query(
                "UPDATE job_runs SET outcome = \(outcome), finished_at = now() WHERE job_id = \(key(jobID))", logger: logger)
        }
    }

    /// Gives up this delivery's claim, so a retry may do the job.
    public static func release(_ jobID: String, client: PostgresClient, logger: Logger) async throws {
        _ = try await client.write(logger: logger) { connection in
            try await connection.query(
                "DELETE FROM job_runs WHERE job_id = \(key(jobID)) AND outcome = 'claimed'", logger: logger)
        }
    }

    /// The `job_runs` key of a queue job id: the id itself when it is a UUID (as the queue's
    /// UUIDv7 ids are), else a name-based UUID (RFC 9562 version 8 from its SHA-256) so any id
    /// a caller chose maps to one key.
    static func key(_ jobID: String) -> UUID {
        if let uuid = UUID(uuidString: jobID) { return uuid }
        var bytes = Array(SHA256.hash(data: Array(jobID.utf8)).prefix(16))
        bytes[6] = (bytes[6] & 0x0F) | 0x80
        bytes[8] = (bytes[8] & 0x3F) | 0x80
        return UUID(
            uuid: (
                bytes[0], bytes[1], bytes[2], bytes[3], bytes[4], bytes[5], bytes[6], bytes[7], bytes[8], bytes[9], bytes[10],
                bytes[11], bytes[12], bytes[13], bytes[14], bytes[15]
            ))
    }
}
