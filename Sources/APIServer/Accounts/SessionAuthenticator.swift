import HTTPTypes
import Hummingbird
import HummingbirdAuth
import Store

/// Reads `Authorization: Bearer <token>`, or else the web app's session cookie, and finds its
/// live session (by the token's SHA-256; the token itself is never stored). No token, or an
/// unknown, expired or revoked one, leaves the request unauthenticated; routes that need a
/// caller answer 401. A cookie on a request that changes something counts only from this
/// server's own pages (``SessionCookie/allows(_:)``): 403 otherwise, so another
/// site cannot act with a visitor's session.
struct SessionAuthenticator: AuthenticatorMiddleware {
    typealias Context = APIContext
    let sessions: SessionStore
    let cookie: SessionCookie

    func authenticate(request: Request, context: APIContext) async throws -> Caller? {
        let token: String
        if let header = request.headers[.authorization] {
            let parts = header.split(separator: " ", maxSplits: 1)
            guard parts.count == 2, parts[0].lowercased() == "bearer", !parts[1].isEmpty else { return nil }
            token = String(parts[1])
        } else if let cookieToken = cookie.token(in: request.headers) {
            guard cookie.allows(request.head) else {
                throw Problem(
                    type: Problem.base + "cross-origin", title: "Forbidden", status: 403,
                    detail: "a request that changes something with the session cookie must come from this server's pages (Origin)")
            }
            token = cookieToken
        } else {
            return nil
        }
        guard token.count <= 200, let (session, user) = try await sessions.find(tokenHash: SessionStore.tokenHash(token)) else {
            return nil
        }
        return Caller(user: user, sessionID: session.id)
    }
}
