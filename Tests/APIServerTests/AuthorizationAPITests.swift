import Foundation
import HTTPTypes
import HarrowTestSupport
import Hummingbird
import HummingbirdTesting
import Store
import Testing

@testable import APIServer

/// The authorization matrix of README, as a table: each role against each action on a project.
@Suite struct AuthorizationAPITests {
    struct Case: Sendable, CustomStringConvertible {
        var role: Role?
        var method: HTTPRequest.Method
        var path: String
        var body: String?
        var expected: HTTPResponse.Status
        var description: String { "\(role?.rawValue ?? "stranger") \(method) \(path) → \(expected.code)" }
    }

    @Test func projectRoutesFollowTheMatrix() async throws {
        try await APIHarness.with("api_authz") { harness, client in
            let (owner, ownerToken) = try await harness.signedIn("Owner", client: client)
            let organization = try await OrganizationStore(client: harness.database, logger: harness.logger).create(
                name: "Acme", owner: owner.id)
            let created = try await client.send(
                .post, "/v1/organizations/\(organization.id)/projects", token: ownerToken, json: #"{"name":"Web"}"#)
            #expect(created.status == .created)
            let project = try #require(UUID(uuidString: try created.json()["id"] as? String ?? ""))

            var tokens: [Role?: String] = [.owner: ownerToken]
            for role in [Role.guest, .member, .manager] {
                let (user, token) = try await harness.signedIn(role.rawValue.capitalized, client: client)
                _ = try await harness.memberships.add(user.id, to: .project(project), role: role, actor: owner.id)
                tokens[role] = token
            }
            tokens[nil] = try await harness.signedIn("Stranger", client: client).token

            let cases: [Case] = [
                Case(role: nil, method: .get, path: "/v1/projects/\(project)", expected: .notFound),
                Case(role: .guest, method: .get, path: "/v1/projects/\(project)", expected: .ok),
                Case(role: .member, method: .get, path: "/v1/projects/\(project)", expected: .ok),
                Case(role: nil, method: .patch, path: "/v1/projects/\(project)", body: #"{"name":"X"}"#, expected: .notFound),
                Case(role: .guest, method: .patch, path: "/v1/projects/\(project)", body: #"{"name":"X"}"#, expected: .forbidden),
                Case(role: .member, method: .patch, path: "/v1/projects/\(project)", body: #"{"name":"X"}"#, expected: .forbidden),
                Case(role: .manager, method: .patch, path: "/v1/projects/\(project)", body: #"{"name":"Renamed"}"#, expected: .ok),
                Case(role: .manager, method: .delete, path: "/v1/projects/\(project)", expected: .forbidden),
                Case(role: nil, method: .get, path: "/v1/organizations/\(organization.id)/projects", expected: .notFound),
                Case(role: .owner, method: .get, path: "/v1/organizations/\(organization.id)/projects", expected: .ok),
                Case(role: .owner, method: .delete, path: "/v1/projects/\(project)", expected: .noContent),
                Case(role: .guest, method: .get, path: "/v1/projects/\(project)", expected: .notFound),
            ]
            for test in cases {
                let response = try await client.send(test.method, test.path, token: tokens[test.role] ?? nil, json: test.body)
                #expect(response.status == test.expected, "\(test): \(String(buffer: response.body))")
                if response.status.code >= 400 { _ = try response.problem() }
            }
            #expect(try await client.send(.get, "/v1/projects/\(project)").status == .unauthorized)
        }
    }

    @Test func theMatrixIsTheREADMEs() {
        // The table README shows, row by row.
        let expected: [Permission: Role] = [
            .read: .guest, .runJobs: .member, .cancelOperations: .member, .manageSchedules: .member, .manageNotificationRules: .member,
            .writeEnvironments: .manager, .writeSecrets: .manager, .writeTasks: .manager, .writeJobs: .manager,
            .writeRepositories: .manager, .writeWebhooks: .manager, .writeTriggers: .manager, .manageMembers: .manager, .archive: .owner,
        ]
        for permission in Permission.allCases {
            #expect(permission.minimumRole == expected[permission], "\(permission)")
            for role in Role.allCases {
                #expect(permission.allows(role) == (role >= expected[permission]!), "\(permission) \(role)")
            }
        }
    }
}
