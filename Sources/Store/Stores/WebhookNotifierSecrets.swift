import Foundation
import Logging
import NIOCore
import PostgresNIO

/// Webhook notifiers and their signing secrets: made with one (shown once), rotated, and
/// opened for the job that POSTs a notification.
///
/// A secret is the base64url text of 32 random bytes, sealed at rest for `notifiers:<id>`;
/// receivers use the UTF-8 bytes of that text as the HMAC key, as for incoming webhooks.
public struct WebhookNotifierSecrets: Sendable {
    /// What a notification is POSTed to, and the secret that signs it.
    public struct Target: Sendable, Hashable {
        public var url: String
        public var signingSecret: String
    }

    let client: PostgresClient
    let keyring: SecretKeyring
    let logger: Logger

    public init(client: PostgresClient, keyring: SecretKeyring, logger: Logger) {
        self.client = client
        self.keyring = keyring
        self.logger = logger
    }

    /// Creates a webhook notifier in a live project. Returns its signing secret: this is the one
    /// time it is shown.
    public func create(
        project: UUID, name: String, url: String, actor: UUID?
    ) async throws -> (
        notifier: Notifier, signingSecret: String
    ) {
        let id = UUID()
        let secret = Base64URL.randomToken(bytes: 32)
        let sealed = try keyring.seal(Array(secret.utf8), context: SecretRotation.context(table: "notifiers", id: id))
        let notifier = try await NotifierStore.insert(
            id: id, project: project, name: name, target: .webhook(url), sealedSecret: sealed, actor: actor, client: client,
            logger: logger)
        return (notifier, secret)
    }

    /// Replaces the signing secret of a live webhook notifier and returns the new one (shown
    /// once); deliveries from now on are signed with it.
    public func rotateSecret(_ id: UUID, project: UUID, actor: UUID?) async throws -> String {
        let secret = Base64URL.randomToken(bytes: 32)
        let sealed = try keyring.seal(Array(secret.utf8), context: SecretRotation.context(table: "notifiers", id: id))
        return try await client.write(logger: logger) { connection in
            let updated = try await connection.first(
                """
                UPDATE notifiers SET signing_secret_ciphertext = \(ByteBuffer(bytes: sealed.ciphertext)), key_id = \(sealed.keyID),
                    updated_at = now()
                WHERE id = \(id) AND project_id = \(project) AND kind = 'webhook' AND archived_at IS NULL
                RETURNING \(unescaped: NotifierStore.columns)
                """, logger: logger, NotifierStore.record)
            guard let notifier = updated?.item else { throw StoreError.notFound("webhook notifier") }
            try await NotifierStore.log("notifier.secret_rotated", notifier, actor: actor, on: connection, logger: logger)
            return secret
        }
    }

    /// The URL and secret of a live webhook notifier, read when a notification is sent (so an
    /// edit or a rotation counts from then on); `nil` once it is archived or no longer exists.
    public func target(of id: UUID) async throws -> Target? {
        let found = try await client.read { connection in
            try await connection.first(
                """
                SELECT url, signing_secret_ciphertext, key_id FROM notifiers
                WHERE id = \(id) AND kind = 'webhook' AND archived_at IS NULL
                """, logger: logger,
                { row in
                    let (url, ciphertext, keyID) = try row.decode((String, ByteBuffer, String).self)
                    return (url, SecretKeyring.Sealed(ciphertext: Array(ciphertext.readableBytesView), keyID: keyID))
                })
        }
        guard let (url, sealed) = found else { return nil }
        let secret = try keyring.open(sealed, context: SecretRotation.context(table: "notifiers", id: id))
        return Target(url: url, signingSecret: String(decoding: secret, as: UTF8.self))
    }
}
