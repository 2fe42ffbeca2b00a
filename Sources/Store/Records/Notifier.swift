import Foundation

/// Where a project's notifications go.
public struct Notifier: Sendable, Hashable, Codable {
    /// How notifications are delivered.
    public enum Kind: String, Sendable, Hashable, Codable, CaseIterable {
        /// Mails to `recipients`.
        case email
        /// Runs the job `jobID` of the project: a chained job, reason `notification`.
        case job
        /// POSTs the activity as JSON to `url`, signed with the notifier's secret.
        case webhook
    }

    public var id: UUID
    public var projectID: UUID
    public var name: String
    public var kind: Kind
    /// The email addresses notifications are sent to (kind `email`; empty otherwise).
    public var recipients: [String]
    /// The job a notification runs (kind `job`; `nil` otherwise).
    public var jobID: UUID?
    /// Where notifications are POSTed (kind `webhook`; `nil` otherwise). Its signing secret is
    /// shown once, when it is made.
    public var url: String?
    public var createdAt: Date
    public var updatedAt: Date
    public var archivedAt: Date?
}
