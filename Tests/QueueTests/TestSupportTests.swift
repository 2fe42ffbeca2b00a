import Foundation
import HarrowTestSupport
import NIOCore
import Testing

@testable import Queue

/// The helpers other tests stand on: if these lie, every test built on them proves nothing.
@Suite("Test support")
struct TestSupportTests {
    @Test func eventuallyReturnsOnceTheConditionHolds() async throws {
        var calls = 0
        try await eventually("third call") {
            calls += 1
            return calls == 3
        }
        #expect(calls == 3)
    }

    @Test func eventuallyThrowsWithTheLastErrorWhenTheConditionNeverHolds() async {
        struct NotYet: Error {}
        let error = await #expect(throws: EventuallyTimeout.self) {
            try await eventually("never", timeout: .milliseconds(100), poll: .milliseconds(10)) { throw NotYet() }
        }
        #expect(error?.lastError is NotYet)
        #expect(error?.description.contains("never") == true)
        #expect(error?.description.contains("TestSupportTests.swift") == true)
    }

    @Test func withDeadlineReturnsTheResultOrGivesUpOnAHang() async throws {
        #expect(try await withDeadline(.seconds(5), "quick") { 42 } == 42)
        let error = await #expect(throws: DeadlineExceeded.self) {
            try await withDeadline(.milliseconds(100), "a very long sleep") {
                try await Task.sleep(for: .seconds(3600))
            }
        }
        #expect(error?.operation == "a very long sleep")
        struct Boom: Error {}
        await #expect(throws: Boom.self) { try await withDeadline(.seconds(5), "throws") { throw Boom() } }
    }

    @Test func uniqueNamesDoNotRepeat() {
        let names = (0..<1000).map { _ in TestRedis.uniqueQueueName("x") }
        #expect(Set(names).count == 1000)
        #expect(names.allSatisfy { $0.hasPrefix("t-x-") })
        #expect(names.allSatisfy { (try? QueueName.validate($0)) != nil })
        #expect(TestRedis.uniqueKeyPrefix("y").hasPrefix("harrow-t-y-"))
    }

    @Test func withJobQueueDeletesEveryKeyOfItsPrefix() async throws {
        var prefix = ""
        try await TestRedis.withJobQueue("cleanup") { queue in
            prefix = queue.options.keyPrefix
            #expect(prefix != "harrow")
            try await queue.enqueueNumbered(3, queue: TestRedis.uniqueQueueName("cleanup"))
            try await queue.heartbeat(
                WorkerInfo(id: "w", host: "h", pid: 1, queues: [], concurrency: 1, startedAt: 0), ttl: .seconds(60))
        }
        try await TestRedis.withClient { client in
            let keys = try await client.send("KEYS", [.string(prefix + "*")])
            #expect(keys == .array([]))
        }
    }

    @Test func serverProcessStopsOnSIGTERMAndRestartsOnTheSamePortAndDir() async throws {
        let server = try await RedisServerProcess.start(.init(appendOnly: true))
        let port = server.port
        let directory = server.directory
        #expect(server.isRunning)
        #expect(server.isAnswering)

        // A graceful stop must not need SIGKILL: the child must not inherit a blocked SIGTERM.
        try await server.stop(timeout: .seconds(5))
        #expect(!server.isRunning)
        #expect(!server.isAnswering)
        #expect(server.log().contains("Received SIGTERM"))

        try await server.restart()
        #expect(server.isRunning)
        #expect(server.port == port)
        #expect(server.isAnswering)

        try await server.kill()
        #expect(!server.isRunning)
        try await server.restart()
        #expect(server.isAnswering)

        await server.shutdown()
        #expect(!server.isRunning)
        #expect(!FileManager.default.fileExists(atPath: directory.path))
    }

    @Test func serverProcessFailsClearlyWhenTheServerCannotStart() async {
        let error = await #expect(throws: RedisServerProcess.Failure.self) {
            try await RedisServerProcess.withServer(.init(extraArguments: ["--no-such-option", "x"])) { _ in }
        }
        #expect(error?.message.contains("exited at start") == true, "\(String(describing: error))")
    }
}
