import Foundation
import HTTPTypes
import HarrowTestSupport
import Hummingbird
import HummingbirdTesting
import Testing

@testable import APIServer

/// Operations that reach other hosts over SSH, through the API and a real `worker` process: a
/// repository served by a local `sshd` checked out with its generated deploy key, and an
/// environment whose scripts run on a target host. Host keys are pinned; a wrong one is refused.
@Suite(.serialized) struct OperationSSHAPITests {
    typealias Runs = OperationRunAPITests

    /// `[127.0.0.1]:port ssh-ed25519 <a key sshd does not have>`: a pin that does not match.
    static func wrongPin(port: Int) -> String {
        var blob: [UInt8] = [0, 0, 0, 11] + Array("ssh-ed25519".utf8) + [0, 0, 0, 32]
        blob += (0..<32).map { _ in UInt8.random(in: 0...255) }
        return "[127.0.0.1]:\(port) ssh-ed25519 \(Data(blob).base64EncodedString())"
    }

    /// The public key of a generated key pair, once the worker made it: `path` answers an
    /// object with a `public_key` at `keyPath`.
    static func generatedPublicKey(
        _ path: String, token: String, _ client: any TestClientProtocol, at keyPath: [String] = []
    ) async throws -> String {
        var publicKey: String?
        try await eventually("the worker generates the key pair", timeout: .seconds(60), poll: .milliseconds(100)) {
            var object: Any? = try await client.send(.get, path, token: token).json()
            for key in keyPath { object = (object as? [String: Any])?[key] }
            publicKey = (object as? [String: Any])?["public_key"] as? String
            return publicKey != nil
        }
        return try #require(publicKey)
    }

    /// Lets `publicKey` log in to `daemon` (sshd reads `authorized_keys` at each login).
    static func authorize(_ publicKey: String, on daemon: SSHDaemon) throws {
        try daemon.authorize(publicKey)
    }

    static func finished(_ id: String, of project: Runs.Project, _ client: any TestClientProtocol) async throws -> [String: Any] {
        try await Runs.operation(id, of: project, client) {
            ["failed", "succeeded", "timed_out", "canceled"].contains($0["status"] as? String ?? "")
        }
    }

    /// A repository served over SSH by a local sshd, its host key pinned in the repository's
    /// `known_hosts`, is checked out with the generated deploy key at the default branch and at
    /// a `ref` parameter, and each commit is recorded; a pin that does not match fails the
    /// checkout with the reason in the log, and the script never runs.
    @Test func aRepositoryOverSSHIsCheckedOutWithItsDeployKey() async throws {
        try await APIHarness.with("op_checkout") { harness, client in
            let scratch = FileManager.default.temporaryDirectory.appendingPathComponent("op-checkout-\(UUID().uuidString.lowercased())")
            try FileManager.default.createDirectory(at: scratch, withIntermediateDirectories: true)
            defer { try? FileManager.default.removeItem(at: scratch) }
            let origin = try OriginRepository(in: scratch, name: "ops")
            let head = try origin.commit(["deploy.sh": "echo deploying main\n"], message: "deploy", on: "main")
            let release = try origin.commit(["deploy.sh": "echo deploying release\n"], message: "release", on: "release")
            let daemon = try await SSHDaemon.start(authorizedKeys: [])
            defer { daemon.stop() }
            let worker = try Runs.worker(harness)
            let project = try await Runs.project(
                harness, client,
                script: """
                    bash repositories/ops/deploy.sh
                    test -z "$(ls -A home)" && echo home is empty
                    if [ -n "${PROBE_URL:-}" ]; then git ls-remote "$PROBE_URL" refs/heads/main; fi
                    """)

            let url = "ssh://\(daemon.user)@127.0.0.1:\(daemon.port)\(origin.bare.path)"
            let created = try await client.send(
                .post, "\(project.base)/repositories", token: project.token,
                json: try Runs.json(["url": url, "known_hosts": daemon.knownHostsLine]))
            #expect(created.status == .created, "\(String(buffer: created.body))")
            let repository = try #require(try created.json()["id"] as? String)
            #expect(try created.json()["name"] as? String == "ops")
            let publicKey = try await Self.generatedPublicKey(
                "\(project.base)/repositories/\(repository)", token: project.token, client, at: ["deploy_key"])
            try Self.authorize(publicKey, on: daemon)

            let first = try await Self.finished(try await Runs.run(project, client), of: project, client)
            let firstLog = try await Runs.log(first["id"] as? String ?? "", of: project, client)
            #expect(first["status"] as? String == "succeeded", "\(firstLog) \(worker.log()) \(daemon.log)")
            #expect(first["checkouts"] as? [String: String] == ["ops": head])
            #expect(firstLog.contains { $0.stream == "stdout" && $0.text == "deploying main" })
            #expect(firstLog.contains { $0.stream == "stdout" && $0.text == "home is empty" }, "the deploy key is never on disk")

            let atRef = try await client.send(
                .post, "\(project.base)/jobs/\(project.job)/operations", token: project.token, json: #"{"parameters":{"ref":"release"}}"#)
            let second = try await Self.finished(try #require(try atRef.json()["id"] as? String), of: project, client)
            #expect(second["status"] as? String == "succeeded")
            #expect(second["checkouts"] as? [String: String] == ["ops": release])

            let repinned = try await client.send(
                .patch, "\(project.base)/repositories/\(repository)", token: project.token,
                json: try Runs.json(["known_hosts": Self.wrongPin(port: daemon.port)]))
            #expect(repinned.status == .ok, "\(String(buffer: repinned.body))")
            let refused = try await Self.finished(try await Runs.run(project, client), of: project, client)
            #expect(refused["status"] as? String == "failed")
            #expect(refused["failure_reason"] as? String == "checkout_failed")
            #expect(refused["exit_status"] == nil || refused["exit_status"] is NSNull, "the script never ran")
            let refusedLog = try await Runs.log(refused["id"] as? String ?? "", of: project, client)
            #expect(refusedLog.contains { $0.stream == "system" && $0.text.contains("does not match the key pinned") }, "\(refusedLog)")
            #expect(!refusedLog.contains { $0.text.hasPrefix("deploying") })

            // The environment's own ssh secret, pinned by its known_hosts, works for the script's
            // own git (and ssh -F "$HOME/.ssh/config").
            let environment = "\(project.base)/environments/\(project.environment)"
            let secret = try await client.send(
                .post, "\(environment)/secrets", token: project.token, json: #"{"name":"scripts","kind":"ssh"}"#)
            let secretID = try #require(try secret.json()["id"] as? String)
            try Self.authorize(
                try await Self.generatedPublicKey("\(project.base)/secrets/\(secretID)", token: project.token, client), on: daemon)
            let probing = try await client.send(
                .patch, environment, token: project.token,
                json: try Runs.json(["variables": ["PROBE_URL": url], "known_hosts": daemon.knownHostsLine]))
            #expect(probing.status == .ok, "\(String(buffer: probing.body))")
            _ = try await client.send(
                .patch, "\(project.base)/repositories/\(repository)", token: project.token,
                json: try Runs.json(["known_hosts": daemon.knownHostsLine]))
            let probed = try await Self.finished(try await Runs.run(project, client), of: project, client)
            let probedLog = try await Runs.log(probed["id"] as? String ?? "", of: project, client)
            #expect(probed["status"] as? String == "succeeded", "\(probedLog)")
            #expect(probedLog.contains { $0.stream == "stdout" && $0.text == "\(head)\trefs/heads/main" }, "\(probedLog)")

            let bad = try await client.send(
                .post, "\(project.base)/repositories", token: project.token, json: try Runs.json(["url": "file://\(origin.bare.path)"]))
            #expect(bad.status == .unprocessableContent)
            worker.signal(SIGTERM)
            #expect(try await worker.waitForExit() == 0, "\(worker.log())")
        }
    }

    /// An environment with an SSH target runs its scripts there: both streams apart, the exit
    /// status, the same variables (`HOME` the login's, `HARROW_WORKSPACE` the run's directory
    /// there). A target whose host key does not match the pin is refused with the reason in the
    /// log (`target_unreachable`); an unreachable one gives the operation back to be tried later.
    @Test func anEnvironmentWithATargetRunsItsScriptsThere() async throws {
        try await APIHarness.with("op_target") { harness, client in
            let daemon = try await SSHDaemon.start(authorizedKeys: [])
            defer { daemon.stop() }
            let worker = try Runs.worker(harness)
            let project = try await Runs.project(
                harness, client,
                script: """
                    echo "greeting=$GREETING"
                    echo "workspace=$HARROW_WORKSPACE pwd=$PWD"
                    echo "home=$HOME"
                    echo oops >&2
                    exit 4
                    """, variables: ["GREETING": "$(hostname)"])
            let environment = "\(project.base)/environments/\(project.environment)"
            let secret = try await client.send(
                .post, "\(environment)/secrets", token: project.token, json: #"{"name":"target","kind":"ssh"}"#)
            #expect(secret.status == .created, "\(String(buffer: secret.body))")
            let secretID = try #require(try secret.json()["id"] as? String)
            try Self.authorize(
                try await Self.generatedPublicKey("\(project.base)/secrets/\(secretID)", token: project.token, client), on: daemon)
            let targeted = try await client.send(
                .patch, environment, token: project.token,
                json: try Runs.json([
                    "target": "ssh://\(daemon.user)@127.0.0.1:\(daemon.port)", "target_secret_id": secretID,
                    "known_hosts": daemon.knownHostsLine,
                ]))
            #expect(targeted.status == .ok, "\(String(buffer: targeted.body))")

            let ran = try await Self.finished(try await Runs.run(project, client), of: project, client)
            let log = try await Runs.log(ran["id"] as? String ?? "", of: project, client)
            #expect(ran["status"] as? String == "failed", "\(log) \(worker.log())")
            #expect(ran["exit_status"] as? Int == 4)
            #expect(ran["failure_reason"] as? String == "script_failed")
            let stdout = log.filter { $0.stream == "stdout" }.map(\.text)
            #expect(stdout.first == "greeting=$(hostname)")
            let workspace = try #require(stdout.dropFirst().first)
            let fields = workspace.split(separator: " ").map { String($0.split(separator: "=", maxSplits: 1).last ?? "") }
            #expect(fields.count == 2 && fields[0] == fields[1] && fields[0].hasPrefix("/"), "\(workspace)")
            let loginHome = getpwuid(getuid()).map { String(cString: $0.pointee.pw_dir) }
            #expect(stdout.dropFirst(2).first == "home=\(loginHome ?? "?")", "the login's home, not the worker's workspace")
            #expect(log.filter { $0.stream == "stderr" }.map(\.text) == ["oops"])

            _ = try await client.send(
                .patch, environment, token: project.token, json: try Runs.json(["known_hosts": Self.wrongPin(port: daemon.port)]))
            let refused = try await Self.finished(try await Runs.run(project, client), of: project, client)
            #expect(refused["status"] as? String == "failed")
            #expect(refused["failure_reason"] as? String == "target_unreachable")
            let refusedLog = try await Runs.log(refused["id"] as? String ?? "", of: project, client)
            #expect(refusedLog.contains { $0.stream == "system" && $0.text.contains("does not match the key pinned") }, "\(refusedLog)")
            #expect(!refusedLog.contains { $0.stream == "stdout" })

            let closed = try SSHDaemon.unusedPort()
            _ = try await client.send(
                .patch, environment, token: project.token,
                json: try Runs.json(["target": "ssh://\(daemon.user)@127.0.0.1:\(closed)", "known_hosts": daemon.knownHostsLine]))
            let waiting = try await Runs.run(project, client)
            var note = false
            try await eventually("the unreachable target is said in the log", timeout: .seconds(60), poll: .milliseconds(100)) {
                note = try await Runs.log(waiting, of: project, client).contains { $0.text.contains("tried again later") }
                return note
            }
            let requeued = try await Runs.operation(waiting, of: project, client) { $0["status"] as? String == "queued" }
            #expect(requeued["status"] as? String == "queued", "given back for the job's retry")
            let livePage = try await client.send(.get, "\(project.base)/operations/\(waiting)/log", token: project.token).json()
            #expect(livePage["finished"] as? Bool == false, "the log of an operation given back goes on")
            let canceled = try await client.send(.post, "\(project.base)/operations/\(waiting)/cancel", token: project.token)
            #expect(canceled.status == .ok, "\(String(buffer: canceled.body))")
            worker.signal(SIGTERM)
            #expect(try await worker.waitForExit() == 0, "\(worker.log())")
        }
    }
}
