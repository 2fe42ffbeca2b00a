import Foundation

/// An invitation for an email address to join an organization, or one of its projects when
/// `projectID` is set, with a role. Open until accepted, refused, expired or archived.
public struct Invitation: Sendable, Hashable, Codable {
    public var id: UUID
    public var organizationID: UUID
    public var projectID: UUID?
    public var email: String
    public var role: Role
    /// The user who sent it.
    public var invitedBy: UUID
    public var createdAt: Date
    public var expiresAt: Date
    public var acceptedAt: Date?
    public var refusedAt: Date?
    public var archivedAt: Date?
}
