import Foundation
import HTTPTypes
import HarrowTestSupport
import Hummingbird
import HummingbirdTesting
import PostgresNIO
import Store
import Testing

@testable import APIServer

/// Per-user quotas: organizations, keys waiting for generation, unfinished operations. Past one,
/// 403 `quota-exceeded` naming it; concurrent requests cannot outrun it; platform admins are exempt.
@Suite struct QuotaAPITests {
    static let quotaExceeded = "https://harrow.dev/problems/quota-exceeded"

    /// Expects `response` to be the 403 of the quota `limit`.
    static func expectQuotaExceeded(
        _ response: TestResponse, _ limit: String, sourceLocation: SourceLocation = #_sourceLocation
    )
        throws
    {
        #expect(response.status == .forbidden, "\(String(buffer: response.body))", sourceLocation: sourceLocation)
        let problem = try response.problem(sourceLocation: sourceLocation)
        #expect(problem["type"] as? String == quotaExceeded, sourceLocation: sourceLocation)
        #expect(problem["limit"] as? String == limit, sourceLocation: sourceLocation)
        #expect((problem["detail"] as? String)?.contains(limit) == true, sourceLocation: sourceLocation)
    }

    /// Creates an organization through the API and returns its id.
    static func organization(_ client: any TestClientProtocol, token: String, name: String = "Acme") async throws -> String {
        let response = try await client.send(.post, "/v1/organizations", token: token, json: #"{"name":"\#(name)"}"#)
        #expect(response.status == .created, "\(String(buffer: response.body))")
        return try #require(try response.json()["id"] as? String)
    }

    /// An organization with a project of the caller's; returns the project's base path and its
    /// default environment.
    static func project(_ client: any TestClientProtocol, token: String) async throws -> (base: String, environment: String) {
        let organization = try await organization(client, token: token)
        let project = try #require(
            try await client.send(.post, "/v1/organizations/\(organization)/projects", token: token, json: #"{"name":"Web"}"#)
                .json()["id"] as? String)
        let base = "/v1/projects/\(project)"
        let environments = try await client.send(.get, "\(base)/environments", token: token)
        let environment = try #require((try environments.json()["items"] as? [[String: Any]])?.first?["id"] as? String)
        return (base, environment)
    }

    /// A task and a job running it in the project at `base`; returns the job's id.
    static func job(_ client: any TestClientProtocol, token: String, base: String, environment: String) async throws -> String {
        let task = try #require(
            try await client.send(.post, "\(base)/tasks", token: token, json: #"{"name":"build","script":"make"}"#).json()["id"] as? String)
        return try #require(
            try await client.send(
                .post, "\(base)/jobs", token: token, json: #"{"name":"build","task_id":"\#(task)","environment_id":"\#(environment)"}"#
            ).json()["id"] as? String)
    }

    @Test func organizationsPastTheLimitAreRefusedUntilOneIsArchived() async throws {
        try await APIHarness.with("api_quota_organizations", configure: { $0.quotas = UserQuotas(organizations: 2) }) { harness, client in
            let (_, token) = try await harness.signedIn("Org", client: client)
            let first = try await Self.organization(client, token: token)
            _ = try await Self.organization(client, token: token)
            let third = try await client.send(.post, "/v1/organizations", token: token, json: #"{"name":"Third"}"#)
            try Self.expectQuotaExceeded(third, "max-organizations-per-user")

            // Someone else has a quota of their own.
            let (_, otherToken) = try await harness.signedIn("Other", client: client)
            _ = try await Self.organization(client, token: otherToken)

            // Only live organizations count.
            #expect(try await client.send(.delete, "/v1/organizations/\(first)", token: token).status == .noContent)
            _ = try await Self.organization(client, token: token, name: "Again")
            try Self.expectQuotaExceeded(
                try await client.send(.post, "/v1/organizations", token: token, json: #"{"name":"Fourth"}"#), "max-organizations-per-user")
        }
    }

    /// 30 creations sent at once, each on a connection of its own: exactly the limit succeed.
    @Test func concurrentCreationsCannotOutrunTheLimit() async throws {
        try await APIHarness.with("api_quota_concurrent", configure: { $0.quotas = UserQuotas(organizations: 5) }) { harness, client in
            let (user, token) = try await harness.signedIn("Racer", client: client)
            let port = try #require(client.port)
            let statuses = try await withThrowingTaskGroup(of: HTTPResponse.Status.self) { group in
                for number in 0..<30 {
                    group.addTask {
                        // They queue for the test database's 4 connections and the user's lock: with the whole
                        // suite running, one waited past the client's default 15 s.
                        try await TestClient.withClient(host: "localhost", port: port, configuration: .init(timeout: .seconds(120))) {
                            connection in
                            try await connection.execute(
                                TestClient.Request(
                                    "/v1/organizations", method: .post,
                                    headers: [.contentType: "application/json", .authorization: "Bearer \(token)"],
                                    body: ByteBuffer(string: #"{"name":"Org \#(number)"}"#))
                            ).status
                        }
                    }
                }
                return try await group.reduce(into: [HTTPResponse.Status]()) { $0.append($1) }
            }
            #expect(statuses.filter { $0 == .created }.count == 5, "\(statuses)")
            #expect(statuses.filter { $0 == .forbidden }.count == 25)
            let created = try await harness.database.value(
                "SELECT count(*)::int8 FROM organizations WHERE created_by = \(user.id)", as: Int.self)
            #expect(created == 5)
        }
    }

    /// SSH keys, repositories (their deploy keys) and ssh secrets waiting for their pair count
    /// together; env secrets do not; a generated key frees its place.
    @Test func pendingKeysPastTheLimitAreRefusedUntilOneIsGenerated() async throws {
        try await APIHarness.with("api_quota_keys", configure: { $0.quotas = UserQuotas(pendingKeys: 3) }) { harness, client in
            let (_, token) = try await harness.signedIn("Keys", client: client)
            let (base, environment) = try await Self.project(client, token: token)
            let rsa = try await client.send(.post, "\(base)/ssh-keys", token: token, json: #"{"name":"legacy","algorithm":"rsa"}"#)
            #expect(rsa.status == .created, "\(String(buffer: rsa.body))")
            let repository = try await client.send(
                .post, "\(base)/repositories", token: token, json: #"{"url":"https://example.com/web.git"}"#)
            #expect(repository.status == .created, "\(String(buffer: repository.body))")
            let sshSecret = try await client.send(
                .post, "\(base)/environments/\(environment)/secrets", token: token, json: #"{"name":"DEPLOY","kind":"ssh"}"#)
            #expect(sshSecret.status == .created, "\(String(buffer: sshSecret.body))")

            try Self.expectQuotaExceeded(
                try await client.send(.post, "\(base)/ssh-keys", token: token, json: #"{"name":"one more","algorithm":"rsa"}"#),
                "max-pending-keys-per-user")
            try Self.expectQuotaExceeded(
                try await client.send(.post, "\(base)/repositories", token: token, json: #"{"url":"https://example.com/api.git"}"#),
                "max-pending-keys-per-user")
            try Self.expectQuotaExceeded(
                try await client.send(
                    .post, "\(base)/environments/\(environment)/secrets", token: token, json: #"{"name":"DEPLOY2","kind":"ssh"}"#),
                "max-pending-keys-per-user")
            let envSecret = try await client.send(
                .post, "\(base)/environments/\(environment)/secrets", token: token, json: #"{"name":"TOKEN","value":"s3cret"}"#)
            #expect(envSecret.status == .created, "\(String(buffer: envSecret.body))")
            #expect(try await harness.outboxPayloads(type: "generate-key").count == 3)

            // The RSA key gets its pair (as the worker would store it): room for one more.
            let rsaID = try #require(try rsa.json()["id"] as? String)
            let keyID = try #require(UUID(uuidString: rsaID))
            _ = try await SSHKeyStore(client: harness.database, keyring: harness.keyring, logger: harness.logger).storeKeyMaterial(
                keyID, publicKey: "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIGenerated test", privateKey: Array("private".utf8),
                fingerprint: "SHA256:test")
            let next = try await client.send(.post, "\(base)/ssh-keys", token: token, json: #"{"name":"next"}"#)
            #expect(next.status == .created, "\(String(buffer: next.body))")
            try Self.expectQuotaExceeded(
                try await client.send(.post, "\(base)/ssh-keys", token: token, json: #"{"name":"and another"}"#),
                "max-pending-keys-per-user")
        }
    }

    /// Runs and retries a user requested count while queued or running; a finished one frees
    /// its place.
    @Test func queuedOperationsPastTheLimitAreRefusedUntilOneFinishes() async throws {
        try await APIHarness.with("api_quota_operations", configure: { $0.quotas = UserQuotas(queuedOperations: 2) }) { harness, client in
            let (_, token) = try await harness.signedIn("Runner", client: client)
            let (base, environment) = try await Self.project(client, token: token)
            let job = try await Self.job(client, token: token, base: base, environment: environment)
            var operations: [String] = []
            for _ in 0..<2 {
                let run = try await client.send(.post, "\(base)/jobs/\(job)/operations", token: token)
                #expect(run.status == .created, "\(String(buffer: run.body))")
                operations.append(try #require(try run.json()["id"] as? String))
            }
            try Self.expectQuotaExceeded(
                try await client.send(.post, "\(base)/jobs/\(job)/operations", token: token), "max-queued-operations-per-user")

            // A canceled operation is finished: its place is free, and a retry takes it.
            let canceled = try await client.send(.post, "\(base)/operations/\(operations[0])/cancel", token: token)
            #expect(try canceled.json()["status"] as? String == "canceled")
            let retried = try await client.send(.post, "\(base)/operations/\(operations[0])/retry", token: token)
            #expect(retried.status == .created, "\(String(buffer: retried.body))")
            try Self.expectQuotaExceeded(
                try await client.send(.post, "\(base)/operations/\(operations[0])/retry", token: token), "max-queued-operations-per-user")
            try Self.expectQuotaExceeded(
                try await client.send(.post, "\(base)/jobs/\(job)/operations", token: token), "max-queued-operations-per-user")
        }
    }

    /// Platform admins have no quotas.
    @Test func platformAdminsAreExempt() async throws {
        try await APIHarness.with(
            "api_quota_admin", configure: { $0.quotas = UserQuotas(organizations: 1, pendingKeys: 1, queuedOperations: 1) }
        ) { harness, client in
            let (_, token) = try await harness.signedIn("Admin", admin: true, client: client)
            for number in 1...3 { _ = try await Self.organization(client, token: token, name: "Org \(number)") }
            let (base, environment) = try await Self.project(client, token: token)
            for number in 1...3 {
                let key = try await client.send(
                    .post, "\(base)/ssh-keys", token: token, json: #"{"name":"key \#(number)","algorithm":"rsa"}"#)
                #expect(key.status == .created, "\(String(buffer: key.body))")
            }
            let job = try await Self.job(client, token: token, base: base, environment: environment)
            for _ in 0..<3 {
                let run = try await client.send(.post, "\(base)/jobs/\(job)/operations", token: token)
                #expect(run.status == .created, "\(String(buffer: run.body))")
            }
            // The same limits hold for anyone else.
            let (_, userToken) = try await harness.signedIn("User", client: client)
            _ = try await Self.organization(client, token: userToken)
            try Self.expectQuotaExceeded(
                try await client.send(.post, "/v1/organizations", token: userToken, json: #"{"name":"Second"}"#),
                "max-organizations-per-user")
        }
    }
}
