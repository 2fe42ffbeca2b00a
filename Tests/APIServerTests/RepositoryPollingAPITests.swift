import Foundation
import HTTPTypes
import HarrowTestSupport
import Hummingbird
import HummingbirdTesting
import Testing

@testable import APIServer

/// Git polling end to end: two real `worker` processes with default options poll a repository
/// served by a local `sshd`, read with its generated deploy key; a push to `main` starts
/// exactly one operation of the trigger on `^refs/heads/main$`, and the first scan none.
@Suite(.serialized) struct RepositoryPollingAPITests {
    typealias Runs = OperationRunAPITests
    typealias SSH = OperationSSHAPITests

    static func repository(_ path: String, token: String, _ client: any TestClientProtocol) async throws -> [String: Any] {
        try await client.send(.get, path, token: token).json()
    }

    static func triggered(_ project: Runs.Project, _ client: any TestClientProtocol) async throws -> [[String: Any]] {
        let page = try await client.send(.get, "\(project.base)/operations?limit=100", token: project.token).json()
        return ((page["items"] as? [[String: Any]]) ?? []).filter { $0["reason"] as? String == "git_trigger" }
    }

    @Test func twoWorkersStartOneOperationForAPushToMain() async throws {
        try await APIHarness.with("poll_e2e") { harness, client in
            let scratch = FileManager.default.temporaryDirectory.appendingPathComponent("poll-e2e-\(UUID().uuidString.lowercased())")
            try FileManager.default.createDirectory(at: scratch, withIntermediateDirectories: true)
            defer { try? FileManager.default.removeItem(at: scratch) }
            let origin = try OriginRepository(in: scratch, name: "app")
            let daemon = try await SSHDaemon.start(authorizedKeys: [])
            defer { daemon.stop() }
            let workers = [try Runs.worker(harness), try Runs.worker(harness)]
            let project = try await Runs.project(harness, client, script: "echo \"built $HARROW_PARAM_SHA\"")

            let url = "ssh://\(daemon.user)@127.0.0.1:\(daemon.port)\(origin.bare.path)"
            let created = try await client.send(
                .post, "\(project.base)/repositories", token: project.token,
                json: try Runs.json(["url": url, "known_hosts": daemon.knownHostsLine, "poll_interval_seconds": 10]))
            #expect(created.status == .created, "\(String(buffer: created.body))")
            #expect(try created.json()["poll_interval_seconds"] as? Int == 10)
            let id = try #require(try created.json()["id"] as? String)
            let path = "\(project.base)/repositories/\(id)"
            try SSH.authorize(try await SSH.generatedPublicKey(path, token: project.token, client, at: ["deploy_key"]), on: daemon)
            let trigger = try await client.send(
                .post, "\(project.base)/triggers", token: project.token,
                json: try Runs.json([
                    "repository_id": id, "job_id": project.job, "name": "main", "ref_pattern": "^refs/heads/main$", "change_type": "change",
                ]))
            #expect(trigger.status == .created, "\(String(buffer: trigger.body))")
            // A rename keeps the pattern (it fell back to ".*", every ref, before).
            let triggerID = try #require(try trigger.json()["id"] as? String)
            let renamed = try await client.send(
                .patch, "\(project.base)/triggers/\(triggerID)", token: project.token,
                json: #"{"name":"main pushes","change_type":"change"}"#)
            #expect(renamed.status == .ok, "\(String(buffer: renamed.body))")
            #expect(try renamed.json()["ref_pattern"] as? String == "^refs/heads/main$")

            // The first scan (after the key is authorized) records refs and starts nothing.
            let start = try TestCommand.git(["rev-parse", "refs/heads/main"], in: origin.bare)
            try await eventually("the first scan reads the repository", timeout: .seconds(60), poll: .milliseconds(200)) {
                let repository = try await Self.repository(path, token: project.token, client)
                return repository["accessible"] as? Bool == true && (repository["refs"] as? [String: String])?["refs/heads/main"] == start
            }
            #expect(try await Self.triggered(project, client).isEmpty)

            let pushed = try origin.commit(["deploy.sh": "echo v2\n"], message: "v2", on: "main")
            var operations: [[String: Any]] = []
            try await eventually("a poll sees the push and starts an operation", timeout: .seconds(60), poll: .milliseconds(200)) {
                operations = try await Self.triggered(project, client)
                return !operations.isEmpty
            }
            // Later polls by either worker start nothing more.
            let seen = try #require(try await Self.repository(path, token: project.token, client)["checked_at"] as? String)
            try await eventually("two more polls", timeout: .seconds(60), poll: .milliseconds(500)) {
                let checked = try await Self.repository(path, token: project.token, client)["checked_at"] as? String
                return checked.map { $0 > seen } ?? false
            }
            let after = try #require(try await Self.repository(path, token: project.token, client)["checked_at"] as? String)
            try await eventually("two more polls", timeout: .seconds(60), poll: .milliseconds(500)) {
                let checked = try await Self.repository(path, token: project.token, client)["checked_at"] as? String
                return checked.map { $0 > after } ?? false
            }
            operations = try await Self.triggered(project, client)
            #expect(operations.count == 1)
            let parameters = try #require(operations.first?["parameters"] as? [String: String])
            #expect(parameters == ["ref": "refs/heads/main", "sha": pushed, "previous_sha": start, "repository_id": id])
            let finished = try await SSH.finished(try #require(operations.first?["id"] as? String), of: project, client)
            let log = try await Runs.log(finished["id"] as? String ?? "", of: project, client)
            #expect(log.contains { $0.stream == "stdout" && $0.text == "built \(pushed)" }, "\(log)")

            let refreshed = try await client.send(.post, "\(path)/refresh", token: project.token)
            #expect(refreshed.status == .accepted)
            for worker in workers { worker.signal(SIGTERM) }
            for worker in workers { #expect(try await worker.waitForExit() == 0, "\(worker.log())") }
        }
    }
}
