import Foundation
import HarrowTestSupport
import JobContracts
import NIOCore
import PostgresNIO
import Testing

@testable import Store

@Suite struct KeyRepositoryStoreTests {
    /// A key is pending, with its generation queued in the same transaction, until the worker
    /// stores the pair once; the private half is sealed and only `privateKey(of:)` opens it.
    @Test func aKeyIsPendingUntilItsMaterialIsStoredOnce() async throws {
        try await Stores.with("ssh_key_material") { stores in
            let (ada, project, _) = try await stores.automationProjects()
            let key = try await stores.sshKeys.create(project: project, name: " deploy ", algorithm: .rsa, actor: ada.id)
            #expect(key.name == "deploy" && key.algorithm == .rsa && key.status == .pending)
            #expect(key.publicKey == nil && key.fingerprint == nil)
            let payload = try await stores.client.value(
                "SELECT payload FROM outbox WHERE queue = 'keys' AND type = 'generate-key'", as: String.self)
            #expect(payload == #"{"id":"\#(key.id.uuidString.lowercased())","kind":"ssh_key"}"#)
            // The row carries the contract's policy to the relay.
            let policy = try await stores.client.value(
                "SELECT format('%s %s %s', max_attempts, timeout_ms, visibility_timeout_ms) FROM outbox", as: String.self)
            #expect(policy == "\(GenerateKey.retries.maxAttempts) 300000 60000")

            let pendingRead = await #expect(throws: StoreError.self) { try await stores.sshKeys.privateKey(of: key.id) }
            #expect(pendingRead?.code == .conflict)

            let secret = Array("-----BEGIN OPENSSH PRIVATE KEY----- very secret".utf8)
            let stored = try await stores.sshKeys.storeKeyMaterial(
                key.id, publicKey: "ssh-rsa AAAAB3 deploy", privateKey: secret, fingerprint: "SHA256:abc")
            #expect(stored.status == .present && stored.publicKey == "ssh-rsa AAAAB3 deploy" && stored.fingerprint == "SHA256:abc")
            #expect(try await stores.sshKeys.privateKey(of: key.id) == secret)
            let ciphertext = try #require(
                try await stores.client.value("SELECT private_key_ciphertext FROM ssh_keys WHERE id = \(key.id)", as: ByteBuffer.self))
            #expect(!Array(ciphertext.readableBytesView).containsSubsequence(Array("very secret".utf8)))
            let record = String(decoding: try JSONEncoder().encode(stored), as: UTF8.self)
            #expect(!record.contains("secret") && !record.lowercased().contains("private"), "the record shows no private material")

            let again = await #expect(throws: StoreError.self) {
                try await stores.sshKeys.storeKeyMaterial(key.id, publicKey: "ssh-rsa other", privateKey: [1], fingerprint: "SHA256:x")
            }
            #expect(again?.code == .conflict)
            #expect(try await stores.sshKeys.privateKey(of: key.id) == secret, "the first pair stays")
            await #expect(throws: StoreError.notFound("SSH key")) {
                try await stores.sshKeys.storeKeyMaterial(UUID(), publicKey: "k", privateKey: [1], fingerprint: "f")
            }
            let blank = await #expect(throws: StoreError.self) {
                try await stores.sshKeys.storeKeyMaterial(key.id, publicKey: " ", privateKey: [1], fingerprint: "f")
            }
            #expect(blank?.field == "public_key")
            await #expect(throws: StoreError.notFound("SSH key")) { try await stores.sshKeys.privateKey(of: UUID()) }
            #expect(try await stores.activityNames(project: project).suffix(2) == ["ssh_key.created", "ssh_key.generated"])
        }
    }

    /// A ciphertext is bound to its row: copied into another key's row, it does not open.
    @Test func aPrivateKeyOpensOnlyInItsOwnRow() async throws {
        try await Stores.with("ssh_key_context") { stores in
            let (ada, project, _) = try await stores.automationProjects()
            let first = try await stores.sshKeys.create(project: project, name: "one", actor: ada.id)
            let second = try await stores.sshKeys.create(project: project, name: "two", actor: ada.id)
            _ = try await stores.sshKeys.storeKeyMaterial(first.id, publicKey: "ssh-ed25519 A", privateKey: [1, 2, 3], fingerprint: "f1")
            _ = try await stores.sshKeys.storeKeyMaterial(second.id, publicKey: "ssh-ed25519 B", privateKey: [4, 5, 6], fingerprint: "f2")
            try await stores.write(
                """
                UPDATE ssh_keys SET private_key_ciphertext = (SELECT private_key_ciphertext FROM ssh_keys WHERE id = \(first.id))
                WHERE id = \(second.id)
                """)
            let moved = await #expect(throws: StoreError.self) { try await stores.sshKeys.privateKey(of: second.id) }
            #expect(moved?.code == .crypto)
        }
    }

    /// Keys live in live projects; another project's key, an archived one and an unknown one
    /// are not found; lists page through every live key once.
    @Test func keysAreScopedToLiveProjectsAndPaged() async throws {
        try await Stores.with("ssh_key_scope") { stores in
            let (ada, project, other) = try await stores.automationProjects()
            await #expect(throws: StoreError.notFound("project")) {
                try await stores.sshKeys.create(project: UUID(), name: "k", actor: ada.id)
            }
            let invalid = await #expect(throws: StoreError.self) { try await stores.sshKeys.create(project: project, name: "", actor: nil) }
            #expect(invalid?.code == .invalid && invalid?.field == "name")

            var created: [UUID] = []
            for index in 0..<5 { created.append(try await stores.sshKeys.create(project: project, name: "k\(index)", actor: ada.id).id) }
            _ = try await stores.sshKeys.create(project: other, name: "elsewhere", actor: ada.id)
            let listed = try await stores.allPages(limit: 2) { try await stores.sshKeys.list(project: project, page: $0) }
            #expect(listed.items.map(\.id) == created && listed.pages == 3)

            await #expect(throws: StoreError.notFound("SSH key")) { try await stores.sshKeys.find(created[0], project: other) }
            await #expect(throws: StoreError.notFound("SSH key")) {
                try await stores.sshKeys.archive(created[0], project: other, actor: nil)
            }
            try await stores.sshKeys.archive(created[0], project: project, actor: ada.id)
            await #expect(throws: StoreError.notFound("SSH key")) { try await stores.sshKeys.find(created[0], project: project) }
            #expect(try await stores.sshKeys.find(created[0], project: project, includeArchived: true).archivedAt != nil)
            await #expect(throws: StoreError.notFound("SSH key")) {
                try await stores.sshKeys.storeKeyMaterial(created[0], publicKey: "k", privateKey: [1], fingerprint: "f")
            }
            await #expect(throws: StoreError.notFound("SSH key")) {
                try await stores.sshKeys.archive(created[0], project: project, actor: nil)
            }

            try await stores.projects.archive(other, actor: ada.id)
            await #expect(throws: StoreError.notFound("project")) {
                try await stores.sshKeys.create(project: other, name: "late", actor: nil)
            }
        }
    }

    /// A repository is created with a deploy key of its own and that key's generation job, in
    /// one transaction; checks record refs and report the refs they replaced.
    @Test func aRepositoryComesWithItsDeployKeyAndRecordsRefs() async throws {
        try await Stores.with("repository_crud") { stores in
            let (ada, project, other) = try await stores.automationProjects()
            let repository = try await stores.repositories.create(project: project, url: " git@github.com:acme/web.git ", actor: ada.id)
            #expect(repository.url == "git@github.com:acme/web.git" && repository.refs.isEmpty && repository.accessible == nil)
            let keyID = try #require(repository.credentialID)
            let key = try await stores.sshKeys.find(keyID, project: project)
            #expect(key.name == "deploy key for git@github.com:acme/web.git" && key.status == .pending)
            let jobs = try await stores.count(
                "SELECT count(*)::int8 FROM outbox WHERE type = 'generate-key' AND payload LIKE '%' || \(keyID.uuidString.lowercased()) || '%'"
            )
            #expect(jobs == 1)
            #expect(try await stores.repositories.find(repository.id, project: project) == repository)
            await #expect(throws: StoreError.notFound("repository")) { try await stores.repositories.find(repository.id, project: other) }

            let ssh = try await stores.repositories.update(
                repository.id, project: project, url: "ssh://git@github.com/acme/web.git", actor: ada.id)
            #expect(ssh.url == "ssh://git@github.com/acme/web.git" && ssh.credentialID == keyID)
            await #expect(throws: StoreError.notFound("repository")) {
                try await stores.repositories.update(repository.id, project: other, url: "https://example.com/r.git", actor: nil)
            }

            let polls = RepositoryPollStore(client: stores.client, logger: stores.logger)
            let failed = try #require(try await polls.record(repository.id, .failed("unreachable")))
            #expect(failed.changes.isEmpty && !failed.firstListing)
            let afterFailure = try await stores.repositories.find(repository.id, project: project)
            #expect(afterFailure.accessible == false && afterFailure.checkedAt != nil && afterFailure.refs.isEmpty)
            let first = try #require(try await polls.record(repository.id, .refs(["refs/heads/main": "a1"])))
            #expect(first.firstListing && first.changes.isEmpty)
            #expect(try await stores.repositories.find(repository.id, project: project).refs == ["refs/heads/main": "a1"])
            let second = try #require(try await polls.record(repository.id, .refs(["refs/heads/main": "b2", "refs/tags/v1": "c3"])))
            #expect(
                second.changes == [
                    RefChange(ref: "refs/heads/main", type: .change, sha: "b2", previousSHA: "a1"),
                    RefChange(ref: "refs/tags/v1", type: .add, sha: "c3", previousSHA: ""),
                ])
            #expect(try await stores.repositories.find(repository.id, project: project).refs.count == 2)
            #expect(try await polls.record(UUID(), .refs([:])) == nil)
            #expect(
                try await stores.activityNames(project: project) == [
                    "project.created", "ssh_key.created", "repository.created", "repository.updated", "repository.inaccessible",
                    "repository.accessible", "repository.ref-changed", "repository.ref-added",
                ])

            // The key is in use: archive the repository, which takes its key along.
            let inUse = await #expect(throws: StoreError.self) { try await stores.sshKeys.archive(keyID, project: project, actor: nil) }
            #expect(inUse?.code == .conflict)
            try await stores.repositories.archive(repository.id, project: project, actor: ada.id)
            await #expect(throws: StoreError.notFound("repository")) { try await stores.repositories.find(repository.id, project: project) }
            await #expect(throws: StoreError.notFound("SSH key")) { try await stores.sshKeys.find(keyID, project: project) }
            #expect(try await polls.record(repository.id, .refs([:])) == nil)
            await #expect(throws: StoreError.notFound("repository")) {
                try await stores.repositories.archive(repository.id, project: project, actor: nil)
            }
        }
    }

    /// URLs are checked before they reach a row; a URL with credentials is refused by the
    /// schema with a message that does not repeat it, and its deploy key is rolled back.
    @Test func repositoryURLsAreValidatedWithoutEchoingThem() async throws {
        try await Stores.with("repository_url") { stores in
            let (ada, project, _) = try await stores.automationProjects()
            for url in [
                "", "  ", String(repeating: "a", count: 2049), "https://example.com/a b.git", "file:///srv/repo.git", "/srv/repo.git",
                "ext::sh -c touch% /tmp/pwned", "git://example.com/r.git", "-uhelp@example.com:r.git",
            ] {
                let error = await #expect(throws: StoreError.self) {
                    try await stores.repositories.create(project: project, url: url, actor: nil)
                }
                #expect(error?.code == .invalid && error?.field == "url")
            }
            for url in ["https://deploy:hunter2@example.com/r.git", "https://token@example.com/r.git", "http://u:p@example.com/r"] {
                let error = await #expect(throws: StoreError.self) {
                    try await stores.repositories.create(project: project, url: url, actor: nil)
                }
                #expect(error?.code == .invalid && error?.field == "url")
                #expect(error?.message.contains("hunter2") == false && error?.message.contains("example.com") == false)
            }
            #expect(try await stores.count("SELECT count(*)::int8 FROM ssh_keys") == 0, "refused repositories leave no key")
            #expect(try await stores.count("SELECT count(*)::int8 FROM outbox") == 0, "and no generation job")
            await #expect(throws: StoreError.notFound("project")) {
                try await stores.repositories.create(project: UUID(), url: "https://example.com/r.git", actor: nil)
            }

            let long = "https://example.com/" + String(repeating: "x", count: 2000)
            let repository = try await stores.repositories.create(project: project, url: long, actor: ada.id)
            let key = try await stores.sshKeys.find(try #require(repository.credentialID), project: project)
            #expect(key.name.count == 200 && key.name.hasSuffix("…"))
            let page = try await stores.repositories.list(project: project, page: try PageRequest())
            #expect(page.items == [repository] && page.nextCursor == nil)
        }
    }
}
