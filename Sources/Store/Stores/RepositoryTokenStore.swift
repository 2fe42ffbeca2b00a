import Foundation
import Logging
import NIOCore
import PostgresNIO

/// A repository's HTTPS access token, which checkouts of a private repository over HTTPS send
/// as the password of HTTP Basic authentication. Write-only like a secret's value: sealed with
/// the keyring, bound to the repository's row; reads only say whether one is set
/// (``Repository/hasToken``), and only the run plan decrypts it.
public struct RepositoryTokenStore: Sendable {
    let client: PostgresClient
    let keyring: SecretKeyring
    let logger: Logger

    public init(client: PostgresClient, keyring: SecretKeyring, logger: Logger) {
        self.client = client
        self.keyring = keyring
        self.logger = logger
    }

    /// Sets (or replaces) the token of a live repository of `project`.
    public func set(repository: UUID, project: UUID, token: String, actor: UUID?) async throws {
        let token = try GitHubTokenStore.validated(token)
        let sealed = try keyring.seal(Array(token.utf8), context: SecretRotation.context(table: "repositories", id: repository))
        try await client.write(logger: logger) { connection in
            let url = try await connection.first(
                "SELECT url FROM repositories WHERE id = \(repository) AND project_id = \(project) AND archived_at IS NULL FOR UPDATE",
                logger: logger, { try $0.decode(String.self) })
            guard let url else { throw StoreError.notFound("repository") }
            guard (try? GitURLPolicy.validate(url))?.transport != .ssh else {
                throw StoreError.invalid("token", "the repository is read over SSH, with its deploy key: a token is for https:// URLs")
            }
            try await connection.query(
                """
                UPDATE repositories SET token_ciphertext = \(ByteBuffer(bytes: sealed.ciphertext)), token_key_id = \(sealed.keyID),
                    updated_at = now()
                WHERE id = \(repository)
                """, logger: logger)
            try await ActivityLog.record(
                "repository.token_set", project: project, actor: actor,
                payload: ["repository_id": repository.uuidString.lowercased()], on: connection, logger: logger)
        }
    }

    /// Removes the repository's token; `false` when it had none.
    @discardableResult
    public func clear(repository: UUID, project: UUID, actor: UUID?) async throws -> Bool {
        try await client.write(logger: logger) { connection in
            let live = try await connection.first(
                """
                SELECT token_ciphertext IS NOT NULL FROM repositories
                WHERE id = \(repository) AND project_id = \(project) AND archived_at IS NULL FOR UPDATE
                """, logger: logger, { try $0.decode(Bool.self) })
            guard let hadToken = live else { throw StoreError.notFound("repository") }
            guard hadToken else { return false }
            try await connection.query(
                "UPDATE repositories SET token_ciphertext = NULL, token_key_id = NULL, updated_at = now() WHERE id = \(repository)",
                logger: logger)
            try await ActivityLog.record(
                "repository.token_cleared", project: project, actor: actor,
                payload: ["repository_id": repository.uuidString.lowercased()], on: connection, logger: logger)
            return true
        }
    }
}
