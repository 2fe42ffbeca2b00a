import JobContracts
import WorkerPool

// The platform's job types are their contracts: the worker registers handlers for these very
// types, so each job's name, queue, retries, timeout and visibility timeout are defined once, in
// `JobContracts`.
extension GenerateKey: Job {}
extension SendMail: Job {}
extension RunOperation: Job {}
extension PollRepo: Job {}
extension PostStatus: Job {}
extension PostWebhook: Job {}

extension Job where Self: JobContract {
    /// The contract's retries, as the worker's retry policy.
    public static var retryPolicy: RetryPolicy { RetryPolicy(retries) }
}

extension RetryPolicy {
    /// The policy a contract's plain retry values describe.
    public init(_ retries: Retries) {
        let backoff: Backoff
        switch retries.backoff {
        case .polynomial: backoff = .polynomial
        case .exponential(let base, let maximum): backoff = .exponential(base: base, maximum: maximum)
        case .constant(let delay): backoff = .constant(delay)
        }
        self.init(maxAttempts: retries.maxAttempts, backoff: backoff)
    }
}
