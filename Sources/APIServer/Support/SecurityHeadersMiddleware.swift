import HTTPTypes
import Hummingbird

/// Headers every answer carries, for the web app served from the same origin: a strict
/// Content-Security-Policy (scripts and styles from this origin only: no inline script, no
/// `eval`), no framing, no MIME sniffing, no referrer to other sites.
struct SecurityHeadersMiddleware: RouterMiddleware {
    typealias Context = APIContext

    static let contentSecurityPolicy =
        "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; connect-src 'self'; "
        + "font-src 'self'; object-src 'none'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'"

    func handle(_ request: Request, context: APIContext, next: (Request, APIContext) async throws -> Response) async throws -> Response {
        var response = try await next(request, context)
        Self.add(to: &response.headers)
        return response
    }

    static func add(to headers: inout HTTPFields) {
        headers[.contentSecurityPolicy] = contentSecurityPolicy
        headers[.xContentTypeOptions] = "nosniff"
        headers[HTTPField.Name("Referrer-Policy")!] = "same-origin"
        headers[HTTPField.Name("X-Frame-Options")!] = "DENY"
    }
}
