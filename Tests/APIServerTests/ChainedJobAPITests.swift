import Foundation
import HarrowTestSupport
import Hummingbird
import HummingbirdTesting
import Testing

@testable import APIServer

/// Notifiers of kind `job` through the API, and a chained job run end to end by a real `worker`.
@Suite(.serialized) struct ChainedJobAPITests {
    /// A notifier takes the fields of its kind only.
    @Test func aJobNotifierNeedsAJobAndNoRecipients() async throws {
        try await APIHarness.with("chain_fields") { harness, client in
            let project = try await OperationRunAPITests.project(harness, client, script: "true")
            let created = try await client.send(
                .post, "\(project.base)/notifiers", token: project.token,
                json: #"{"name":"next","kind":"job","job_id":"\#(project.job)"}"#)
            #expect(created.status == .created, "\(String(buffer: created.body))")
            let body = try created.json()
            #expect(body["kind"] as? String == "job" && body["job_id"] as? String == project.job)
            #expect((body["recipients"] as? [String])?.isEmpty == true)
            for (json, status) in [
                (#"{"name":"x","kind":"job"}"#, HTTPResponse.Status.unprocessableContent),
                (#"{"name":"x","kind":"job","job_id":"\#(project.job)","recipients":["a@example.com"]}"#, .unprocessableContent),
                (#"{"name":"x","recipients":["a@example.com"],"job_id":"\#(project.job)"}"#, .unprocessableContent),
                (#"{"name":"x","kind":"job","job_id":"\#(UUID().uuidString.lowercased())"}"#, .notFound),
                (#"{"name":"x","kind":"pager","recipients":[]}"#, .unprocessableContent),
            ] {
                let refused = try await client.send(.post, "\(project.base)/notifiers", token: project.token, json: json)
                #expect(refused.status == status, "\(json): \(String(buffer: refused.body))")
            }
        }
    }

    /// A job whose script fails starts, through a rule on `operation.failed` and a job notifier,
    /// its chained job, which the same worker runs with the failed operation's id.
    @Test func aFailedOperationStartsItsChainedJob() async throws {
        try await APIHarness.with("chain_run") { harness, client in
            let project = try await OperationRunAPITests.project(harness, client, script: "exit 4")
            let task = try #require(
                try await client.send(
                    .post, "\(project.base)/tasks", token: project.token,
                    json: #"{"name":"cleanup","script":"echo \"cleaning up after $HARROW_PARAM_TRIGGERING_OPERATION_ID\""}"#
                ).json()["id"] as? String)
            let cleanup = try #require(
                try await client.send(
                    .post, "\(project.base)/jobs", token: project.token,
                    json: #"{"name":"cleanup","task_id":"\#(task)","environment_id":"\#(project.environment)"}"#
                ).json()["id"] as? String)
            let notifier = try #require(
                try await client.send(
                    .post, "\(project.base)/notifiers", token: project.token,
                    json: #"{"name":"then clean up","kind":"job","job_id":"\#(cleanup)"}"#
                ).json()["id"] as? String)
            let rule = try await client.send(
                .post, "\(project.base)/notification-rules", token: project.token,
                json: #"{"notifier_id":"\#(notifier)","job_id":"\#(project.job)","activity_pattern":"operation.failed"}"#)
            #expect(rule.status == .created, "\(String(buffer: rule.body))")

            let worker = try OperationRunAPITests.worker(harness)
            let failed = try await OperationRunAPITests.run(project, client)
            _ = try await OperationRunAPITests.operation(failed, of: project, client) { $0["status"] as? String == "failed" }

            try await eventually("the chained job's operation", timeout: .seconds(60)) {
                let page = try await client.send(.get, "\(project.base)/jobs/\(cleanup)/operations", token: project.token).json()
                return (page["items"] as? [[String: Any]])?.isEmpty == false
            }
            let page = try await client.send(.get, "\(project.base)/jobs/\(cleanup)/operations", token: project.token).json()
            let chained = try #require((page["items"] as? [[String: Any]])?.first)
            #expect(chained["reason"] as? String == "notification")
            #expect((chained["parameters"] as? [String: String])?["triggering_operation_id"] == failed)
            let id = try #require(chained["id"] as? String)
            let done = try await OperationRunAPITests.operation(id, of: project, client) {
                ["failed", "succeeded"].contains($0["status"] as? String ?? "")
            }
            #expect(done["status"] as? String == "succeeded", "\(worker.log().suffix(3000))")
            let lines = try await OperationRunAPITests.log(id, of: project, client).map(\.text)
            #expect(lines.contains("cleaning up after \(failed)"), "\(lines)")
            worker.signal(SIGTERM)
            #expect(try await worker.waitForExit() == 0)
        }
    }
}
