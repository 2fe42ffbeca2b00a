import Foundation

/// A repository checked out into an operation's workspace.
public struct Checkout: Sendable, Hashable {
    /// The commit checked out, 40 lowercase hex digits.
    public let commit: String
    /// The full ref the request resolved to (`refs/heads/main`, `refs/tags/v1.2`); for a request by
    /// (abbreviated) sha, the full 40-hex sha.
    public let ref: String
    /// The working tree: a non-bare repository with HEAD detached at ``commit``.
    public let directory: URL

    public init(commit: String, ref: String, directory: URL) {
        self.commit = commit
        self.ref = ref
        self.directory = directory
    }
}
