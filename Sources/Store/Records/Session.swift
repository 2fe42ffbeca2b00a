import Foundation

/// A signed-in browser or client of a user. Only the SHA-256 of its bearer token is stored, and
/// the record carries not even that.
public struct Session: Sendable, Hashable, Codable {
    public var id: UUID
    public var userID: UUID
    public var createdAt: Date
    public var expiresAt: Date
    public var revokedAt: Date?
    public var userAgent: String?
    /// The client's network address when it signed in.
    public var address: String?
    /// When the session was last used, to the minute.
    public var lastSeenAt: Date?
}
