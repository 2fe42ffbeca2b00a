import Foundation
import HarrowTestSupport
import Queue
import Testing
import WorkerPool

#if canImport(Glibc)
import Glibc
#endif

/// The `queue-inspect` command line against the shared test Redis.
struct ProcessQueueInspectTests {
    let prefix = TestRedis.uniqueKeyPrefix("cli")

    private func inspect(_ arguments: String...) async throws -> ProcessSupport.Output {
        try await ProcessSupport.queueInspect(arguments, redisURL: TestRedis.url, keyPrefix: prefix)
    }

    private func stats(_ queue: String) async throws -> [String: Any] {
        let output = try await inspect("stats", queue, "--json")
        #expect(output.status == 0, "\(output.stderr)")
        let rows = try JSONSerialization.jsonObject(with: Data(output.stdout.utf8)) as? [[String: Any]]
        return try #require(rows?.first)
    }

    @Test("enqueue and stats show a job flowing through a worker")
    func jobFlowsThroughWorker() async throws {
        defer { Task { try? await TestRedis.withClient { try await TestRedis.deleteKeys(prefix: prefix, on: $0) } } }
        let enqueued = try await inspect("enqueue", "flow", "noop", "{}")
        #expect(enqueued.status == 0, "\(enqueued.stderr)")
        let id = enqueued.stdout.trimmingCharacters(in: .whitespacesAndNewlines)
        #expect(id.count == 36)
        #expect(try await stats("flow")["ready"] as? Int == 1)
        let shown = try await inspect("show", "flow", id)
        #expect(shown.stdout.contains("state: ready"))

        let worker = try WorkerProcess(queues: "flow", redisURL: TestRedis.url, keyPrefix: prefix)
        try await eventually("the job ran", timeout: .seconds(30)) {
            let row = try await stats("flow")
            return row["ready"] as? Int == 0 && row["pending"] as? Int == 0
        }
        let workers = try await inspect("workers", "--json")
        #expect(workers.stdout.contains("\"flow\""))
        worker.signal(SIGTERM)
        #expect(try await worker.waitForExit(timeout: .seconds(30)) == 0)
    }

    @Test("bad input: a one-line reason and a non-zero exit")
    func badInputFails() async throws {
        let badJSON = try await inspect("enqueue", "q", "noop", "{nope")
        #expect(badJSON.status != 0)
        #expect(badJSON.stderr.contains("not valid JSON"))

        let unknown = try await inspect("stats", "no-such-queue")
        #expect(unknown.status == 1)
        #expect(unknown.stderr.contains("unknown queue no-such-queue"))
        #expect(unknown.stderr.split(separator: "\n").count == 1)

        let badName = try await inspect("enqueue", "bad{name}", "noop", "{}")
        #expect(badName.status != 0)

        let unreachable = try await ProcessSupport.queueInspect(
            ["stats"], redisURL: "redis://127.0.0.1:\(try LoopbackPort.unused())/0", keyPrefix: prefix)
        #expect(unreachable.status == 1)
        #expect(unreachable.stderr.contains("Redis is unreachable"))
        #expect(unreachable.stderr.split(separator: "\n").count == 1)
    }

    @Test("dead ls, dead retry by id and --all, dead purge, pause and resume")
    func deadLettersAndPauses() async throws {
        defer { Task { try? await TestRedis.withClient { try await TestRedis.deleteKeys(prefix: prefix, on: $0) } } }
        // A payload that cannot decode as `sleep` is a permanent failure: straight to dead.
        let first = try await inspect("enqueue", "poison", "sleep", #"{"ms":"soon"}"#)
        let second = try await inspect("enqueue", "poison", "sleep", #"{"ms":"later"}"#)
        let firstID = first.stdout.trimmingCharacters(in: .whitespacesAndNewlines)
        let worker = try WorkerProcess(queues: "poison", redisURL: TestRedis.url, keyPrefix: prefix)
        try await eventually("both are dead", timeout: .seconds(30)) { try await stats("poison")["dead"] as? Int == 2 }
        worker.signal(SIGTERM)
        #expect(try await worker.waitForExit(timeout: .seconds(30)) == 0)

        let listed = try await inspect("dead", "ls", "poison")
        #expect(listed.stdout.contains(firstID))
        #expect(listed.stdout.contains("payload does not decode as sleep"))

        let retried = try await inspect("dead", "retry", "poison", firstID)
        #expect(retried.status == 0, "\(retried.stderr)")
        var row = try await stats("poison")
        #expect(row["ready"] as? Int == 1 && row["dead"] as? Int == 1)

        let missing = try await inspect("dead", "retry", "poison", "no-such-id")
        #expect(missing.status == 1)

        #expect(try await inspect("dead", "retry", "poison", "--all").stdout.contains("retried 1"))
        row = try await stats("poison")
        #expect(row["ready"] as? Int == 2 && row["dead"] as? Int == 0)
        _ = second

        #expect(try await inspect("pause", "poison").status == 0)
        #expect(try await stats("poison")["paused"] as? Bool == true)
        #expect(try await inspect("resume", "poison").status == 0)
        #expect(try await stats("poison")["paused"] as? Bool == false)

        let purge = try await inspect("dead", "purge", "poison")
        #expect(purge.stdout.contains("purged 0"))
    }
}
