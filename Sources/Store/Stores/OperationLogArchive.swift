import Foundation
import Logging
import PostgresNIO

/// The logs of finished operations in Postgres, so a log outlives its Redis stream (which
/// expires) and the loss of Redis. Lines keep their stream ids, so a reader's cursor from the
/// live log goes on in the archive.
public struct OperationLogArchive: Sendable {
    /// One line of output, as the live log has it.
    public struct Line: Sendable, Hashable, Codable {
        /// The line's stream entry id (`<ms>-<seq>`).
        public var id: String
        /// `stdout`, `stderr`, or `system` for Harrow's own notes.
        public var stream: String
        public var text: String
        /// When it was written, in ms since the epoch.
        public var t: Int64

        public init(id: String, stream: String, text: String, t: Int64) {
            self.id = id
            self.stream = stream
            self.text = text
            self.t = t
        }
    }

    /// A whole log, in order.
    public struct Log: Sendable, Hashable {
        public var lines: [Line]

        public init(lines: [Line]) {
            self.lines = lines
        }
    }

    /// A page of an archived log: lines after the cursor and the cursor to read on from.
    public struct Page: Sendable, Hashable {
        public var lines: [Line]
        public var next: String
    }

    /// Lines per stored chunk, and the most text one holds: a page reads one or two chunks.
    static let chunkLines = 1000
    static let chunkBytes = 1 << 20

    let client: PostgresClient
    let logger: Logger

    public init(client: PostgresClient, logger: Logger) {
        self.client = client
        self.logger = logger
    }

    /// Archives the log of an operation that ended without its runner (one lost with its
    /// worker): what its live log held. An operation archived already keeps its archive.
    public func store(_ log: Log, of operation: UUID) async throws {
        try await client.write(logger: logger) { connection in
            try await Self.store(log, of: operation, on: connection, logger: logger)
        }
    }

    /// Stores `log` in chunks, in the caller's transaction; an operation archived already keeps
    /// its first archive.
    static func store(_ log: Log, of operation: UUID, on connection: PostgresConnection, logger: Logger) async throws {
        var chunk = 0
        var start = 0
        let encoder = JSONEncoder()
        while start < log.lines.count {
            var end = start
            var bytes = 0
            while end < log.lines.count, end - start < chunkLines, bytes < chunkBytes {
                bytes += log.lines[end].text.utf8.count + 64
                end += 1
            }
            let lines = Array(log.lines[start..<end])
            let last = StreamID(lines[lines.count - 1].id) ?? StreamID(milliseconds: 0, sequence: Int64(end))
            let text = String(decoding: try encoder.encode(lines), as: UTF8.self)
            _ = try await connection.query(
                """
                INSERT INTO operation_logs (operation_id, chunk, last_ms, last_seq, line_count, lines)
                VALUES (\(operation), \(Int32(chunk)), \(last.milliseconds), \(last.sequence), \(Int32(lines.count)), \(text))
                ON CONFLICT (operation_id, chunk) DO NOTHING
                """, logger: logger)
            chunk += 1
            start = end
        }
    }

    /// Up to `limit` lines after the stream id `after` ("0" from the start); `nil` when the
    /// operation has no archived log (it is still running, or it logged nothing).
    public func read(_ operation: UUID, after: String, limit: Int) async throws -> Page? {
        let cursor = StreamID(after) ?? StreamID(milliseconds: 0, sequence: 0)
        let limit = max(1, limit)
        let chunks = try await client.read { connection in
            try await connection.all(
                """
                SELECT lines FROM operation_logs WHERE operation_id = \(operation)
                  AND (last_ms, last_seq) > (\(cursor.milliseconds), \(cursor.sequence))
                ORDER BY chunk LIMIT \(Int64(limit / Self.chunkLines + 2))
                """, logger: logger, { try $0.decode(String.self) })
        }
        if chunks.isEmpty {
            let archived = try await client.read { connection in
                try await connection.first(
                    "SELECT 1::int4 FROM operation_logs WHERE operation_id = \(operation) LIMIT 1", logger: logger,
                    { try $0.decode(Int32.self) })
            }
            return archived == nil ? nil : Page(lines: [], next: after)
        }
        var lines: [Line] = []
        let decoder = JSONDecoder()
        for chunk in chunks where lines.count < limit {
            for line in try decoder.decode([Line].self, from: Data(chunk.utf8)) where lines.count < limit {
                if let id = StreamID(line.id), id > cursor { lines.append(line) }
            }
        }
        return Page(lines: lines, next: lines.last?.id ?? after)
    }

    /// A Redis stream id, `<ms>-<seq>`, ordered as Redis orders them.
    struct StreamID: Comparable, Sendable {
        var milliseconds: Int64
        var sequence: Int64

        init(milliseconds: Int64, sequence: Int64) {
            self.milliseconds = milliseconds
            self.sequence = sequence
        }

        init?(_ text: String) {
            let parts = text.split(separator: "-", omittingEmptySubsequences: false)
            guard (1...2).contains(parts.count), let milliseconds = Int64(parts[0]), milliseconds >= 0 else { return nil }
            let sequence = parts.count == 2 ? Int64(parts[1]) : 0
            guard let sequence, sequence >= 0 else { return nil }
            self.init(milliseconds: milliseconds, sequence: sequence)
        }

        static func < (lhs: StreamID, rhs: StreamID) -> Bool {
            (lhs.milliseconds, lhs.sequence) < (rhs.milliseconds, rhs.sequence)
        }
    }
}
