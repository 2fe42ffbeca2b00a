import HarrowTestSupport
import NIOCore
import Testing

@testable import Queue

/// A client outlives its server: commands fail with typed errors while the server is gone,
/// and the same client works again by itself once the server is back on its port.
@Suite("Reconnect")
struct ReconnectTests {
    static let pong = RESPValue.simpleString(ByteBuffer(string: "PONG"))

    /// Whether a failure is one that a caller can recognise as "Redis is not there".
    static func isConnectionFailure(_ error: (any Error)?) -> Bool {
        guard let error = error as? RedisError else { return false }
        return error.code == .connectionClosed || error.code == .unreachable
    }

    @Test func clientRecoversAfterTheServerStopsAndRestarts() async throws {
        try await RedisServerProcess.withServer { server in
            let client = RedisClient(configuration: server.configuration(), logger: TestRedis.logger())
            #expect(try await client.send("PING", []) == Self.pong)

            try await server.stop()
            for _ in 0..<3 {
                let error = await #expect(throws: RedisError.self) {
                    try await withDeadline(.seconds(10), "PING while the server is down") {
                        try await client.send("PING", [])
                    }
                }
                #expect(Self.isConnectionFailure(error), "\(String(describing: error))")
            }

            try await server.restart()
            try await eventually("the client reaches the restarted server", timeout: .seconds(10)) {
                try await client.send("PING", []) == Self.pong
            }
            await client.close()
        }
    }

    @Test func inFlightCommandFailsWhenTheServerIsKilledAndQueueWorksAfterRestart() async throws {
        try await RedisServerProcess.withServer { server in
            let client = RedisClient(
                configuration: server.configuration { $0.poolSize = 2 }, logger: TestRedis.logger())
            let observer = RedisClient(configuration: server.configuration(), logger: TestRedis.logger())
            let blocked = Task { try await client.send("BLPOP", ["never-pushed", 30]) }
            try await eventually("BLPOP is blocked") {
                try await observer.send("INFO", ["clients"]).string?.contains("blocked_clients:1") == true
            }

            try await server.kill()
            let result = try await withDeadline(.seconds(10), "in-flight BLPOP") { await blocked.result }
            switch result {
            case .success(let reply): Issue.record("BLPOP returned \(reply) from a killed server")
            case .failure(let error): #expect((error as? RedisError)?.code == .connectionClosed, "\(error)")
            }

            try await server.restart()
            // The queue's scripts are gone with the old server: NOSCRIPT is recovered from too.
            let queue = JobQueue(redis: client)
            let name = TestRedis.uniqueQueueName("after-restart")
            try await eventually("enqueue works again", timeout: .seconds(10)) {
                try await queue.enqueue(type: "t", queue: name, payload: json("{}")).enqueued
            }
            let jobs = try await queue.fetchJobs(name)
            #expect(jobs.count == 1)
            await client.close()
            await observer.close()
        }
    }

    @Test func appendOnlyServerKeepsQueuedJobsAcrossARestart() async throws {
        try await RedisServerProcess.withServer(.init(appendOnly: true)) { server in
            let client = RedisClient(configuration: server.configuration(), logger: TestRedis.logger())
            let queue = JobQueue(redis: client)
            let name = TestRedis.uniqueQueueName("aof")
            let ids = try await queue.enqueueNumbered(3, queue: name)
            try await queue.enqueue(
                type: "later", queue: name, payload: json("{}"), options: .delayed(by: .seconds(3600)))
            let first = try await queue.fetchJobs(name, consumer: "before-restart", limit: 1)
            #expect(first.count == 1)

            try await server.stop()  // SIGTERM: Redis flushes the AOF on the way out.
            try await server.restart()

            try await eventually("the client reaches the restarted server", timeout: .seconds(10)) {
                try await client.send("PING", []) == Self.pong
            }
            let stats = try await queue.stats(name)
            #expect(stats.ready == 2)
            #expect(stats.pending == 1)
            #expect(stats.delayed == 1)
            let rest = try await queue.fetchJobs(name, consumer: "after-restart")
            #expect(rest.map(\.envelope.id) == Array(ids.dropFirst()))
            await client.close()
        }
    }

    /// A worker blocks in ``JobQueue/fetchBlocking(queues:count:block:consumer:connection:)``
    /// on a dedicated connection. When the server goes away the fetch must fail with a typed
    /// error, and fetching again on that dead connection must fail too, not hang: a fetch loop
    /// that retries on the old connection would otherwise stop forever.
    @Test func blockingFetchOnADeadConnectionFailsInsteadOfHanging() async throws {
        try await RedisServerProcess.withServer { server in
            let client = RedisClient(configuration: server.configuration(), logger: TestRedis.logger())
            let queue = JobQueue(redis: client)
            let name = TestRedis.uniqueQueueName("blocking-dead")
            try await queue.prepare(queues: [name])
            let connection = try await client.makeDedicatedConnection()
            let fetch = Task {
                try await queue.fetchBlocking(
                    queues: [name], count: 1, block: .seconds(20), consumer: "c1", connection: connection)
            }
            try await eventually("XREADGROUP is blocked") {
                try await client.send("INFO", ["clients"]).string?.contains("blocked_clients:1") == true
            }
            try await server.kill()
            let result = try await withDeadline(.seconds(10), "blocked fetch") { await fetch.result }
            #expect(Self.isConnectionFailure(result.failure), "\(result)")

            try await server.restart()
            let again = await #expect(throws: RedisError.self) {
                try await withDeadline(.seconds(5), "fetch on the dead connection") {
                    try await queue.fetchBlocking(
                        queues: [name], count: 1, block: .milliseconds(100), consumer: "c1", connection: connection)
                }
            }
            #expect(again?.code == .connectionClosed)
            await client.close()
        }
    }
}

extension Result {
    var failure: Failure? {
        if case .failure(let error) = self { return error }
        return nil
    }
}
