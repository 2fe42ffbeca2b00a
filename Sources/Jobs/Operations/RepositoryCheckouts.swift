import Foundation
import Store

/// Checks out every repository of a run into `repositories/<name>` of its workspace, through
/// the worker's bare mirrors, before the script starts.
///
/// SSH fetches authenticate with the repository's deploy key, held in memory only, and trust a
/// server only when its host key is pinned in the repository's `known_hosts` or among the
/// well-known keys of GitHub, GitLab and Bitbucket. Which commit each one is at: see
/// ``ref(for:parameters:)``.
struct RepositoryCheckouts: Sendable {
    /// Why the checkouts stopped: the repository, the git error, and whether trying again later
    /// may help (the git host was unreachable).
    struct Failure: Error, CustomStringConvertible {
        var repository: String
        var error: GitError
        var isRetryable: Bool { error.isRetryable }
        var description: String { "repository \(repository): \(error.message)" }
    }

    let mirrors: MirrorCache

    /// The checked-out commit of each repository, by name; each one is said in the log.
    func checkOut(_ plan: RunPlan, into workspace: OperationWorkspace, writer: OperationLogWriter) async throws -> [String: String] {
        var commits: [String: String] = [:]
        for source in plan.repositories {
            try Task.checkCancellation()
            do {
                let checkout = try await mirrors.checkout(
                    url: source.url, ref: Self.ref(for: source, parameters: plan.operation.parameters),
                    into: workspace.repositories.appendingPathComponent(source.name),
                    credentials: Self.credentials(for: source), hostKey: Self.hostKeyVerifier(for: source))
                commits[source.name] = checkout.commit
                await writer.note("[harrow] checked out \(source.name) at \(checkout.commit) (\(checkout.ref))")
            } catch let error as GitError {
                await writer.note("[harrow] the checkout of \(source.name) from \(source.url) failed: \(error.message)")
                throw Failure(repository: source.name, error: error)
            }
        }
        return commits
    }

    /// The branch, tag or commit `source` is checked out at; nil for its default branch.
    ///
    /// A run that names a repository (`repository_id`, as a git trigger's runs do) checks out
    /// that repository at the trigger's `sha`, the commit that was seen, not wherever its ref
    /// moved since, and every other repository at its default branch: the ref is the trigger
    /// repository's and need not exist elsewhere. A removed ref (no `sha`) leaves the default
    /// branch. Otherwise every repository is at the `ref` parameter when given.
    static func ref(for source: RunPlan.Source, parameters: [String: String]) -> String? {
        func nonEmpty(_ key: String) -> String? { parameters[key].flatMap { $0.isEmpty ? nil : $0 } }
        if let repository = nonEmpty("repository_id") {
            guard repository.lowercased() == source.id.uuidString.lowercased() else { return nil }
            return nonEmpty("sha")
        }
        return nonEmpty("ref")
    }

    /// Trusts the host keys pinned in the repository's `known_hosts` and the well-known ones of
    /// GitHub, GitLab and Bitbucket, and no other.
    static func hostKeyVerifier(for source: RunPlan.Source) -> HostKeyVerifier {
        let knownHosts = ((try? KnownHosts(source.knownHosts)) ?? KnownHosts.wellKnown).merging(.wellKnown)
        return { host, port, keyType, key in
            knownHosts.rejection(host: host, port: port, keyType: keyType, key: key).map { .rejected($0) } ?? .trusted
        }
    }

    /// The deploy key for an SSH URL, the token (or nothing) for an HTTP(S) one.
    static func credentials(for source: RunPlan.Source) -> GitCredentials {
        guard let remote = try? GitError.validatedURL(source.url) else { return .anonymous }
        switch remote.transport {
        case .ssh: return source.deployKey.map { .sshKey(privateKey: $0.privateKey, publicKey: $0.publicKey) } ?? .anonymous
        case .https, .http: return source.token.map { .token($0) } ?? .anonymous
        }
    }
}
