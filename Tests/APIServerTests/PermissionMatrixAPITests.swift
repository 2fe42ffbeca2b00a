import Foundation
import HTTPTypes
import HarrowTestSupport
import Hummingbird
import HummingbirdTesting
import Store
import Testing

@testable import APIServer

/// README's matrix, permission by permission: one representative request each, sent by a
/// stranger (404), by every role (403 below the permission's role, success from it up).
@Suite struct PermissionMatrixAPITests {
    struct Probe: Sendable {
        var permission: Permission
        var method: HTTPRequest.Method
        /// Makes the path and body for one attempt (fresh records, so every attempt can succeed).
        var make: @Sendable (_ attempt: String) async throws -> (path: String, body: String?)
    }

    @Test func everyPermissionFollowsTheMatrix() async throws {
        try await APIHarness.with("api_matrix") { harness, client in
            let (base, job, ownerToken) = try await AutomationAPITests.project(harness, client)
            let project = try #require(UUID(uuidString: String(base.split(separator: "/").last ?? "")))
            let environment = try #require(
                (try await client.send(.get, "\(base)/environments", token: ownerToken).json()["items"] as? [[String: Any]])?.first?["id"]
                    as? String)
            let task = try #require(
                (try await client.send(.get, "\(base)/tasks", token: ownerToken).json()["items"] as? [[String: Any]])?.first?["id"]
                    as? String)
            let repository = try #require(
                try await client.send(.post, "\(base)/repositories", token: ownerToken, json: #"{"url":"git@example.com:acme/base.git"}"#)
                    .json()["id"] as? String)
            let owner = try #require(
                try await harness.users.findForLogin(
                    email: try await client.send(.get, "/v1/me", token: ownerToken).json()["email"] as? String ?? ""))
            let operations = OperationStore(client: harness.database, logger: harness.logger)
            let tasks = TaskStore(client: harness.database, logger: harness.logger)

            let probes: [Probe] = [
                Probe(permission: .read, method: .get) { _ in (base, nil) },
                Probe(permission: .runJobs, method: .post) { _ in ("\(base)/jobs/\(job)/operations", nil) },
                Probe(permission: .cancelOperations, method: .post) { _ in
                    let operation = try await operations.create(
                        job: UUID(uuidString: job)!, project: project, reason: .user, requestedBy: nil)
                    return ("\(base)/operations/\(operation.id)/cancel", nil)
                },
                Probe(permission: .manageSchedules, method: .post) { _ in ("\(base)/schedules", #"{"job_id":"\#(job)","cron":"0 * * * *"}"#)
                },
                Probe(permission: .manageNotificationRules, method: .post) { attempt in
                    ("\(base)/notifiers", #"{"name":"n-\#(attempt)","recipients":["ops@example.com"]}"#)
                },
                Probe(permission: .writeEnvironments, method: .post) { attempt in ("\(base)/environments", #"{"name":"env-\#(attempt)"}"#)
                },
                Probe(permission: .writeSecrets, method: .post) { attempt in
                    (
                        "\(base)/environments/\(environment)/secrets",
                        #"{"name":"S_\#(attempt.uppercased().replacingOccurrences(of: "-", with: "_"))","value":"v"}"#
                    )
                },
                Probe(permission: .writeSecrets, method: .put) { attempt in ("\(base)/github-token", #"{"token":"ghp_\#(attempt)"}"#) },
                Probe(permission: .writeTasks, method: .post) { attempt in ("\(base)/tasks", #"{"name":"t-\#(attempt)","script":"true"}"#)
                },
                Probe(permission: .writeJobs, method: .post) { attempt in
                    ("\(base)/jobs", #"{"name":"j-\#(attempt)","task_id":"\#(task)","environment_id":"\#(environment)"}"#)
                },
                Probe(permission: .writeRepositories, method: .post) { attempt in
                    ("\(base)/repositories", #"{"url":"git@example.com:acme/\#(attempt).git"}"#)
                },
                Probe(permission: .writeWebhooks, method: .post) { attempt in
                    ("\(base)/webhooks", #"{"job_id":"\#(job)","name":"w-\#(attempt)"}"#)
                },
                // A webhook notifier sends signed requests where its URL says: a manager's call,
                // as incoming webhooks are (an email or job notifier is a member's).
                Probe(permission: .writeWebhooks, method: .post) { attempt in
                    ("\(base)/notifiers", #"{"name":"wn-\#(attempt)","kind":"webhook","url":"https://hooks.example.com/\#(attempt)"}"#)
                },
                Probe(permission: .writeTriggers, method: .post) { attempt in
                    (
                        "\(base)/triggers",
                        #"{"repository_id":"\#(repository)","job_id":"\#(job)","name":"g-\#(attempt)","change_type":"change"}"#
                    )
                },
                Probe(permission: .manageMembers, method: .patch) { attempt in
                    let user = try await harness.users.create(
                        email: "m-\(attempt)-\(TestRedis.randomHex())@example.com", name: "M", passwordHash: "h")
                    _ = try await harness.memberships.add(user.id, to: .project(project), role: .guest, actor: nil)
                    return ("\(base)/members/\(user.id)", #"{"role":"guest"}"#)
                },
                Probe(permission: .archive, method: .delete) { attempt in
                    let task = try await tasks.create(project: project, name: "archive-\(attempt)", script: "true", actor: owner.user.id)
                    return ("\(base)/tasks/\(task.id)", nil)
                },
            ]

            var tokens: [Role: String] = [.owner: ownerToken]
            for role in [Role.guest, .member, .manager] {
                let (user, token) = try await harness.signedIn(role.rawValue.capitalized, client: client)
                _ = try await harness.memberships.add(user.id, to: .project(project), role: role, actor: owner.user.id)
                tokens[role] = token
            }
            let stranger = try await harness.signedIn("Stranger", client: client).token

            for probe in probes {
                let (path, body) = try await probe.make("stranger-\(probe.permission.rawValue.lowercased())")
                let refused = try await client.send(probe.method, path, token: stranger, json: body)
                #expect(refused.status == .notFound, "stranger \(probe.permission): \(refused.status)")
                for role in Role.allCases {
                    let (path, body) = try await probe.make("\(role.rawValue)-\(probe.permission.rawValue.lowercased())")
                    let response = try await client.send(probe.method, path, token: tokens[role], json: body)
                    if probe.permission.allows(role) {
                        #expect(
                            (200..<300).contains(Int(response.status.code)),
                            "\(role) \(probe.permission): \(response.status) \(String(buffer: response.body))")
                    } else {
                        #expect(response.status == .forbidden, "\(role) \(probe.permission): \(response.status)")
                    }
                }
            }
        }
    }
}
