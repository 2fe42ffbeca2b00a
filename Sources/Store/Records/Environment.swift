import Foundation

/// A set of variables a project's jobs run with (say `staging` or `production`). Each project
/// has exactly one default environment while it is live.
public struct Environment: Sendable, Hashable, Codable {
    public var id: UUID
    public var projectID: UUID
    public var name: String
    /// Passed to the task's process as environment variables; secrets of the environment are
    /// added on top of them when a job runs.
    public var variables: [String: String]
    public var isDefault: Bool
    /// Where scripts run: `nil` on the worker itself, or `ssh://user@host[:port]`.
    public var target: String?
    /// The `ssh` secret of this environment that logs in to the target.
    public var targetSecretID: UUID?
    /// OpenSSH `known_hosts` lines: the target's host keys, and those the script's own `ssh`
    /// connections may trust.
    public var knownHosts: String
    public var createdAt: Date
    public var updatedAt: Date
    public var archivedAt: Date?
}
