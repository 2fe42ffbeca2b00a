import Foundation
import HTTPTypes
import HarrowTestSupport
import Hummingbird
import HummingbirdTesting
import Testing

@testable import APIServer

/// A private repository served over HTTP(S) with Basic authentication is checked out with the
/// token set on the repository, which is stored sealed, never shown and masked in the log.
@Suite(.serialized) struct OperationHTTPCheckoutAPITests {
    typealias Runs = OperationRunAPITests

    @Test func aPrivateRepositoryIsCheckedOutWithItsToken() async throws {
        try await APIHarness.with("op_http_checkout") { harness, client in
            let scratch = FileManager.default.temporaryDirectory.appendingPathComponent("op-http-\(UUID().uuidString.lowercased())")
            let served = scratch.appendingPathComponent("served")
            try FileManager.default.createDirectory(at: served, withIntermediateDirectories: true)
            defer { try? FileManager.default.removeItem(at: scratch) }
            let origin = try OriginRepository(in: served, name: "app")
            let head = try origin.commit(["VERSION": "1.2.3\n"], message: "version", on: "main")
            let token = "tok-\(TestRedis.randomHex())"
            let server = try HTTPGitServer(root: served, basicAuth: (user: "x-access-token", password: token))
            defer { server.stop() }
            let worker = try Runs.worker(harness)
            let project = try await Runs.project(
                harness, client, script: "cat repositories/app/VERSION\n! grep -rqs x-access-token repositories/app/.git")
            let created = try await client.send(
                .post, "\(project.base)/repositories", token: project.token, json: try Runs.json(["url": server.url("app.git")]))
            #expect(created.status == .created, "\(String(buffer: created.body))")
            let repository = try #require(try created.json()["id"] as? String)
            #expect(try created.json()["has_token"] as? Bool == false)

            let refused = try await OperationSSHAPITests.finished(try await Runs.run(project, client), of: project, client)
            #expect(refused["status"] as? String == "failed", "\(worker.log())")
            #expect(refused["failure_reason"] as? String == "checkout_failed")

            let path = "\(project.base)/repositories/\(repository)/token"
            #expect(try await client.send(.put, path, json: try Runs.json(["token": token])).status == .unauthorized)
            #expect(
                try await client.send(.put, path, token: project.token, json: #"{"token":"two words"}"#).status == .unprocessableContent)
            let set = try await client.send(.put, path, token: project.token, json: try Runs.json(["token": token]))
            #expect(set.status == .noContent, "\(String(buffer: set.body))")
            let shown = try await client.send(.get, "\(project.base)/repositories/\(repository)", token: project.token)
            #expect(try shown.json()["has_token"] as? Bool == true)
            #expect(!String(buffer: shown.body).contains(token))

            let ran = try await OperationSSHAPITests.finished(try await Runs.run(project, client), of: project, client)
            let log = try await Runs.log(ran["id"] as? String ?? "", of: project, client)
            #expect(ran["status"] as? String == "succeeded", "\(log) \(worker.log())")
            #expect(ran["checkouts"] as? [String: String] == ["app": head])
            #expect(log.contains { $0.stream == "stdout" && $0.text == "1.2.3" })
            #expect(!log.contains { $0.text.contains(token) })

            #expect(try await client.send(.delete, path, token: project.token).status == .noContent)
            #expect(try await client.send(.delete, path, token: project.token).status == .notFound)

            // A token is for the server it was set for: moving the repository drops it.
            #expect(try await client.send(.put, path, token: project.token, json: try Runs.json(["token": token])).status == .noContent)
            let moved = try await client.send(
                .patch, "\(project.base)/repositories/\(repository)", token: project.token,
                json: try Runs.json(["url": "https://attacker.invalid/app.git"]))
            #expect(moved.status == .ok, "\(String(buffer: moved.body))")
            #expect(try moved.json()["has_token"] as? Bool == false)
            worker.signal(SIGTERM)
            #expect(try await worker.waitForExit() == 0, "\(worker.log())")
            #expect(!worker.log().contains(token))
        }
    }
}
