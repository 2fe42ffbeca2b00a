import Foundation
import NIOCore
import Queue

/// An operation's log in Redis: a stream per operation, `<prefix>:oplog:{<operation id>}`, one
/// entry per line (`stream` stdout, stderr or system for Harrow's own notes, `text`, `t` ms since the epoch), and an entry
/// with `end` = 1 when the operation finished. The worker running the operation appends; the
/// API reads pages of it and follows it live. Lines are kept for `retention` after the end.
public struct OperationLog: Sendable {
    public struct Line: Sendable, Hashable, Codable {
        /// The stream entry id: pass it as `after` to read on.
        public var id: String
        public var stream: String
        public var text: String
        public var t: Int64

        public init(id: String, stream: String, text: String, t: Int64) {
            self.id = id
            self.stream = stream
            self.text = text
            self.t = t
        }
    }

    /// One read: lines after the cursor, the cursor to read on from, and whether the log ended.
    public struct Chunk: Sendable, Hashable, Codable {
        public var lines: [Line]
        public var next: String
        public var finished: Bool

        public init(lines: [Line], next: String, finished: Bool) {
            self.lines = lines
            self.next = next
            self.finished = finished
        }
    }

    public let redis: RedisClient
    public let keyPrefix: String
    public static let retention: Duration = .seconds(7 * 86_400)

    public init(redis: RedisClient, keyPrefix: String = "harrow") {
        self.redis = redis
        self.keyPrefix = keyPrefix
    }

    public func key(_ operation: UUID) -> String {
        "\(keyPrefix):oplog:{\(operation.uuidString.lowercased())}"
    }

    /// Appends lines (one round trip), with ids Redis chooses.
    public func append(_ lines: [(stream: String, text: String)], to operation: UUID) async throws {
        let now = Int64(Date().timeIntervalSince1970 * 1000)
        try await append(lines.map { Line(id: "*", stream: $0.stream, text: $0.text, t: now) }, to: operation)
    }

    /// Appends lines with the ids they carry (a writer that numbers its own lines keeps the
    /// same ids in the archive), or `*` for Redis to choose; one round trip.
    public func append(_ lines: [Line], to operation: UUID) async throws {
        guard !lines.isEmpty else { return }
        let items = lines.map { line in
            RedisPipelineItem.command(
                RedisCommand(
                    "XADD",
                    [
                        .string(key(operation)), .string(line.id), "stream", .string(line.stream), "text", .string(line.text), "t",
                        .int(Int(line.t)),
                    ])
            )
        }
        for reply in try await redis.pipeline(items) {
            if case .error(let message) = reply {
                throw RedisError(code: .serverError, command: "XADD", message: "the operation's log could not be written: \(message)")
            }
        }
    }

    /// The id of the log's last entry, "0" when it has none.
    public func lastID(_ operation: UUID) async throws -> String {
        let reply = try await redis.send("XREVRANGE", [.string(key(operation)), "+", "-", "COUNT", "1"])
        return reply.array?.first?.array?.first?.string ?? "0"
    }

    /// The key whose presence asks the runner of an operation to cancel it.
    public func cancelKey(_ operation: UUID) -> String {
        "\(keyPrefix):opcancel:{\(operation.uuidString.lowercased())}"
    }

    /// Asks whichever worker runs the operation to stop it (the key lives a day).
    public func requestCancel(_ operation: UUID) async throws {
        _ = try await redis.send("SET", [.string(cancelKey(operation)), "1", "EX", "86400"])
    }

    /// Whether a cancel of the operation was asked for.
    public func cancelRequested(_ operation: UUID) async throws -> Bool {
        (try await redis.send("EXISTS", [.string(cancelKey(operation))])).int == 1
    }

    /// Marks the log finished; it expires after ``retention``.
    public func finish(_ operation: UUID) async throws {
        _ = try await redis.pipeline([
            .command(RedisCommand("XADD", [.string(key(operation)), "*", "end", "1"])),
            .command(RedisCommand("PEXPIRE", [.string(key(operation)), .int(Int(Self.retention.components.seconds * 1000))])),
        ])
    }

    /// Up to `limit` lines after `after` (an entry id; "0" from the start).
    public func read(_ operation: UUID, after: String = "0", limit: Int = 1000) async throws -> Chunk {
        let reply = try await redis.send(
            "XRANGE", [.string(key(operation)), .string("(" + Self.validID(after)), "+", "COUNT", .int(limit)])
        return Self.chunk(reply.array ?? [], after: after)
    }

    /// Waits up to `block` for lines after the given cursors (one per operation) on the
    /// reader's connections (one per log on a Redis Cluster, where each log has a slot of its
    /// own); returns the chunks that have some, of at most `count` entries each.
    public func follow(_ cursors: [UUID: String], block: Duration, count: Int = 1000, reader: BlockingReader) async throws -> [UUID: Chunk]
    {
        guard !cursors.isEmpty else { return [:] }
        let operations = Array(cursors.keys)
        let found = try await reader.read(
            after: operations.map { (key($0), Self.validID(cursors[$0] ?? "0")) }, count: count, block: block)
        var chunks: [UUID: Chunk] = [:]
        for operation in operations {
            guard let entries = found[key(operation)] else { continue }
            chunks[operation] = Self.chunk(entries, after: cursors[operation] ?? "0")
        }
        return chunks
    }

    static func chunk(_ entries: [RESPValue], after: String) -> Chunk {
        var chunk = Chunk(lines: [], next: after, finished: false)
        for entry in entries {
            guard let pair = entry.array, pair.count == 2, let id = pair[0].string, let flat = pair[1].array else { continue }
            var fields: [String: String] = [:]
            var index = 0
            while index + 1 < flat.count {
                if let name = flat[index].string { fields[name] = flat[index + 1].string }
                index += 2
            }
            chunk.next = id
            if fields["end"] != nil {
                chunk.finished = true
            } else {
                chunk.lines.append(
                    Line(id: id, stream: fields["stream"] ?? "stdout", text: fields["text"] ?? "", t: Int64(fields["t"] ?? "") ?? 0))
            }
        }
        return chunk
    }

    /// A stream id as given, or "0" when it is not one (so a bad cursor reads from the start
    /// rather than reach Redis as an argument it rejects).
    static func validID(_ id: String) -> String {
        let parts = id.split(separator: "-", omittingEmptySubsequences: false)
        guard (1...2).contains(parts.count), parts.allSatisfy({ !$0.isEmpty && $0.allSatisfy(\.isNumber) && $0.count <= 20 }) else {
            return "0"
        }
        return id
    }
}
