import Foundation

/// Runs a job when a repository's refs change: refs whose name matches `refPattern` and that
/// change the way `changeType` says.
public struct GitTrigger: Sendable, Hashable, Codable {
    /// What happened to a ref.
    public enum ChangeType: String, Sendable, Hashable, Codable, CaseIterable {
        /// The ref appeared.
        case add
        /// The ref points at another commit.
        case change
        /// The ref disappeared.
        case remove
    }

    public var id: UUID
    public var projectID: UUID
    public var repositoryID: UUID
    public var jobID: UUID
    public var name: String
    /// A regular expression that ref names (`refs/heads/main`) must match as a whole.
    public var refPattern: String
    public var changeType: ChangeType
    public var createdAt: Date
    public var updatedAt: Date
    public var archivedAt: Date?
}
