import Foundation
import Logging
import NIOCore
import Queue

#if canImport(Glibc)
    import Glibc
#endif

/// Shared pieces of the scenarios: a quiet logger, Redis counters, process figures.
enum BenchSupport {
    static func logger() -> Logger {
        var logger = Logger(label: "harrow.bench")
        logger.logLevel = .error
        return logger
    }

    static func makeQueue(_ options: BenchOptions, poolSize: Int = 2) throws -> JobQueue {
        var configuration = try RedisConfiguration(url: options.redisURL)
        configuration.poolSize = poolSize
        configuration.commandTimeout = .seconds(60)
        let redis = RedisClient(configuration: configuration, logger: logger())
        return JobQueue(redis: redis, options: JobQueue.Options(keyPrefix: options.keyPrefix))
    }

    /// Queues `count` `noop` jobs in batches of 1,000.
    static func enqueueNoops(_ count: Int, queue name: String, on queue: JobQueue) async throws {
        let request = EnqueueRequest(type: "noop", queue: name, payload: ByteBuffer(string: "{}"))
        var remaining = count
        while remaining > 0 {
            let batch = min(1000, remaining)
            try await queue.enqueue(batch: Array(repeating: request, count: batch))
            remaining -= batch
        }
    }

    /// Deletes every key of the benchmark's prefix.
    static func reset(_ queue: JobQueue) async throws {
        var cursor = "0"
        repeat {
            let reply = try await queue.redis.send(
                "SCAN", [.string(cursor), "MATCH", .string(queue.options.keyPrefix + ":*"), "COUNT", 1000])
            guard let parts = reply.array, parts.count == 2, let next = parts[0].string else { break }
            cursor = next
            let keys = (parts[1].array ?? []).compactMap(\.string)
            if !keys.isEmpty { try await queue.redis.send("DEL", keys.map { .string($0) }) }
        } while cursor != "0"
    }

    /// Waits until `name` has nothing ready or pending (the workers are done). Polls: this is
    /// the harness watching from outside, not the queue.
    static func waitUntilEmpty(_ queue: JobQueue, _ name: String, poll: Duration = .milliseconds(20)) async throws {
        while true {
            let stats = try await queue.stats(queues: [name])[0]
            if stats.ready == 0 && stats.pending == 0 { return }
            try await Task.sleep(for: poll)
        }
    }

    /// Redis's own CPU time (user + system, with children) and commands executed so far.
    struct RedisCounters {
        var cpuMicroseconds: Double
        var commands: Int

        static func read(_ redis: RedisClient) async throws -> RedisCounters {
            let cpu = try await redis.send("INFO", ["cpu"]).string ?? ""
            var total = 0.0
            for line in cpu.split(whereSeparator: \.isNewline) {
                let parts = line.split(separator: ":")
                guard parts.count == 2, parts[0].hasPrefix("used_cpu_"), !parts[0].hasSuffix("_main_thread") else { continue }
                total += Double(parts[1].trimmingCharacters(in: .whitespaces)) ?? 0
            }
            let stats = try await redis.send("INFO", ["commandstats"]).string ?? ""
            var commands = 0
            for line in stats.split(whereSeparator: \.isNewline) where line.hasPrefix("cmdstat_") && !line.hasPrefix("cmdstat_info:") {
                if let range = line.range(of: "calls="), let end = line[range.upperBound...].firstIndex(of: ",") {
                    commands += Int(line[range.upperBound..<end]) ?? 0
                }
            }
            return RedisCounters(cpuMicroseconds: total * 1_000_000, commands: commands)
        }
    }

    static func wallNanoseconds() -> Int64 {
        var time = timespec()
        clock_gettime(CLOCK_REALTIME, &time)
        return Int64(time.tv_sec) * 1_000_000_000 + Int64(time.tv_nsec)
    }

    /// Prints one result line: `scenario=… key=value …`.
    static func emit(_ scenario: String, _ fields: [(String, String)]) {
        writeLine((["scenario=\(scenario)"] + fields.map { "\($0.0)=\($0.1)" }).joined(separator: " "))
    }

    /// Writes a line to standard output at once (no buffering: a parent process waits for it).
    static func writeLine(_ line: String) {
        FileHandle.standardOutput.write(Data((line + "\n").utf8))
    }

    static func format(_ value: Double, decimals: Int = 1) -> String {
        String(format: "%.\(decimals)f", value)
    }
}
