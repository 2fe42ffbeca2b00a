import Foundation
import Logging
import PostgresNIO

/// Reads a project's activities, the audit stream the stores write with every change.
public struct ActivityStore: Sendable {
    let client: PostgresClient
    let logger: Logger

    public init(client: PostgresClient, logger: Logger) {
        self.client = client
        self.logger = logger
    }

    static let columns = "id, name, payload::text, project_id, organization_id, actor_id, occurred_at"
    typealias Row = (Int64, String, String, UUID?, UUID?, UUID?, Date)

    static func record(_ row: Row) throws -> Activity {
        Activity(
            id: row.0, name: row.1, payload: try [String: String](jsonObject: row.2), projectID: row.3, organizationID: row.4,
            actorID: row.5, occurredAt: row.6)
    }

    /// The project's activities, newest first. The cursor is the id of the last activity shown:
    /// ids only grow, so a page never shifts when activities are added while pages are read.
    public func list(project: UUID, page: PageRequest) async throws -> Page<Activity> {
        var before = Int64.max
        if let cursor = page.cursor {
            guard let id = Int64(cursor), id > 0 else { throw StoreError.invalid("cursor", "the cursor is not one this API gave out") }
            before = id
        }
        return try await client.read { connection in
            let found = try await connection.all(
                """
                SELECT \(unescaped: Self.columns) FROM activities
                WHERE project_id = \(project) AND id < \(before)
                ORDER BY id DESC LIMIT \(page.limit + 1)
                """, logger: logger, { try Self.record($0.decode(Row.self)) })
            let shown = Array(found.prefix(page.limit))
            return Page(items: shown, nextCursor: found.count > page.limit ? shown.last.map { String($0.id) } : nil)
        }
    }
}
