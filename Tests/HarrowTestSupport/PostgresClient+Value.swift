import PostgresNIO

extension PostgresClient {
    /// One value of a query's first row, or `nil` when it has none.
    public func value<T: PostgresDecodable & Sendable>(_ query: PostgresQuery, as type: T.Type = T.self) async throws -> T? {
        let rows = try await self.query(query)
        for try await value in rows.decode(T.self) { return value }
        return nil
    }
}
