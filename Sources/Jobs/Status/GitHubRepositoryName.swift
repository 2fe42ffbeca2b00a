import Foundation

/// `owner/name` of a GitHub repository and the host it is on, read from the URLs a repository
/// record may have: `git@github.com:owner/name.git`, `ssh://git@host[:port]/owner/name.git`,
/// `https://host/owner/name`. Whether the host is the configured GitHub's is for
/// ``GitHubHosts`` to say: the name alone fits any git host.
public struct GitHubRepositoryName: Sendable, Hashable, CustomStringConvertible {
    /// The URL's host, lowercased, without user or port (an IPv6 address keeps its brackets).
    public let host: String
    public let owner: String
    public let name: String

    public init?(url: String) {
        var path: Substring
        let authority: Substring
        if let scheme = url.range(of: "://") {
            let rest = url[scheme.upperBound...]
            guard let slash = rest.firstIndex(of: "/") else { return nil }
            authority = rest[..<slash]
            path = rest[rest.index(after: slash)...]
        } else if let colon = url.firstIndex(of: ":"), url[..<colon].contains("@") || !url[..<colon].contains("/") {
            authority = url[..<colon]
            path = url[url.index(after: colon)...]
        } else {
            return nil
        }
        guard let host = Self.host(of: authority) else { return nil }
        if path.hasSuffix("/") { path = path.dropLast() }
        if path.hasSuffix(".git") { path = path.dropLast(4) }
        let parts = path.split(separator: "/", omittingEmptySubsequences: false)
        guard parts.count == 2, let owner = parts.first, let name = parts.last, Self.valid(owner), Self.valid(name) else { return nil }
        self.host = host
        self.owner = String(owner)
        self.name = String(name)
    }

    public var description: String { "\(owner)/\(name)" }

    /// `[user@]host[:port]` → `host`; `nil` when nothing is left.
    private static func host(of authority: Substring) -> String? {
        var host = authority
        if let at = host.lastIndex(of: "@") { host = host[host.index(after: at)...] }
        if host.hasPrefix("[") {
            guard let close = host.firstIndex(of: "]") else { return nil }
            host = host[...close]
        } else if let colon = host.firstIndex(of: ":") {
            host = host[..<colon]
        }
        return host.isEmpty ? nil : host.lowercased()
    }

    /// GitHub's characters for owners and repositories; anything else would need escaping in a
    /// URL path and is not a GitHub name.
    private static func valid(_ part: Substring) -> Bool {
        !part.isEmpty && part.count <= 100 && part != "." && part != ".."
            && part.allSatisfy { $0.isASCII && ($0.isLetter || $0.isNumber || $0 == "-" || $0 == "_" || $0 == ".") }
    }
}
