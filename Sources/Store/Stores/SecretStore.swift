import Foundation
import JobContracts
import Logging
import NIOCore
import PostgresNIO

/// Secrets of an environment. An `env` secret's value is sealed with the keyring (AES-GCM,
/// bound to its row) before it reaches the database; an `ssh` secret starts `pending` and a
/// `generate-key` job, enqueued through the outbox in the same transaction, makes its key pair.
/// Reads return names, kinds, statuses and public keys; only ``value(of:project:)`` decrypts.
public struct SecretStore: Sendable {
    let client: PostgresClient
    let keyring: SecretKeyring
    let logger: Logger
    /// Its ``UserQuotas/pendingKeys`` limit applies to new `ssh` secrets.
    let quotas: UserQuotas

    public init(client: PostgresClient, keyring: SecretKeyring, logger: Logger, quotas: UserQuotas = .unlimited) {
        self.client = client
        self.keyring = keyring
        self.logger = logger
        self.quotas = quotas
    }

    static let columns =
        "id, project_id, environment_id, name, kind, status, public_key, fingerprint, created_at, updated_at, archived_at, \(Cursor.column)"
    typealias Row = (UUID, UUID, UUID, String, String, String, String?, String?, Date, Date, Date?, Int64)

    static func record(_ row: Row) throws -> (item: Secret, position: Cursor) {
        (
            Secret(
                id: row.0, projectID: row.1, environmentID: row.2, name: row.3, kind: try Secret.Kind(stored: row.4, column: "kind"),
                status: try Secret.Status(stored: row.5, column: "status"),
                publicKey: row.6, fingerprint: row.7, createdAt: row.8, updatedAt: row.9, archivedAt: row.10),
            Cursor(createdMicroseconds: row.11, id: row.0)
        )
    }

    /// The context a secret's value is sealed for: a ciphertext copied to another row does not open.
    static func context(_ id: UUID) -> String {
        SecretRotation.context(table: "secrets", id: id)
    }

    /// Creates a secret in a live environment of `project`. An `env` secret needs `value`
    /// and is named like an environment variable; an `ssh` secret takes no value: it is
    /// generated, and counts toward the actor's quota of pending keys until it is.
    public func create(
        project: UUID, environment: UUID, name: String, kind: Secret.Kind, value: String? = nil, actor: UUID?
    ) async throws -> Secret {
        let id = UUID()
        let name = try Self.validName(name, kind: kind)
        let sealed: SecretKeyring.Sealed?
        switch (kind, value) {
        case (.env, let value?): sealed = try seal(value, id: id)
        case (.env, nil): throw StoreError.invalid("value", "an env secret needs a value")
        case (.ssh, nil): sealed = nil
        case (.ssh, _?): throw StoreError.invalid("value", "an ssh secret's key is generated: it takes no value")
        }
        let status: Secret.Status = sealed == nil ? .pending : .present
        return try await client.write(logger: logger) { connection in
            if kind == .ssh { try await connection.requireQuota(.pendingKeys, of: quotas, for: actor, logger: logger) }
            // FOR SHARE holds off the environment's archiving until this secret is in.
            let rows = try await connection.query(
                """
                INSERT INTO secrets (id, project_id, environment_id, name, kind, status, ciphertext, key_id, created_by)
                SELECT \(id), \(project), \(environment), \(name), \(kind.rawValue), \(status.rawValue),
                       \(sealed.map { ByteBuffer(bytes: $0.ciphertext) }), \(sealed?.keyID), \(actor)
                WHERE EXISTS (SELECT 1 FROM environments WHERE id = \(environment) AND project_id = \(project) AND archived_at IS NULL FOR SHARE)
                RETURNING \(unescaped: Self.columns)
                """, logger: logger)
            for try await row in rows.decode(Row.self) {
                let secret = try Self.record(row).item
                if kind == .ssh {
                    try await Outbox.enqueue([try OutboxJob(GenerateKey(owner: .secret(id)))], on: connection, logger: logger)
                }
                try await ActivityLog.record(
                    "secret.created", project: project, actor: actor, payload: Self.payload(secret), on: connection, logger: logger)
                return secret
            }
            throw StoreError.notFound("environment")
        }
    }

    /// The secret of `project`, without its value; archived ones only with `includeArchived`.
    public func find(_ id: UUID, project: UUID, includeArchived: Bool = false) async throws -> Secret {
        try await client.read { connection in
            let rows = try await connection.query(
                """
                SELECT \(unescaped: Self.columns) FROM secrets
                WHERE id = \(id) AND project_id = \(project) AND (archived_at IS NULL OR \(includeArchived))
                """, logger: logger)
            for try await row in rows.decode(Row.self) { return try Self.record(row).item }
            throw StoreError.notFound("secret")
        }
    }

    /// The live secrets of an environment of `project`, oldest first, without values.
    public func list(project: UUID, environment: UUID, page: PageRequest) async throws -> Page<Secret> {
        let after = Cursor.bounds(try page.position())
        return try await client.read { connection in
            let rows = try await connection.query(
                """
                SELECT \(unescaped: Self.columns) FROM secrets
                WHERE environment_id = \(environment) AND project_id = \(project) AND archived_at IS NULL
                  AND (\(after.first) OR (created_at, id) > (to_timestamp(0) + \(after.microseconds) * interval '1 microsecond', \(after.id)))
                ORDER BY created_at, id LIMIT \(page.limit + 1)
                """, logger: logger)
            return try await Page(rows.decode(Row.self), limit: page.limit, Self.record)
        }
    }

    /// The decrypted value of a live secret of `project`: for the worker that runs an
    /// operation, never for an API response. A secret without its value yet is a conflict.
    public func value(of id: UUID, project: UUID) async throws -> String {
        let stored = try await client.read { connection in
            let rows = try await connection.query(
                "SELECT ciphertext, key_id FROM secrets WHERE id = \(id) AND project_id = \(project) AND archived_at IS NULL",
                logger: logger)
            for try await (ciphertext, keyID) in rows.decode((ByteBuffer?, String?).self) {
                guard let ciphertext, let keyID else { throw StoreError(.conflict, "the secret has no value yet") }
                return SecretKeyring.Sealed(ciphertext: Array(ciphertext.readableBytesView), keyID: keyID)
            }
            throw StoreError.notFound("secret")
        }
        return String(decoding: try keyring.open(stored, context: Self.context(id)), as: UTF8.self)
    }

    /// Replaces the value of a live `env` secret, sealed anew under the current key. An `ssh`
    /// secret's key is generated, not set: changing it is a conflict.
    public func updateValue(_ id: UUID, project: UUID, value: String, actor: UUID?) async throws -> Secret {
        let sealed = try seal(value, id: id)
        return try await client.write(logger: logger) { connection in
            let rows = try await connection.query(
                """
                UPDATE secrets SET ciphertext = \(ByteBuffer(bytes: sealed.ciphertext)), key_id = \(sealed.keyID), status = 'present',
                    updated_at = now()
                WHERE id = \(id) AND project_id = \(project) AND archived_at IS NULL AND kind = 'env' RETURNING \(unescaped: Self.columns)
                """, logger: logger)
            for try await row in rows.decode(Row.self) {
                let secret = try Self.record(row).item
                try await ActivityLog.record(
                    "secret.updated", project: project, actor: actor, payload: Self.payload(secret), on: connection, logger: logger)
                return secret
            }
            let kinds = try await connection.query(
                "SELECT kind FROM secrets WHERE id = \(id) AND project_id = \(project) AND archived_at IS NULL", logger: logger)
            for try await _ in kinds.decode(String.self) {
                throw StoreError(.conflict, "an ssh secret's key is generated: its value cannot be set")
            }
            throw StoreError.notFound("secret")
        }
    }

    /// Archives a live secret of `project`.
    public func archive(_ id: UUID, project: UUID, actor: UUID?) async throws {
        try await client.write(logger: logger) { connection in
            let rows = try await connection.query(
                """
                UPDATE secrets SET archived_at = now(), updated_at = now()
                WHERE id = \(id) AND project_id = \(project) AND archived_at IS NULL RETURNING \(unescaped: Self.columns)
                """, logger: logger)
            for try await row in rows.decode(Row.self) {
                try await ActivityLog.record(
                    "secret.archived", project: project, actor: actor, payload: Self.payload(try Self.record(row).item), on: connection,
                    logger: logger)
                return
            }
            throw StoreError.notFound("secret")
        }
    }

    private func seal(_ value: String, id: UUID) throws -> SecretKeyring.Sealed {
        guard value.utf8.count <= 65_536 else { throw StoreError.invalid("value", "a secret's value is at most 64 KiB") }
        guard !value.utf8.contains(0) else { throw StoreError.invalid("value", "a secret's value must not contain NUL") }
        return try keyring.seal(Array(value.utf8), context: Self.context(id))
    }

    /// An `env` secret becomes a variable of the task's process, so it is named like one; an
    /// `ssh` secret's name is only a label.
    static func validName(_ name: String, kind: Secret.Kind) throws -> String {
        let name = try Validate.name(name)
        if kind == .env && !EnvironmentStore.isVariableName(name) {
            throw StoreError.invalid(
                "name", "an env secret's name starts with a letter or an underscore and contains only letters, digits and underscores")
        }
        if kind == .env, let reason = EnvironmentStore.refusedVariableName(name) { throw StoreError.invalid("name", reason) }
        return name
    }

    /// What activities say about a secret: never its value.
    private static func payload(_ secret: Secret) -> [String: String] {
        ["secret_id": secret.id.uuidString.lowercased(), "name": secret.name, "kind": secret.kind.rawValue]
    }
}
