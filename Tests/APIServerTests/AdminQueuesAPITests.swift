import Foundation
import HTTPTypes
import HarrowTestSupport
import Hummingbird
import HummingbirdTesting
import NIOCore
import Queue
import Store
import Testing

@testable import APIServer

@Suite struct AdminQueuesAPITests {
    @Test func adminsInspectAndOperateQueuesOthersSeeNothing() async throws {
        try await APIHarness.with("api_admin") { harness, client in
            let queue = JobQueue(redis: harness.redis, options: JobQueue.Options(keyPrefix: harness.configuration.keyPrefix))
            let first = try await queue.enqueue(type: "noop", queue: "work", payload: ByteBuffer(string: "{}"))
            _ = try await queue.enqueue(type: "noop", queue: "work", payload: ByteBuffer(string: "{}"))
            let (_, userToken) = try await harness.signedIn("User", client: client)
            let (_, adminToken) = try await harness.signedIn("Admin", admin: true, client: client)

            #expect(try await client.send(.get, "/admin/queues").status == .notFound, "anonymous callers see no admin routes either")
            #expect(try await client.send(.get, "/admin/queues", token: userToken).status == .notFound)
            #expect(try await client.send(.post, "/admin/queues/work/pause", token: userToken).status == .notFound)
            #expect(try await client.send(.get, "/admin/workers", token: userToken).status == .notFound)

            // A worker's heartbeat makes it show, with its queues and concurrency.
            let worker = WorkerInfo(id: "host:1:abc", host: "host", pid: 1, queues: ["work"], concurrency: 7, startedAt: 1)
            _ = try await queue.heartbeat(worker, ttl: .seconds(60))
            let workers = try #require(try await client.send(.get, "/admin/workers", token: adminToken).json()["items"] as? [[String: Any]])
            let shown = try #require(workers.first { $0["id"] as? String == "host:1:abc" })
            #expect(shown["queues"] as? [String] == ["work"] && shown["concurrency"] as? Int == 7 && (shown["last_seen"] as? Int ?? 0) > 0)

            let overview = try await client.send(.get, "/admin/queues", token: adminToken)
            #expect(overview.status == .ok)
            let queues = try #require(try overview.json()["queues"] as? [[String: Any]])
            #expect(queues.first { $0["queue"] as? String == "work" }?["ready"] as? Int == 2)
            #expect((try overview.json()["outbox"] as? [String: Any])?["depth"] as? Int == 0)
            let jobs = try await client.send(.get, "/admin/queues/work/jobs?state=ready", token: adminToken)
            #expect((try jobs.json()["items"] as? [[String: Any]])?.count == 2)
            #expect(try await client.send(.get, "/admin/queues/work/jobs?state=bogus", token: adminToken).status == .unprocessableContent)
            #expect(try await client.send(.get, "/admin/queues/nope", token: adminToken).status == .notFound)

            // A dead letter: retried by id, then another purged.
            for _ in 0..<2 {
                let fetched = try await queue.fetchReady(FetchRequest(queues: [("work", 1)], total: 1), consumer: "test")
                guard case .job(let job) = try #require(fetched.deliveries.first) else {
                    Issue.record("no job")
                    return
                }
                try await queue.deadLetter(queue: "work", entryID: job.entryID, fields: job.envelope.fields, error: "boom", worker: "test")
            }
            let dead = try await client.send(.get, "/admin/queues/work/dead", token: adminToken)
            let letters = try #require(try dead.json()["items"] as? [[String: Any]])
            #expect(letters.count == 2 && letters.allSatisfy { $0["error"] as? String == "boom" })
            let retried = try await client.send(.post, "/admin/queues/work/dead/retry", token: adminToken, json: #"{"id":"\#(first.id)"}"#)
            #expect(try retried.json()["count"] as? Int == 1, "\(String(buffer: retried.body))")
            let missing = try await client.send(.post, "/admin/queues/work/dead/retry", token: adminToken, json: #"{"id":"nope"}"#)
            #expect(missing.status == .notFound)
            #expect(
                try await client.send(.post, "/admin/queues/work/dead/retry", token: adminToken, json: "{}").status == .unprocessableContent
            )
            let purged = try await client.send(.delete, "/admin/queues/work/dead", token: adminToken)
            #expect(try purged.json()["count"] as? Int == 1)
            let stats = try await client.send(.get, "/admin/queues/work", token: adminToken)
            #expect(try stats.json()["dead"] as? Int == 0 && stats.json()["ready"] as? Int == 1)

            let paused = try await client.send(.post, "/admin/queues/work/pause", token: adminToken)
            #expect(try paused.json()["paused"] as? Bool == true)
            let resumed = try await client.send(.post, "/admin/queues/work/resume", token: adminToken)
            #expect(try resumed.json()["paused"] as? Bool == false)
            try await TestRedis.deleteKeys(prefix: harness.configuration.keyPrefix, on: harness.redis)
        }
    }

    /// The dashboard's chart: every queue's last hour by the minute, from the workers' samples.
    @Test func throughputOfTheLastHourByTheMinute() async throws {
        try await APIHarness.with("api_admin_throughput") { harness, client in
            let queue = JobQueue(redis: harness.redis, options: JobQueue.Options(keyPrefix: harness.configuration.keyPrefix))
            _ = try await queue.enqueue(type: "noop", queue: "charted", payload: ByteBuffer(string: "{}"))
            try await queue.sampleThroughput(queues: ["charted"])
            for _ in 0..<4 { _ = try await queue.enqueue(type: "noop", queue: "charted", payload: ByteBuffer(string: "{}")) }
            try await queue.sampleThroughput(queues: ["charted"])
            let (_, userToken) = try await harness.signedIn("User", client: client)
            let (_, adminToken) = try await harness.signedIn("Admin", admin: true, client: client)
            #expect(try await client.send(.get, "/admin/throughput", token: userToken).status == .notFound)
            #expect(try await client.send(.get, "/admin/throughput").status == .notFound)

            let answer = try await client.send(.get, "/admin/throughput", token: adminToken)
            #expect(answer.status == .ok)
            let items = try #require(try answer.json()["items"] as? [[String: Any]])
            let charted = try #require(items.first { $0["queue"] as? String == "charted" })
            let minutes = try #require(charted["minutes"] as? [[String: Any]])
            #expect(minutes.count == 60)
            #expect(minutes.last?["added"] as? Int == 4 && minutes.last?["finished"] as? Int == 0, "\(minutes.last ?? [:])")
            #expect(minutes.first?["added"] == nil && (minutes.first?["start"] as? Int ?? 0) > 0)
            try await TestRedis.deleteKeys(prefix: harness.configuration.keyPrefix, on: harness.redis)
        }
    }
}
