import Store

/// How to authenticate to a repository's server. Held in memory only: libgit2 receives them through
/// its credentials callback and nothing is written to disk or into a URL.
///
/// Swift strings cannot be wiped, so a key stays in memory until the value is released; keep values
/// short-lived. `description`, `debugDescription` and `customMirror` never show the secrets, so
/// logging or `dump`ing a value is safe.
public enum GitCredentials: Sendable, Hashable, CustomStringConvertible, CustomDebugStringConvertible,
    CustomReflectable
{
    /// No credentials: public HTTP(S) repositories. A server that asks for some fails with
    /// ``GitError/Code/authenticationFailed``.
    case anonymous
    /// An HTTP(S) access token, sent as the password of HTTP Basic authentication.
    case token(String, username: String = GitCredentials.defaultTokenUsername)
    /// An SSH key pair: the private key as OpenSSH-format text (ed25519 or RSA) and its public key line
    /// (`ssh-ed25519 AAAA… comment`). The user name comes from the URL, `git` when it has none.
    case sshKey(privateKey: String, publicKey: String, passphrase: String? = nil)

    /// The user name GitHub and most forges accept with a token as password.
    public static let defaultTokenUsername = "x-access-token"

    public var description: String {
        switch self {
        case .anonymous: "anonymous"
        case .token(_, let username): "token(username: \(username), token: <redacted>)"
        case .sshKey(_, let publicKey, _): "sshKey(\(publicKey.split(separator: " ").first ?? "unknown"), <redacted>)"
        }
    }

    public var debugDescription: String { description }

    public var customMirror: Mirror { Mirror(self, children: ["credentials": description]) }
}

extension GitCredentials {
    /// Refuses pairings that cannot work, before any connection is made.
    func checkUsable(with remote: GitRemoteURL) throws(GitError) {
        switch (self, remote.transport) {
        case (.token, .ssh):
            throw GitError(.authenticationFailed, "a token cannot authenticate to \(remote): SSH needs an SSH key")
        case (.sshKey, .https), (.sshKey, .http):
            throw GitError(.authenticationFailed, "an SSH key cannot authenticate to \(remote): HTTP(S) needs a token or no credentials")
        default:
            return
        }
    }
}
