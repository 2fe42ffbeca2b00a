import Foundation
import HarrowTestSupport
import NIOCore
import PostgresNIO
import Testing

@testable import Store

@Suite struct EnvironmentSecretStoreTests {
    @Test func environmentsAreCreatedFoundUpdatedAndAudited() async throws {
        try await Stores.with("env_crud") { stores in
            let (ada, _, project) = try await stores.ownedProject()
            let staging = try await stores.environments.create(
                project: project.id, name: " staging ", variables: ["API_URL": "https://staging.example.com", "_DEBUG": ""], actor: ada.id)
            #expect(staging.name == "staging" && !staging.isDefault)
            #expect(staging.variables == ["API_URL": "https://staging.example.com", "_DEBUG": ""])
            #expect(try await stores.environments.find(staging.id, project: project.id) == staging)

            let updated = try await stores.environments.update(staging.id, project: project.id, variables: ["A": "1"], actor: ada.id)
            #expect(updated.name == "staging" && updated.variables == ["A": "1"] && updated.updatedAt >= staging.updatedAt)
            let renamed = try await stores.environments.update(staging.id, project: project.id, name: "stage", actor: ada.id)
            #expect(renamed.name == "stage" && renamed.variables == ["A": "1"])
            #expect(
                try await stores.activityNames(project: project.id) == [
                    "project.created", "environment.created", "environment.updated", "environment.updated",
                ])
        }
    }

    /// Another project's environment, an archived project and unknown ids are not found; names
    /// are unique among live environments; names and variables are checked.
    @Test func environmentFailurePaths() async throws {
        try await Stores.with("env_failures") { stores in
            let (ada, organization, project) = try await stores.ownedProject()
            let other = try await stores.projects.create(organization: organization.id, name: "Other", actor: ada.id)
            let staging = try await stores.environments.create(project: project.id, name: "staging", actor: ada.id)

            await #expect(throws: StoreError.notFound("environment")) { try await stores.environments.find(staging.id, project: other.id) }
            await #expect(throws: StoreError.notFound("environment")) { try await stores.environments.find(UUID(), project: project.id) }
            await #expect(throws: StoreError.notFound("environment")) {
                try await stores.environments.update(staging.id, project: other.id, name: "x", actor: ada.id)
            }
            await #expect(throws: StoreError.notFound("environment")) {
                try await stores.environments.archive(staging.id, project: other.id, actor: ada.id)
            }
            await #expect(throws: StoreError.notFound("project")) {
                try await stores.environments.create(project: UUID(), name: "x", actor: ada.id)
            }

            let duplicate = await #expect(throws: StoreError.self) {
                try await stores.environments.create(project: project.id, name: "staging", actor: ada.id)
            }
            #expect(duplicate?.code == .duplicate && duplicate?.field == "name")
            let renamedOnto = await #expect(throws: StoreError.self) {
                try await stores.environments.update(staging.id, project: project.id, name: "default", actor: ada.id)
            }
            #expect(renamedOnto?.code == .duplicate && renamedOnto?.field == "name")

            for name in ["", "  ", "a\u{7}b"] {
                let invalid = await #expect(throws: StoreError.self) {
                    try await stores.environments.create(project: project.id, name: name, actor: ada.id)
                }
                #expect(invalid?.code == .invalid && invalid?.field == "name")
            }
            for variables in [["1ABC": "x"], ["A-B": "x"], ["": "x"], ["A": "nul\u{0}"], ["ÄPFEL": "x"]] {
                let invalid = await #expect(throws: StoreError.self) {
                    try await stores.environments.create(project: project.id, name: "vars", variables: variables, actor: ada.id)
                }
                #expect(invalid?.code == .invalid && invalid?.field == "variables")
                #expect(invalid?.message.contains("nul") == false && invalid?.message.contains("ABC") == false, "no values in messages")
            }
            await #expect(throws: StoreError.self) {
                try await stores.environments.update(staging.id, project: project.id, variables: ["bad name": "x"], actor: ada.id)
            }

            // Archived: not found, not listed, name free again; the archived project takes its
            // environments along.
            try await stores.environments.archive(staging.id, project: project.id, actor: ada.id)
            await #expect(throws: StoreError.notFound("environment")) {
                try await stores.environments.find(staging.id, project: project.id)
            }
            #expect(try await stores.environments.find(staging.id, project: project.id, includeArchived: true).archivedAt != nil)
            await #expect(throws: StoreError.notFound("environment")) {
                try await stores.environments.archive(staging.id, project: project.id, actor: ada.id)
            }
            _ = try await stores.environments.create(project: project.id, name: "staging", actor: ada.id)
            try await stores.projects.archive(project.id, actor: ada.id)
            await #expect(throws: StoreError.notFound("project")) {
                try await stores.environments.create(project: project.id, name: "late", actor: ada.id)
            }
            await #expect(throws: StoreError.notFound("environment")) {
                try await stores.environments.update(staging.id, project: project.id, name: "late", actor: ada.id)
            }
        }
    }

    /// A project has one default environment at all times: making another the default moves
    /// it, and the default can be neither un-defaulted nor archived.
    @Test func theDefaultEnvironmentMovesButNeverDisappears() async throws {
        try await Stores.with("env_default") { stores in
            let (ada, _, project) = try await stores.ownedProject()
            let first = try await stores.defaultEnvironment(of: project.id)
            let production = try await stores.environments.create(project: project.id, name: "production", isDefault: true, actor: ada.id)
            #expect(production.isDefault)
            #expect(try await stores.environments.find(first.id, project: project.id).isDefault == false)

            let staging = try await stores.environments.create(project: project.id, name: "staging", actor: ada.id)
            let promoted = try await stores.environments.update(staging.id, project: project.id, isDefault: true, actor: ada.id)
            #expect(promoted.isDefault)
            #expect(try await stores.environments.find(production.id, project: project.id).isDefault == false)
            let defaults = try await stores.client.value(
                "SELECT count(*)::int8 FROM environments WHERE project_id = \(project.id) AND is_default", as: Int.self)
            #expect(defaults == 1)
            // Making the default the default again changes nothing.
            #expect(try await stores.environments.update(staging.id, project: project.id, isDefault: true, actor: ada.id).isDefault)

            let undefault = await #expect(throws: StoreError.self) {
                try await stores.environments.update(staging.id, project: project.id, isDefault: false, actor: ada.id)
            }
            #expect(undefault?.code == .conflict)
            let archiveDefault = await #expect(throws: StoreError.self) {
                try await stores.environments.archive(staging.id, project: project.id, actor: ada.id)
            }
            #expect(archiveDefault?.code == .conflict)
            #expect(try await stores.environments.find(staging.id, project: project.id).isDefault, "the refused changes rolled back")
            try await stores.environments.archive(production.id, project: project.id, actor: ada.id)
        }
    }

    /// Concurrent switches of the default serialize on the project: each succeeds, and one
    /// environment is the default afterwards.
    @Test func concurrentDefaultSwitchesLeaveOneDefault() async throws {
        try await Stores.with("env_default_race") { stores in
            let (ada, _, project) = try await stores.ownedProject()
            var environments: [UUID] = []
            for index in 0..<6 {
                environments.append(try await stores.environments.create(project: project.id, name: "E\(index)", actor: ada.id).id)
            }
            try await withThrowingTaskGroup(of: Void.self) { group in
                for id in environments {
                    group.addTask { _ = try await stores.environments.update(id, project: project.id, isDefault: true, actor: ada.id) }
                }
                try await group.waitForAll()
            }
            let defaults = try await stores.client.value(
                "SELECT count(*)::int8 FROM environments WHERE project_id = \(project.id) AND is_default", as: Int.self)
            #expect(defaults == 1)
        }
    }

    /// Archiving an environment archives its secrets, and is refused while live jobs run in it.
    @Test func archivingAnEnvironmentTakesItsSecretsAndWaitsForItsJobs() async throws {
        try await Stores.with("env_archive") { stores in
            let (ada, _, project) = try await stores.ownedProject()
            let staging = try await stores.environments.create(project: project.id, name: "staging", actor: ada.id)
            let secret = try await stores.secrets.create(
                project: project.id, environment: staging.id, name: "TOKEN", kind: .env, value: "s3cr3t", actor: ada.id)
            let task = try await stores.tasks.create(project: project.id, name: "deploy", script: "./deploy", actor: ada.id)
            let job = try await stores.jobs.create(
                project: project.id, name: "deploy", task: task.id, environment: staging.id, actor: ada.id)

            let inUse = await #expect(throws: StoreError.self) {
                try await stores.environments.archive(staging.id, project: project.id, actor: ada.id)
            }
            #expect(inUse?.code == .conflict && inUse?.message.contains("a live job uses this environment") == true)
            #expect(try await stores.environments.find(staging.id, project: project.id).archivedAt == nil)

            try await stores.jobs.archive(job.id, project: project.id, actor: ada.id)
            try await stores.environments.archive(staging.id, project: project.id, actor: ada.id)
            await #expect(throws: StoreError.notFound("secret")) { try await stores.secrets.find(secret.id, project: project.id) }
            let stamps = try await stores.client.value(
                """
                SELECT count(DISTINCT archived_at)::int8 FROM (
                    SELECT archived_at FROM environments WHERE id = \(staging.id)
                    UNION ALL SELECT archived_at FROM secrets WHERE id = \(secret.id)) stamps
                """, as: Int.self)
            #expect(stamps == 1, "archived in one transaction")
            #expect(try await stores.activityNames(project: project.id).last == "environment.archived")
        }
    }

    @Test func environmentsArePaged() async throws {
        try await Stores.with("env_pages") { stores in
            let (ada, _, project) = try await stores.ownedProject()
            var created = [try await stores.defaultEnvironment(of: project.id).id]
            for index in 0..<4 {
                created.append(try await stores.environments.create(project: project.id, name: "E\(index)", actor: ada.id).id)
            }
            let other = try await stores.ownedProject("Elsewhere")
            _ = try await stores.environments.create(project: other.project.id, name: "E0", actor: other.user.id)
            let read = try await stores.allPages(limit: 2) { try await stores.environments.list(project: project.id, page: $0) }
            #expect(read.items.map(\.id) == created && read.pages == 3)
        }
    }

    /// An `env` secret's value is sealed before it reaches the database, bound to its row,
    /// opened only by `value(of:)`, and never part of the record.
    @Test func envSecretsAreSealedAtRest() async throws {
        try await Stores.with("secret_sealed") { stores in
            let (ada, organization, project) = try await stores.ownedProject()
            let environment = try await stores.defaultEnvironment(of: project.id)
            let plaintext = "correct-horse-battery-staple"
            let secret = try await stores.secrets.create(
                project: project.id, environment: environment.id, name: "DB_PASSWORD", kind: .env, value: plaintext, actor: ada.id)
            #expect(secret.kind == .env && secret.status == .present && secret.publicKey == nil)

            let ciphertext = try #require(
                try await stores.client.value("SELECT ciphertext FROM secrets WHERE id = \(secret.id)", as: ByteBuffer.self))
            let stored = Array(ciphertext.readableBytesView)
            #expect(stored.count > plaintext.utf8.count)
            #expect(!Self.contains(stored, Array(plaintext.utf8)), "the ciphertext does not hold the plaintext")
            let keyID = try await stores.client.value("SELECT key_id FROM secrets WHERE id = \(secret.id)", as: String.self)
            #expect(keyID == Stores.secretsKeyring.current.id)
            #expect(try await stores.secrets.value(of: secret.id, project: project.id) == plaintext)

            // Neither the record, nor the list, nor the activities carry the value.
            let json = String(decoding: try JSONEncoder().encode(secret), as: UTF8.self)
            #expect(!json.contains(plaintext))
            let listed = try await stores.secrets.list(project: project.id, environment: environment.id, page: try PageRequest())
            #expect(listed.items == [secret])
            let payloads = try await stores.client.value("SELECT string_agg(payload::text, ' ') FROM activities", as: String.self)
            #expect(payloads?.contains(plaintext) == false && payloads?.contains("DB_PASSWORD") == true)

            // A new value is sealed anew; the old ciphertext is gone.
            let updated = try await stores.secrets.updateValue(secret.id, project: project.id, value: "new value", actor: ada.id)
            #expect(updated.updatedAt >= secret.updatedAt)
            #expect(try await stores.secrets.value(of: secret.id, project: project.id) == "new value")
            let resealed = try await stores.client.value("SELECT ciphertext FROM secrets WHERE id = \(secret.id)", as: ByteBuffer.self)
            #expect(resealed.map { Array($0.readableBytesView) } != stored)

            // A ciphertext copied into another row does not open there.
            let copy = try await stores.secrets.create(
                project: project.id, environment: environment.id, name: "OTHER", kind: .env, value: "x", actor: ada.id)
            try await stores.write("UPDATE secrets SET ciphertext = \(ciphertext) WHERE id = \(copy.id)")
            let moved = await #expect(throws: StoreError.self) { try await stores.secrets.value(of: copy.id, project: project.id) }
            #expect(moved?.code == .crypto && moved?.message.contains(plaintext) == false)

            // Another project's secret, an unknown one and an archived one have no value.
            let other = try await stores.projects.create(organization: organization.id, name: "Other", actor: ada.id)
            await #expect(throws: StoreError.notFound("secret")) { try await stores.secrets.value(of: secret.id, project: other.id) }
            await #expect(throws: StoreError.notFound("secret")) { try await stores.secrets.value(of: UUID(), project: project.id) }
            await #expect(throws: StoreError.notFound("secret")) {
                try await stores.secrets.updateValue(secret.id, project: other.id, value: "x", actor: ada.id)
            }
            try await stores.secrets.archive(secret.id, project: project.id, actor: ada.id)
            await #expect(throws: StoreError.notFound("secret")) { try await stores.secrets.value(of: secret.id, project: project.id) }
            #expect(
                try await stores.activityNames(project: project.id).filter { $0.hasPrefix("secret.") } == [
                    "secret.created", "secret.updated", "secret.created", "secret.archived",
                ])
        }
    }

    /// An `ssh` secret starts pending, with a `generate-key` job in the outbox of the same
    /// transaction; it has no value to read or set.
    @Test func sshSecretsArePendingWithAKeyJobInTheOutbox() async throws {
        try await Stores.with("secret_ssh") { stores in
            let (ada, _, project) = try await stores.ownedProject()
            let environment = try await stores.defaultEnvironment(of: project.id)
            let secret = try await stores.secrets.create(
                project: project.id, environment: environment.id, name: "deploy key", kind: .ssh, actor: ada.id)
            #expect(secret.kind == .ssh && secret.status == .pending && secret.publicKey == nil)
            let outbox = try await stores.client.value(
                "SELECT queue || ' ' || type || ' ' || payload FROM outbox", as: String.self)
            #expect(outbox == #"keys generate-key {"id":"\#(secret.id.uuidString.lowercased())","kind":"secret"}"#)
            let ciphertext = try await stores.client.value(
                "SELECT count(*)::int8 FROM secrets WHERE id = \(secret.id) AND ciphertext IS NULL AND key_id IS NULL", as: Int.self)
            #expect(ciphertext == 1)

            let pending = await #expect(throws: StoreError.self) { try await stores.secrets.value(of: secret.id, project: project.id) }
            #expect(pending?.code == .conflict)
            let set = await #expect(throws: StoreError.self) {
                try await stores.secrets.updateValue(secret.id, project: project.id, value: "key", actor: ada.id)
            }
            #expect(set?.code == .conflict)

            // A failed creation leaves no job behind.
            await #expect(throws: StoreError.self) {
                try await stores.secrets.create(
                    project: project.id, environment: environment.id, name: "deploy key", kind: .ssh, actor: ada.id)
            }
            #expect(try await stores.client.value("SELECT count(*)::int8 FROM outbox", as: Int.self) == 1)
        }
    }

    @Test func secretFailurePaths() async throws {
        try await Stores.with("secret_failures") { stores in
            let (ada, organization, project) = try await stores.ownedProject()
            let environment = try await stores.defaultEnvironment(of: project.id)
            let other = try await stores.projects.create(organization: organization.id, name: "Other", actor: ada.id)
            let foreign = try await stores.defaultEnvironment(of: other.id)
            func create(_ name: String, kind: Secret.Kind = .env, value: String? = "v", in target: UUID? = nil) async throws -> Secret {
                try await stores.secrets.create(
                    project: project.id, environment: target ?? environment.id, name: name, kind: kind, value: value, actor: ada.id)
            }

            let noValue = await #expect(throws: StoreError.self) { try await create("TOKEN", value: nil) }
            #expect(noValue?.code == .invalid && noValue?.field == "value")
            let sshValue = await #expect(throws: StoreError.self) { try await create("key", kind: .ssh, value: "v") }
            #expect(sshValue?.code == .invalid && sshValue?.field == "value")
            for name in ["", "has space", "1ST", "A-B"] {
                let invalid = await #expect(throws: StoreError.self) { try await create(name) }
                #expect(invalid?.code == .invalid && invalid?.field == "name")
            }
            let nul = await #expect(throws: StoreError.self) { try await create("NUL", value: "a\u{0}b") }
            #expect(nul?.field == "value")

            await #expect(throws: StoreError.notFound("environment")) { try await create("TOKEN", in: foreign.id) }
            await #expect(throws: StoreError.notFound("environment")) { try await create("TOKEN", in: UUID()) }

            let token = try await create("TOKEN")
            let duplicate = await #expect(throws: StoreError.self) { try await create("TOKEN", kind: .ssh, value: nil) }
            #expect(duplicate?.code == .duplicate && duplicate?.field == "name")
            await #expect(throws: StoreError.notFound("secret")) { try await stores.secrets.find(token.id, project: other.id) }
            await #expect(throws: StoreError.notFound("secret")) {
                try await stores.secrets.archive(token.id, project: other.id, actor: nil)
            }
            try await stores.secrets.archive(token.id, project: project.id, actor: ada.id)
            await #expect(throws: StoreError.notFound("secret")) {
                try await stores.secrets.archive(token.id, project: project.id, actor: nil)
            }
            #expect(try await stores.secrets.find(token.id, project: project.id, includeArchived: true).archivedAt != nil)
            _ = try await create("TOKEN")

            // The same name in another environment is another secret.
            let staging = try await stores.environments.create(project: project.id, name: "staging", actor: ada.id)
            _ = try await create("TOKEN", in: staging.id)
            var created: [UUID] = []
            for index in 0..<5 { created.append(try await create("S\(index)", in: staging.id).id) }
            let read = try await stores.allPages(limit: 2) {
                try await stores.secrets.list(project: project.id, environment: staging.id, page: $0)
            }
            #expect(read.items.map(\.name) == ["TOKEN", "S0", "S1", "S2", "S3", "S4"] && read.pages == 3)
            #expect(try await stores.secrets.list(project: other.id, environment: staging.id, page: try PageRequest()).items.isEmpty)
        }
    }

    private static func contains(_ haystack: [UInt8], _ needle: [UInt8]) -> Bool {
        guard needle.count <= haystack.count else { return false }
        return (0...(haystack.count - needle.count)).contains { Array(haystack[$0..<($0 + needle.count)]) == needle }
    }
}
