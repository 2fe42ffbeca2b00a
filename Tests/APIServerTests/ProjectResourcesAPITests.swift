import Foundation
import HTTPTypes
import HarrowTestSupport
import Hummingbird
import HummingbirdTesting
import Store
import Testing

@testable import APIServer

/// A project's environments, secrets, tasks, jobs and operations through the API.
@Suite struct ProjectResourcesAPITests {
    @Test func aProjectIsSetUpAndItsJobRunAndCanceled() async throws {
        try await APIHarness.with("api_resources") { harness, client in
            let (owner, ownerToken) = try await harness.signedIn("Owner", client: client)
            let organization = try await OrganizationStore(client: harness.database, logger: harness.logger).create(
                name: "Acme", owner: owner.id)
            let project = try #require(
                try await client.send(.post, "/v1/organizations/\(organization.id)/projects", token: ownerToken, json: #"{"name":"Web"}"#)
                    .json()["id"] as? String)
            let base = "/v1/projects/\(project)"

            let environments = try await client.send(.get, "\(base)/environments", token: ownerToken)
            let environment = try #require((try environments.json()["items"] as? [[String: Any]])?.first?["id"] as? String)
            let task = try await client.send(.post, "\(base)/tasks", token: ownerToken, json: #"{"name":"build","script":"make all"}"#)
            #expect(task.status == .created)
            let taskID = try #require(try task.json()["id"] as? String)
            let job = try await client.send(
                .post, "\(base)/jobs", token: ownerToken,
                json: #"{"name":"build","task_id":"\#(taskID)","environment_id":"\#(environment)"}"#)
            #expect(job.status == .created, "\(String(buffer: job.body))")
            let jobID = try #require(try job.json()["id"] as? String)
            #expect(try job.json()["time_limit_seconds"] as? Int == 900)

            let secret = try await client.send(
                .post, "\(base)/environments/\(environment)/secrets", token: ownerToken,
                json: #"{"name":"API_TOKEN","value":"s3cret-value"}"#)
            #expect(secret.status == .created)
            #expect(!String(buffer: secret.body).contains("s3cret-value"))
            let listed = try await client.send(.get, "\(base)/environments/\(environment)/secrets", token: ownerToken)
            #expect(!String(buffer: listed.body).contains("s3cret-value"))
            #expect((try listed.json()["items"] as? [[String: Any]])?.first?["status"] as? String == "present")

            // A member runs the job and cancels the operation; a guest may do neither.
            let (member, memberToken) = try await harness.signedIn("Member", client: client)
            let (guest, guestToken) = try await harness.signedIn("Guest", client: client)
            let projectID = try #require(UUID(uuidString: project))
            _ = try await harness.memberships.add(member.id, to: .project(projectID), role: .member, actor: owner.id)
            _ = try await harness.memberships.add(guest.id, to: .project(projectID), role: .guest, actor: owner.id)
            #expect(try await client.send(.post, "\(base)/jobs/\(jobID)/operations", token: guestToken).status == .forbidden)
            let run = try await client.send(
                .post, "\(base)/jobs/\(jobID)/operations", token: memberToken, json: #"{"parameters":{"ref":"main"}}"#)
            #expect(run.status == .created, "\(String(buffer: run.body))")
            let operationID = try #require(try run.json()["id"] as? String)
            #expect(try run.json()["status"] as? String == "queued")
            let queued = try await harness.outboxPayloads(type: "run-operation")
            #expect(queued.map { $0["operation_id"] as? String } == [operationID])

            #expect(try await client.send(.get, "\(base)/operations/\(operationID)", token: guestToken).status == .ok)
            #expect(try await client.send(.post, "\(base)/operations/\(operationID)/cancel", token: guestToken).status == .forbidden)
            let canceled = try await client.send(.post, "\(base)/operations/\(operationID)/cancel", token: memberToken)
            #expect(try canceled.json()["status"] as? String == "canceled")
            let again = try await client.send(.post, "\(base)/operations/\(operationID)/cancel", token: memberToken)
            #expect(again.status == .conflict)
            let byJob = try await client.send(.get, "\(base)/jobs/\(jobID)/operations", token: guestToken)
            #expect((try byJob.json()["items"] as? [[String: Any]])?.count == 1)

            // Managers write but do not archive; owners archive.
            let (manager, managerToken) = try await harness.signedIn("Manager", client: client)
            _ = try await harness.memberships.add(manager.id, to: .project(projectID), role: .manager, actor: owner.id)
            #expect(
                try await client.send(.patch, "\(base)/tasks/\(taskID)", token: managerToken, json: #"{"script":"make test"}"#).status
                    == .ok)
            #expect(
                try await client.send(.patch, "\(base)/tasks/\(taskID)", token: memberToken, json: #"{"script":"x"}"#).status == .forbidden)
            #expect(try await client.send(.delete, "\(base)/jobs/\(jobID)", token: managerToken).status == .forbidden)
            #expect(try await client.send(.delete, "\(base)/jobs/\(jobID)", token: ownerToken).status == .noContent)
            #expect(try await client.send(.get, "\(base)/jobs/\(jobID)", token: ownerToken).status == .notFound)

            // Bad input names its field; another project's ids are not found.
            let missing = try await client.send(.post, "\(base)/jobs", token: ownerToken, json: #"{"name":"x"}"#)
            #expect(missing.status == .unprocessableContent)
            #expect((try missing.problem()["errors"] as? [[String: Any]])?.first?["field"] as? String == "task_id")
            let other = try #require(
                try await client.send(.post, "/v1/organizations/\(organization.id)/projects", token: ownerToken, json: #"{"name":"Other"}"#)
                    .json()["id"] as? String)
            #expect(try await client.send(.get, "/v1/projects/\(other)/tasks/\(taskID)", token: ownerToken).status == .notFound)
            #expect(
                try await client.send(.get, "\(base)/tasks/\(taskID)", token: try harness.signedIn("Eve", client: client).token).status
                    == .notFound)
        }
    }

    /// A login key without a target says which field is wrong (it said "the input breaks a rule").
    @Test func aLoginKeyWithoutATargetNamesTheField() async throws {
        try await APIHarness.with("api_target_key") { harness, client in
            let (base, _, token) = try await AutomationAPITests.project(harness, client)
            let environment = try #require(
                (try await client.send(.get, "\(base)/environments", token: token).json()["items"] as? [[String: Any]])?.first?["id"]
                    as? String)
            let key = try await client.send(
                .post, "\(base)/environments/\(environment)/secrets", token: token, json: #"{"name":"deploy","kind":"ssh"}"#)
            let keyID = try #require(try key.json()["id"] as? String)
            let answer = try await client.send(
                .patch, "\(base)/environments/\(environment)", token: token, json: #"{"target_secret_id":"\#(keyID)"}"#)
            #expect(answer.status == .unprocessableContent, "\(String(buffer: answer.body))")
            let errors = try answer.problem()["errors"] as? [[String: Any]]
            #expect(errors?.first?["field"] as? String == "target_secret_id", "\(String(buffer: answer.body))")
        }
    }
}
