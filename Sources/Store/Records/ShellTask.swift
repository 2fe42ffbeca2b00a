import Foundation

/// A task of a project: a shell script that jobs run. Named so to keep clear of Swift's `Task`.
public struct ShellTask: Sendable, Hashable, Codable {
    public var id: UUID
    public var projectID: UUID
    public var name: String
    public var script: String
    public var createdAt: Date
    public var updatedAt: Date
    public var archivedAt: Date?
}
