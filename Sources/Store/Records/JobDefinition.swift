import Foundation

/// A job of a project: a task run in an environment of the same project, with a time limit.
/// Schedules, webhooks and triggers start it; each run is an operation. Named so to keep clear
/// of the queue's `Job`.
public struct JobDefinition: Sendable, Hashable, Codable {
    /// The time limit of a job created without one: 15 minutes.
    public static let defaultTimeLimitSeconds = 900

    public var id: UUID
    public var projectID: UUID
    public var taskID: UUID
    public var environmentID: UUID
    public var name: String
    public var timeLimitSeconds: Int
    public var createdAt: Date
    public var updatedAt: Date
    public var archivedAt: Date?
}
