import Foundation
import HarrowTestSupport
import PostgresNIO
import Testing

@testable import Store

@Suite struct SecretKeyringTests {
    @Test func sealsSoThatOnlyTheRightKeyAndPlaceOpen() throws {
        let keyring = SecretKeyring(current: .generate())
        let plaintext = Array("deploy-token-4f9a".utf8)
        let sealed = try keyring.seal(plaintext, context: "secrets:1")
        #expect(sealed.keyID == keyring.current.id)
        #expect(sealed.ciphertext.count == plaintext.count + 12 + 16)
        #expect(!Data(sealed.ciphertext).contains(Data(plaintext)))
        #expect(try keyring.open(sealed, context: "secrets:1") == plaintext)
        // Same plaintext, fresh nonce: different ciphertext.
        #expect(try keyring.seal(plaintext, context: "secrets:1").ciphertext != sealed.ciphertext)

        let elsewhere = #expect(throws: StoreError.self) { try keyring.open(sealed, context: "secrets:2") }
        #expect(elsewhere?.code == .crypto)
        var altered = sealed
        altered.ciphertext[20] ^= 1
        #expect(throws: StoreError.self) { try keyring.open(altered, context: "secrets:1") }
    }

    @Test func aWrongMasterKeyFailsClearlyWithoutShowingTheSecret() throws {
        let sealed = try SecretKeyring(current: .generate()).seal(Array("hunter2".utf8), context: "c")
        let other = SecretKeyring(current: .generate())
        let error = #expect(throws: StoreError.self) { try other.open(sealed, context: "c") }
        #expect(error?.message.contains(sealed.keyID) == true)
        #expect(error?.message.contains("HARROW_SECRET_KEY") == true)
        #expect(error?.description.contains("hunter2") == false)
        // The right key under the wrong id still does not open (and says so).
        let relabelled = SecretKeyring.Sealed(ciphertext: sealed.ciphertext, keyID: other.current.id)
        let wrong = #expect(throws: StoreError.self) { try other.open(relabelled, context: "c") }
        #expect(wrong?.message.contains("does not decrypt") == true)
    }

    @Test func readsItsKeysFromTheEnvironment() throws {
        let current = SecretKeyring.Key.generate()
        let old = SecretKeyring.Key.generate()
        let keyring = try SecretKeyring(environment: ["HARROW_SECRET_KEY": current.base64, "HARROW_OLD_SECRET_KEYS": old.base64])
        #expect(keyring.current.id == current.id)
        let sealedUnderOld = try SecretKeyring(current: old).seal(Array("x".utf8), context: "c")
        #expect(try keyring.open(sealedUnderOld, context: "c") == Array("x".utf8))
        #expect(!keyring.isCurrent(sealedUnderOld))
        #expect(try SecretKeyring.Key(base64: current.base64).id == current.id)

        let missing = #expect(throws: StoreError.self) { try SecretKeyring(environment: [:]) }
        #expect(missing?.message.contains("HARROW_SECRET_KEY is not set") == true)
        let short = Data(repeating: 7, count: 16).base64EncodedString()
        let wrongLength = #expect(throws: StoreError.self) { try SecretKeyring(environment: ["HARROW_SECRET_KEY": short]) }
        #expect(wrongLength?.message.contains("32 bytes") == true)
        #expect(wrongLength?.message.contains(short) == false)
        #expect(throws: StoreError.self) { try SecretKeyring(environment: ["HARROW_SECRET_KEY": "not base64!"]) }
        #expect(throws: StoreError.self) {
            try SecretKeyring(environment: ["HARROW_SECRET_KEY": current.base64, "HARROW_OLD_SECRET_KEYS": "\(old.base64),bad"])
        }
    }

    /// Rotation re-encrypts every sealed column under the new key, leaves the plaintext as it
    /// was, and has nothing left to do when run again.
    @Test func rotationReencryptsEveryRowUnderTheNewKey() async throws {
        try await TestDatabase.withDatabase("rotate") { client, _ in
            let logger = TestRedis.logger("harrow.test.rotate")
            try await Migrator(client: client, logger: logger).migrate()
            let oldKey = SecretKeyring.Key.generate()
            let before = SecretKeyring(current: oldKey)
            let organization = UUID()
            let project = UUID()
            let environment = UUID()
            let user = UUID()
            try await client.query("INSERT INTO users (id, email, name, password_hash) VALUES (\(user), 'a@example.com', 'A', 'x')")
            try await client.query("INSERT INTO organizations (id, name) VALUES (\(organization), 'Org')")
            try await client.query("INSERT INTO projects (id, organization_id, name) VALUES (\(project), \(organization), 'P')")
            try await client.query("INSERT INTO environments (id, project_id, name) VALUES (\(environment), \(project), 'E')")
            var plaintexts: [UUID: String] = [:]
            for index in 0..<250 {
                let id = UUID()
                let value = "value-\(index)"
                plaintexts[id] = value
                let sealed = try before.seal(Array(value.utf8), context: SecretRotation.context(table: "secrets", id: id))
                try await client.query(
                    """
                    INSERT INTO secrets (id, project_id, environment_id, name, kind, status, ciphertext, key_id)
                    VALUES (\(id), \(project), \(environment), \("S\(index)"), 'env', 'present', \(ByteBuffer(bytes: sealed.ciphertext)), \(sealed.keyID))
                    """)
            }
            let after = SecretKeyring(current: .generate(), old: [oldKey])
            let outcome = try await SecretRotation(client: client, keyring: after, logger: logger, batchSize: 100).run()
            #expect(outcome.rewritten["secrets"] == 250 && outcome.isComplete)
            #expect(try await SecretRotation(client: client, keyring: after, logger: logger).run().rewritten["secrets"] == 0)

            let newOnly = SecretKeyring(current: after.current)
            var checked = 0
            let rows = try await client.query("SELECT id, ciphertext, key_id FROM secrets")
            for try await (id, ciphertext, keyID) in rows.decode((UUID, ByteBuffer, String).self) {
                #expect(keyID == after.current.id)
                let sealed = SecretKeyring.Sealed(ciphertext: Array(ciphertext.readableBytesView), keyID: keyID)
                let opened = try newOnly.open(sealed, context: SecretRotation.context(table: "secrets", id: id))
                #expect(String(decoding: opened, as: UTF8.self) == plaintexts[id])
                checked += 1
            }
            #expect(checked == 250)
        }
    }

    /// A row another transaction holds is waited for, not skipped and reported as done; a value
    /// sealed under the old key after the rotation is counted as remaining.
    @Test func rotationWaitsForLockedRowsAndCountsWhatRemains() async throws {
        try await TestDatabase.withDatabase("rotate_locked") { client, _ in
            let logger = TestRedis.logger("harrow.test.rotate")
            try await Migrator(client: client, logger: logger).migrate()
            let oldKey = SecretKeyring.Key.generate()
            let before = SecretKeyring(current: oldKey)
            let project = UUID()
            let environment = UUID()
            let organization = UUID()
            try await client.query("INSERT INTO organizations (id, name) VALUES (\(organization), 'Org')")
            try await client.query("INSERT INTO projects (id, organization_id, name) VALUES (\(project), \(organization), 'P')")
            try await client.query("INSERT INTO environments (id, project_id, name) VALUES (\(environment), \(project), 'E')")
            func insertSecret(_ name: String, _ keyring: SecretKeyring) async throws -> UUID {
                let id = UUID()
                let sealed = try keyring.seal(Array("v".utf8), context: SecretRotation.context(table: "secrets", id: id))
                try await client.query(
                    """
                    INSERT INTO secrets (id, project_id, environment_id, name, kind, status, ciphertext, key_id)
                    VALUES (\(id), \(project), \(environment), \(name), 'env', 'present', \(ByteBuffer(bytes: sealed.ciphertext)), \(sealed.keyID))
                    """)
                return id
            }
            var ids: [UUID] = []
            for index in 0..<3 { ids.append(try await insertSecret("S\(index)", before)) }
            let after = SecretKeyring(current: .generate(), old: [oldKey])

            // Another transaction holds one row while the rotation runs, then lets go.
            let (locked, release) = AsyncStream.makeStream(of: Void.self)
            let holder = Task {
                try await client.inTransaction(logger: logger) { connection in
                    try await connection.query("SELECT id FROM secrets WHERE id = \(ids[1]) FOR UPDATE", logger: logger)
                    release.yield()
                    try await Task.sleep(for: .seconds(2))
                }
            }
            for await _ in locked { break }
            let outcome = try await SecretRotation(client: client, keyring: after, logger: logger, batchSize: 2).run()
            try await holder.value
            #expect(outcome.rewritten["secrets"] == 3, "\(outcome)")
            #expect(outcome.isComplete)
            let underOld = try await client.value("SELECT count(*)::int8 FROM secrets WHERE key_id <> \(after.current.id)", as: Int.self)
            #expect(underOld == 0)

            // A process that still seals under the old key leaves work behind: not complete.
            _ = try await insertSecret("LATE", before)
            let late = try await SecretRotation(
                client: client, keyring: SecretKeyring(current: after.current, old: [oldKey]), logger: logger
            )
            .remaining()
            #expect(late["secrets"] == 1)
        }
    }
}
