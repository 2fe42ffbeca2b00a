import Foundation
import WorkerPool

/// `post-status` (queue `status`): posts the commit status of an operation to GitHub. Payload:
/// `{"operation_id": "<uuid>"}`. The state is read from the operation when the job runs
/// (queued or running → `pending`, succeeded → `success`, failed → `failure`, timed out or
/// canceled → `error`); the commit is the operation's `sha` parameter and the repository its
/// `repository_id` parameter's (a GitHub URL).
public struct PostStatus: Job, Hashable {
    public static let name = "post-status"
    public static let queue = "status"
    /// Network trouble and GitHub's 5xx pass; a status hours late is worth little.
    public static var retryPolicy: RetryPolicy {
        RetryPolicy(maxAttempts: 20, backoff: .exponential(base: .seconds(5), maximum: .seconds(900)))
    }
    public static var timeout: Duration { .seconds(60) }

    public var operationID: UUID

    public init(operationID: UUID) {
        self.operationID = operationID
    }

    enum CodingKeys: String, CodingKey {
        case operationID = "operation_id"
    }

    public init(from decoder: any Decoder) throws {
        let container = try decoder.container(keyedBy: CodingKeys.self)
        operationID = try container.decode(UUID.self, forKey: .operationID)
    }

    /// The id in lowercase, as the store writes ids.
    public func encode(to encoder: any Encoder) throws {
        var container = encoder.container(keyedBy: CodingKeys.self)
        try container.encode(operationID.uuidString.lowercased(), forKey: .operationID)
    }
}
