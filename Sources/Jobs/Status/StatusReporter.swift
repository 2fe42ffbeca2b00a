import AsyncHTTPClient
import Foundation
import Logging
import PostgresNIO
import Store
import WorkerPool

/// Runs `post-status` jobs: reads the operation, its job, commit and repository and the
/// project's GitHub token, takes a request from the token's shared bucket, and posts the status.
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
    let database: PostgresClient
    /// The web app's address, for the status's link to the operation.
    let publicURL: String

    public init(
        database: PostgresClient, tokens: GitHubTokenStore, limiter: GitHubRateLimiter, client: GitHubStatusClient, publicURL: String,
        logger: Logger
    ) {
        operations = OperationStore(client: database, logger: logger)
        jobs = JobStore(client: database, logger: logger)
        repositories = RepositoryStore(client: database, logger: logger)
        self.tokens = tokens
        self.limiter = limiter
        self.client = client
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
        let operation: Store.Operation
        do {
            operation = try await operations.find(job.operationID)
        } catch let error as StoreError where error.code == .notFound {
            throw JobFailure.permanent("post-status: operation \(job.operationID.uuidString.lowercased()) does not exist")
        }
        guard let sha = operation.parameters["sha"], sha.count >= 7, sha.count <= 64, sha.allSatisfy(\.isHexDigit),
            let repositoryText = operation.parameters["repository_id"], let repositoryID = UUID(uuidString: repositoryText)
        else {
            throw JobFailure.permanent("post-status: the operation has no commit to report (it needs sha and repository_id parameters)")
        }
        let repository = try await repositories.find(repositoryID, project: operation.projectID, includeArchived: true)
        guard let name = GitHubRepositoryName(url: repository.url) else {
            throw JobFailure.permanent("post-status: \(repository.url) is not a GitHub repository URL")
        }
        guard let token = try await tokens.token(of: operation.projectID) else {
            throw JobFailure.permanent("post-status: the project has no GitHub token")
        }
        let definition = try await jobs.find(operation.jobID, project: operation.projectID, includeArchived: true)
        let status = GitHubStatusClient.CommitStatus(
            state: Self.state(of: operation.status),
            targetURL:
                "\(publicURL)/projects/\(operation.projectID.uuidString.lowercased())/operations/\(operation.id.uuidString.lowercased())",
            description: Self.description(of: operation.status), context: "harrow/\(definition.name)")

        if let wait = try await limiter.acquire(token: token) {
            throw JobFailure.retry(after: wait, "post-status: the GitHub token's request budget is spent for now")
        }
        do {
            try await client.post(status, repository: name, sha: sha.lowercased(), token: token)
        } catch let refusal as GitHubStatusClient.Refusal {
            throw try await classify(refusal, token: token)
        }
        try await JobRuns.record(context.id, type: PostStatus.name, outcome: status.state.rawValue, client: database, logger: logger)
        logger.info("post-status: posted", metadata: ["repository": "\(name)", "sha": "\(sha)", "state": "\(status.state.rawValue)"])
    }

    /// What to do after GitHub refused: wait out a rate limit, give up on what will not change,
    /// retry the rest.
    func classify(_ refusal: GitHubStatusClient.Refusal, token: String) async throws -> any Error {
        if refusal.status == 403 || refusal.status == 429, let wait = refusal.retryAfter {
            let milliseconds = wait.components.seconds * 1000 + wait.components.attoseconds / 1_000_000_000_000_000
            try await limiter.block(token: token, forMilliseconds: milliseconds)
            return JobFailure.retry(after: wait, "post-status: rate limited: \(refusal)")
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
