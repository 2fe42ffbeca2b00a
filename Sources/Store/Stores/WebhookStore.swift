import Foundation
import Logging
import NIOCore
import PostgresNIO

/// Webhooks: endpoints that run a job when a request signed with the webhook's secret
/// arrives. The signing secret is sealed at rest; the store shows it once, when it makes one
/// (on creation and on rotation), and hands it to the receiving endpoint through
/// ``find(slug:)``.
///
/// A signing secret is the base64url text of 32 random bytes; senders (and the endpoint) use
/// the UTF-8 bytes of that text as the HMAC key, as git hosts do with the secret a user pastes.
public struct WebhookStore: Sendable {
    let client: PostgresClient
    let keyring: SecretKeyring
    let logger: Logger
    /// Makes slugs; tests replace it to force a collision.
    var makeSlug: @Sendable () -> String = { Base64URL.randomToken(bytes: 16) }

    public init(client: PostgresClient, keyring: SecretKeyring, logger: Logger) {
        self.client = client
        self.keyring = keyring
        self.logger = logger
    }

    static let columns = "id, project_id, job_id, name, slug, created_at, updated_at, archived_at, \(Cursor.column)"
    typealias Row = (UUID, UUID, UUID, String, String, Date, Date, Date?, Int64)

    static func record(_ row: PostgresRow) throws -> (item: Webhook, position: Cursor) {
        let row = try row.decode(Row.self)
        return (
            Webhook(
                id: row.0, projectID: row.1, jobID: row.2, name: row.3, slug: row.4, createdAt: row.5, updatedAt: row.6, archivedAt: row.7),
            Cursor(createdMicroseconds: row.8, id: row.0)
        )
    }

    /// Creates a webhook of a live job of `project`, with a random slug and signing secret.
    /// Returns the signing secret: this is the one time it is shown.
    public func create(project: UUID, job: UUID, name: String, actor: UUID?) async throws -> (webhook: Webhook, signingSecret: String) {
        let name = try Validate.name(name)
        let id = UUID()
        let secret = Base64URL.randomToken(bytes: 32)
        let sealed = try keyring.seal(Array(secret.utf8), context: SecretRotation.context(table: "webhooks", id: id))
        return try await client.write(logger: logger) { connection in
            let inserted = try await connection.first(
                """
                INSERT INTO webhooks (id, project_id, job_id, name, slug, signing_secret_ciphertext, key_id)
                SELECT \(id), \(project), \(job), \(name), \(makeSlug()), \(ByteBuffer(bytes: sealed.ciphertext)), \(sealed.keyID)
                WHERE EXISTS (SELECT 1 FROM jobs WHERE id = \(job) AND project_id = \(project) AND archived_at IS NULL FOR SHARE)
                RETURNING \(unescaped: Self.columns)
                """, logger: logger, Self.record)
            guard let webhook = inserted?.item else { throw StoreError.notFound("job") }
            try await Self.log("webhook.created", webhook, actor: actor, on: connection, logger: logger)
            return (webhook, secret)
        }
    }

    /// The webhook of `project`; archived ones only with `includeArchived`.
    public func find(_ id: UUID, project: UUID, includeArchived: Bool = false) async throws -> Webhook {
        try await client.read { connection in
            try await connection.find(
                id, in: "webhooks", columns: Self.columns, project: project, includeArchived: includeArchived, notFound: "webhook",
                logger: logger, Self.record)
        }
    }

    /// The live webhook at `slug` and its signing secret, for the endpoint that checks a
    /// request's signature. An archived webhook is not found.
    public func find(slug: String) async throws -> (webhook: Webhook, signingSecret: String) {
        let found = try await client.read { connection in
            try await connection.first(
                """
                SELECT \(unescaped: Self.columns), signing_secret_ciphertext, key_id FROM webhooks
                WHERE slug = \(slug) AND archived_at IS NULL
                """, logger: logger,
                { row in
                    let cells = row.makeRandomAccess()
                    let sealed = SecretKeyring.Sealed(
                        ciphertext: Array(try cells["signing_secret_ciphertext"].decode(ByteBuffer.self).readableBytesView),
                        keyID: try cells["key_id"].decode(String.self))
                    return (try Self.record(row).item, sealed)
                })
        }
        guard let (webhook, sealed) = found else { throw StoreError.notFound("webhook") }
        let secret = try keyring.open(sealed, context: SecretRotation.context(table: "webhooks", id: webhook.id))
        return (webhook, String(decoding: secret, as: UTF8.self))
    }

    /// The project's live webhooks, oldest first.
    public func list(project: UUID, page: PageRequest) async throws -> Page<Webhook> {
        try await client.read { connection in
            try await connection.page(of: "webhooks", columns: Self.columns, project: project, page: page, logger: logger, Self.record)
        }
    }

    /// Replaces the signing secret of a live webhook and returns the new one (shown once);
    /// requests signed with the old one fail from now on.
    public func rotateSecret(_ id: UUID, project: UUID, actor: UUID?) async throws -> String {
        let secret = Base64URL.randomToken(bytes: 32)
        let sealed = try keyring.seal(Array(secret.utf8), context: SecretRotation.context(table: "webhooks", id: id))
        return try await client.write(logger: logger) { connection in
            let updated = try await connection.first(
                """
                UPDATE webhooks SET signing_secret_ciphertext = \(ByteBuffer(bytes: sealed.ciphertext)), key_id = \(sealed.keyID),
                    updated_at = now()
                WHERE id = \(id) AND project_id = \(project) AND archived_at IS NULL RETURNING \(unescaped: Self.columns)
                """, logger: logger, Self.record)
            guard let webhook = updated?.item else { throw StoreError.notFound("webhook") }
            try await Self.log("webhook.secret_rotated", webhook, actor: actor, on: connection, logger: logger)
            return secret
        }
    }

    /// Archives the webhook: its endpoint stops answering.
    public func archive(_ id: UUID, project: UUID, actor: UUID?) async throws {
        try await client.write(logger: logger) { connection in
            let webhook = try await connection.archive(
                id, in: "webhooks", columns: Self.columns, project: project, notFound: "webhook", logger: logger, Self.record)
            try await Self.log("webhook.archived", webhook, actor: actor, on: connection, logger: logger)
        }
    }

    private static func log(
        _ name: String, _ webhook: Webhook, actor: UUID?, on connection: PostgresConnection, logger: Logger
    ) async throws {
        try await ActivityLog.record(
            name, project: webhook.projectID, actor: actor,
            payload: [
                "webhook_id": webhook.id.uuidString.lowercased(), "job_id": webhook.jobID.uuidString.lowercased(), "name": webhook.name,
            ], on: connection, logger: logger)
    }
}
