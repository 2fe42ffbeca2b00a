import Foundation

/// `owner/name` of a GitHub repository, read from the URLs a repository record may have:
/// `git@github.com:owner/name.git`, `ssh://git@host/owner/name.git`, `https://host/owner/name`.
/// The host is not checked, so GitHub Enterprise URLs work the same.
public struct GitHubRepositoryName: Sendable, Hashable, CustomStringConvertible {
    public let owner: String
    public let name: String

    public init?(url: String) {
        var path: Substring
        if let scheme = url.range(of: "://") {
            let rest = url[scheme.upperBound...]
            guard let slash = rest.firstIndex(of: "/") else { return nil }
            path = rest[rest.index(after: slash)...]
        } else if let colon = url.firstIndex(of: ":"), url[..<colon].contains("@") || !url[..<colon].contains("/") {
            path = url[url.index(after: colon)...]
        } else {
            return nil
        }
        if path.hasSuffix("/") { path = path.dropLast() }
        if path.hasSuffix(".git") { path = path.dropLast(4) }
        let parts = path.split(separator: "/", omittingEmptySubsequences: false)
        guard parts.count == 2, let owner = parts.first, let name = parts.last, Self.valid(owner), Self.valid(name) else { return nil }
        self.owner = String(owner)
        self.name = String(name)
    }

    public var description: String { "\(owner)/\(name)" }

    /// GitHub's characters for owners and repositories; anything else would need escaping in a
    /// URL path and is not a GitHub name.
    private static func valid(_ part: Substring) -> Bool {
        !part.isEmpty && part.count <= 100 && part != "." && part != ".."
            && part.allSatisfy { $0.isASCII && ($0.isLetter || $0.isNumber || $0 == "-" || $0 == "_" || $0 == ".") }
    }
}
