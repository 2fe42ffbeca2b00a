import Foundation
import HarrowTestSupport
import Logging
import PostgresNIO
import Store
import Testing

@testable import Jobs

/// `poll-repo` against real git servers: a local `sshd` (deploy key, pinned host key) and
/// `git http-backend`, with pushes, force-pushes and tags between polls.
@Suite(.timeLimit(.minutes(4))) struct RepositoryPollTests {
    /// A clone that pushes to the served repository, as a developer would.
    struct Pusher {
        let work: URL

        init(cloning bare: URL, into work: URL) throws {
            self.work = work
            try TestCommand.git(["clone", "-q", bare.path, work.path], in: work.deletingLastPathComponent())
        }

        @discardableResult
        func commit(_ message: String, on branch: String = "main") throws -> String {
            try TestCommand.git(["checkout", "-q", "-B", branch], in: work)
            try Data(message.utf8).write(to: work.appendingPathComponent("\(message).txt"))
            try TestCommand.git(["add", "-A"], in: work)
            try TestCommand.git(["commit", "-q", "-m", message], in: work)
            try TestCommand.git(["push", "-q", "origin", branch], in: work)
            return try TestCommand.git(["rev-parse", "HEAD"], in: work)
        }

        /// Rewrites `branch` to `sha` and force-pushes it.
        func forcePush(_ branch: String, to sha: String) throws {
            try TestCommand.git(["checkout", "-q", "-B", branch, sha], in: work)
            try TestCommand.git(["push", "-q", "-f", "origin", branch], in: work)
        }

        func git(_ arguments: String...) throws {
            try TestCommand.git(arguments, in: work)
        }
    }

    /// A project with a job and one repository at `url`; the poller and stores on the harness.
    struct Fixture {
        let harness: JobsHarness
        let repository: Repository
        let job: UUID
        let poller: RepositoryRefPoller

        init(_ harness: JobsHarness, url: String, knownHosts: String = "") async throws {
            self.harness = harness
            repository = try await RepositoryStore(client: harness.database, logger: harness.logger).create(
                project: harness.project, url: url, knownHosts: knownHosts, actor: nil)
            let task = try await TaskStore(client: harness.database, logger: harness.logger).create(
                project: harness.project, name: "deploy", script: "true", actor: nil)
            job = try await JobStore(client: harness.database, logger: harness.logger).create(
                project: harness.project, name: "deploy", task: task.id, environment: harness.environment, actor: nil
            ).id
            poller = RepositoryRefPoller(
                plans: RunPlanStore(client: harness.database, keyring: harness.keyring, logger: harness.logger),
                polls: RepositoryPollStore(client: harness.database, logger: harness.logger))
        }

        /// Gives the repository's deploy key a key pair (as `generate-key` would); its public key.
        func deployKey() async throws -> String {
            let pair = try OpenSSHKeyPair.generate(.ed25519, comment: "deploy")
            _ = try await harness.keyPairs.store(
                KeyPairStore.KeyPair(publicKey: pair.publicKey, privateKey: Array(pair.privateKey.utf8), fingerprint: pair.fingerprint),
                for: .sshKey(try #require(repository.credentialID)), replace: false, job: nil)
            return pair.publicKey
        }

        func trigger(_ pattern: String, _ type: GitTrigger.ChangeType) async throws {
            _ = try await GitTriggerStore(client: harness.database, logger: harness.logger).create(
                project: harness.project, repository: repository.id, job: job, name: "\(type) \(pattern)", refPattern: pattern,
                changeType: type, actor: nil)
        }

        @discardableResult
        func poll() async throws -> RepositoryPollStore.Outcome {
            try #require(try await poller.poll(repository.id, logger: harness.logger))
        }

        /// The parameters of every git-triggered operation, oldest first.
        func triggered() async throws -> [[String: String]] {
            try await harness.database.withConnection { connection in
                var all: [[String: String]] = []
                let rows = try await connection.query(
                    "SELECT parameters::text FROM operations WHERE reason = 'git_trigger' ORDER BY created_at, parameters->>'ref'",
                    logger: harness.logger)
                for try await text in rows.decode(String.self) {
                    all.append(try JSONDecoder().decode([String: String].self, from: Data(text.utf8)))
                }
                return all
            }
        }

        func activityCount(_ name: String) async throws -> Int {
            try await harness.database.value(
                "SELECT count(*)::int8 FROM activities WHERE name = \(name) AND payload->>'repository_id' = \(repository.id.uuidString.lowercased())",
                as: Int.self) ?? 0
        }

        func parameters(_ ref: String, _ sha: String, _ previous: String) -> [String: String] {
            ["ref": ref, "sha": sha, "previous_sha": previous, "repository_id": repository.id.uuidString.lowercased()]
        }
    }

    /// Over SSH with the deploy key and the pinned host key: the first poll is silent; a push
    /// starts one operation with the new and previous sha; two pushes between polls start one,
    /// for the newest; a force-push back is a change too; a poll that finds nothing new starts
    /// nothing.
    @Test func pushesBetweenPollsOverSSH() async throws {
        try await JobsHarness.with("poll_ssh", register: { _, _ in }) { harness in
            let scratch = try TemporaryDirectory("poll-ssh")
            defer { scratch.remove() }
            let origin = try OriginRepository(in: scratch.appending("served"), name: "app")
            let pusher = try Pusher(cloning: origin.bare, into: scratch.appending("pusher"))
            let daemon = try await SSHDaemon.start(authorizedKeys: [])
            defer { daemon.stop() }
            let fixture = try await Fixture(
                harness, url: "ssh://\(daemon.user)@127.0.0.1:\(daemon.port)\(origin.bare.path)", knownHosts: daemon.knownHostsLine)
            try daemon.authorize(try await fixture.deployKey())
            try await fixture.trigger("^refs/heads/main$", .change)
            let main = "refs/heads/main"

            let first = try await fixture.poll()
            #expect(first.firstListing && first.operations.isEmpty, "\(daemon.log)")
            let start = try #require(
                try await RepositoryStore(client: harness.database, logger: harness.logger)
                    .find(fixture.repository.id, project: harness.project).refs[main])

            let pushed = try pusher.commit("one")
            #expect(try await fixture.poll().operations.count == 1)
            #expect(try await fixture.triggered() == [fixture.parameters(main, pushed, start)])

            let between = try pusher.commit("two")
            let newest = try pusher.commit("three")
            #expect(between != newest)
            #expect(try await fixture.poll().operations.count == 1)
            #expect(try await fixture.triggered().last == fixture.parameters(main, newest, pushed))

            try pusher.forcePush("main", to: pushed)
            #expect(try await fixture.poll().operations.count == 1)
            #expect(try await fixture.triggered().last == fixture.parameters(main, pushed, newest))

            #expect(try await fixture.poll().operations.isEmpty)
            try pusher.commit("elsewhere", on: "main2")
            #expect(try await fixture.poll().operations.isEmpty, "refs/heads/main2 is not refs/heads/main")
            #expect(try await fixture.triggered().count == 3)
            #expect(try await fixture.activityCount("repository.ref-changed") == 3)
            #expect(try await fixture.activityCount("repository.ref-added") == 1)
        }
    }

    /// Over HTTPS (`git http-backend`): tag creation and deletion fire add and remove
    /// triggers; 1000 refs are recorded by one poll, and one change among them starts one
    /// operation; a remote that goes away is one `repository.inaccessible` over several polls,
    /// and one `repository.accessible` when it is back.
    @Test func tagsManyRefsAndAccessibilityOverHTTP() async throws {
        try await JobsHarness.with("poll_http", register: { _, _ in }) { harness in
            let scratch = try TemporaryDirectory("poll-http")
            defer { scratch.remove() }
            let served = scratch.appending("served")
            let origin = try OriginRepository(in: served, name: "lib")
            let pusher = try Pusher(cloning: origin.bare, into: scratch.appending("pusher"))
            let server = try HTTPGitServer(root: served)
            defer { server.stop() }
            let fixture = try await Fixture(harness, url: server.url("lib.git"))
            try await fixture.trigger("refs/tags/v.*", .add)
            try await fixture.trigger("refs/tags/v.*", .remove)
            try await fixture.poll()

            let head = try TestCommand.git(["rev-parse", "HEAD"], in: pusher.work)
            try pusher.git("tag", "-a", "v1", "-m", "release v1")
            try pusher.git("push", "-q", "origin", "v1")
            #expect(try await fixture.poll().operations.count == 1)
            #expect(try await fixture.triggered() == [fixture.parameters("refs/tags/v1", head, "")], "an annotated tag's commit")
            try pusher.git("push", "-q", "origin", ":refs/tags/v1")
            #expect(try await fixture.poll().operations.count == 1)
            #expect(try await fixture.triggered().last == fixture.parameters("refs/tags/v1", "", head))

            let lines = (1...1000).map { "create refs/heads/bulk/\($0) \(head)\n" }.joined()
            let input = scratch.appending("refs.txt")
            try Data(lines.utf8).write(to: input)
            try TestCommand.run("/bin/sh", ["-c", "git update-ref --stdin < \(input.path)"], in: origin.bare)
            let bulk = try await fixture.poll()
            #expect(bulk.changes.count == 1000 && bulk.operations.isEmpty, "additions nobody triggers on")
            let stored = try await RepositoryStore(client: harness.database, logger: harness.logger)
                .find(fixture.repository.id, project: harness.project)
            #expect(stored.refs.count == 1001)
            try pusher.git("tag", "v2")
            try pusher.git("push", "-q", "origin", "v2")
            let one = try await fixture.poll()
            #expect(one.changes.count == 1 && one.operations.count == 1)

            let away = scratch.appending("away.git")
            try FileManager.default.moveItem(at: origin.bare, to: away)
            for _ in 0..<3 {
                let outcome = try await fixture.poll()
                #expect(outcome.changes.isEmpty && outcome.operations.isEmpty)
            }
            #expect(try await fixture.activityCount("repository.inaccessible") == 1)
            try FileManager.default.moveItem(at: away, to: origin.bare)
            let back = try await fixture.poll()
            #expect(back.changes.isEmpty && !back.firstListing)
            #expect(try await fixture.activityCount("repository.accessible") == 1)
            #expect(try await fixture.triggered().count == 3)
        }
    }
}
