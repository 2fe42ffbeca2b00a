import Foundation
import HarrowTestSupport
import NIOCore
import Queue
import Testing
import WorkerPool

/// Workers on a Redis Cluster (issue 18): queues on different masters, and a master killed
/// while jobs flow.
@Suite struct ClusterWorkerTests {
    struct Tick: Job {
        static let name = "tick"
        static let queue = "ticks"
    }

    /// Queue names whose slots sit on `count` different masters.
    static func queuesOnDistinctMasters(_ count: Int, client: RedisClient) async throws -> [String] {
        try await RedisClusterProcess.keysOnDistinctMasters(count, client: client) { "{cq\($0)}" }.map {
            String($0.dropFirst().dropLast())
        }
    }

    /// A private cluster, a client of it, and a queue under a prefix of its own with three
    /// queues whose slots sit on three masters, prepared.
    static func withThreeQueues(
        _ label: String, _ body: (RedisClusterProcess, RedisClient, JobQueue, [String]) async throws -> Void
    ) async throws {
        try await RedisClusterProcess.withCluster { cluster in
            let client = RedisClient(configuration: try cluster.configuration(), logger: TestRedis.logger("harrow.test.cluster"))
            defer { Task { await client.close() } }
            let queue = JobQueue(redis: client, options: JobQueue.Options(keyPrefix: TestRedis.uniqueKeyPrefix(label)))
            let names = try await queuesOnDistinctMasters(3, client: client)
            try await queue.prepare(queues: names)
            try await body(cluster, client, queue, names)
        }
    }

    static func registry(_ recorder: RunRecorder) throws -> JobRegistry {
        var registry = JobRegistry()
        try registry.register(Tick.self) { _, context in recorder.record(context) }
        return registry
    }

    /// The "done when", in process: one worker reading three queues whose slots sit on
    /// three masters drains jobs added with plain XADD, each once.
    @Test func aWorkerDrainsQueuesOnThreeMasters() async throws {
        try await Self.withThreeQueues("cluster-drain") { cluster, client, queue, names in
            let recorder = RunRecorder()
            let selection = QueueSelection(entries: names.map { QueueSelection.Entry(name: $0) }, weighted: false)
            try await withWorker(queue: queue, registry: try Self.registry(recorder), options: .fast(selection)) { _ in
                for name in names {
                    _ = try await client.pipeline(
                        (0..<100).map { _ in
                            RedisCommand("XADD", [.string(queue.keys(name).stream), "*", "type", "tick", "payload", "{}"])
                        })
                }
                try await eventually("every job ran", timeout: .seconds(30)) { recorder.count >= 300 }
                for name in names { try await queue.waitUntilDrained(name, timeout: .seconds(10)) }
                // Later jobs wake the worker blocked on three masters at once.
                for name in names.reversed() {
                    try await Task.sleep(for: .milliseconds(300))
                    try await client.send("XADD", [.string(queue.keys(name).stream), "*", "type", "tick", "payload", "{}"])
                    try await eventually("a job on \(name) ran", timeout: .seconds(10)) { recorder.runs(queue: name).count == 101 }
                }
            }
            #expect(recorder.count == 303)
            #expect(Set(recorder.runs.map(\.id)).count == 303, "a job ran twice")
            for name in names { #expect(try await queue.stats(name).dead == 0) }
        }
    }

    /// A master killed with SIGKILL while jobs are enqueued and run: its replica takes over, the
    /// client finds it, and every job whose enqueue had reached the replica (WAIT) runs; the
    /// rest is what asynchronous replication may lose, and none is here because enqueues pause
    /// around the kill.
    @Test func aMasterKilledMidFlowIsReplacedByItsReplica() async throws {
        try await Self.withThreeQueues("cluster-failover") { cluster, client, queue, names in
            let recorder = RunRecorder()
            let selection = QueueSelection(entries: names.map { QueueSelection.Entry(name: $0) }, weighted: false)
            var enqueued: [String] = []
            func enqueue(_ count: Int) async throws {
                for index in 0..<count {
                    let id = JobID.make()
                    let name = names[index % names.count]
                    try await eventually("enqueued on \(name)", timeout: .seconds(30)) {
                        try await queue.enqueue(
                            EnqueueRequest(type: "tick", queue: name, payload: ByteBuffer(string: "{}"), options: EnqueueOptions(id: id)))
                        return true
                    }
                    enqueued.append(id)
                }
            }
            let options = Worker.Options.fast(selection, deadWorkerAfter: .seconds(15))
            try await withWorker(queue: queue, registry: try Self.registry(recorder), options: options) { _ in
                try await enqueue(150)
                let victim = try await cluster.master(serving: "{\(names[1])}")
                // What the victim acknowledged has reached its replica.
                _ = try await client.send(RedisCommand("WAIT", [1, 5000]), toNode: .tcp(host: "127.0.0.1", port: victim.port))
                try await victim.kill()
                try await enqueue(150)
                try await eventually("every job ran", timeout: .seconds(60)) {
                    Set(recorder.runs.map(\.id)).isSuperset(of: enqueued)
                }
                try await cluster.waitUntilHealthy()
                for name in names { try await queue.waitUntilDrained(name, timeout: .seconds(30)) }
            }
            let runs = recorder.runs.map(\.id)
            let twice = runs.count - Set(runs).count
            // A job whose acknowledgement died with the master runs again (redelivery), no more.
            #expect(twice <= 20, "\(twice) jobs ran twice")
            #expect(Set(runs) == Set(enqueued))
        }
    }

    /// A master and its replica both dead: that queue is out of reach, and the worker goes on
    /// serving its other queues (the attacker review found every fetch, blocking read and
    /// heartbeat failing as a whole for one dead master).
    @Test func aWorkerServesItsOtherQueuesWhileOnesMasterIsDown() async throws {
        try await Self.withThreeQueues("cluster-partial") { cluster, client, queue, names in
            let recorder = RunRecorder()
            let selection = QueueSelection(entries: names.map { QueueSelection.Entry(name: $0) }, weighted: false)
            try await withWorker(
                queue: queue, registry: try Self.registry(recorder), options: .fast(selection, deadWorkerAfter: .seconds(30))
            ) { _ in
                let dead = try await cluster.master(serving: "{\(names[1])}")
                try await cluster.replica(of: dead).kill()
                try await dead.kill()
                for name in [names[0], names[2]] {
                    _ = try await client.pipeline(
                        (0..<50).map { _ in RedisCommand("XADD", [.string(queue.keys(name).stream), "*", "type", "tick", "payload", "{}"]) }
                    )
                }
                try await eventually("the live masters' jobs ran", timeout: .seconds(30)) {
                    recorder.runs(queue: names[0]).count == 50 && recorder.runs(queue: names[2]).count == 50
                }
            }
        }
    }

    /// The "done when" with the real binary: `worker --queues=a,b,c` and a
    /// `redis+cluster://` URL drains `noop` jobs added with plain XADD to three queues on three
    /// masters, and stops cleanly on SIGTERM.
    @Test func theWorkerBinaryDrainsQueuesOnThreeMastersOfACluster() async throws {
        try await RedisClusterProcess.withCluster { cluster in
            let client = RedisClient(configuration: try cluster.configuration(), logger: TestRedis.logger("harrow.test.cluster"))
            defer { Task { await client.close() } }
            let prefix = TestRedis.uniqueKeyPrefix("cluster-binary")
            let queue = TestRedis.makeQueue(redis: client, keyPrefix: prefix)
            let names = try await Self.queuesOnDistinctMasters(3, client: client)
            for name in names {
                _ = try await client.pipeline(
                    (0..<500).map { _ in RedisCommand("XADD", [.string(queue.keys(name).stream), "*", "type", "noop", "payload", "{}"]) })
            }
            let worker = try WorkerProcess(queues: names.joined(separator: ","), redisURL: cluster.url, keyPrefix: prefix)
            defer { if worker.isRunning { worker.signal(SIGKILL) } }
            for name in names {
                try await eventually("\(name) drained: \(worker.log().suffix(2000))", timeout: .seconds(60)) {
                    let stats = try await queue.stats(name)
                    return try await client.send("XLEN", [.string(queue.keys(name).stream)]).int == 0 && stats.pending == 0
                }
                #expect(try await queue.stats(name).dead == 0)
            }
            worker.signal(SIGTERM)
            #expect(try await worker.waitForExit(timeout: .seconds(30)) == 0)
        }
    }
}
