import Foundation
import HarrowTestSupport
import JobContracts
import PostgresNIO
import Queue
import Store
import Testing
import WorkerPool

@testable import Jobs

/// `generate-key` on a real worker, Postgres and Redis, with `ssh-keygen` as the judge.
@Suite struct KeyGeneratorTests {
    /// The stored key once it is present.
    static func present(_ harness: JobsHarness, _ key: SSHKey) async throws -> SSHKey {
        var found: SSHKey?
        try await eventually("the key is present") {
            found = try await harness.sshKeys.find(key.id, project: harness.project)
            return found?.status == .present
        }
        return try #require(found)
    }

    /// `ssh-keygen -y` derives `publicKey` from the private key, and `ssh-keygen -l` prints
    /// `fingerprint` for both halves.
    static func checkWithSSHKeygen(privateKey: [UInt8], publicKey: String, fingerprint: String) throws {
        let directory = try makeTemporaryDirectory()
        defer { try? FileManager.default.removeItem(at: directory) }
        try write(String(decoding: privateKey, as: UTF8.self), to: "key", in: directory, mode: 0o600)
        try write(publicKey + "\n", to: "public.pub", in: directory)
        let derived = try sshKeygen(["-y", "-f", "key"], in: directory)
        #expect(derived.status == 0, "\(derived.errorOutput)")
        #expect(derived.output.split(separator: " ").prefix(2) == publicKey.split(separator: " ").prefix(2))
        for file in ["key", "public.pub"] {
            let listed = try sshKeygen(["-l", "-f", file], in: directory)
            #expect(listed.status == 0, "\(listed.errorOutput)")
            #expect(listed.output.split(separator: " ").dropFirst().first.map(String.init) == fingerprint, "\(listed.output)")
        }
    }

    @Test func anSSHKeyGetsAPairThatSSHKeygenAgreesWith() async throws {
        try await JobsHarness.withPlatformJobs("keys_ssh_key") { harness in
            let key = try await harness.sshKeys.create(project: harness.project, name: "deploy web", actor: nil)
            _ = try await harness.jobQueue.enqueue(GenerateKey(kind: .sshKey, id: key.id))
            let stored = try await Self.present(harness, key)
            let publicKey = try #require(stored.publicKey)
            #expect(publicKey.hasPrefix("ssh-ed25519 "))
            #expect(publicKey.hasSuffix(" harrow: deploy web"))
            try Self.checkWithSSHKeygen(
                privateKey: try await harness.sshKeys.privateKey(of: key.id), publicKey: publicKey,
                fingerprint: try #require(stored.fingerprint))
            let activity = try await harness.database.value(
                "SELECT payload->>'fingerprint' FROM activities WHERE name = 'ssh_key.generated' AND payload->>'ssh_key_id' = \(key.id.uuidString.lowercased())",
                as: String.self)
            #expect(activity == stored.fingerprint)
            #expect(try await harness.database.value("SELECT count(*)::int8 FROM job_runs WHERE type = 'generate-key'", as: Int.self) == 1)
        }
    }

    @Test func rsaKeysAndSSHSecretsToo() async throws {
        try await JobsHarness.withPlatformJobs("keys_rsa_secret") { harness in
            let key = try await harness.sshKeys.create(project: harness.project, name: "legacy host", algorithm: .rsa, actor: nil)
            let secret = try await harness.secrets.create(
                project: harness.project, environment: harness.environment, name: "DEPLOY_KEY", kind: .ssh, actor: nil)
            _ = try await harness.jobQueue.enqueue(GenerateKey(kind: .sshKey, id: key.id))
            _ = try await harness.jobQueue.enqueue(GenerateKey(kind: .secret, id: secret.id))

            let stored = try await Self.present(harness, key)
            #expect(stored.publicKey?.hasPrefix("ssh-rsa ") == true)
            try Self.checkWithSSHKeygen(
                privateKey: try await harness.sshKeys.privateKey(of: key.id), publicKey: try #require(stored.publicKey),
                fingerprint: try #require(stored.fingerprint))

            var generated: Secret?
            try await eventually("the secret is present") {
                generated = try await harness.secrets.find(secret.id, project: harness.project)
                return generated?.status == .present
            }
            let secretKey = try #require(generated)
            let privateKey = try await harness.secrets.value(of: secret.id, project: harness.project)
            #expect(privateKey.hasPrefix("-----BEGIN OPENSSH PRIVATE KEY-----"))
            try Self.checkWithSSHKeygen(
                privateKey: Array(privateKey.utf8), publicKey: try #require(secretKey.publicKey),
                fingerprint: try #require(secretKey.fingerprint))
        }
    }

    /// A job delivered again (the same id) finds its run recorded and changes nothing, even a
    /// rekey; a new rekey job replaces the pair.
    @Test func aRedeliveredJobChangesNothingAndARekeyReplaces() async throws {
        try await JobsHarness.withPlatformJobs("keys_duplicate") { harness in
            let key = try await harness.sshKeys.create(project: harness.project, name: "ci", actor: nil)
            let jobID = JobID.make()
            var options = EnqueueOptions()
            options.id = jobID
            _ = try await harness.jobQueue.enqueue(GenerateKey(kind: .sshKey, id: key.id), options: options)
            let first = try await Self.present(harness, key)

            _ = try await harness.jobQueue.enqueue(GenerateKey(kind: .sshKey, id: key.id, replace: true), options: options)
            let marker = try await harness.jobQueue.enqueue(GenerateKey(kind: .sshKey, id: UUID()))
            try await eventually("the queue is drained") {
                try await harness.database.value(
                    "SELECT count(*)::int8 FROM job_runs WHERE job_id = \(try #require(UUID(uuidString: marker.id)))", as: Int.self) == 1
            }
            try await eventually("nothing is running") {
                let stats = try await harness.jobQueue.stats(queues: ["keys"])[0]
                return stats.ready == 0 && stats.pending == 0
            }
            let again = try await harness.sshKeys.find(key.id, project: harness.project)
            #expect(again.publicKey == first.publicKey)
            #expect(again.fingerprint == first.fingerprint)

            _ = try await harness.jobQueue.enqueue(GenerateKey(kind: .sshKey, id: key.id, replace: true))
            try await eventually("the key is replaced") {
                try await harness.sshKeys.find(key.id, project: harness.project).fingerprint != first.fingerprint
            }
            let regenerated = try await harness.database.value(
                "SELECT count(*)::int8 FROM activities WHERE name = 'ssh_key.regenerated'", as: Int.self)
            #expect(regenerated == 1)
        }
    }

    @Test func aKeyArchivedBeforeTheJobRunsIsSkipped() async throws {
        try await JobsHarness.withPlatformJobs("keys_archived") { harness in
            let key = try await harness.sshKeys.create(project: harness.project, name: "gone", actor: nil)
            try await harness.sshKeys.archive(key.id, project: harness.project, actor: nil)
            let job = try await harness.jobQueue.enqueue(GenerateKey(kind: .sshKey, id: key.id))
            try await eventually("the job is recorded as skipped") {
                try await harness.database.value(
                    "SELECT outcome FROM job_runs WHERE job_id = \(try #require(UUID(uuidString: job.id)))", as: String.self) == "gone"
            }
            let stored = try await harness.sshKeys.find(key.id, project: harness.project, includeArchived: true)
            #expect(stored.status == .pending)
            #expect(stored.publicKey == nil)
        }
    }
}
