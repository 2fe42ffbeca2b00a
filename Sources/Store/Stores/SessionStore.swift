import Crypto
import Foundation
import Logging
import NIOCore
import PostgresNIO

/// Sign-in sessions. A session is looked up by the SHA-256 of its bearer token: the token
/// itself is never stored or logged, so a copy of the database does not sign anyone in.
public struct SessionStore: Sendable {
    /// How stale `last_seen_at` may get before a lookup rewrites it: the hot path of every
    /// request stays a read.
    static let lastSeenResolution: TimeInterval = 60

    let client: PostgresClient
    let logger: Logger

    public init(client: PostgresClient, logger: Logger) {
        self.client = client
        self.logger = logger
    }

    static let columns = """
        s.id, s.user_id, s.created_at, s.expires_at, s.revoked_at, s.user_agent, s.address, s.last_seen_at,
        (extract(epoch FROM s.created_at) * 1000000)::int8
        """
    typealias Row = (UUID, UUID, Date, Date, Date?, String?, String?, Date?, Int64)

    static func record(_ row: Row) -> (item: Session, position: Cursor) {
        (
            Session(
                id: row.0, userID: row.1, createdAt: row.2, expiresAt: row.3, revokedAt: row.4, userAgent: row.5, address: row.6,
                lastSeenAt: row.7),
            Cursor(createdMicroseconds: row.8, id: row.0)
        )
    }

    /// The SHA-256 of a bearer token, as sessions store it.
    public static func tokenHash(_ token: String) -> [UInt8] {
        Array(SHA256.hash(data: Array(token.utf8)))
    }

    /// Creates a session of a user who is not blocked. `tokenHash` is the token's SHA-256
    /// (32 bytes, see ``tokenHash(_:)``); the user agent and address are cut to a sane length.
    public func create(
        user: UUID, tokenHash: [UInt8], expiresAt: Date, userAgent: String? = nil, address: String? = nil
    ) async throws -> Session {
        guard tokenHash.count == 32 else { throw StoreError.invalid("token_hash", "the token hash must be 32 bytes (SHA-256)") }
        guard expiresAt > Date() else { throw StoreError.invalid("expires_at", "a session must expire in the future") }
        let userAgent = userAgent.map { String($0.prefix(512)) }
        let address = address.map { String($0.prefix(100)) }
        return try await client.write(logger: logger) { connection in
            let rows = try await connection.query(
                """
                INSERT INTO sessions AS s (user_id, token_hash, expires_at, user_agent, address)
                SELECT \(user), \(ByteBuffer(bytes: tokenHash)), \(expiresAt), \(userAgent), \(address)
                WHERE EXISTS (SELECT 1 FROM users WHERE id = \(user) AND blocked_at IS NULL FOR SHARE)
                RETURNING \(unescaped: Self.columns)
                """, logger: logger)
            for try await row in rows.decode(Row.self) {
                let session = Self.record(row).item
                try await ActivityLog.record(
                    "session.created", actor: user, payload: ["session_id": session.id.uuidString.lowercased()], on: connection,
                    logger: logger)
                return session
            }
            throw StoreError.notFound("user")
        }
    }

    /// The live session with this token hash and its user: `nil` when there is none, or it is
    /// revoked or expired, or its user is blocked. Marks the session as seen.
    public func find(tokenHash: [UInt8]) async throws -> (session: Session, user: User)? {
        try await client.read { connection in
            let rows = try await connection.query(
                """
                SELECT \(unescaped: Self.columns), \(unescaped: UserStore.joinedColumns) FROM sessions s JOIN users u ON u.id = s.user_id
                WHERE s.token_hash = \(ByteBuffer(bytes: tokenHash)) AND s.revoked_at IS NULL AND s.expires_at > now()
                  AND u.blocked_at IS NULL
                """, logger: logger)
            var found: (session: Session, user: User)?
            for try await row in rows.decode(
                (UUID, UUID, Date, Date, Date?, String?, String?, Date?, Int64, UUID, String, String, Date?, Date?, Bool, Date, Date).self)
            {
                found = (
                    Self.record((row.0, row.1, row.2, row.3, row.4, row.5, row.6, row.7, row.8)).item,
                    UserStore.record((row.9, row.10, row.11, row.12, row.13, row.14, row.15, row.16))
                )
            }
            guard var found else { return nil }
            if let seen = found.session.lastSeenAt, seen.timeIntervalSinceNow > -Self.lastSeenResolution { return found }
            let seen = try await connection.query(
                "UPDATE sessions SET last_seen_at = now() WHERE id = \(found.session.id) RETURNING last_seen_at", logger: logger)
            for try await value in seen.decode(Date.self) { found.session.lastSeenAt = value }
            return found
        }
    }

    /// The user's live sessions (not revoked, not expired), oldest first.
    public func list(user: UUID, page: PageRequest) async throws -> Page<Session> {
        let after = Cursor.bounds(try page.position())
        return try await client.read { connection in
            let rows = try await connection.query(
                """
                SELECT \(unescaped: Self.columns) FROM sessions s
                WHERE s.user_id = \(user) AND s.revoked_at IS NULL AND s.expires_at > now()
                  AND (\(after.first) OR (s.created_at, s.id) > (to_timestamp(0) + \(after.microseconds) * interval '1 microsecond', \(after.id)))
                ORDER BY s.created_at, s.id LIMIT \(page.limit + 1)
                """, logger: logger)
            return try await Page(rows.decode(Row.self), limit: page.limit, Self.record)
        }
    }

    /// Revokes one of the user's own live sessions; anyone else's is not found.
    public func revoke(_ id: UUID, user: UUID) async throws {
        try await client.write(logger: logger) { connection in
            let rows = try await connection.query(
                "UPDATE sessions SET revoked_at = now() WHERE id = \(id) AND user_id = \(user) AND revoked_at IS NULL RETURNING id",
                logger: logger)
            guard try await rows.decode(UUID.self).contains(where: { _ in true }) else { throw StoreError.notFound("session") }
            try await ActivityLog.record(
                "session.revoked", actor: user, payload: ["session_id": id.uuidString.lowercased()], on: connection, logger: logger)
        }
    }

    /// Revokes all of the user's sessions but `sessionID` (the one making the request, say),
    /// as after a password change. Returns how many it revoked.
    @discardableResult
    public func revokeAll(of user: UUID, except sessionID: UUID? = nil) async throws -> Int {
        try await client.write(logger: logger) { connection in
            let rows = try await connection.query(
                """
                WITH revoked AS (
                    UPDATE sessions SET revoked_at = now()
                    WHERE user_id = \(user) AND revoked_at IS NULL AND id IS DISTINCT FROM \(sessionID) RETURNING id)
                SELECT count(*)::int8 FROM revoked
                """, logger: logger)
            var count = 0
            for try await value in rows.decode(Int.self) { count = value }
            if count > 0 {
                try await ActivityLog.record(
                    "session.revoked_all", actor: user, payload: ["count": "\(count)"], on: connection, logger: logger)
            }
            return count
        }
    }
}
