import HarrowTestSupport
import Logging
import NIOCore
import Testing

@testable import Queue

/// How commands find their node in a Redis Cluster: slots, URLs, redirects, and a client
/// against a real three-master cluster.
@Suite struct ClusterRoutingTests {
    @Test func slotsAreCRC16OfTheHashTag() {
        // The values the Redis Cluster specification gives.
        #expect(ClusterSlot.of("123456789") == 0x31C3)
        #expect(ClusterSlot.of("foo") == 12182)
        #expect(ClusterSlot.of("{user1000}.following") == ClusterSlot.of("{user1000}.followers"))
        #expect(ClusterSlot.of("foo{}{bar}") == ClusterSlot.of("foo{}{bar}"))
        #expect(ClusterSlot.of("foo{}{bar}") != ClusterSlot.of("bar"), "an empty tag hashes the whole key")
        #expect(ClusterSlot.of("foo{{bar}}zap") == ClusterSlot.of("{bar"))
        // A queue's keys share its slot.
        let keys = QueueKeys(prefix: "harrow", queue: "mail")
        #expect(Set([keys.stream, keys.delayed, keys.dead, keys.paused, keys.job("x"), keys.unique("k")].map(ClusterSlot.of)).count == 1)
    }

    @Test func aClusterURLNamesItsSeeds() throws {
        let configuration = try RedisConfiguration(url: "redis+cluster://user:p%40ss@10.0.0.1:7000,10.0.0.2,[::1]:7002")
        #expect(configuration.isCluster)
        #expect(
            configuration.clusterSeeds == [
                .tcp(host: "10.0.0.1", port: 7000), .tcp(host: "10.0.0.2", port: 6379), .tcp(host: "::1", port: 7002),
            ])
        #expect(configuration.username == "user" && configuration.password == "p@ss")
        #expect(configuration.redactedDescription == "redis+cluster://10.0.0.1:7000,10.0.0.2:6379,[::1]:7002")
        #expect(throws: RedisError.self) { try RedisConfiguration(url: "redis+cluster://a:1/2") }
        #expect(throws: RedisError.self) { try RedisConfiguration(url: "redis+cluster://a:1,,b:2") }
        #expect(throws: RedisError.self) { try RedisConfiguration(url: "redis+cluster://a:99999") }
        #expect(try RedisConfiguration(url: "redis://a:1").isCluster == false)
    }

    @Test func redirectsAreParsed() {
        let node = RedisConfiguration.Address.tcp(host: "127.0.0.1", port: 7000)
        #expect(Redirect("MOVED 3999 127.0.0.1:6381", from: node) == .moved(slot: 3999, to: .tcp(host: "127.0.0.1", port: 6381)))
        #expect(Redirect("ASK 3999 10.0.0.9:6381", from: node) == .ask(to: .tcp(host: "10.0.0.9", port: 6381)))
        #expect(Redirect("MOVED 3999 :6380", from: node) == .moved(slot: 3999, to: .tcp(host: "127.0.0.1", port: 6380)))
        #expect(Redirect("TRYAGAIN Multiple keys request during rehashing of slot", from: node) == .tryAgain)
        #expect(Redirect("MOVED 99999 127.0.0.1:6381", from: node) == nil)
        #expect(Redirect("ERR unknown command", from: node) == nil)
        #expect(Redirect("MOVED abc", from: node) == nil)
    }

    @Test func commandsAreRoutedByTheirFirstKey() {
        #expect(RedisCommand("XADD", ["k", "*", "a", "b"]).routingKey == "k")
        #expect(RedisCommand("EVALSHA", ["sha", 2, "k1", "k2", "arg"]).routingKey == "k1")
        #expect(RedisCommand("EVALSHA", ["sha", 0, "arg"]).routingKey == nil)
        #expect(RedisCommand("XREADGROUP", ["GROUP", "g", "c", "COUNT", 1, "STREAMS", "s", ">"]).routingKey == "s")
        #expect(RedisCommand("XINFO", ["GROUPS", "s"]).routingKey == "s")
        #expect(RedisCommand("xgroup", ["CREATE", "s", "g", "0"]).routingKey == "s")
        #expect(RedisCommand("PING").routingKey == nil)
        #expect(RedisCommand("CLUSTER", ["SHARDS"]).routingKey == nil)
        // A transaction goes where its first key does, as a whole.
        let transaction: [RedisPipelineItem] = [
            .command(RedisCommand("PING")), .command(RedisCommand("MULTI")), .command(RedisCommand("INCR", ["a"])),
            .command(RedisCommand("INCR", ["b"])), .command(RedisCommand("EXEC")), .command(RedisCommand("GET", ["c"])),
        ]
        #expect(ClusterRouter.routingKeys(of: transaction) == [nil, "a", "a", "a", "a", "c"])
    }

    /// Commands, pipelines spanning every master, scripts and a batch enqueue over a real cluster;
    /// then a slot moved by hand (MIGRATING/IMPORTING, then the keys, then the slot): the client
    /// follows ASK during the move and MOVED after it.
    @Test func aClientFollowsTheClusterAndItsRedirects() async throws {
        try await RedisClusterProcess.withCluster { cluster in
            let client = RedisClient(configuration: try cluster.configuration(), logger: TestRedis.logger("harrow.test.cluster"))
            defer { Task { await client.close() } }
            let keys = (0..<60).map { "k\($0)" }
            var nodes: Set<RedisConfiguration.Address?> = []
            for key in keys { nodes.insert(try await client.clusterNode(forKey: key)) }
            #expect(nodes.count == 3)
            let set = try await client.pipeline(keys.map { RedisCommand("SET", [.string($0), .string("v-\($0)")]) })
            #expect(set.allSatisfy { $0.string == "OK" })
            let got = try await client.pipeline(keys.map { RedisCommand("GET", [.string($0)]) })
            #expect(got.map(\.string) == keys.map { "v-\($0)" })
            let queue = JobQueue(redis: client, options: JobQueue.Options(keyPrefix: TestRedis.uniqueKeyPrefix("cluster")))
            let requests = (0..<30).map { EnqueueRequest(type: "noop", queue: "q\($0 % 3)", payload: ByteBuffer(string: "{}")) }
            _ = try await queue.enqueue(batch: requests)
            for name in ["q0", "q1", "q2"] { #expect(try await queue.stats(name).ready == 10) }
            // One blocking read cannot span two queues' slots: a clear error, nothing taken.
            let blocking = try await client.makeDedicatedConnection(forKey: queue.keys("q0").stream)
            await #expect {
                try await queue.fetchBlocking(
                    queues: ["q0", "q1"], count: 1, block: .milliseconds(10), consumer: "c", connection: blocking)
            } throws: { ($0 as? RedisError)?.code == .invalidConfiguration }
            #expect(try await queue.stats(queues: ["q0"])[0].pending == 0, "nothing taken")
            #expect(
                try await queue.fetchBlocking(queues: ["q0"], count: 2, block: .milliseconds(10), consumer: "c", connection: blocking).count
                    == 2)
            await blocking.close()

            // Move k0's slot to another master by hand.
            let slot = ClusterSlot.of("k0")
            let source = try await cluster.master(serving: "k0")
            let masters = try await client.clusterMasters()
            let targetAddress = try #require(masters.first { $0 != .tcp(host: "127.0.0.1", port: source.port) })
            let target = try #require(
                cluster.nodes.first { RedisConfiguration.Address.tcp(host: "127.0.0.1", port: $0.port) == targetAddress })
            let sourceClient = RedisClient(configuration: source.configuration(), logger: TestRedis.logger())
            let targetClient = RedisClient(configuration: target.configuration(), logger: TestRedis.logger())
            defer {
                Task {
                    await sourceClient.close()
                    await targetClient.close()
                }
            }
            let sourceID = try #require(try await sourceClient.send("CLUSTER", ["MYID"]).string)
            let targetID = try #require(try await targetClient.send("CLUSTER", ["MYID"]).string)
            try await targetClient.send("CLUSTER", ["SETSLOT", .int(slot), "IMPORTING", .string(sourceID)])
            try await sourceClient.send("CLUSTER", ["SETSLOT", .int(slot), "MIGRATING", .string(targetID)])
            // A key that does not exist on the source during migration: ASK to the target.
            let fresh = try #require(
                (0..<100_000).lazy.map { "fresh\($0)" }.first { ClusterSlot.of($0) == slot })
            try await client.send("SET", [.string(fresh), "asked"])
            // Move k0 itself, then hand the slot over.
            try await sourceClient.send(
                "MIGRATE", ["127.0.0.1", .int(target.port), "", 0, 5000, "KEYS", "k0"])
            for node in [targetClient, sourceClient] {
                try await node.send("CLUSTER", ["SETSLOT", .int(slot), "NODE", .string(targetID)])
            }
            #expect(try await client.send("GET", ["k0"]).string == "v-k0", "MOVED after the slot went over")
            #expect(try await client.send("GET", [.string(fresh)]).string == "asked")
            #expect(try await client.clusterNode(forKey: "k0") == .tcp(host: "127.0.0.1", port: target.port))
        }
    }

    /// A blocking read of streams on three masters: one connection per stream, all waiting at
    /// once; the first to see an entry ends the others (CLIENT UNBLOCK), so the read returns long
    /// before its block time.
    @Test func aBlockingReadSpansStreamsOnEveryMaster() async throws {
        try await RedisClusterProcess.withCluster { cluster in
            let client = RedisClient(configuration: try cluster.configuration(), logger: TestRedis.logger("harrow.test.cluster"))
            defer { Task { await client.close() } }
            let streams = try await RedisClusterProcess.keysOnDistinctMasters(3, client: client) { "log:{\($0)}" }
            for key in streams { try await client.send("XADD", [.string(key), "1-1", "line", "old"]) }
            let reader = BlockingReader(redis: client)
            defer { reader.closeNow() }
            // Entries already there come back at once.
            let old = try await reader.read(after: streams.map { ($0, "0") }, count: 10, block: .seconds(30))
            #expect(Set(old.keys) == Set(streams))
            let positions = streams.map { (stream: $0, id: "1-1") }
            for _ in 0..<2 {
                let waiting = Task { try await reader.read(after: positions, count: 10, block: .seconds(30)) }
                try await Task.sleep(for: .milliseconds(300))
                try await client.send("XADD", [.string(streams[1]), "*", "line", "new"])
                let found = try await withDeadline(.seconds(10), "the other reads were ended") { try await waiting.value }
                #expect(Array(found.keys) == [streams[1]])
                try await client.send("XTRIM", [.string(streams[1]), "MAXLEN", 1])
                try await client.send("DEL", [.string(streams[1])])
                try await client.send("XADD", [.string(streams[1]), "1-1", "line", "old"])
            }
        }
    }

    /// `replicasToConfirm`: each queue's writes are followed by a WAIT on the connection that
    /// made them (on a cluster, the master of that queue), and an enqueue no replica confirmed
    /// throws `notReplicated`, the job written all the same.
    @Test func aDurableEnqueueWaitsForAReplica() async throws {
        try await RedisClusterProcess.withCluster { cluster in
            let client = RedisClient(configuration: try cluster.configuration(), logger: TestRedis.logger("harrow.test.cluster"))
            defer { Task { await client.close() } }
            let queue = JobQueue(
                redis: client, options: JobQueue.Options(keyPrefix: TestRedis.uniqueKeyPrefix("durable"), replicasToConfirm: 1))
            let plain = (0..<30).map { EnqueueRequest(type: "noop", queue: "d\($0 % 3)", payload: ByteBuffer(string: "{}")) }
            #expect(try await queue.enqueue(batch: plain).count == 30)
            let unique = EnqueueRequest(
                type: "noop", queue: "d1", payload: ByteBuffer(string: "{}"), options: EnqueueOptions(uniqueKey: "only-one"))
            #expect(try await queue.enqueue(unique).enqueued)
            for name in ["d0", "d1", "d2"] { #expect(try await queue.stats(queues: [name])[0].ready >= 10) }
        }
        try await RedisServerProcess.withServer { server in
            let client = RedisClient(configuration: server.configuration(), logger: TestRedis.logger())
            defer { Task { await client.close() } }
            let queue = JobQueue(
                redis: client, options: JobQueue.Options(replicasToConfirm: 1, replicationTimeout: .milliseconds(100)))
            do {
                try await queue.enqueue(type: "noop", queue: "lonely", payload: ByteBuffer(string: "{}"))
                Issue.record("an enqueue no replica confirmed returned")
            } catch let error as QueueError {
                #expect(error.code == .notReplicated)
            }
            let ready = try await queue.stats(queues: ["lonely"])[0].ready
            #expect(ready == 1, "written to the master all the same")
        }
    }

    /// A durable enqueue whose queue's slot moved without the client knowing: the XADD is
    /// redirected (MOVED), and so must be the WAIT after it. The old master has lost its
    /// replica, so a WAIT left there would report 0 and the enqueue would throw.
    @Test func aDurableEnqueueWaitsWhereItsWriteWent() async throws {
        try await RedisClusterProcess.withCluster { cluster in
            let client = RedisClient(configuration: try cluster.configuration(), logger: TestRedis.logger("harrow.test.cluster"))
            defer { Task { await client.close() } }
            let queue = JobQueue(
                redis: client,
                options: JobQueue.Options(keyPrefix: "durable-moved", replicasToConfirm: 1, replicationTimeout: .milliseconds(200)))
            let name = "moving"
            let slot = ClusterSlot.of("{\(name)}")
            let source = try await cluster.master(serving: "{\(name)}")
            let masters = try await client.clusterMasters()
            let targetAddress = try #require(masters.first { $0 != .tcp(host: "127.0.0.1", port: source.port) })
            let target = try #require(
                cluster.nodes.first { RedisConfiguration.Address.tcp(host: "127.0.0.1", port: $0.port) == targetAddress })
            try await cluster.replica(of: source).kill()
            // The slot is empty: hand it over on every master, behind the client's back.
            let targetClient = RedisClient(configuration: target.configuration(), logger: TestRedis.logger())
            defer { Task { await targetClient.close() } }
            let targetID = try #require(try await targetClient.send("CLUSTER", ["MYID"]).string)
            for master in masters {
                let node = RedisClient(
                    configuration: try cluster.configuration {
                        $0.clusterSeeds = []
                        $0.address = master
                    }, logger: TestRedis.logger())
                try await node.send("CLUSTER", ["SETSLOT", .int(slot), "NODE", .string(targetID)])
                await node.close()
            }
            #expect(try await queue.enqueue(type: "noop", queue: name, payload: ByteBuffer(string: "{}")).enqueued)
            #expect(try await client.clusterNode(forKey: "{\(name)}") == targetAddress)
            #expect(try await queue.stats(queues: [name])[0].ready == 1)
        }
    }

    /// A pipeline over three masters, one of them dead: the others' commands run and answer,
    /// and the dead one's get an error reply each, rather than the whole pipeline throwing.
    @Test func aPipelineOverADeadMasterAnswersForTheOthers() async throws {
        try await RedisClusterProcess.withCluster { cluster in
            let client = RedisClient(configuration: try cluster.configuration(), logger: TestRedis.logger("harrow.test.cluster"))
            defer { Task { await client.close() } }
            let keys = try await RedisClusterProcess.keysOnDistinctMasters(3, client: client) { "p\($0)" }
            let dead = try await cluster.master(serving: keys[2])
            try await cluster.replica(of: dead).kill()
            try await dead.kill()
            let replies = try await client.pipeline(keys.map { RedisCommand("INCR", [.string($0)]) })
            #expect(replies[0].int == 1 && replies[1].int == 1)
            guard case .error(let message) = replies[2] else {
                Issue.record("the dead master's command answered \(replies[2])")
                return
            }
            #expect(message.hasPrefix("UNREACHABLE"))
            // Its keys alone: the error is thrown, as for any single command.
            await #expect(throws: RedisError.self) { try await client.send("INCR", [.string(keys[2])]) }
        }
    }
}
