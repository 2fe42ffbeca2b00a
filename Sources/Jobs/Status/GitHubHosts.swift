import Foundation

/// The hosts whose repositories are on the GitHub that `post-status` talks to. A status goes
/// to the configured API with the project's token: a repository anywhere else (gitlab.com, or
/// github.com when the API is a GitHub Enterprise server) must get none, or a repository of the
/// same name on GitHub would get it, with the token's authority.
///
/// Unless given (`HARROW_GITHUB_HOSTS`), the host is derived from the API's root:
///
/// | API root | host |
/// | --- | --- |
/// | `https://api.github.com` | `github.com` |
/// | `https://HOST/api/v3` (GitHub Enterprise Server) | `HOST` |
/// | `https://api.SUBDOMAIN.ghe.com` (GitHub Enterprise Cloud with data residency) | `SUBDOMAIN.ghe.com` |
/// | any other root | its own host |
///
/// Hosts compare without case or a final dot (and a repository URL's without its port).
public struct GitHubHosts: Sendable, Hashable, CustomStringConvertible {
    /// The hosts, lowercased and without a final dot.
    public let hosts: Set<String>

    /// Exactly these hosts (names, without scheme or port).
    public init(_ hosts: [String]) {
        self.hosts = Set(hosts.map(Self.normalized).filter { !$0.isEmpty })
    }

    /// The host the API at `apiURL` serves; none when `apiURL` has no host.
    public init(apiURL: String) {
        self.init(Self.host(ofAPIURL: apiURL).map { [$0] } ?? [])
    }

    /// Whether `host` (a repository URL's, as ``GitHubRepositoryName/host`` has it) is one of these.
    public func contains(_ host: String) -> Bool {
        hosts.contains(Self.normalized(host))
    }

    public var description: String { hosts.sorted().joined(separator: ",") }

    static func host(ofAPIURL apiURL: String) -> String? {
        guard let components = URLComponents(string: apiURL), let host = components.host, !host.isEmpty else { return nil }
        let name = normalized(host)
        var path = components.path.lowercased()
        if path.hasSuffix("/") { path.removeLast() }
        if path == "/api/v3" { return name }
        // Only GitHub's own clouds name their API host `api.<host>`; any other root (a stand-in,
        // a proxy at api.example.com) serves its own host, as documented.
        if name == "api.github.com" { return "github.com" }
        if name.hasPrefix("api."), name.hasSuffix(".ghe.com"), name.count > "api..ghe.com".count { return String(name.dropFirst(4)) }
        return name
    }

    static func normalized(_ host: String) -> String {
        var name = host.trimmingCharacters(in: .whitespaces).lowercased()
        if name.hasSuffix(".") { name.removeLast() }
        return name
    }
}
