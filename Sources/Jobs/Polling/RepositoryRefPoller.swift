import Foundation
import JobContracts
import Logging
import Store
import WorkerPool

/// Runs `poll-repo` jobs: lists the remote's refs with libgit2 on a git thread (the same
/// transports, deploy key or token, and host-key pinning as checkouts), then records them in one
/// transaction with the ref activities and the operations git triggers start
/// (``RepositoryPollStore/record(_:_:)``).
///
/// A remote that cannot be read (unreachable, refusing the key or the host key, no such
/// repository) is recorded as inaccessible and the job succeeds: the next scheduled poll is the
/// retry, and a job retried with backoff on top of that would only hold the repository's unique
/// key while polls keep coming. A failure to record (the database) fails the job, which is
/// retried: the listing is repeated, and the diff under the row lock reports each change once.
public struct RepositoryRefPoller: Sendable {
    let plans: RunPlanStore
    let polls: RepositoryPollStore

    public init(plans: RunPlanStore, polls: RepositoryPollStore) {
        self.plans = plans
        self.polls = polls
    }

    /// Registers the handler for ``PollRepo``.
    public func register(in registry: inout JobRegistry) throws {
        try registry.register(PollRepo.self) { job, context in _ = try await poll(job.repositoryID, logger: context.logger) }
    }

    /// Polls the repository once; `nil` when it is archived or gone.
    @discardableResult
    public func poll(_ id: UUID, logger: Logger) async throws -> RepositoryPollStore.Outcome? {
        var logger = logger
        logger[metadataKey: "repository_id"] = "\(id.uuidString.lowercased())"
        guard let source = try await plans.source(ofRepository: id) else {
            logger.info("poll-repo: the repository is archived or gone; nothing to poll")
            return nil
        }
        let listing: RepositoryPollStore.Listing
        do {
            listing = .refs(
                Self.comparable(
                    try await GitRemote.listRefs(
                        url: source.url, credentials: RepositoryCheckouts.credentials(for: source),
                        hostKey: RepositoryCheckouts.hostKeyVerifier(for: source))))
        } catch let error as GitError {
            logger.info("poll-repo: the repository cannot be read", metadata: ["error": "\(error)"])
            listing = .failed(error.message)
        }
        let outcome = try await polls.record(id, listing)
        if let outcome, !outcome.changes.isEmpty || outcome.firstListing {
            logger.info(
                "poll-repo: refs recorded",
                metadata: [
                    "first_listing": "\(outcome.firstListing)", "changes": "\(outcome.changes.count)",
                    "operations": "\(outcome.operations.map { $0.id.uuidString.lowercased() })",
                ])
        }
        return outcome
    }

    /// The refs a poll compares: every advertised ref but `HEAD` (it follows the default branch,
    /// whose own ref already says each move), each annotated tag at the commit it points to (git
    /// advertises that as `refs/tags/<name>^{}`), which is what operations check out.
    static func comparable(_ advertised: [String: String]) -> [String: String] {
        var refs: [String: String] = [:]
        for (name, sha) in advertised where name != "HEAD" && !name.hasSuffix("^{}") {
            refs[name] = advertised[name + "^{}"] ?? sha
        }
        return refs
    }
}
