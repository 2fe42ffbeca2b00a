import Foundation
import Logging
import PostgresNIO

/// Writes activities: the audit stream of what users did and what happened to their records.
/// Always inside the transaction of the change it describes; the insert trigger `NOTIFY`s
/// `harrow_activities`, which the API's WebSocket hub follows.
enum ActivityLog {
    static func record(
        _ name: String, project: UUID? = nil, organization: UUID? = nil, actor: UUID?, payload: [String: String] = [:],
        on connection: PostgresConnection, logger: Logger
    ) async throws {
        let json = String(decoding: try JSONEncoder().encode(payload), as: UTF8.self)
        try await connection.query(
            """
            INSERT INTO activities (name, payload, project_id, organization_id, actor_id)
            VALUES (\(name), \(json)::jsonb, \(project), \(organization), \(actor))
            """, logger: logger)
    }
}
