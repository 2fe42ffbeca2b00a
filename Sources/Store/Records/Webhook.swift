import Foundation

/// An HTTP endpoint (`/hooks/<slug>`) that runs a job when a signed request arrives. The signing
/// secret is not part of the record: it is shown once, when it is made.
public struct Webhook: Sendable, Hashable, Codable {
    public var id: UUID
    public var projectID: UUID
    public var jobID: UUID
    public var name: String
    /// The random, URL-safe part of the endpoint's path.
    public var slug: String
    public var createdAt: Date
    public var updatedAt: Date
    public var archivedAt: Date?
}
