import Foundation
import HTTPTypes

/// The browser's session: the token in an `HttpOnly`, `SameSite=Strict` cookie, so the web app's
/// scripts never hold it. Bearer tokens stay the way for API clients.
///
/// Behind an https public URL the cookie is `__Host-harrow_session` and `Secure`: the prefix
/// makes browsers refuse one set by a sibling subdomain or over plain http, which could
/// otherwise slip the visitor into someone else's session. A request with two session
/// cookies counts as having none.
struct SessionCookie: Sendable {
    /// Whether the public URL is https.
    let secure: Bool
    /// The public URL's origin, `scheme://host[:port]`, lowercased.
    let publicOrigin: String?

    init(publicURL: String) {
        publicOrigin = Self.origin(of: publicURL)
        secure = publicOrigin?.hasPrefix("https://") ?? false
    }

    var name: String { secure ? "__Host-harrow_session" : "harrow_session" }

    private var attributes: String { "Path=/; HttpOnly; SameSite=Strict\(secure ? "; Secure" : "")" }

    /// The cookie that carries `token` for `maxAge` seconds.
    func set(_ token: String, maxAge: Int) -> String {
        "\(name)=\(token); \(attributes); Max-Age=\(maxAge)"
    }

    /// The cookie that makes the browser forget the session.
    var cleared: String { "\(name)=; \(attributes); Max-Age=0" }

    /// The token in the request's `Cookie` headers: `nil` when there is none, or more than one.
    func token(in headers: HTTPFields) -> String? {
        var found: [String] = []
        for header in headers[values: .cookie] {
            for pair in header.split(separator: ";") {
                let parts = pair.split(separator: "=", maxSplits: 1)
                guard parts.count == 2, parts[0].trimmingCharacters(in: .whitespaces) == name else { continue }
                found.append(parts[1].trimmingCharacters(in: .whitespaces))
            }
        }
        guard found.count == 1, let token = found.first, !token.isEmpty else { return nil }
        return token
    }

    /// Whether a request that the cookie authenticates may act: safe methods (GET, HEAD,
    /// OPTIONS) change nothing and pass; others must come from this server's own pages.
    func allows(_ request: HTTPRequest) -> Bool {
        if [.get, .head, .options].contains(request.method) { return true }
        return comesFromOwnPages(request)
    }

    /// Whether the request's `Origin` is this server's, whatever its method (a WebSocket's
    /// upgrade is a GET, and a page elsewhere may open one with the visitor's cookie): the
    /// public URL's origin, or the host the request was sent to under the public URL's scheme
    /// (a server reached by another name, `127.0.0.1` for `localhost`). A page elsewhere cannot
    /// set `Origin`; under an https public URL, a plain-http page on the same host (injected by
    /// someone on the network) does not pass either.
    func comesFromOwnPages(_ request: HTTPRequest) -> Bool {
        guard let origin = request.headerFields[.origin]?.lowercased(), origin != "null" else { return false }
        if let publicOrigin, origin == publicOrigin { return true }
        guard let host = request.authority?.lowercased() else { return false }
        return origin == "\(secure ? "https" : "http")://\(host)"
    }

    /// `scheme://host[:port]` of a URL, lowercased.
    static func origin(of url: String) -> String? {
        guard let schemeEnd = url.range(of: "://") else { return nil }
        let rest = url[schemeEnd.upperBound...]
        let authority = rest.prefix { $0 != "/" && $0 != "?" && $0 != "#" }
        guard !authority.isEmpty else { return nil }
        return (url[..<schemeEnd.upperBound] + authority).lowercased()
    }
}
