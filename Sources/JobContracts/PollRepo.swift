import Foundation

/// `poll-repo` (queue `git`): lists a repository's refs, fetches new commits into a cache,
/// records changes and fires matching git triggers. Payload: `{"repository_id": "<uuid>"}`;
/// one poll per repository at a time (unique key `poll-repo:<id>`).
public struct PollRepo: JobContract, Hashable {
    public static let name = "poll-repo"
    public static let queue = "git"
    /// A poll is idempotent (changes and triggers are recorded once per event), and the next
    /// scheduled poll supersedes a failed one: a few quick retries cover a git host's hiccup.
    public static let retries = Retries(maxAttempts: 5, backoff: .exponential(base: .seconds(15), maximum: .seconds(600)))
    /// A first fetch of a large repository takes minutes.
    public static let timeout: Duration = .seconds(600)
    public static let visibilityTimeout: Duration? = .seconds(60)

    public var repositoryID: UUID

    public init(repositoryID: UUID) {
        self.repositoryID = repositoryID
    }

    public var uniqueKey: String? { "poll-repo:\(repositoryID.uuidString.lowercased())" }

    enum CodingKeys: String, CodingKey {
        case repositoryID = "repository_id"
    }

    /// The id in lowercase, as the store writes ids.
    public func encode(to encoder: any Encoder) throws {
        var container = encoder.container(keyedBy: CodingKeys.self)
        try container.encodeID(repositoryID, forKey: .repositoryID)
    }
}
