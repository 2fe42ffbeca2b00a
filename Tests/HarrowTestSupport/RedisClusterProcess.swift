import Foundation
import Logging
import NIOCore
import Queue

/// A private Redis Cluster for tests: three masters, each with one replica, every node a
/// ``RedisServerProcess`` on free loopback ports (client and cluster bus), joined with
/// `redis-cli --cluster create`. Node timeout 1 s, so a killed master's replica takes over
/// within a few seconds.
public final class RedisClusterProcess: Sendable {
    /// Every node, masters first as `redis-cli` assigned them at creation.
    public let nodes: [RedisServerProcess]

    private init(nodes: [RedisServerProcess]) {
        self.nodes = nodes
    }

    /// Starts a cluster, runs `body`, and shuts every node down, whatever happens.
    public static func withCluster<T>(_ body: (RedisClusterProcess) async throws -> T) async throws -> T {
        let cluster = try await start()
        do {
            let result = try await body(cluster)
            await cluster.shutdown()
            return result
        } catch {
            await cluster.shutdown()
            throw error
        }
    }

    /// Starts six nodes, creates the cluster and waits until every slot is served and every
    /// replica is in sync.
    public static func start() async throws -> RedisClusterProcess {
        var nodes: [RedisServerProcess] = []
        do {
            for _ in 0..<6 {
                let options = RedisServerProcess.Options(extraArguments: [
                    "--cluster-enabled", "yes", "--cluster-config-file", "nodes.conf", "--cluster-node-timeout", "1000",
                    "--cluster-port", String(try LoopbackPort.unused()), "--cluster-require-full-coverage", "no",
                ])
                nodes.append(try await RedisServerProcess.start(options))
            }
            let cluster = RedisClusterProcess(nodes: nodes)
            try await cluster.create()
            try await cluster.waitUntilHealthy()
            return cluster
        } catch {
            for node in nodes { await node.shutdown() }
            throw error
        }
    }

    /// `redis+cluster://` with every node as a seed.
    public var url: String {
        "redis+cluster://" + nodes.map { "127.0.0.1:\($0.port)" }.joined(separator: ",")
    }

    /// A configuration for this cluster, quick to give up and to reconnect (tests kill nodes).
    public func configuration(_ configure: (inout RedisConfiguration) -> Void = { _ in }) throws -> RedisConfiguration {
        var configuration = try RedisConfiguration(url: url)
        configuration.connectTimeout = .seconds(2)
        configuration.commandTimeout = .seconds(5)
        configuration.poolSize = 1
        configuration.reconnectDelay = .milliseconds(20)
        configuration.maxReconnectDelay = .milliseconds(200)
        configure(&configuration)
        return configuration
    }

    /// The first `count` of `key(0)`, `key(1)`, … whose slots sit on different masters.
    public static func keysOnDistinctMasters(
        _ count: Int, client: RedisClient, _ key: (Int) -> String
    ) async throws -> [String] {
        var chosen: [String] = []
        var nodes: Set<RedisConfiguration.Address> = []
        for index in 0..<10_000 where chosen.count < count {
            if let node = try await client.clusterNode(forKey: key(index)), nodes.insert(node).inserted { chosen.append(key(index)) }
        }
        guard chosen.count == count else { throw RedisServerProcess.Failure(message: "fewer than \(count) masters") }
        return chosen
    }

    /// The node that serves `key`'s slot as a master now.
    public func master(serving key: String) async throws -> RedisServerProcess {
        let slot = ClusterSlot.of(key)
        for node in nodes where node.isRunning {
            let client = RedisClient(configuration: node.configuration(), logger: Logger(label: "harrow.test.cluster"))
            defer { Task { await client.close() } }
            guard let reply = try? await client.send("CLUSTER", ["SLOTS"]), let ranges = reply.array else { continue }
            for range in ranges {
                guard let parts = range.array, parts.count >= 3, let start = parts[0].int, let end = parts[1].int,
                    (start...end).contains(slot), let port = parts[2].array?[1].int,
                    let master = nodes.first(where: { $0.port == port })
                else { continue }
                return master
            }
        }
        throw RedisServerProcess.Failure(message: "no node knows who serves slot \(slot)")
    }

    /// The replica of `master` (from its `INFO replication`).
    public func replica(of master: RedisServerProcess) async throws -> RedisServerProcess {
        let client = RedisClient(configuration: master.configuration(), logger: Logger(label: "harrow.test.cluster"))
        defer { Task { await client.close() } }
        let info = try await client.send("INFO", ["replication"]).string ?? ""
        for line in info.split(whereSeparator: \.isNewline) where line.hasPrefix("slave0:") {
            for field in line.dropFirst("slave0:".count).split(separator: ",") where field.hasPrefix("port=") {
                if let port = Int(field.dropFirst("port=".count)), let node = nodes.first(where: { $0.port == port }) { return node }
            }
        }
        throw RedisServerProcess.Failure(message: "master \(master.port) has no replica")
    }

    /// Waits until every running node says the cluster is ok and every running replica's link
    /// to its master is up.
    public func waitUntilHealthy(timeout: Duration = .seconds(30)) async throws {
        let deadline = ContinuousClock.now + timeout
        var last = ""
        while ContinuousClock.now < deadline {
            var healthy = true
            for node in nodes where node.isRunning {
                let client = RedisClient(configuration: node.configuration(), logger: Logger(label: "harrow.test.cluster"))
                let info = (try? await client.send("CLUSTER", ["INFO"]).string) ?? ""
                let replication = (try? await client.send("INFO", ["replication"]).string) ?? ""
                await client.close()
                if !info.contains("cluster_state:ok")
                    || (replication.contains("role:slave") && !replication.contains("master_link_status:up"))
                {
                    healthy = false
                    last =
                        "node \(node.port): \(info.split(separator: "\r\n").first ?? "no answer"); \(replication.contains("role:slave") ? "replica" : "master")"
                }
            }
            if healthy { return }
            try await Task.sleep(for: .milliseconds(100))
        }
        throw RedisServerProcess.Failure(message: "the cluster did not become healthy: \(last)")
    }

    /// Stops every node and removes their dirs.
    public func shutdown() async {
        for node in nodes { await node.shutdown() }
    }

    private func create() async throws {
        let process = Process()
        process.executableURL = URL(fileURLWithPath: Self.redisCLI())
        process.arguments =
            ["--cluster", "create"] + nodes.map { "127.0.0.1:\($0.port)" } + ["--cluster-replicas", "1", "--cluster-yes"]
        let output = Pipe()
        process.standardOutput = output
        process.standardError = output
        process.standardInput = FileHandle.nullDevice
        try process.run()
        // Polled rather than waited for: a blocking wait would hold one of the few threads
        // every test shares (redis-cli's few kilobytes of output fit the pipe meanwhile).
        while process.isRunning { try await Task.sleep(for: .milliseconds(50)) }
        let text = String(decoding: output.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
        guard process.terminationStatus == 0 else {
            throw RedisServerProcess.Failure(message: "redis-cli --cluster create failed: \(text)")
        }
    }

    /// `redis-cli` next to the server binary tests use, else from `PATH`.
    private static func redisCLI() -> String {
        if let server = ProcessInfo.processInfo.environment["HARROW_TEST_REDIS_SERVER"], !server.isEmpty {
            let sibling = URL(fileURLWithPath: server).deletingLastPathComponent().appendingPathComponent("redis-cli").path
            if FileManager.default.isExecutableFile(atPath: sibling) { return sibling }
        }
        return "/usr/bin/redis-cli"
    }
}
