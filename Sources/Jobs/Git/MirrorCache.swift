import CGit2
import Crypto
import Foundation
import Store

/// Bare mirrors of remote repositories on this host, one per URL, and checkouts from them.
///
/// A mirror lives at `root/<first 32 hex digits of sha256(url)>.git`. It is created on first use
/// and fetched incrementally afterwards, so checking out a big repository again only transfers
/// what changed. Every checkout fetches first, with the caller's credentials, and fails if that
/// fetch fails: a mirror never serves a repository to a caller the remote did not just accept.
///
/// Concurrency: operations of one worker and of several worker processes share mirrors. A fetch
/// (and the first creation) holds an exclusive `flock` on `<mirror>.lock`; copying the objects into
/// a workspace holds a shared one. Fetches of one mirror are therefore serialized, copies run in
/// parallel, and a copy never sees a half-written pack. Objects are never deleted from a mirror, so
/// the commit resolved under the exclusive lock is still there after the downgrade.
public struct MirrorCache: Sendable {
    public let root: URL

    /// Mirrors go under `root`, which is created when missing.
    public init(root: URL) {
        self.root = root
    }

    /// Where the mirror of `url` lives (whether or not it exists yet).
    public func mirrorDirectory(for url: String) -> URL {
        let digest = SHA256.hash(data: Data(url.utf8)).map { byte in
            let hex = String(byte, radix: 16)
            return hex.count == 1 ? "0" + hex : hex
        }.joined()
        return root.appendingPathComponent(String(digest.prefix(32)) + ".git", isDirectory: true)
    }

    /// Checks out `ref` of the repository at `url` into `directory`, which must not exist or be empty.
    ///
    /// - Parameters:
    ///   - ref: a branch, a tag (annotated tags are peeled), a full or abbreviated sha, or a `refs/…`
    ///     name; nil for the remote's default branch.
    ///   - credentials: used for the fetch into the mirror; nothing of them reaches the workspace.
    ///   - hostKey: decides about the SSH server's host key; never skipped.
    /// - Returns: the commit checked out and the ref it was resolved from. The workspace is a normal
    ///   repository with HEAD detached at the commit and `origin` set to `url`.
    /// - Throws: ``GitError`` (retry only ``GitError/Code/unreachable``), or `CancellationError`
    ///   when the task was cancelled.
    public func checkout(
        url: String,
        ref: String?,
        into directory: URL,
        credentials: GitCredentials,
        hostKey: @escaping HostKeyVerifier
    ) async throws -> Checkout {
        LibGit2.ensureInitialized()
        let remote = try GitError.validatedURL(url)
        try credentials.checkUsable(with: remote)
        if let ref { try RefResolver.validate(ref, url: url) }
        let session = RemoteSession(url: remote, credentials: credentials, hostKeyVerifier: hostKey)
        let root = root
        let mirror = mirrorDirectory(for: url)
        return try await GitThread.run(session, name: "git checkout") {
            try session.checkCancellation()
            try FileManager.default.createDirectory(at: root, withIntermediateDirectories: true)
            let lock = try MirrorLock(path: mirror.path + ".lock")
            try lock.lock(.exclusive, session: session)
            defer { lock.unlock() }
            let resolution: RefResolver.Resolution
            do {
                let repository = try Self.fetchedMirror(at: mirror, session: session)
                resolution = try RefResolver.resolve(ref, in: repository, url: url)
            }
            try lock.downgrade(session: session)
            try WorkspaceCloner.create(
                at: directory,
                from: mirror,
                commit: resolution.commit,
                originURL: url,
                session: session
            )
            return Checkout(commit: LibGit2.hex(resolution.commit), ref: resolution.ref, directory: directory)
        }
    }

    /// Opens and fetches the mirror, creating it first if needed. Caller holds the exclusive lock.
    ///
    /// A new mirror is built under a temporary name and renamed into place only after its first
    /// fetch succeeded, so a failed or refused first fetch leaves nothing behind.
    private static func fetchedMirror(at mirror: URL, session: RemoteSession) throws -> GitRepository {
        if let repository = GitRepository.openBare(mirror.path) {
            try fetch(into: repository, session: session)
            return repository
        }
        let files = FileManager.default
        if files.fileExists(atPath: mirror.path) {
            // Not a repository (e.g. left by a crash before this scheme): rebuild it.
            try files.removeItem(at: mirror)
        }
        let staging = mirror.deletingLastPathComponent()
            .appendingPathComponent(".\(mirror.lastPathComponent).new-\(UUID().uuidString)", isDirectory: true)
        do {
            do {
                let repository = try GitRepository.initBare(staging.path)
                try addOrigin(to: repository, session: session)
                try fetch(into: repository, session: session)
            }
            try files.moveItem(at: staging, to: mirror)
        } catch {
            try? files.removeItem(at: staging)
            throw error
        }
        guard let repository = GitRepository.openBare(mirror.path) else {
            throw GitError(.other, "cannot open the new mirror \(mirror.path): \(LibGit2.lastError().message)")
        }
        return repository
    }

    private static func addOrigin(to repository: GitRepository, session: RemoteSession) throws {
        var remote: OpaquePointer?
        var code = git_remote_create_with_fetchspec(
            &remote,
            repository.pointer,
            "origin",
            session.url.string,
            "+refs/heads/*:refs/heads/*"
        )
        guard code == 0, let remote else { throw session.failure(code, "configuring the mirror of") }
        git_remote_free(remote)
        code = git_remote_add_fetch(repository.pointer, "origin", "+refs/tags/*:refs/tags/*")
        guard code == 0 else { throw session.failure(code, "configuring the mirror of") }
    }

    /// One connection: ask for the default branch, download what is missing, update and prune refs.
    private static func fetch(into repository: GitRepository, session: RemoteSession) throws {
        var remote: OpaquePointer?
        var code = git_remote_lookup(&remote, repository.pointer, "origin")
        guard code == 0, let remote else { throw session.failure(code, "reading the mirror's remote of") }
        defer { git_remote_free(remote) }
        try session.withCallbacks { callbacks in
            code = git_remote_connect(remote, GIT_DIRECTION_FETCH, &callbacks, nil, nil)
            guard code == 0 else { throw session.failure(code, "connecting to") }
            defer { git_remote_disconnect(remote) }

            var defaultBranch = git_buf()
            defer { git_buf_dispose(&defaultBranch) }
            code = git_remote_default_branch(&defaultBranch, remote)
            guard code == 0 || code == GIT_ENOTFOUND.rawValue else {
                throw session.failure(code, "reading the default branch of")
            }
            let branch = code == 0 ? defaultBranch.ptr.map { String(cString: $0) } : nil

            var options = git_fetch_options()
            git_fetch_options_init(&options, UInt32(GIT_FETCH_OPTIONS_VERSION))
            options.callbacks = callbacks
            options.prune = GIT_FETCH_PRUNE
            // Tags come through the explicit refs/tags/* refspec, not libgit2's tag following.
            options.download_tags = GIT_REMOTE_DOWNLOAD_TAGS_NONE
            options.update_fetchhead = 0
            code = git_remote_download(remote, nil, &options)
            guard code == 0 else { throw session.failure(code, "fetching") }
            try session.checkCancellation()
            code = git_remote_update_tips(remote, &callbacks, 0, GIT_REMOTE_DOWNLOAD_TAGS_NONE, "harrow: fetch")
            guard code == 0 else { throw session.failure(code, "updating the mirror's refs of") }
            code = git_remote_prune(remote, &callbacks)
            guard code == 0 else { throw session.failure(code, "pruning the mirror's refs of") }

            if let branch {
                var head: OpaquePointer?
                code = git_reference_symbolic_create(&head, repository.pointer, "HEAD", branch, 1, "harrow: remote default branch")
                guard code == 0 else { throw session.failure(code, "recording the default branch of") }
                git_reference_free(head)
            }
        }
    }
}
