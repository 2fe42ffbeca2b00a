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
    /// Where notifications are POSTed (kind `webhook`; `nil` otherwise), as its origin only
    /// (``shownURL(_:)``): a chat service's incoming-webhook URL is itself a credential, and
    /// every reader of the project sees its notifiers.
    public var url: String?
    public var createdAt: Date
    public var updatedAt: Date
    public var archivedAt: Date?

    /// A webhook URL as it is shown: scheme, host and port, then `/…` when it has a path or
    /// query beyond `/`, which stay with the worker that sends.
    public static func shownURL(_ url: String) -> String {
        guard let components = URLComponents(string: url), let scheme = components.scheme, let host = components.percentEncodedHost
        else { return "…" }
        let origin = "\(scheme)://\(host)\(components.port.map { ":\($0)" } ?? "")"
        let rest = components.percentEncodedPath + (components.percentEncodedQuery.map { "?\($0)" } ?? "")
        return rest.isEmpty || rest == "/" ? origin + rest : origin + "/…"
    }
}
