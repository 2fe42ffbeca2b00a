import Foundation
import HTTPTypes

/// The browser's session: the token in an `HttpOnly`, `SameSite=Strict` cookie, so the web app's
/// scripts never hold it. Bearer tokens stay the way for API clients.
enum SessionCookie {
    static let name = "harrow_session"

    /// The cookie that carries `token` for `maxAge` seconds; `Secure` when the public URL is https.
    static func set(_ token: String, maxAge: Int, secure: Bool) -> String {
        "\(name)=\(token); Path=/; HttpOnly; SameSite=Strict; Max-Age=\(maxAge)\(secure ? "; Secure" : "")"
    }

    /// The cookie that makes the browser forget the session.
    static func cleared(secure: Bool) -> String {
        "\(name)=; Path=/; HttpOnly; SameSite=Strict; Max-Age=0\(secure ? "; Secure" : "")"
    }

    /// The token in the request's `Cookie` headers, if any.
    static func token(in headers: HTTPFields) -> String? {
        for header in headers[values: .cookie] {
            for pair in header.split(separator: ";") {
                let parts = pair.split(separator: "=", maxSplits: 1)
                guard parts.count == 2, parts[0].trimmingCharacters(in: .whitespaces) == name else { continue }
                let value = parts[1].trimmingCharacters(in: .whitespaces)
                if !value.isEmpty { return value }
            }
        }
        return nil
    }

    /// Whether a request that a cookie authenticates comes from this server's own pages: its
    /// `Origin` is the public URL's origin, or names the host the request was sent to. A page
    /// elsewhere cannot set `Origin`, so a cross-site form or fetch that carries the cookie is
    /// refused. Safe methods (GET, HEAD, OPTIONS) change nothing and pass.
    static func isSameOrigin(_ request: HTTPRequest, publicURL: String) -> Bool {
        if [.get, .head, .options].contains(request.method) { return true }
        return comesFromOwnPages(request, publicURL: publicURL)
    }

    /// Whether the request's `Origin` is this server's, whatever its method: a WebSocket's
    /// upgrade is a GET, and a page elsewhere may open one with the visitor's cookie.
    static func comesFromOwnPages(_ request: HTTPRequest, publicURL: String) -> Bool {
        guard let origin = request.headerFields[.origin], origin != "null" else { return false }
        let trimmedPublic = publicURL.hasSuffix("/") ? String(publicURL.dropLast()) : publicURL
        if let publicOrigin = Self.origin(of: trimmedPublic), origin.lowercased() == publicOrigin { return true }
        guard let host = request.authority else { return false }
        return origin.lowercased() == "http://\(host.lowercased())" || origin.lowercased() == "https://\(host.lowercased())"
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
