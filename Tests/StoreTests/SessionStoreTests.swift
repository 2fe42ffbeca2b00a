import Foundation
import HarrowTestSupport
import NIOCore
import PostgresNIO
import Testing

@testable import Store

@Suite struct SessionStoreTests {
    static func token() -> String { "tok_\(TestRedis.randomHex())\(TestRedis.randomHex())" }

    @Test func aSessionIsFoundByItsTokenHashAndMarkedSeen() async throws {
        try await Stores.with("session_find") { stores in
            let ada = try await stores.user()
            let token = Self.token()
            let hash = SessionStore.tokenHash(token)
            #expect(hash.count == 32)
            let session = try await stores.sessions.create(
                user: ada.id, tokenHash: hash, expiresAt: Date().addingTimeInterval(3600), userAgent: "curl/8", address: "192.0.2.1")
            #expect(session.userID == ada.id && session.lastSeenAt == nil && session.userAgent == "curl/8")

            let found = try #require(try await stores.sessions.find(tokenHash: hash))
            #expect(found.user == ada && found.session.id == session.id)
            let seen = try #require(found.session.lastSeenAt)
            let stored = try await stores.client.value("SELECT last_seen_at FROM sessions WHERE id = \(session.id)", as: Date.self)
            #expect(stored == seen)
            // Within the minute, a lookup only reads.
            #expect(try await stores.sessions.find(tokenHash: hash)?.session.lastSeenAt == seen)

            // The database has the hash, never the token.
            let row = try await stores.client.value("SELECT row_to_json(s)::text FROM sessions s", as: String.self)
            #expect(row?.contains(token) == false)
            let storedHash = try await stores.client.value("SELECT token_hash FROM sessions", as: ByteBuffer.self)
            #expect(storedHash.map { Array($0.readableBytesView) } == hash)
            #expect(try await stores.sessions.find(tokenHash: SessionStore.tokenHash(Self.token())) == nil)
            #expect(try await stores.sessions.find(tokenHash: Array(hash.prefix(31))) == nil)
        }
    }

    /// Expired and revoked sessions, and sessions of blocked users, do not sign anyone in.
    @Test func expiredRevokedAndBlockedSessionsAreNotFound() async throws {
        try await Stores.with("session_dead") { stores in
            let ada = try await stores.user()
            let expiring = SessionStore.tokenHash(Self.token())
            let session = try await stores.sessions.create(user: ada.id, tokenHash: expiring, expiresAt: Date().addingTimeInterval(60))
            try await stores.write("UPDATE sessions SET expires_at = now() - interval '1 second' WHERE id = \(session.id)")
            #expect(try await stores.sessions.find(tokenHash: expiring) == nil)
            #expect(try await stores.sessions.list(user: ada.id, page: try PageRequest()).items.isEmpty)

            let revoked = SessionStore.tokenHash(Self.token())
            let second = try await stores.sessions.create(user: ada.id, tokenHash: revoked, expiresAt: Date().addingTimeInterval(60))
            try await stores.sessions.revoke(second.id, user: ada.id)
            #expect(try await stores.sessions.find(tokenHash: revoked) == nil)
            await #expect(throws: StoreError.notFound("session")) { try await stores.sessions.revoke(second.id, user: ada.id) }

            let blocked = SessionStore.tokenHash(Self.token())
            _ = try await stores.sessions.create(user: ada.id, tokenHash: blocked, expiresAt: Date().addingTimeInterval(60))
            try await stores.users.setBlocked(ada.id, true)
            #expect(try await stores.sessions.find(tokenHash: blocked) == nil)
            await #expect(throws: StoreError.notFound("user")) {
                try await stores.sessions.create(user: ada.id, tokenHash: SessionStore.tokenHash(Self.token()), expiresAt: .distantFuture)
            }
            try await stores.users.setBlocked(ada.id, false)
            #expect(try await stores.sessions.find(tokenHash: blocked)?.user.id == ada.id)
        }
    }

    @Test func sessionFailurePaths() async throws {
        try await Stores.with("session_failures") { stores in
            let ada = try await stores.user()
            let short = await #expect(throws: StoreError.self) {
                try await stores.sessions.create(user: ada.id, tokenHash: Array(repeating: 1, count: 31), expiresAt: .distantFuture)
            }
            #expect(short?.code == .invalid && short?.field == "token_hash")
            let past = await #expect(throws: StoreError.self) {
                try await stores.sessions.create(user: ada.id, tokenHash: SessionStore.tokenHash(Self.token()), expiresAt: Date())
            }
            #expect(past?.code == .invalid && past?.field == "expires_at")
            await #expect(throws: StoreError.notFound("user")) {
                try await stores.sessions.create(user: UUID(), tokenHash: SessionStore.tokenHash(Self.token()), expiresAt: .distantFuture)
            }
            let hash = SessionStore.tokenHash(Self.token())
            _ = try await stores.sessions.create(user: ada.id, tokenHash: hash, expiresAt: .distantFuture)
            let again = await #expect(throws: StoreError.self) {
                try await stores.sessions.create(user: ada.id, tokenHash: hash, expiresAt: .distantFuture)
            }
            #expect(again?.code == .duplicate && again?.constraint == "sessions_token_hash_key")
            let long = try await stores.sessions.create(
                user: ada.id, tokenHash: SessionStore.tokenHash(Self.token()), expiresAt: .distantFuture,
                userAgent: String(repeating: "x", count: 5000))
            #expect(long.userAgent?.count == 512)
        }
    }

    /// A user sees and revokes only their own sessions; signing out everywhere keeps the
    /// current one.
    @Test func usersListAndRevokeTheirOwnSessions() async throws {
        try await Stores.with("session_revoke") { stores in
            let ada = try await stores.user()
            let eve = try await stores.user("Eve")
            var sessions: [Session] = []
            for _ in 0..<5 {
                sessions.append(
                    try await stores.sessions.create(
                        user: ada.id, tokenHash: SessionStore.tokenHash(Self.token()), expiresAt: Date().addingTimeInterval(3600)))
            }
            let eves = try await stores.sessions.create(
                user: eve.id, tokenHash: SessionStore.tokenHash(Self.token()), expiresAt: .distantFuture)

            let read = try await stores.allPages(limit: 2) { try await stores.sessions.list(user: ada.id, page: $0) }
            #expect(read.items == sessions && read.pages == 3)

            await #expect(throws: StoreError.notFound("session")) { try await stores.sessions.revoke(eves.id, user: ada.id) }
            await #expect(throws: StoreError.notFound("session")) { try await stores.sessions.revoke(UUID(), user: ada.id) }
            try await stores.sessions.revoke(sessions[0].id, user: ada.id)

            let current = sessions[2]
            #expect(try await stores.sessions.revokeAll(of: ada.id, except: current.id) == 3)
            #expect(try await stores.sessions.list(user: ada.id, page: try PageRequest()).items.map(\.id) == [current.id])
            #expect(try await stores.sessions.list(user: eve.id, page: try PageRequest()).items.map(\.id) == [eves.id])
            #expect(try await stores.sessions.revokeAll(of: ada.id) == 1)
            #expect(try await stores.sessions.revokeAll(of: ada.id) == 0)
            let activities = try await stores.client.value(
                "SELECT string_agg(name, ',' ORDER BY id) FROM activities WHERE actor_id = \(ada.id) AND name LIKE 'session.%'",
                as: String.self)
            #expect(
                activities
                    == "session.created,session.created,session.created,session.created,session.created,session.revoked,session.revoked_all,session.revoked_all"
            )
        }
    }
}
