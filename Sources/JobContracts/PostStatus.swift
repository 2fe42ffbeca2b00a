import Foundation

/// `post-status` (queue `status`): posts the commit status of an operation to GitHub. Payload:
/// `{"operation_id": "<uuid>"}`. The state is read from the operation when the job runs.
public struct PostStatus: JobContract, Hashable {
    public static let name = "post-status"
    public static let queue = "status"
    /// Network trouble and GitHub's 5xx pass; a status hours late is worth little.
    public static let retries = Retries(maxAttempts: 20, backoff: .exponential(base: .seconds(5), maximum: .seconds(900)))
    /// One or two requests, and up to 10 s waiting for the token's rate limit.
    public static let timeout: Duration = .seconds(60)
    public static let visibilityTimeout: Duration? = .seconds(60)

    public var operationID: UUID

    public init(operationID: UUID) {
        self.operationID = operationID
    }

    enum CodingKeys: String, CodingKey {
        case operationID = "operation_id"
    }

    /// The id in lowercase, as the store writes ids.
    public func encode(to encoder: any Encoder) throws {
        var container = encoder.container(keyedBy: CodingKeys.self)
        try container.encodeID(operationID, forKey: .operationID)
    }
}
