import Foundation
import Logging
import PostgresNIO

/// Accounts. Emails are unique regardless of case. The store keeps password hashes; hashing
/// and checking passwords is the caller's (bcrypt in the API).
public struct UserStore: Sendable {
    let client: PostgresClient
    let logger: Logger

    public init(client: PostgresClient, logger: Logger) {
        self.client = client
        self.logger = logger
    }

    static let columns = "id, email, name, email_verified_at, blocked_at, is_admin, created_at, updated_at"
    typealias Row = (UUID, String, String, Date?, Date?, Bool, Date, Date)

    static func record(_ row: Row) -> User {
        User(
            id: row.0, email: row.1, name: row.2, emailVerifiedAt: row.3, blockedAt: row.4, isAdmin: row.5, createdAt: row.6,
            updatedAt: row.7)
    }

    /// Creates a user. A second user with the same email in any case is a duplicate. `outbox`
    /// names jobs to enqueue in the same transaction (the mail that verifies the address), made
    /// from the new user.
    public func create(
        email: String, name: String, passwordHash: String, verified: Bool = false, admin: Bool = false,
        outbox: @Sendable (User) throws -> [OutboxJob] = { _ in [] }
    ) async throws -> User {
        let email = EmailAddress.normalized(email)
        guard email.count <= 320, email.contains("@") else { throw StoreError.invalid("email", "the email address is not valid") }
        let name = try Validate.name(name)
        return try await client.write(logger: logger) { connection in
            let rows = try await connection.query(
                """
                INSERT INTO users (email, name, password_hash, email_verified_at, is_admin)
                VALUES (\(email), \(name), \(passwordHash), CASE WHEN \(verified) THEN now() END, \(admin))
                RETURNING \(unescaped: Self.columns)
                """, logger: logger)
            for try await row in rows.decode(Row.self) {
                let user = Self.record(row)
                try await ActivityLog.record(
                    "user.created", actor: user.id, payload: ["user_id": user.id.uuidString.lowercased()], on: connection, logger: logger)
                try await Outbox.enqueue(try outbox(user), on: connection, logger: logger)
                return user
            }
            throw StoreError(.conflict, "the user was not created")
        }
    }

    public func find(_ id: UUID) async throws -> User {
        try await client.read { connection in
            let rows = try await connection.query("SELECT \(unescaped: Self.columns) FROM users WHERE id = \(id)", logger: logger)
            for try await row in rows.decode(Row.self) { return Self.record(row) }
            throw StoreError.notFound("user")
        }
    }

    /// The user with this email in any case (compared as ``EmailAddress`` says), with their
    /// password hash; `nil` when none.
    ///
    /// Postgres's `lower()` folds case as the database's locale does (only ASCII under `C`), and
    /// Swift as Unicode does; rate-limit counters are keyed by Swift's ``EmailAddress/canonical(_:)``.
    /// A match is therefore kept only when both agree, so no spelling reaches an account under a
    /// counter other than the account's own.
    public func findForLogin(email: String) async throws -> (user: User, passwordHash: String)? {
        let canonical = EmailAddress.canonical(email)
        return try await client.read { connection in
            let rows = try await connection.query(
                "SELECT \(unescaped: Self.columns), password_hash FROM users WHERE lower(email) = lower(\(EmailAddress.normalized(email)))",
                logger: logger)
            for try await row in rows.decode((UUID, String, String, Date?, Date?, Bool, Date, Date, String).self)
            where EmailAddress.canonical(row.1) == canonical {
                return (Self.record((row.0, row.1, row.2, row.3, row.4, row.5, row.6, row.7)), row.8)
            }
            return nil
        }
    }

    /// The user's password hash, for checking a password or binding a reset link to it; `nil`
    /// for an unknown user.
    public func passwordHash(of id: UUID) async throws -> String? {
        try await client.read { connection in
            let rows = try await connection.query("SELECT password_hash FROM users WHERE id = \(id)", logger: logger)
            for try await hash in rows.decode(String.self) { return hash }
            return nil
        }
    }

    public func markEmailVerified(_ id: UUID) async throws {
        try await update(id, "email_verified_at = coalesce(email_verified_at, now())")
    }

    /// Sets the password hash. `provesAddress` also marks the email verified: a completed reset
    /// came through a link mailed to the address, so whoever completed it owns the address (and
    /// a stranger who signed up with it first loses the account to them).
    public func setPasswordHash(_ id: UUID, _ passwordHash: String, provesAddress: Bool = false) async throws {
        try await client.write(logger: logger) { connection in
            let rows = try await connection.query(
                """
                UPDATE users SET password_hash = \(passwordHash), updated_at = now(),
                    email_verified_at = CASE WHEN \(provesAddress) THEN coalesce(email_verified_at, now()) ELSE email_verified_at END
                WHERE id = \(id) RETURNING id
                """, logger: logger)
            guard try await rows.decode(UUID.self).contains(where: { _ in true }) else { throw StoreError.notFound("user") }
        }
    }

    public func setAdmin(_ id: UUID, _ admin: Bool) async throws {
        try await update(id, admin ? "is_admin = true" : "is_admin = false")
    }

    public func setBlocked(_ id: UUID, _ blocked: Bool) async throws {
        try await update(id, blocked ? "blocked_at = coalesce(blocked_at, now())" : "blocked_at = NULL")
    }

    /// Runs one of the fixed assignments above on the user.
    private func update(_ id: UUID, _ assignment: StaticString) async throws {
        try await client.write(logger: logger) { connection in
            let rows = try await connection.query(
                "UPDATE users SET \(unescaped: "\(assignment)"), updated_at = now() WHERE id = \(id) RETURNING id", logger: logger)
            guard try await rows.decode(UUID.self).contains(where: { _ in true }) else { throw StoreError.notFound("user") }
        }
    }
}
