import Foundation

/// A git repository a project watches, with the deploy key it is read with.
public struct Repository: Sendable, Hashable, Codable {
    public var id: UUID
    public var projectID: UUID
    /// Unique among the project's live repositories; operations check it out into
    /// `repositories/<name>` of their workspace.
    public var name: String
    /// The clone URL. Never holds credentials: the schema refuses them.
    public var url: String
    /// The SSH key the repository is read with (its deploy key).
    public var credentialID: UUID?
    /// The host keys an SSH URL's server may present, OpenSSH `known_hosts` lines, in addition
    /// to the built-in keys of GitHub, GitLab and Bitbucket.
    public var knownHosts: String
    /// Whether an HTTPS access token is set for checkouts (it is never shown).
    public var hasToken: Bool
    /// The refs seen at the last check, by name (`refs/heads/main`) to commit id.
    public var refs: [String: String]
    /// Whether the last check could read the repository; `nil` before the first check.
    public var accessible: Bool?
    public var checkedAt: Date?
    /// Seconds between polls of its refs while it has live git triggers or was refreshed in the
    /// last hour (10 to 86400; each poll is jittered by up to a tenth of it).
    public var pollIntervalSeconds: Int
    /// When the next poll is due; `nil` while the repository is not polled.
    public var nextPollAt: Date?
    public var createdAt: Date
    public var updatedAt: Date
    public var archivedAt: Date?
}
