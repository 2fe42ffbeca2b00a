import CGit2
import Foundation

/// Produces an operation's working tree from a fetched mirror.
///
/// `git_clone` from the mirror's path with `GIT_CLONE_LOCAL_NO_LINKS` copies the mirror's object
/// files (no network, no pack generation, which would cost CPU proportional to the repository) and
/// maps its branches to `refs/remotes/origin/*` like any clone. Copies rather than hard links:
/// scripts run in the workspace and could otherwise modify object files shared with the mirror,
/// poisoning every later checkout on the host.
enum WorkspaceCloner {
    static func create(
        at directory: URL,
        from mirror: URL,
        commit: git_oid,
        originURL: String,
        session: RemoteSession
    ) throws {
        var options = git_clone_options()
        git_clone_options_init(&options, UInt32(GIT_CLONE_OPTIONS_VERSION))
        options.local = GIT_CLONE_LOCAL_NO_LINKS
        // The commit is checked out below; checking out the mirror's HEAD first would write the tree twice.
        options.checkout_opts.checkout_strategy = GIT_CHECKOUT_NONE.rawValue
        // FETCH_HEAD would only record the mirror's host path.
        options.fetch_opts.update_fetchhead = 0
        var cloned: OpaquePointer?
        let code = session.withCallbacks { callbacks in
            options.fetch_opts.callbacks = callbacks
            return git_clone(&cloned, mirror.path, directory.path, &options)
        }
        guard code == 0, let cloned else {
            throw session.failure(code, "creating the workspace \(directory.path) for")
        }
        let repository = GitRepository.adopt(cloned, path: directory.path)
        try session.checkCancellation()

        var commit = commit
        var object: OpaquePointer?
        var result = git_object_lookup(&object, repository.pointer, &commit, GIT_OBJECT_COMMIT)
        guard result == 0, let object else { throw session.failure(result, "reading the commit to check out of") }
        defer { git_object_free(object) }

        var checkoutOptions = git_checkout_options()
        git_checkout_options_init(&checkoutOptions, UInt32(GIT_CHECKOUT_OPTIONS_VERSION))
        checkoutOptions.checkout_strategy = GIT_CHECKOUT_FORCE.rawValue
        result = git_checkout_tree(repository.pointer, object, &checkoutOptions)
        guard result == 0 else { throw session.failure(result, "checking out the files of") }
        result = git_repository_set_head_detached(repository.pointer, &commit)
        guard result == 0 else { throw session.failure(result, "detaching HEAD in the workspace of") }
        // The clone's origin is the mirror's path; scripts expect the real remote (never with
        // credentials: the URL policy refuses any in HTTP(S) URLs).
        result = git_remote_set_url(repository.pointer, "origin", originURL)
        guard result == 0 else { throw session.failure(result, "setting origin in the workspace of") }
    }
}
