import Foundation
import Logging
import PostgresNIO

extension PostgresConnection {
    /// The rows of `query`, each made into an item by `record`.
    func all<Item>(_ query: PostgresQuery, logger: Logger, _ record: (PostgresRow) throws -> Item) async throws -> [Item] {
        var items: [Item] = []
        for try await row in try await self.query(query, logger: logger) { items.append(try record(row)) }
        return items
    }

    /// The first row of `query` as an item; `nil` when there is none.
    func first<Item>(_ query: PostgresQuery, logger: Logger, _ record: (PostgresRow) throws -> Item) async throws -> Item? {
        for try await row in try await self.query(query, logger: logger) { return try record(row) }
        return nil
    }

    /// Row `id` of `table` in `project`: a live one, or an archived one too with
    /// `includeArchived`. Throws `notFound(what)`.
    func find<Item>(
        _ id: UUID, in table: StaticString, columns: String, project: UUID, includeArchived: Bool, notFound what: String, logger: Logger,
        _ record: (PostgresRow) throws -> (item: Item, position: Cursor)
    ) async throws -> Item {
        // `table` and `columns` are the stores' constants, never input.
        let found = try await first(
            """
            SELECT \(unescaped: columns) FROM \(unescaped: "\(table)")
            WHERE id = \(id) AND project_id = \(project) AND (archived_at IS NULL OR \(includeArchived))
            """, logger: logger, record)
        guard let item = found?.item else { throw StoreError.notFound(what) }
        return item
    }

    /// Archives the live row `id` of `table` in `project` and returns it. Throws
    /// `notFound(what)`.
    func archive<Item>(
        _ id: UUID, in table: StaticString, columns: String, project: UUID, notFound what: String, logger: Logger,
        _ record: (PostgresRow) throws -> (item: Item, position: Cursor)
    ) async throws -> Item {
        let archived = try await first(
            """
            UPDATE \(unescaped: "\(table)") SET archived_at = now(), updated_at = now()
            WHERE id = \(id) AND project_id = \(project) AND archived_at IS NULL RETURNING \(unescaped: columns)
            """, logger: logger, record)
        guard let item = archived?.item else { throw StoreError.notFound(what) }
        return item
    }

    /// Checks that row `id` of `table` is live and in `project`, and share-locks it until the
    /// transaction ends: archiving it waits for the change that refers to it, then sees (and
    /// archives) what that change added. Throws `notFound(what)`.
    func requireLive(_ table: StaticString, _ id: UUID, project: UUID, notFound what: String, logger: Logger) async throws {
        // `table` is one of the stores' constants, never input.
        let live = try await first(
            """
            SELECT 1::int4 FROM \(unescaped: "\(table)")
            WHERE id = \(id) AND project_id = \(project) AND archived_at IS NULL FOR SHARE
            """, logger: logger, { try $0.decode(Int32.self) })
        guard live != nil else { throw StoreError.notFound(what) }
    }

    /// One page of the rows of `table` in `project` (and of `job`, when one is given): live
    /// ones unless `includeArchived` (for tables without `archived_at`), oldest first or newest
    /// first, with keyset pagination on `(created_at, id)`.
    func page<Item>(
        of table: StaticString, columns: String, project: UUID, job: UUID? = nil, statuses: [String]? = nil, includeArchived: Bool = false,
        newestFirst: Bool = false, page: PageRequest, logger: Logger, _ record: (PostgresRow) throws -> (item: Item, position: Cursor)
    ) async throws -> Page<Item> {
        let after = Cursor.bounds(try page.position())
        // Table, columns and the fixed fragments are constants; every value is bound.
        var sql = PostgresQuery.StringInterpolation(literalCapacity: 400, interpolationCount: 6)
        sql.appendLiteral("SELECT \(columns) FROM \(table) WHERE project_id = ")
        sql.appendInterpolation(project)
        if let job {
            sql.appendLiteral(" AND job_id = ")
            sql.appendInterpolation(job)
        }
        if let statuses {
            sql.appendLiteral(" AND status = ANY(")
            sql.appendInterpolation(statuses)
            sql.appendLiteral(")")
        }
        if !includeArchived { sql.appendLiteral(" AND archived_at IS NULL") }
        sql.appendLiteral(" AND (")
        sql.appendInterpolation(after.first)
        sql.appendLiteral(" OR (created_at, id) \(newestFirst ? "<" : ">") (to_timestamp(0) + ")
        sql.appendInterpolation(after.microseconds)
        sql.appendLiteral(" * interval '1 microsecond', ")
        sql.appendInterpolation(after.id)
        sql.appendLiteral(newestFirst ? ")) ORDER BY created_at DESC, id DESC LIMIT " : ")) ORDER BY created_at, id LIMIT ")
        sql.appendInterpolation(page.limit + 1)
        return Page(rows: try await all(PostgresQuery(stringInterpolation: sql), logger: logger, record), limit: page.limit)
    }
}
