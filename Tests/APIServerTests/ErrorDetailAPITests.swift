import Foundation
import HTTPTypes
import HarrowTestSupport
import Hummingbird
import HummingbirdTesting
import Logging
import NIOCore
import Store
import Testing

@testable import APIServer

/// Error answers tell the caller what to fix and nothing else: no input echoed back, no
/// internals, one problem type per status, and admin routes that do not exist for non-admins
/// whether or not they are logged in.
@Suite struct ErrorDetailAPITests {
    @Test func aBadPathValueIsNotEchoed() async throws {
        try await APIHarness.with("api_errors_path") { harness, client in
            let (_, token) = try await harness.signedIn("Pat", client: client)
            let probe = "not-an-id-script-alert"
            for path in ["/v1/projects/\(probe)", "/v1/organizations/\(probe)", "/v1/sessions/\(probe)"] {
                let response = try await client.send(path.hasPrefix("/v1/sessions") ? .delete : .get, path, token: token)
                #expect(response.status == .badRequest, "\(path): \(response.status)")
                let body = String(buffer: response.body)
                #expect(!body.contains("script") && !body.contains("not-an-id"), "\(body)")
                _ = try response.problem()
            }
        }
    }

    @Test func adminRoutesAre404ForAnonymousAndNonAdminCallersAlike() async throws {
        try await APIHarness.with("api_errors_admin") { harness, client in
            let (_, token) = try await harness.signedIn("Nob", client: client)
            let anonymous = try await client.send(.get, "/admin/queues")
            let member = try await client.send(.get, "/admin/queues", token: token)
            #expect(anonymous.status == .notFound && member.status == .notFound)
            #expect(String(buffer: anonymous.body) == String(buffer: member.body))
            #expect(try await client.send(.get, "/admin/queues/mail/jobs").status == .notFound)
        }
    }

    /// Whichever layer refuses an oversized body, the answer is one problem type naming the
    /// configured limit.
    @Test func everyTooLargeBodyIsOneProblemNamingTheLimit() {
        let logger = Logger(label: "harrow.test.errors")
        for error: any Error in [NIOTooManyBytesError(maxBytes: 10), HTTPError(.contentTooLarge), Problem.tooLarge(limit: 4096)] {
            let problem = ProblemMiddleware.problem(for: error, requestID: "r", logger: logger, bodyLimit: 4096)
            #expect(problem.status == 413)
            #expect(problem.type == Problem.base + "payload-too-large", "\(error): \(problem.type)")
            #expect(problem.detail == "the body must be at most 4096 bytes", "\(error): \(problem.detail)")
        }
        let framework = ProblemMiddleware.problem(
            for: HTTPError(.badRequest, message: "Parameter 'secret-value' is odd"), requestID: "r", logger: logger, bodyLimit: 1)
        #expect(!framework.detail.contains("secret-value"))
    }

    /// A member of one of an organization's projects sees it listed, and may read it too (but
    /// nothing more of it).
    @Test func organizationsListedThroughAProjectCanBeRead() async throws {
        try await APIHarness.with("api_org_visible") { harness, client in
            let (owner, ownerToken) = try await harness.signedIn("Owner", client: client)
            let (organization, project) = try await MembershipAPITests.organizationAndProject(client, token: ownerToken)
            let (guest, guestToken) = try await harness.signedIn("Guest", client: client)
            _ = try await harness.memberships.add(
                guest.id, to: .project(try #require(UUID(uuidString: project))), role: .member, actor: owner.id)

            let listed = try await client.send(.get, "/v1/organizations", token: guestToken)
            let ids = (try listed.json()["items"] as? [[String: Any]])?.compactMap { $0["id"] as? String }
            #expect(ids == [organization])
            let read = try await client.send(.get, "/v1/organizations/\(organization)", token: guestToken)
            #expect(read.status == .ok, "\(String(buffer: read.body))")
            #expect(try read.json()["id"] as? String == organization)
            #expect(try await client.send(.get, "/v1/organizations/\(organization)/members", token: guestToken).status == .notFound)
            let rename = try await client.send(.patch, "/v1/organizations/\(organization)", token: guestToken, json: #"{"name":"Mine"}"#)
            #expect(rename.status == .notFound || rename.status == .forbidden)
            let (_, strangerToken) = try await harness.signedIn("Stranger", client: client)
            #expect(try await client.send(.get, "/v1/organizations/\(organization)", token: strangerToken).status == .notFound)
        }
    }
}
