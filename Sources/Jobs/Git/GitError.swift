import Store

/// A failed git operation: what kind of failure it was (which decides whether to retry) and why.
///
/// Messages come from libgit2 (`git_error_last()`) or from this module; neither ever contains a
/// credential, because credentials only reach libgit2 through the credentials callback.
public struct GitError: Error, Sendable, Hashable, CustomStringConvertible {
    /// The kind of failure. New kinds may be added; switch with a `default`.
    public struct Code: Hashable, Sendable, CustomStringConvertible {
        public let name: String

        private init(_ name: String) {
            self.name = name
        }

        /// Network, DNS, connection refused or reset, timeouts, HTTP 502/503/504: the only retryable kind.
        public static let unreachable = Code("unreachable")
        /// The server refused the credentials, or asked for some and none were configured.
        public static let authenticationFailed = Code("authenticationFailed")
        /// The server's identity was not trusted: an SSH host key the verifier rejected, or a TLS
        /// certificate that failed verification.
        public static let hostKeyRejected = Code("hostKeyRejected")
        /// The requested branch, tag, sha or ref does not exist in the repository (or the remote has
        /// no default branch).
        public static let refNotFound = Code("refNotFound")
        /// The URL is refused by ``GitURLPolicy``.
        public static let invalidURL = Code("invalidURL")
        /// The server answered that there is no repository at this URL (HTTP 404).
        public static let repositoryNotFound = Code("repositoryNotFound")
        /// Anything else: protocol errors, local file system errors, corrupt data.
        public static let other = Code("other")

        public var description: String { name }
    }

    public var code: Code
    public var message: String

    public init(_ code: Code, _ message: String) {
        self.code = code
        self.message = message
    }

    /// Whether trying again later may succeed; only ``Code/unreachable`` is.
    public var isRetryable: Bool { code == .unreachable }

    public var description: String { "\(code): \(message)" }
}

extension GitError {
    /// `url` as ``GitURLPolicy`` parses it; a refused one is an `invalidURL` error.
    static func validatedURL(_ url: String) throws(GitError) -> GitRemoteURL {
        do {
            return try GitURLPolicy.validate(url)
        } catch {
            throw GitError(.invalidURL, error.message)
        }
    }
}
