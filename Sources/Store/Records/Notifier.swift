import Foundation

/// Where a project's notifications go.
public struct Notifier: Sendable, Hashable, Codable {
    /// How notifications are delivered.
    public enum Kind: String, Sendable, Hashable, Codable, CaseIterable {
        case email
    }

    public var id: UUID
    public var projectID: UUID
    public var name: String
    public var kind: Kind
    /// The email addresses notifications are sent to.
    public var recipients: [String]
    public var createdAt: Date
    public var updatedAt: Date
    public var archivedAt: Date?
}
