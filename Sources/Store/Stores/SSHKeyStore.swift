import Foundation
import JobContracts
import Logging
import NIOCore
import PostgresNIO

/// A project's SSH keys. Creating one records the key and, in the same transaction, a
/// `generate-key` job; the worker that runs it stores the pair with ``storeKeyMaterial(_:publicKey:privateKey:fingerprint:)``.
/// Private keys are sealed with the keyring, bound to their row, and leave the store only
/// through ``privateKey(of:)``.
public struct SSHKeyStore: Sendable {
    let client: PostgresClient
    let keyring: SecretKeyring
    let logger: Logger
    /// Its ``UserQuotas/pendingKeys`` limit applies to ``create(project:name:algorithm:actor:)``.
    let quotas: UserQuotas

    public init(client: PostgresClient, keyring: SecretKeyring, logger: Logger, quotas: UserQuotas = .unlimited) {
        self.client = client
        self.keyring = keyring
        self.logger = logger
        self.quotas = quotas
    }

    static let columns =
        "id, project_id, name, algorithm, status, public_key, fingerprint, created_at, updated_at, archived_at, \(Cursor.column)"
    typealias Row = (UUID, UUID, String, String, String, String?, String?, Date, Date, Date?, Int64)

    static func record(_ row: Row) throws -> (item: SSHKey, position: Cursor) {
        (
            SSHKey(
                id: row.0, projectID: row.1, name: row.2, algorithm: try SSHKey.Algorithm(stored: row.3, column: "key algorithm"),
                status: try SSHKey.Status(stored: row.4, column: "key status"), publicKey: row.5, fingerprint: row.6, createdAt: row.7,
                updatedAt: row.8, archivedAt: row.9),
            Cursor(createdMicroseconds: row.10, id: row.0)
        )
    }

    static func record(_ row: PostgresRow) throws -> (item: SSHKey, position: Cursor) {
        try record(row.decode(Row.self))
    }

    /// Creates a `pending` key in a live project and queues its generation, within the actor's
    /// quota of pending keys.
    public func create(project: UUID, name: String, algorithm: SSHKey.Algorithm = .ed25519, actor: UUID?) async throws -> SSHKey {
        let name = try Validate.name(name)
        return try await client.write(logger: logger) { connection in
            try await Self.insert(
                project: project, name: name, algorithm: algorithm, actor: actor, quotas: quotas, on: connection, logger: logger)
        }
    }

    /// Inserts a pending key created by `actor`, within their quota of pending keys (``StoreError``
    /// `quotaExceeded` past it), and its `generate-key` job in the caller's transaction, so that a
    /// key never waits for a job that was not recorded.
    static func insert(
        project: UUID, name: String, algorithm: SSHKey.Algorithm, actor: UUID?, quotas: UserQuotas, on connection: PostgresConnection,
        logger: Logger
    ) async throws -> SSHKey {
        try await connection.requireQuota(.pendingKeys, of: quotas, for: actor, logger: logger)
        let inserted = try await connection.first(
            """
            INSERT INTO ssh_keys (project_id, name, algorithm, created_by)
            SELECT \(project), \(name), \(algorithm.rawValue), \(actor)
            WHERE EXISTS (SELECT 1 FROM projects WHERE id = \(project) AND archived_at IS NULL FOR SHARE)
            RETURNING \(unescaped: columns)
            """, logger: logger, record)
        guard let key = inserted?.item else { throw StoreError.notFound("project") }
        let id = key.id.uuidString.lowercased()
        try await Outbox.enqueue([try OutboxJob(GenerateKey(owner: .sshKey(key.id)))], on: connection, logger: logger)
        try await ActivityLog.record(
            "ssh_key.created", project: project, actor: actor, payload: ["ssh_key_id": id, "name": name], on: connection, logger: logger)
        return key
    }

    /// Stores a generated pair: seals the private key and marks the key `present`. Only once,
    /// for a live pending key: a second call is a conflict, so a redelivered job cannot replace
    /// a key that may be installed somewhere already. (`generate-key` jobs use ``KeyPairStore``,
    /// which also records the job's run and can rekey.)
    public func storeKeyMaterial(_ id: UUID, publicKey: String, privateKey: [UInt8], fingerprint: String) async throws -> SSHKey {
        let pairs = KeyPairStore(client: client, keyring: keyring, logger: logger)
        let pair = KeyPairStore.KeyPair(publicKey: publicKey, privateKey: privateKey, fingerprint: fingerprint)
        switch try await pairs.store(pair, for: .sshKey(id), replace: false, job: nil) {
        case .gone: throw StoreError.notFound("SSH key")
        case .hasKeyPair, .alreadyRan: throw StoreError(.conflict, "the SSH key has its key material already")
        case .stored, .replaced: break
        }
        let stored = try await client.read { connection in
            try await connection.first("SELECT \(unescaped: Self.columns) FROM ssh_keys WHERE id = \(id)", logger: logger, Self.record)
        }
        guard let key = stored?.item else { throw StoreError.notFound("SSH key") }
        return key
    }

    /// The decrypted private key of a live key, for the worker that uses it. A key that is
    /// still pending is a conflict.
    public func privateKey(of id: UUID) async throws -> [UInt8] {
        let stored = try await client.read { connection in
            try await connection.first(
                "SELECT private_key_ciphertext, key_id FROM ssh_keys WHERE id = \(id) AND archived_at IS NULL", logger: logger,
                { try $0.decode((ByteBuffer?, String?).self) })
        }
        guard let stored else { throw StoreError.notFound("SSH key") }
        guard let ciphertext = stored.0, let keyID = stored.1 else {
            throw StoreError(.conflict, "the SSH key is not generated yet")
        }
        return try keyring.open(
            SecretKeyring.Sealed(ciphertext: Array(ciphertext.readableBytesView), keyID: keyID),
            context: SecretRotation.context(table: "ssh_keys", id: id))
    }

    /// The key of `project`; archived ones only with `includeArchived`.
    public func find(_ id: UUID, project: UUID, includeArchived: Bool = false) async throws -> SSHKey {
        try await client.read { connection in
            try await connection.find(
                id, in: "ssh_keys", columns: Self.columns, project: project, includeArchived: includeArchived, notFound: "SSH key",
                logger: logger, Self.record)
        }
    }

    /// The keys of `project` among `ids`, archived ones too, by id, in one query: the deploy keys
    /// a page of repositories shows.
    public func find(_ ids: [UUID], project: UUID) async throws -> [UUID: SSHKey] {
        guard !ids.isEmpty else { return [:] }
        let keys = try await client.read { connection in
            try await connection.all(
                "SELECT \(unescaped: Self.columns) FROM ssh_keys WHERE project_id = \(project) AND id = ANY(\(ids))", logger: logger,
                { try Self.record($0).item })
        }
        return Dictionary(keys.map { ($0.id, $0) }, uniquingKeysWith: { first, _ in first })
    }

    /// The project's live keys, oldest first.
    public func list(project: UUID, page: PageRequest) async throws -> Page<SSHKey> {
        try await client.read { connection in
            try await connection.page(of: "ssh_keys", columns: Self.columns, project: project, page: page, logger: logger, Self.record)
        }
    }

    /// Archives a key that no live repository reads with: archive the repository instead (it
    /// takes its deploy key along).
    public func archive(_ id: UUID, project: UUID, actor: UUID?) async throws {
        try await client.write(logger: logger) { connection in
            let inUse = try await connection.first(
                """
                SELECT 1::int4 FROM repositories
                WHERE credential_id = \(id) AND project_id = \(project) AND archived_at IS NULL LIMIT 1
                """, logger: logger,
                { try $0.decode(Int32.self) })
            guard inUse == nil else { throw StoreError(.conflict, "the SSH key is the deploy key of a live repository") }
            _ = try await connection.archive(
                id, in: "ssh_keys", columns: Self.columns, project: project, notFound: "SSH key", logger: logger, Self.record)
            try await ActivityLog.record(
                "ssh_key.archived", project: project, actor: actor, payload: ["ssh_key_id": id.uuidString.lowercased()], on: connection,
                logger: logger)
        }
    }
}
