import Foundation

/// A user's role in an organization or in one project. Memberships are deleted, not archived:
/// a removed member has no history to keep beyond the activity that records the removal.
public struct Membership: Sendable, Hashable, Codable {
    /// Where the membership applies.
    public enum Scope: Sendable, Hashable, Codable {
        case organization(UUID)
        case project(UUID)
    }

    public var scope: Scope
    /// The member, so that a list of members shows names without a lookup per row.
    public var user: User
    public var role: Role
    public var createdAt: Date
    public var updatedAt: Date
}
