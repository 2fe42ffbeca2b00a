import CGit2
import Foundation
import Store

/// Process-wide libgit2 setup and the translation of its return codes into ``GitError``.
enum LibGit2 {
    /// Runs once, on first use. Besides `git_libgit2_init`, it empties the search paths of the
    /// system, XDG and global git configuration: a host's `~/.gitconfig` could otherwise rewrite
    /// repository URLs (`url.<base>.insteadOf`, e.g. to `file://`) behind ``GitURLPolicy``'s back, and
    /// workers must behave the same on every host. This is process-wide, which is fine while this
    /// module is the worker's only libgit2 user.
    private static let initialized: Bool = {
        git_libgit2_init()
        for level in [GIT_CONFIG_LEVEL_PROGRAMDATA, GIT_CONFIG_LEVEL_SYSTEM, GIT_CONFIG_LEVEL_XDG, GIT_CONFIG_LEVEL_GLOBAL] {
            _ = cgit2_set_config_search_path(level.rawValue, "")
        }
        return true
    }()

    static func ensureInitialized() {
        precondition(initialized)
    }

    /// The message and class of the last libgit2 error on this thread.
    static func lastError() -> (message: String, errorClass: Int32) {
        guard let error = git_error_last() else { return ("unknown libgit2 error", 0) }
        let message = error.pointee.message.map { String(cString: $0) } ?? "unknown libgit2 error"
        return (message, error.pointee.klass)
    }

    /// A ``GitError`` for a libgit2 call that returned `code` (< 0) while doing `action` on `url`.
    ///
    /// Only failures that are plausibly transient become ``GitError/Code/unreachable``: the caller
    /// retries those and nothing else, so protocol and local errors stay ``GitError/Code/other``.
    static func error(_ code: Int32, _ action: String, url: String) -> GitError {
        let (message, errorClass) = lastError()
        let text = "\(action) \(url) failed: \(message)"
        let lowered = message.lowercased()
        if code == GIT_EAUTH.rawValue {
            return GitError(.authenticationFailed, text)
        }
        if code == GIT_ECERTIFICATE.rawValue {
            return GitError(.hostKeyRejected, text)
        }
        if let status = httpStatus(in: lowered) {
            switch status {
            case 401, 403: return GitError(.authenticationFailed, text)
            case 404: return GitError(.repositoryNotFound, text)
            case 408, 429, 502, 503, 504: return GitError(.unreachable, text)
            default: return GitError(.other, text)
            }
        }
        let networkClasses = [GIT_ERROR_NET, GIT_ERROR_SSH, GIT_ERROR_OS, GIT_ERROR_HTTP, GIT_ERROR_SSL]
            .map { Int32($0.rawValue) }
        if networkClasses.contains(errorClass), unreachablePhrases.contains(where: lowered.contains) {
            return GitError(.unreachable, text)
        }
        return GitError(.other, text)
    }

    /// Phrases of libgit2 1.5's socket, resolver and libssh2 errors that mean the server could not be
    /// reached or the connection broke, as opposed to a server that answered something unusable.
    private static let unreachablePhrases = [
        "failed to connect", "failed to resolve address", "connection refused", "connection reset",
        "connection timed out", "timed out", "network is unreachable", "no route to host", "host is down",
        "broken pipe", "error receiving socket data", "error sending data", "could not read from socket",
        "failed getting banner", "early eof", "socket disconnect",
    ]

    private static func httpStatus(in message: String) -> Int? {
        guard let range = message.range(of: "unexpected http status code: ") else { return nil }
        return Int(message[range.upperBound...].prefix(while: \.isNumber))
    }

    /// 40 lowercase hex digits.
    static func hex(_ oid: git_oid) -> String {
        var oid = oid
        var buffer = [CChar](repeating: 0, count: Int(GIT_OID_HEXSZ) + 1)
        git_oid_tostr(&buffer, buffer.count, &oid)
        return String(decoding: buffer.prefix(Int(GIT_OID_HEXSZ)).map { UInt8(bitPattern: $0) }, as: UTF8.self)
    }
}
