import Foundation

/// Which page of a list to read: at most `limit` records after `cursor` (a page's
/// ``Page/nextCursor``), oldest first.
public struct PageRequest: Sendable, Hashable {
    public static let maximumLimit = 200

    public var limit: Int
    public var cursor: String?

    /// `limit` must be 1…200.
    public init(limit: Int = 50, cursor: String? = nil) throws {
        guard (1...Self.maximumLimit).contains(limit) else {
            throw StoreError.invalid("limit", "limit must be between 1 and \(Self.maximumLimit)")
        }
        self.limit = limit
        self.cursor = cursor
    }

    /// The position after which this page starts; `nil` for the first page.
    func position() throws -> Cursor? {
        try cursor.map(Cursor.init(encoded:))
    }
}

/// One page of a list and the cursor of the next, `nil` when this is the last.
public struct Page<Item: Sendable>: Sendable {
    public var items: [Item]
    public var nextCursor: String?

    public init(items: [Item], nextCursor: String?) {
        self.items = items
        self.nextCursor = nextCursor
    }
}

extension Page: Equatable where Item: Equatable {}

/// A position in a list ordered by `(created_at, id)`: keyset pagination, so a page does not
/// shift when records are added before it is read (new records sort last). Microseconds are kept
/// as an integer, exactly as Postgres stores them.
struct Cursor: Sendable, Hashable {
    var createdMicroseconds: Int64
    var id: UUID

    init(createdMicroseconds: Int64, id: UUID) {
        self.createdMicroseconds = createdMicroseconds
        self.id = id
    }

    /// Parses an opaque cursor; a malformed one is an invalid input, not a server error.
    init(encoded: String) throws {
        guard let bytes = Base64URL.decode(encoded), let text = String(validating: bytes, as: UTF8.self) else {
            throw StoreError.invalid("cursor", "the cursor is not one this API gave out")
        }
        let parts = text.split(separator: "/")
        guard parts.count == 2, let microseconds = Int64(parts[0]), let id = UUID(uuidString: String(parts[1])) else {
            throw StoreError.invalid("cursor", "the cursor is not one this API gave out")
        }
        self.init(createdMicroseconds: microseconds, id: id)
    }

    var encoded: String {
        Base64URL.encode("\(createdMicroseconds)/\(id.uuidString.lowercased())".utf8)
    }
}

extension Cursor {
    /// The select-list expression of a row's position (its `created_at` in microseconds).
    static let column = "(extract(epoch FROM created_at) * 1000000)::int8"

    /// What a keyset condition binds: whether there is no cursor, and its position. A list
    /// query reads `(\(first) OR (created_at, id) > (to_timestamp(0) + \(microseconds) *
    /// interval '1 microsecond', \(id)))`.
    static func bounds(_ cursor: Cursor?) -> (first: Bool, microseconds: Int64, id: UUID) {
        (cursor == nil, cursor?.createdMicroseconds ?? 0, cursor?.id ?? UUID())
    }
}

extension Page {
    /// A page from `limit + 1` rows read after the cursor: the extra row only says that
    /// there is a next page, which starts after the last row shown.
    init(rows: [(item: Item, position: Cursor)], limit: Int) {
        let shown = rows.prefix(limit)
        self.init(items: shown.map(\.item), nextCursor: rows.count > limit ? shown.last?.position.encoded : nil)
    }
}

extension Page {
    /// A page from the decoded rows of a list query that read `limit + 1` rows.
    init<Rows: AsyncSequence, Row>(
        _ rows: Rows, limit: Int, _ record: (Row) throws -> (item: Item, position: Cursor)
    ) async throws where Rows.Element == Row {
        var found: [(item: Item, position: Cursor)] = []
        for try await row in rows { found.append(try record(row)) }
        self.init(rows: found, limit: limit)
    }
}
