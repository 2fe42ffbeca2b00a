import JobContracts

/// The worker's diagnostic `noop` job as a contract on queue `work`, for tests that move jobs
/// through the outbox without a platform handler: `record` names a Redis set the worker adds
/// the job id to, `n` tells jobs apart.
public struct NoopContract: JobContract, Hashable {
    public static let name = "noop"
    public static let queue = "work"
    public static let retries = Retries(maxAttempts: 3, backoff: .constant(.seconds(1)))
    public static let timeout: Duration = .seconds(10)
    public static let visibilityTimeout: Duration? = .seconds(30)

    public var record: String?
    public var n: Int?

    public init(record: String? = nil, n: Int? = nil) {
        self.record = record
        self.n = n
    }
}
