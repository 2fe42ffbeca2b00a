import Foundation

/// An account. The password hash never leaves the store except to the code that checks it.
public struct User: Sendable, Hashable, Codable {
    public var id: UUID
    public var email: String
    public var name: String
    public var emailVerifiedAt: Date?
    public var blockedAt: Date?
    public var isAdmin: Bool
    public var createdAt: Date
    public var updatedAt: Date
}
