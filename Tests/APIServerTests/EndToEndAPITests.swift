import Foundation
import HTTPTypes
import HarrowTestSupport
import Hummingbird
import HummingbirdTesting
import Jobs
import Queue
import Store
import Testing

@testable import APIServer

/// The main flow over HTTP, from sign-up to an operation's job waiting in Redis.
@Suite struct EndToEndAPITests {
    @Test func signUpToAQueuedOperationInTheStream() async throws {
        try await APIHarness.with("api_e2e") { harness, client in
            let email = "flow-\(TestRedis.randomHex())@example.com"
            #expect(
                try await client.send(.post, "/v1/users", json: #"{"email":"\#(email)","name":"Flo","password":"a long password"}"#).status
                    == .accepted)
            let verify = try await harness.linkToken(of: try #require(try await harness.outboxMails().first))
            #expect(try await client.send(.post, "/v1/users/verify", json: #"{"token":"\#(verify)"}"#).status == .noContent)
            let token = try #require(
                try await client.send(.post, "/v1/sessions", json: #"{"email":"\#(email)","password":"a long password"}"#).json()["token"]
                    as? String)

            let organization = try #require(
                try await client.send(.post, "/v1/organizations", token: token, json: #"{"name":"Flow Inc"}"#).json()["id"] as? String)
            let project = try #require(
                try await client.send(.post, "/v1/organizations/\(organization)/projects", token: token, json: #"{"name":"App"}"#).json()[
                    "id"]
                    as? String)
            let base = "/v1/projects/\(project)"
            let environment = try #require(
                try await client.send(
                    .post, "\(base)/environments", token: token, json: #"{"name":"staging","variables":{"TIER":"staging"}}"#
                )
                .json()["id"] as? String)
            let task = try #require(
                try await client.send(.post, "\(base)/tasks", token: token, json: #"{"name":"deploy","script":"./deploy.sh"}"#).json()["id"]
                    as? String)
            let job = try #require(
                try await client.send(
                    .post, "\(base)/jobs", token: token,
                    json: #"{"name":"deploy staging","task_id":"\#(task)","environment_id":"\#(environment)"}"#
                ).json()["id"] as? String)
            let run = try await client.send(.post, "\(base)/jobs/\(job)/operations", token: token)
            #expect(run.status == .created)
            let operation = try #require(try run.json()["id"] as? String)
            let queued = try await client.send(.get, "\(base)/operations/\(operation)", token: token)
            #expect(try queued.json()["status"] as? String == "queued")

            // The relay (in a worker) moves the outbox into Redis: the run-operation job is in
            // the operations stream with the operation's id as its job id.
            let queue = JobQueue(redis: harness.redis, options: JobQueue.Options(keyPrefix: harness.configuration.keyPrefix))
            let relay = OutboxRelay(client: harness.database, jobQueue: queue, logger: harness.logger)
            while try await relay.relayBatch() > 0 {}
            let ready = try await queue.readyJobs(queue: "operations")
            #expect(ready.map { $0.id } == [operation])
            #expect(ready.first?.fields["type"] == "run-operation")
            #expect(ready.first?.fields["payload"]?.contains(operation) == true)
            try await TestRedis.deleteKeys(prefix: harness.configuration.keyPrefix, on: harness.redis)
        }
    }
}
