import AsyncHTTPClient
import Foundation
import JobContracts
import Logging
import PostgresNIO
import Queue
import Store
import WorkerPool

/// Runs `post-status` jobs: reads the operation, its job, commit and repository and the
/// project's GitHub token, takes a request from the token's shared bucket, and posts the status.
/// Only a repository on the configured GitHub's ``GitHubHosts`` gets one: for any other the job
/// ends (`skipped`) before the token is read. The check is here, where the token would leave,
/// rather than where the job is queued: it then covers jobs queued before a repository's URL
/// changed and old ones retried from the dead letters, and queuing (in `Store`) knows nothing of
/// the worker's GitHub configuration.
/// 401, 404 and 422 (and a 403 that is not a rate limit) are permanent, with GitHub's message in
/// the dead letter; a rate limit retries when GitHub says the token can be used again (and holds
/// every worker off the token until then); 5xx and network errors retry with the backoff.
public struct StatusReporter: Sendable {
    let operations: OperationStore
    let jobs: JobStore
    let repositories: RepositoryStore
    let tokens: GitHubTokenStore
    let limiter: GitHubRateLimiter
    let client: GitHubStatusClient
    /// The hosts whose repositories get statuses.
    let hosts: GitHubHosts
    let database: PostgresClient
    /// The web app's address, for the status's link to the operation.
    let publicURL: String

    public init(
        database: PostgresClient, tokens: GitHubTokenStore, limiter: GitHubRateLimiter, client: GitHubStatusClient, hosts: GitHubHosts,
        publicURL: String, logger: Logger
    ) {
        operations = OperationStore(client: database, logger: logger)
        jobs = JobStore(client: database, logger: logger)
        repositories = RepositoryStore(client: database, logger: logger)
        self.tokens = tokens
        self.limiter = limiter
        self.client = client
        self.hosts = hosts
        self.database = database
        self.publicURL = publicURL.hasSuffix("/") ? String(publicURL.dropLast()) : publicURL
    }

    /// Registers the handler for ``PostStatus``.
    public func register(in registry: inout JobRegistry) throws {
        try registry.register(PostStatus.self) { job, context in try await run(job, context: context) }
    }

    func run(_ job: PostStatus, context: JobContext) async throws {
        let logger = context.logger
        if try await JobRuns.outcome(of: context.id, client: database, logger: logger) != nil {
            logger.info("post-status: this job ran already; nothing to do")
            return
        }
        let operation = try await Self.permanentIfGone { try await operations.find(job.operationID) }
        guard let sha = operation.parameters["sha"], sha.count >= 7, sha.count <= 64, sha.allSatisfy(\.isHexDigit),
            let repositoryText = operation.parameters["repository_id"], let repositoryID = UUID(uuidString: repositoryText)
        else {
            throw JobFailure.permanent("post-status: the operation has no commit to report (it needs sha and repository_id parameters)")
        }
        let repository = try await Self.permanentIfGone {
            try await repositories.find(repositoryID, project: operation.projectID, includeArchived: true)
        }
        guard let name = GitHubRepositoryName(url: repository.url) else {
            throw JobFailure.permanent("post-status: \(repository.url) is not a GitHub repository URL")
        }
        guard hosts.contains(name.host) else {
            // Another git host's repository: GitHub's API would take the status for its namesake.
            logger.info(
                "post-status: the repository is not on the configured GitHub; no status",
                metadata: ["repository": "\(repository.url)", "github_hosts": "\(hosts)"])
            try await JobRuns.record(context.id, type: PostStatus.name, outcome: "skipped", client: database, logger: logger)
            return
        }
        guard let token = try await Self.permanentIfGone({ try await tokens.token(of: operation.projectID) }) else {
            throw JobFailure.permanent("post-status: the project has no GitHub token")
        }
        let definition = try await Self.permanentIfGone {
            try await jobs.find(operation.jobID, project: operation.projectID, includeArchived: true)
        }

        switch try await limiter.acquire(token: token, reservingUpTo: Self.longestWaitInHandler) {
        case .now: break
        case .after(let wait): try await Task.sleep(for: wait)
        case .retry(let wait): throw JobFailure.retry(after: wait, "post-status: the GitHub token's request budget is spent for now")
        }
        // The operation may move on while a status is on its way (a slow "pending" posted after
        // a quick "success"): post until the last posted state is the operation's state.
        var current = operation
        var posted: GitHubStatusClient.CommitStatus.State?
        for _ in 0..<3 {
            let state = Self.state(of: current.status)
            if state == posted { break }
            let status = GitHubStatusClient.CommitStatus(
                state: state,
                targetURL:
                    "\(publicURL)/projects/\(current.projectID.uuidString.lowercased())/operations/\(current.id.uuidString.lowercased())",
                description: Self.description(of: current.status), context: "harrow/\(definition.name)")
            do {
                try await client.post(status, repository: name, sha: sha.lowercased(), token: token)
            } catch let refusal as GitHubStatusClient.Refusal {
                throw try await classify(refusal, token: token)
            }
            posted = state
            logger.info("post-status: posted", metadata: ["repository": "\(name)", "sha": "\(sha)", "state": "\(state.rawValue)"])
            current = try await operations.find(current.id)
        }
        try await JobRuns.record(context.id, type: PostStatus.name, outcome: posted?.rawValue ?? "none", client: database, logger: logger)
    }

    /// A wait for the token's next request shorter than this is spent in the handler (its
    /// request is reserved); a longer one reschedules the job.
    static let longestWaitInHandler: Duration = .seconds(10)

    /// GitHub's advice for a secondary rate limit that names no time: wait at least a minute.
    static let secondaryRateLimitWait: Duration = .seconds(60)

    /// Runs a read whose record must exist: a missing record, or one that does not decrypt,
    /// will not come back by retrying.
    static func permanentIfGone<T>(_ read: () async throws -> T) async throws -> T {
        do {
            return try await read()
        } catch let error as StoreError where error.code == .notFound || error.code == .crypto {
            throw JobFailure.permanent("post-status: \(error)")
        }
    }

    /// What to do after GitHub refused: wait out a rate limit (holding every worker off the
    /// token), give up on what will not change, retry the rest.
    func classify(_ refusal: GitHubStatusClient.Refusal, token: String) async throws -> any Error {
        if refusal.status == 403 || refusal.status == 429 {
            // A secondary rate limit often says so only in its message.
            let wait = refusal.retryAfter ?? (refusal.message.lowercased().contains("rate limit") ? Self.secondaryRateLimitWait : nil)
            if let wait {
                try await limiter.block(token: token, forMilliseconds: JobQueue.milliseconds(wait))
                return JobFailure.retry(after: wait, "post-status: rate limited: \(refusal)")
            }
        }
        switch refusal.status {
        case 401, 403, 404, 422:
            return JobFailure.permanent("post-status: \(refusal)")
        default:
            return refusal
        }
    }

    static func state(of status: Store.Operation.Status) -> GitHubStatusClient.CommitStatus.State {
        switch status {
        case .queued, .running: .pending
        case .succeeded: .success
        case .failed: .failure
        case .timedOut, .canceled: .error
        }
    }

    static func description(of status: Store.Operation.Status) -> String {
        switch status {
        case .queued: "Harrow: queued"
        case .running: "Harrow: running"
        case .succeeded: "Harrow: succeeded"
        case .failed: "Harrow: failed"
        case .timedOut: "Harrow: timed out"
        case .canceled: "Harrow: canceled"
        }
    }
}
