import Foundation

/// An organization: owns projects, has members.
public struct Organization: Sendable, Hashable, Codable {
    public var id: UUID
    public var name: String
    public var createdAt: Date
    public var updatedAt: Date
    public var archivedAt: Date?
}
