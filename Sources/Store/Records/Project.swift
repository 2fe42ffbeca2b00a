import Foundation

/// A project of an organization: everything users automate lives under one.
public struct Project: Sendable, Hashable, Codable {
    public var id: UUID
    public var organizationID: UUID
    public var name: String
    public var createdAt: Date
    public var updatedAt: Date
    public var archivedAt: Date?
}
