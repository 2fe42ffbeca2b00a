import Foundation

/// A repository URL that passed ``GitURLPolicy``, split into its parts.
public struct GitRemoteURL: Sendable, Hashable, CustomStringConvertible {
    /// The transports Harrow fetches over; all others are refused.
    public enum Transport: String, Sendable, Hashable {
        case ssh
        case https
        case http
    }

    /// The URL exactly as given, which is what libgit2 and the workspace's `origin` receive.
    public let string: String
    public let transport: Transport
    /// The SSH user from the URL; always nil for HTTP(S), which may not carry one.
    public let user: String?
    /// Lowercased; IPv6 literals without brackets.
    public let host: String
    /// The port from the URL, if it named one.
    public let port: Int?
    /// The repository path as written after the host (scp-like paths keep their relative form).
    public let path: String

    /// The port a connection goes to: the URL's, or the transport's default.
    public var effectivePort: Int {
        if let port { return port }
        switch transport {
        case .ssh: return 22
        case .https: return 443
        case .http: return 80
        }
    }

    public var description: String { string }
}

/// Which repository URLs a project may use, and the default name of a repository.
///
/// A pure function of the string, so the API can answer 422 with the same rules and messages the
/// worker applies.
public enum GitURLPolicy {
    /// The longest default name ``defaultName(for:)`` derives.
    public static let maximumNameLength = 100

    /// Parses `url` and refuses every form Harrow does not fetch from.
    ///
    /// Accepted: `ssh://[user@]host[:port]/path`, scp-like `[user@]host:path`, `https://host/path`,
    /// `http://host/path`. Refused, each with its own message: local paths and `file://` (they would
    /// read the worker's own disk), `ext::` and other remote helpers (they run commands), `git://`
    /// (unauthenticated and unencrypted), other schemes, user names or passwords in HTTP(S) URLs
    /// (credentials are configured separately and must not end up in `.git/config`), passwords in SSH
    /// URLs, whitespace and control characters, and values starting with `-` (option injection).
    public static func validate(_ url: String) throws(GitURLPolicy.Refusal) -> GitRemoteURL {
        guard !url.isEmpty else { throw invalid(url, "the URL is empty") }
        if url.unicodeScalars.contains(where: { $0.properties.isWhitespace || $0.value < 0x20 || $0.value == 0x7F }) {
            throw invalid(url, "the URL contains whitespace or control characters")
        }
        if url.hasPrefix("-") {
            throw invalid(url, "the URL starts with '-', which git would read as a command-line option")
        }
        if let helper = remoteHelperName(url) {
            throw invalid(
                url,
                "remote helpers ('\(helper)::') are not allowed: they run commands on the worker; use ssh://, https:// or http://"
            )
        }
        if let schemeEnd = url.range(of: "://") {
            let scheme = url[..<schemeEnd.lowerBound].lowercased()
            let rest = String(url[schemeEnd.upperBound...])
            switch scheme {
            case "ssh": return try parseHierarchical(url, transport: .ssh, rest: rest)
            case "https": return try parseHierarchical(url, transport: .https, rest: rest)
            case "http": return try parseHierarchical(url, transport: .http, rest: rest)
            case "file":
                throw invalid(url, "file:// URLs are not allowed: they read the worker's local disk")
            case "git":
                throw invalid(
                    url,
                    "git:// is not allowed: the git protocol is unauthenticated and unencrypted; use https:// or ssh://"
                )
            default:
                throw invalid(url, "the transport '\(scheme)' is not supported; use ssh://, https:// or http://")
            }
        }
        return try parseSCPLike(url)
    }

    /// The default name of the repository at `url`: its last path component without `.git`, e.g.
    /// `git@github.com:acme/web.git` → `web`.
    ///
    /// Throws when that component is empty, `.` or `..`, longer than ``maximumNameLength``, or has
    /// characters outside `[A-Za-z0-9._-]`; the caller then has to ask for an explicit name.
    public static func defaultName(for url: String) throws(GitURLPolicy.Refusal) -> String {
        let remote = try validate(url)
        var path = Substring(remote.path)
        while path.hasSuffix("/") { path = path.dropLast() }
        var name = path.split(separator: "/", omittingEmptySubsequences: true).last.map(String.init) ?? ""
        if name.hasSuffix(".git") { name = String(name.dropLast(4)) }
        guard !name.isEmpty else {
            throw invalid(url, "cannot derive a repository name: the URL's path has no last component")
        }
        guard name != ".", name != ".." else {
            throw invalid(url, "cannot derive a repository name: '\(name)' is not a usable directory name")
        }
        guard name.utf8.count <= maximumNameLength else {
            throw invalid(
                url,
                "cannot derive a repository name: '\(name.prefix(20))…' is longer than \(maximumNameLength) characters"
            )
        }
        guard name.unicodeScalars.allSatisfy(isNameCharacter) else {
            throw invalid(
                url,
                "cannot derive a repository name: '\(name)' has characters outside [A-Za-z0-9._-]; give the repository a name"
            )
        }
        return name
    }

    private static func parseHierarchical(
        _ url: String,
        transport: GitRemoteURL.Transport,
        rest: String
    ) throws(GitURLPolicy.Refusal) -> GitRemoteURL {
        guard let slash = rest.firstIndex(of: "/") else {
            throw invalid(url, "the URL has no repository path after the host")
        }
        let authority = rest[..<slash]
        let path = String(rest[slash...])
        guard path.count > 1 else { throw invalid(url, "the URL has no repository path after the host") }
        if path.contains("#") { throw invalid(url, "the URL must not contain a fragment ('#')") }

        var user: String?
        var hostPort = Substring(authority)
        if let at = authority.lastIndex(of: "@") {
            let userInfo = authority[..<at]
            hostPort = authority[authority.index(after: at)...]
            guard transport == .ssh else {
                throw invalid(
                    url,
                    "\(transport.rawValue) URLs must not contain a user name, password or token; configure credentials separately"
                )
            }
            guard !userInfo.contains(":") else {
                throw invalid(url, "ssh URLs must not contain a password; use an SSH key")
            }
            user = try validatedUser(url, userInfo)
        }
        let (host, port) = try parseHostPort(url, hostPort)
        return GitRemoteURL(string: url, transport: transport, user: user, host: host, port: port, path: path)
    }

    /// git's rule: `[user@]host:path` with no `/` before the first `:`; anything else without a
    /// scheme is a local path.
    private static func parseSCPLike(_ url: String) throws(GitURLPolicy.Refusal) -> GitRemoteURL {
        // A bracketed IPv6 host has colons of its own: the separator is the one after `]`.
        let searchStart = url.range(of: "]:")?.lowerBound ?? url.startIndex
        guard let colon = url[searchStart...].firstIndex(of: ":"), !url[..<colon].contains("/") else {
            throw invalid(url, "local paths are not allowed; use ssh://, https:// or http://")
        }
        let authority = url[..<colon]
        let path = String(url[url.index(after: colon)...])
        guard !path.isEmpty else { throw invalid(url, "the URL has no repository path after 'host:'") }
        if !authority.contains("@"), path.prefix(while: { $0 != "/" }).contains("@") {
            throw invalid(url, "the URL looks like 'user:password@host:path'; passwords are not allowed, use an SSH key")
        }
        var user: String?
        var hostPart = authority
        if let at = authority.lastIndex(of: "@") {
            user = try validatedUser(url, authority[..<at])
            hostPart = authority[authority.index(after: at)...]
        }
        if hostPart.hasPrefix("[") && hostPart.hasSuffix("]") { hostPart = hostPart.dropFirst().dropLast() }
        let host = try validatedHost(url, hostPart, allowColons: true)
        return GitRemoteURL(string: url, transport: .ssh, user: user, host: host, port: nil, path: path)
    }

    private static func parseHostPort(_ url: String, _ hostPort: Substring) throws(GitURLPolicy.Refusal) -> (String, Int?) {
        var hostPart: Substring
        var portPart: Substring?
        if hostPort.hasPrefix("[") {
            guard let close = hostPort.firstIndex(of: "]") else {
                throw invalid(url, "the URL has an unterminated IPv6 address")
            }
            hostPart = hostPort[hostPort.index(after: hostPort.startIndex)..<close]
            let after = hostPort[hostPort.index(after: close)...]
            if !after.isEmpty {
                guard after.hasPrefix(":") else { throw invalid(url, "unexpected characters after the IPv6 address") }
                portPart = after.dropFirst()
            }
            _ = try validatedHost(url, hostPart, allowColons: true)
        } else if let colon = hostPort.lastIndex(of: ":") {
            hostPart = hostPort[..<colon]
            portPart = hostPort[hostPort.index(after: colon)...]
        } else {
            hostPart = hostPort
        }
        let host = try validatedHost(url, hostPart, allowColons: hostPort.hasPrefix("["))
        guard let portPart else { return (host, nil) }
        guard !portPart.isEmpty, portPart.count <= 5, portPart.allSatisfy({ $0.isASCII && $0.isNumber }),
            let port = Int(portPart), (1...65535).contains(port)
        else {
            throw invalid(url, "the port '\(portPart)' is not a number from 1 to 65535")
        }
        return (host, port)
    }

    private static func validatedHost(_ url: String, _ host: Substring, allowColons: Bool) throws(GitURLPolicy.Refusal) -> String {
        guard !host.isEmpty else { throw invalid(url, "the URL has no host") }
        guard !host.hasPrefix("-") else { throw invalid(url, "the host must not start with '-'") }
        let allowed = host.unicodeScalars.allSatisfy { scalar in
            isASCIIAlphanumeric(scalar) || scalar == "." || scalar == "-" || scalar == "_" || (allowColons && scalar == ":")
        }
        guard allowed else { throw invalid(url, "the host '\(host)' has characters not allowed in a host name") }
        return host.lowercased()
    }

    private static func validatedUser(_ url: String, _ user: Substring) throws(GitURLPolicy.Refusal) -> String {
        guard !user.isEmpty else { throw invalid(url, "the user name before '@' is empty") }
        guard !user.hasPrefix("-") else { throw invalid(url, "the user name must not start with '-'") }
        guard user.unicodeScalars.allSatisfy({ isASCIIAlphanumeric($0) || $0 == "." || $0 == "_" || $0 == "-" }) else {
            throw invalid(url, "the user name '\(user)' has characters outside [A-Za-z0-9._-]")
        }
        return String(user)
    }

    /// `ext::sh -c …`, `fd::…` and other `<helper>::<address>` forms.
    private static func remoteHelperName(_ url: String) -> String? {
        guard let separator = url.range(of: "::") else { return nil }
        let helper = url[..<separator.lowerBound]
        guard let first = helper.unicodeScalars.first, isASCIILetter(first),
            helper.unicodeScalars.allSatisfy({ isASCIIAlphanumeric($0) || $0 == "+" || $0 == "-" || $0 == "." })
        else { return nil }
        return String(helper)
    }

    private static func isNameCharacter(_ scalar: Unicode.Scalar) -> Bool {
        isASCIIAlphanumeric(scalar) || scalar == "." || scalar == "_" || scalar == "-"
    }

    private static func isASCIILetter(_ scalar: Unicode.Scalar) -> Bool {
        ("a"..."z").contains(scalar) || ("A"..."Z").contains(scalar)
    }

    private static func isASCIIAlphanumeric(_ scalar: Unicode.Scalar) -> Bool {
        isASCIILetter(scalar) || ("0"..."9").contains(scalar)
    }

    private static func invalid(_ url: String, _ reason: String) -> Refusal {
        Refusal(message: "invalid repository URL: \(reason)")
    }

    /// Why a URL was refused; the message never repeats the URL (it may hold a token).
    public struct Refusal: Error, Sendable, Hashable, CustomStringConvertible {
        public let message: String

        public var description: String { message }
    }
}
