import CGit2
import Foundation

/// Questions to a remote repository that need no local copy.
public enum GitRemote {
    /// The refs the remote advertises, name → 40-hex sha, without fetching any objects.
    ///
    /// Includes `HEAD` and, for annotated tags, the peeled entries `refs/tags/<name>^{}` with the
    /// commit the tag points to (so a poller can see both a re-tag and the commit). Throws like
    /// ``MirrorCache/checkout(url:ref:into:credentials:hostKey:)``.
    public static func listRefs(
        url: String,
        credentials: GitCredentials,
        hostKey: @escaping HostKeyVerifier
    ) async throws -> [String: String] {
        LibGit2.ensureInitialized()
        let remoteURL = try GitError.validatedURL(url)
        try credentials.checkUsable(with: remoteURL)
        let session = RemoteSession(url: remoteURL, credentials: credentials, hostKeyVerifier: hostKey)
        return try await GitThread.run(session, name: "git ls-remote") {
            try session.checkCancellation()
            var remote: OpaquePointer?
            var code = git_remote_create_detached(&remote, url)
            guard code == 0, let remote else { throw session.failure(code, "opening") }
            defer { git_remote_free(remote) }
            return try session.withCallbacks { callbacks in
                code = git_remote_connect(remote, GIT_DIRECTION_FETCH, &callbacks, nil, nil)
                guard code == 0 else { throw session.failure(code, "connecting to") }
                defer { git_remote_disconnect(remote) }
                var heads: UnsafeMutablePointer<UnsafePointer<git_remote_head>?>?
                var count = 0
                code = git_remote_ls(&heads, &count, remote)
                guard code == 0, let heads else { throw session.failure(code, "listing the refs of") }
                var refs: [String: String] = [:]
                for head in UnsafeBufferPointer(start: heads, count: count) {
                    guard let head, let name = head.pointee.name else { continue }
                    refs[String(cString: name)] = LibGit2.hex(head.pointee.oid)
                }
                return refs
            }
        }
    }
}
