import Foundation
import Logging
import NIOCore
import PostgresNIO

/// A project's GitHub token, which `post-status` jobs use to post commit statuses. Write-only
/// like a secret's value: sealed with the keyring, bound to its row; reads say whether one is
/// set, and only ``token(of:)`` decrypts.
public struct GitHubTokenStore: Sendable {
    /// Whether a project has a token, and since when.
    public struct Status: Sendable, Hashable, Codable {
        public var configured: Bool
        public var updatedAt: Date?
    }

    let client: PostgresClient
    let keyring: SecretKeyring
    let logger: Logger

    public init(client: PostgresClient, keyring: SecretKeyring, logger: Logger) {
        self.client = client
        self.keyring = keyring
        self.logger = logger
    }

    /// Sets (or replaces) the token of a live project.
    public func set(project: UUID, token: String, actor: UUID?) async throws {
        let token = try Self.validated(token)
        try await client.write(logger: logger) { connection in
            let live = try await connection.first(
                // FOR UPDATE: two first saves of a project's token wait for each other, so the second
                // finds the first's row (and its id, the sealing context) instead of racing it.
                "SELECT 1::int4 FROM projects WHERE id = \(project) AND archived_at IS NULL FOR UPDATE", logger: logger,
                { try $0.decode(Int32.self) })
            guard live != nil else { throw StoreError.notFound("project") }
            // The row's id is the sealing context: reuse the existing one, so a replaced token
            // stays bound to its row.
            let existing = try await connection.first(
                "SELECT id FROM github_tokens WHERE project_id = \(project) FOR UPDATE", logger: logger, { try $0.decode(UUID.self) })
            let id = existing ?? UUID()
            let sealed = try keyring.seal(Array(token.utf8), context: SecretRotation.context(table: "github_tokens", id: id))
            try await connection.query(
                """
                INSERT INTO github_tokens (id, project_id, ciphertext, key_id) VALUES (\(id), \(project), \(ByteBuffer(bytes: sealed.ciphertext)), \(sealed.keyID))
                ON CONFLICT (project_id) DO UPDATE SET ciphertext = excluded.ciphertext, key_id = excluded.key_id, updated_at = now()
                """, logger: logger)
            try await ActivityLog.record("github_token.set", project: project, actor: actor, on: connection, logger: logger)
        }
    }

    /// Removes the project's token; `false` when it had none.
    @discardableResult
    public func clear(project: UUID, actor: UUID?) async throws -> Bool {
        try await client.write(logger: logger) { connection in
            let removed = try await connection.first(
                "DELETE FROM github_tokens WHERE project_id = \(project) RETURNING 1::int4", logger: logger, { try $0.decode(Int32.self) })
            guard removed != nil else { return false }
            try await ActivityLog.record("github_token.cleared", project: project, actor: actor, on: connection, logger: logger)
            return true
        }
    }

    /// Whether the project has a token.
    public func status(project: UUID) async throws -> Status {
        let updated = try await client.read { connection in
            try await connection.first(
                "SELECT updated_at FROM github_tokens WHERE project_id = \(project)", logger: logger, { try $0.decode(Date.self) })
        }
        return Status(configured: updated != nil, updatedAt: updated)
    }

    /// The decrypted token of the project, or `nil` when it has none.
    public func token(of project: UUID) async throws -> String? {
        let stored = try await client.read { connection in
            try await connection.first(
                "SELECT id, ciphertext, key_id FROM github_tokens WHERE project_id = \(project)", logger: logger,
                { try $0.decode((UUID, ByteBuffer, String).self) })
        }
        guard let (id, ciphertext, keyID) = stored else { return nil }
        let plaintext = try keyring.open(
            SecretKeyring.Sealed(ciphertext: Array(ciphertext.readableBytesView), keyID: keyID),
            context: SecretRotation.context(table: "github_tokens", id: id))
        return String(decoding: plaintext, as: UTF8.self)
    }

    /// `token` without surrounding whitespace, if it is 1 to 1024 printable ASCII characters
    /// without spaces (what access tokens are); an error for the `token` field otherwise.
    static func validated(_ token: String) throws -> String {
        let token = token.trimmingWhitespace()
        guard !token.isEmpty, token.utf8.count <= 1024, token.utf8.allSatisfy({ (0x21...0x7E).contains($0) }) else {
            throw StoreError.invalid("token", "the token must be 1 to 1024 printable ASCII characters without spaces")
        }
        return token
    }
}
