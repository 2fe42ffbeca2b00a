import ArgumentParser
import Foundation
import Logging
import NIOCore
import Queue
import Store

/// Options every subcommand takes.
struct GlobalOptions: ParsableArguments {
    @Option(
        name: .customLong("redis-url"),
        help: "redis://[user:password@]host:port/db, unix:///path or redis+cluster://host:port[,host:port…]. Env: REDIS_URL.")
    var redisURL: String = ProcessInfo.processInfo.environment["REDIS_URL"] ?? "redis://127.0.0.1:6379/0"

    @Option(help: "Key prefix of every Redis key. Env: HARROW_KEY_PREFIX.")
    var keyPrefix: String = ProcessInfo.processInfo.environment["HARROW_KEY_PREFIX"] ?? "harrow"

    @Option(
        name: .customLong("database-url"),
        help: "postgres://… to also show the outbox of the Postgres store. Env: DATABASE_URL.")
    var databaseURLOption: String?

    /// `--database-url`, else `DATABASE_URL`.
    var databaseURL: String? {
        databaseURLOption ?? ProcessInfo.processInfo.environment["DATABASE_URL"].flatMap { $0.isEmpty ? nil : $0 }
    }

    @Flag(help: "Print JSON instead of tables.")
    var json = false
}

/// A connected queue for one command, and the helpers every command uses to print and fail.
struct InspectContext {
    let queue: JobQueue
    let options: GlobalOptions

    /// Connects, runs `body`, closes; any error becomes a one-line message and exit status 1.
    static func run(_ options: GlobalOptions, _ body: (InspectContext) async throws -> Void) async throws {
        var logger = Logger(label: "harrow.queue-inspect")
        logger.logLevel = .critical
        let redis: RedisClient
        do {
            var configuration = try RedisConfiguration(url: options.redisURL)
            configuration.connectTimeout = .seconds(3)
            configuration.poolSize = 1
            redis = RedisClient(configuration: configuration, logger: logger)
        } catch {
            fail("\(error)")
        }
        let context = InspectContext(
            queue: JobQueue(redis: redis, options: JobQueue.Options(keyPrefix: options.keyPrefix)), options: options)
        do {
            try await body(context)
            await redis.close()
        } catch let error as ExitCode {
            await redis.close()
            throw error
        } catch {
            await redis.close()
            fail(Self.message(for: error))
        }
    }

    static func message(for error: any Error) -> String {
        if let error = error as? RedisError, error.code == .unreachable {
            return "Redis is unreachable: \(error.message)"
        }
        return "\(error)"
    }

    static func fail(_ message: String) -> Never {
        FileHandle.standardError.write(Data("queue-inspect: \(message)\n".utf8))
        Foundation.exit(1)
    }

    /// The outbox's figures, or `nil` when no database is configured.
    func outboxStats() async throws -> Outbox.Stats? {
        guard let url = options.databaseURL else { return nil }
        var configuration = try DatabaseConfiguration(url: url)
        configuration.maximumConnections = 1
        var logger = Logger(label: "harrow.queue-inspect")
        logger.logLevel = .critical
        let database = configuration
        let quiet = logger
        return try await withDeadline(seconds: 10, "Postgres at \(configuration.redactedDescription)") {
            try await Database.withClient(database, logger: quiet) { client in
                try await Outbox.stats(client: client, logger: quiet)
            }
        }
    }

    /// Fails unless `name` is a queue Redis knows.
    func requireKnown(_ name: String) async throws {
        try QueueName.validate(name)
        let known = try await queue.knownQueues()
        guard known.contains(name) else {
            let list = known.isEmpty ? "none" : known.joined(separator: ", ")
            Self.fail("unknown queue \(name) (known queues: \(list))")
        }
    }

    func printJSON(_ value: Any) {
        let data = (try? JSONSerialization.data(withJSONObject: value, options: [.prettyPrinted, .sortedKeys])) ?? Data("null".utf8)
        print(String(decoding: data, as: UTF8.self))
    }
}

/// Prints rows as an aligned table under a header.
func printTable(_ header: [String], _ rows: [[String]]) {
    var widths = header.map(\.count)
    for row in rows {
        for (index, cell) in row.enumerated() where index < widths.count {
            widths[index] = max(widths[index], cell.count)
        }
    }
    func line(_ cells: [String]) -> String {
        cells.enumerated().map { index, cell in
            index == cells.count - 1 ? cell : cell.padding(toLength: widths[index], withPad: " ", startingAt: 0)
        }.joined(separator: "  ")
    }
    print(line(header))
    for row in rows { print(line(row)) }
}

func formatMilliseconds(_ ms: Int?) -> String {
    guard let ms else { return "-" }
    if ms < 1000 { return "\(ms)ms" }
    if ms < 60_000 { return String(format: "%.1fs", Double(ms) / 1000) }
    if ms < 3_600_000 { return String(format: "%.1fm", Double(ms) / 60_000) }
    return String(format: "%.1fh", Double(ms) / 3_600_000)
}

func formatTime(_ ms: Int64) -> String {
    guard ms > 0 else { return "-" }
    let formatter = ISO8601DateFormatter()
    return formatter.string(from: Date(timeIntervalSince1970: Double(ms) / 1000))
}

/// Runs `body`, failing with "`what` did not answer within `seconds` s" when it takes longer
/// (postgres-nio's pool retries an unreachable server for a long time).
func withDeadline<T: Sendable>(seconds: Int, _ what: String, _ body: @escaping @Sendable () async throws -> T) async throws -> T {
    try await withThrowingTaskGroup(of: T?.self) { group in
        group.addTask { try await body() }
        group.addTask {
            try await Task.sleep(for: .seconds(seconds))
            return nil
        }
        defer { group.cancelAll() }
        guard let first = try await group.next(), let value = first else {
            throw ValidationError("\(what) did not answer within \(seconds) s")
        }
        return value
    }
}
