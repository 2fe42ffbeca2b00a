import Foundation
import Logging
import Queue

/// The Redis that tests run against, and the clients and queues they use on it.
///
/// The server comes from `REDIS_URL` (default `redis://127.0.0.1:6379/0`; `scripts/test` points it
/// at a private server). Tests run in parallel on that one server, so each test works under names
/// of its own: ``uniqueQueueName(_:)`` for queues, and ``uniqueKeyPrefix(_:)`` (a
/// ``JobQueue/Options/keyPrefix``) when a test touches keys shared by all queues of a prefix
/// (the workers set, the queues set, leases). ``withJobQueue(_:options:configure:_:)`` does
/// both and deletes the test's keys afterwards.
public enum TestRedis {
    /// `REDIS_URL`, or the local default.
    public static var url: String {
        let value = ProcessInfo.processInfo.environment["REDIS_URL"] ?? ""
        return value.isEmpty ? "redis://127.0.0.1:6379/0" : value
    }

    /// Whether ``url`` names a Redis Cluster (`redis+cluster://`): `scripts/test` runs the queue
    /// suites against one too.
    public static var isCluster: Bool { url.hasPrefix("redis+cluster://") }

    /// Log level from `LOG_LEVEL` (`trace` … `critical`), `.warning` when unset or unknown.
    public static var logLevel: Logger.Level {
        ProcessInfo.processInfo.environment["LOG_LEVEL"]
            .flatMap { Logger.Level(rawValue: $0.lowercased()) } ?? .warning
    }

    /// A logger writing to standard error at ``logLevel``.
    public static func logger(_ label: String = "harrow.test") -> Logger {
        var logger = Logger(label: label, factory: StreamLogHandler.standardError(label:))
        logger.logLevel = logLevel
        return logger
    }

    /// The configuration for ``url``, adjusted by `configure`.
    public static func configuration(
        _ configure: (inout RedisConfiguration) -> Void = { _ in }
    ) throws -> RedisConfiguration {
        var configuration = try RedisConfiguration(url: url)
        configure(&configuration)
        return configuration
    }

    /// A client for ``url``. Close it when done (``withClient(configure:_:)`` does).
    public static func makeClient(
        configure: (inout RedisConfiguration) -> Void = { _ in }
    ) throws -> RedisClient {
        RedisClient(configuration: try configuration(configure), logger: logger("harrow.test.redis"))
    }

    /// A queue on `redis`, under `keyPrefix` when given (instead of `options.keyPrefix`).
    public static func makeQueue(
        redis: RedisClient, keyPrefix: String? = nil, options: JobQueue.Options = JobQueue.Options()
    ) -> JobQueue {
        var options = options
        if let keyPrefix { options.keyPrefix = keyPrefix }
        return JobQueue(redis: redis, options: options)
    }

    /// A queue name no other test uses: `t-<prefix>-<random hex>`.
    public static func uniqueQueueName(_ prefix: String) -> String {
        "t-\(prefix)-\(randomHex())"
    }

    /// A key prefix no other test uses: `harrow-t-<prefix>-<random hex>`.
    public static func uniqueKeyPrefix(_ prefix: String) -> String {
        "harrow-t-\(prefix)-\(randomHex())"
    }

    /// Runs `body` with a client for ``url`` and closes the client afterwards.
    public static func withClient<T>(
        configure: (inout RedisConfiguration) -> Void = { _ in },
        _ body: (RedisClient) async throws -> T
    ) async throws -> T {
        let client = try makeClient(configure: configure)
        do {
            let result = try await body(client)
            await client.close()
            return result
        } catch {
            await client.close()
            throw error
        }
    }

    /// Runs `body` with a queue under a key prefix of its own (see ``uniqueKeyPrefix(_:)``), then
    /// deletes every key under that prefix and closes the client, whether `body` succeeded or not.
    public static func withJobQueue<T>(
        _ label: String,
        options: JobQueue.Options = JobQueue.Options(),
        configure: (inout RedisConfiguration) -> Void = { _ in },
        _ body: (JobQueue) async throws -> T
    ) async throws -> T {
        try await withClient(configure: configure) { client in
            let queue = makeQueue(redis: client, keyPrefix: uniqueKeyPrefix(label), options: options)
            do {
                let result = try await body(queue)
                try await deleteKeys(prefix: queue.options.keyPrefix, on: client)
                return result
            } catch {
                _ = try? await deleteKeys(prefix: queue.options.keyPrefix, on: client)
                throw error
            }
        }
    }

    /// Deletes every key that starts with `prefix:` (and the key `prefix` itself). Returns how many.
    @discardableResult
    public static func deleteKeys(prefix: String, on redis: RedisClient) async throws -> Int {
        var deleted = try await redis.send("UNLINK", [.string(prefix)]).int ?? 0
        // On a cluster, every master in turn; one key per command (keys of different slots).
        let masters = try await redis.clusterMasters()
        for node in masters.isEmpty ? [redis.configuration.address] : masters {
            var cursor = "0"
            repeat {
                let scan = RedisCommand("SCAN", [.string(cursor), "MATCH", .string(globEscaped(prefix) + ":*"), "COUNT", 1000])
                let reply = try await redis.send(scan, toNode: node)
                guard let parts = reply.array, parts.count == 2, let next = parts[0].string, let keys = parts[1].array
                else { throw RedisError(code: .unexpectedReply, command: "SCAN", message: "unexpected SCAN reply") }
                cursor = next
                let names = keys.compactMap(\.string)
                if !names.isEmpty {
                    let replies = try await redis.pipeline(names.map { RedisCommand("UNLINK", [.string($0)]) })
                    deleted += replies.reduce(0) { $0 + ($1.int ?? 0) }
                }
            } while cursor != "0"
        }
        return deleted
    }

    /// Deletes the keys of `queue` under `prefix` and removes it from the known-queues set.
    public static func deleteQueueKeys(_ queue: String, prefix: String = "harrow", on redis: RedisClient) async throws {
        try await deleteKeys(prefix: "\(prefix):{\(queue)}", on: redis)
        try await redis.send("SREM", [.string("\(prefix):queues"), .string(queue)])
    }

    /// Random lowercase hex, 12 digits.
    public static func randomHex() -> String {
        let value = UInt64.random(in: 0..<(1 << 48))
        let hex = String(value, radix: 16)
        return String(repeating: "0", count: 12 - hex.count) + hex
    }

    private static func globEscaped(_ text: String) -> String {
        var escaped = ""
        for character in text {
            if "*?[]\\".contains(character) { escaped.append("\\") }
            escaped.append(character)
        }
        return escaped
    }
}
