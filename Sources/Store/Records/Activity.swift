import Foundation

/// One entry of the audit stream: what a user did or what happened to a record.
public struct Activity: Sendable, Hashable, Codable {
    /// Increases with every activity: the order they happened in.
    public var id: Int64
    /// What happened, as `<record>.<event>` (`operation.failed`).
    public var name: String
    public var payload: [String: String]
    public var projectID: UUID?
    public var organizationID: UUID?
    /// Who did it; `nil` for the system.
    public var actorID: UUID?
    public var occurredAt: Date
}
