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

    /// `replicasToConfirm` 1 makes every enqueue a durable one (`WAIT` for a replica).
    static func makeQueue(_ options: BenchOptions, poolSize: Int = 2, replicasToConfirm: Int = 0) throws -> JobQueue {
        var configuration = try RedisConfiguration(url: options.redisURL)
        configuration.poolSize = poolSize
        configuration.commandTimeout = .seconds(60)
        let redis = RedisClient(configuration: configuration, logger: logger())
        return JobQueue(redis: redis, options: JobQueue.Options(keyPrefix: options.keyPrefix, replicasToConfirm: replicasToConfirm))
    }

    /// `count` queue names: `base` alone for one queue on a single server; otherwise `base-0`,
    /// `base-1`, … and, on a cluster, chosen so that the queues' slots are spread evenly over the
    /// masters (three queues on three masters sit on three different ones).
    static func queueNames(_ count: Int, base: String, redis: RedisClient) async throws -> [String] {
        guard redis.isCluster else { return count == 1 ? [base] : (0..<count).map { "\(base)-\($0)" } }
        let masters = try await redis.clusterMasters()
        var used = Dictionary(uniqueKeysWithValues: masters.map { ($0, 0) })
        var names: [String] = []
        for index in 0..<10_000 where names.count < count {
            let name = "\(base)-\(index)"
            // Every key of a queue carries the hash tag `{name}`.
            guard let node = try await redis.clusterNode(forKey: "{\(name)}"), let uses = used[node],
                uses == used.values.min()
            else { continue }
            used[node] = uses + 1
            names.append(name)
        }
        guard names.count == count else { throw BenchError("found no \(count) queue names spread over the masters") }
        return names
    }

    /// The Redis servers whose counters a scenario reads: on a cluster every master, those
    /// serving `queues` first in their order (shard 1 serves the first queue); `[]` for a single
    /// server.
    static func redisNodes(serving queues: [String], redis: RedisClient) async throws -> [RedisConfiguration.Address] {
        guard redis.isCluster else { return [] }
        var nodes: [RedisConfiguration.Address] = []
        for queue in queues {
            if let node = try await redis.clusterNode(forKey: "{\(queue)}"), !nodes.contains(node) { nodes.append(node) }
        }
        for node in try await redis.clusterMasters() where !nodes.contains(node) { nodes.append(node) }
        return nodes
    }

    /// Sends a keyless command to each of `nodes` (to the server when `[]`).
    @discardableResult
    static func sendToEach(_ command: RedisCommand, nodes: [RedisConfiguration.Address], redis: RedisClient) async throws -> [RESPValue] {
        guard !nodes.isEmpty else { return [try await redis.send(command)] }
        var replies: [RESPValue] = []
        for node in nodes { replies.append(try await redis.send(command, toNode: node)) }
        return replies
    }

    /// The jobs left in `queues`' streams (acknowledged entries are deleted): `XLEN` each.
    static func streamLength(_ queue: JobQueue, _ queues: [String]) async throws -> Int {
        let replies = try await queue.redis.pipeline(queues.map { RedisCommand("XLEN", [.string(queue.keys($0).stream)]) })
        return try replies.reduce(0) { total, reply in
            guard let length = reply.int else { throw BenchError("XLEN answered \(reply)") }
            return total + length
        }
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

    /// Deletes every key of the benchmark's prefix (on every master of a cluster, key by key:
    /// the keys of one SCAN sit in different slots).
    static func reset(_ queue: JobQueue) async throws {
        let redis = queue.redis
        // A single server's `send(_:toNode:)` goes to the server.
        let nodes = redis.isCluster ? try await redis.clusterMasters() : [redis.configuration.address]
        for node in nodes {
            var cursor = "0"
            repeat {
                let scan = RedisCommand("SCAN", [.string(cursor), "MATCH", .string(queue.options.keyPrefix + ":*"), "COUNT", 1000])
                let reply = try await redis.send(scan, toNode: node)
                guard let parts = reply.array, parts.count == 2, let next = parts[0].string else { break }
                cursor = next
                let keys = (parts[1].array ?? []).compactMap(\.string)
                if !keys.isEmpty {
                    if redis.isCluster {
                        try await redis.pipeline(keys.map { RedisCommand("DEL", [.string($0)]) })
                    } else {
                        try await redis.send("DEL", keys.map { .string($0) })
                    }
                }
            } while cursor != "0"
        }
    }

    /// Waits until `names` have nothing ready or pending (the workers are done). Polls: this is
    /// the harness watching from outside, not the queue.
    static func waitUntilEmpty(_ queue: JobQueue, _ names: [String], poll: Duration = .milliseconds(20)) async throws {
        while true {
            let stats = try await queue.stats(queues: names)
            if stats.allSatisfy({ $0.ready == 0 && $0.pending == 0 }) { return }
            try await Task.sleep(for: poll)
        }
    }

    /// Redis's own CPU time (user + system, with children) and commands executed so far: of the
    /// server, or summed over the masters of a cluster, with each master's CPU in `shards`.
    struct RedisCounters {
        var cpuMicroseconds: Double
        var commands: Int
        /// Each master's CPU time, in the order of the nodes read (`[]` for a single server).
        var shards: [Double] = []

        /// Reads the server (`nodes` empty) or each of `nodes` (see ``redisNodes(serving:redis:)``).
        static func read(_ redis: RedisClient, nodes: [RedisConfiguration.Address] = []) async throws -> RedisCounters {
            let cpus = try await sendToEach(RedisCommand("INFO", ["cpu"]), nodes: nodes, redis: redis).map {
                cpuMicroseconds($0.string ?? "")
            }
            let stats = try await sendToEach(RedisCommand("INFO", ["commandstats"]), nodes: nodes, redis: redis)
            var commands = 0
            for info in stats {
                for line in (info.string ?? "").split(whereSeparator: \.isNewline)
                where line.hasPrefix("cmdstat_") && !line.hasPrefix("cmdstat_info:") {
                    if let range = line.range(of: "calls="), let end = line[range.upperBound...].firstIndex(of: ",") {
                        commands += Int(line[range.upperBound..<end]) ?? 0
                    }
                }
            }
            return RedisCounters(cpuMicroseconds: cpus.reduce(0, +), commands: commands, shards: nodes.isEmpty ? [] : cpus)
        }

        /// The CPU time of one `INFO cpu`, in µs (without the `_main_thread` lines, which count
        /// part of the same time again).
        private static func cpuMicroseconds(_ info: String) -> Double {
            var total = 0.0
            for line in info.split(whereSeparator: \.isNewline) {
                let parts = line.split(separator: ":")
                guard parts.count == 2, parts[0].hasPrefix("used_cpu_"), !parts[0].hasSuffix("_main_thread") else { continue }
                total += Double(parts[1].trimmingCharacters(in: .whitespaces)) ?? 0
            }
            return total * 1_000_000
        }

        /// `redis_cpu_us_per_job`, `redis_cmds_per_job` and, on a cluster,
        /// `redis_cpu_us_per_job_shard1`, … over `jobs`, from `before` to `after`.
        static func fields(_ before: RedisCounters, _ after: RedisCounters, jobs: Int) -> [(String, String)] {
            var fields = [
                ("redis_cpu_us_per_job", format((after.cpuMicroseconds - before.cpuMicroseconds) / Double(jobs), decimals: 2)),
                ("redis_cmds_per_job", format(Double(after.commands - before.commands) / Double(jobs), decimals: 3)),
            ]
            for (index, (start, end)) in zip(before.shards, after.shards).enumerated() {
                fields.append(("redis_cpu_us_per_job_shard\(index + 1)", format((end - start) / Double(jobs), decimals: 2)))
            }
            return fields
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
