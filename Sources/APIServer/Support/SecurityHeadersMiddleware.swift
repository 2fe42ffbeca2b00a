import HTTPTypes
import Hummingbird

/// Headers every answer carries, for the web app served from the same origin: a strict
/// Content-Security-Policy (scripts and styles from this origin only: no inline script, no
/// `eval`), no framing, no MIME sniffing, no referrer to other sites, no reading by other
/// origins' pages; HSTS behind an https public URL; and `no-store` on the API's answers, which a
/// shared cache must not keep for the next visitor (a cookie, unlike `Authorization`, does not
/// stop it).
struct SecurityHeadersMiddleware: RouterMiddleware {
    typealias Context = APIContext
    /// Whether the public URL is https.
    let secure: Bool

    static let contentSecurityPolicy =
        "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; connect-src 'self'; "
        + "font-src 'self'; object-src 'none'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'"

    func handle(_ request: Request, context: APIContext, next: (Request, APIContext) async throws -> Response) async throws -> Response {
        var response = try await next(request, context)
        var headers = response.headers
        headers[.contentSecurityPolicy] = Self.contentSecurityPolicy
        headers[.xContentTypeOptions] = "nosniff"
        headers[HTTPField.Name("Referrer-Policy")!] = "same-origin"
        headers[HTTPField.Name("X-Frame-Options")!] = "DENY"
        headers[HTTPField.Name("Cross-Origin-Opener-Policy")!] = "same-origin"
        headers[HTTPField.Name("Cross-Origin-Resource-Policy")!] = "same-origin"
        if secure { headers[.strictTransportSecurity] = "max-age=31536000" }
        let path = request.uri.path
        if headers[.cacheControl] == nil, path.hasPrefix("/v1/") || path.hasPrefix("/admin/") {
            headers[.cacheControl] = "no-store"
        }
        response.headers = headers
        return response
    }
}
