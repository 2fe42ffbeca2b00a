import HTTPTypes
import Hummingbird
import HummingbirdAuth
import Store

/// Reads `Authorization: Bearer <token>` and finds its live session (by the token's SHA-256;
/// the token itself is never stored). No token, or an unknown, expired or revoked one, leaves
/// the request unauthenticated; routes that need a caller answer 401.
struct SessionAuthenticator: AuthenticatorMiddleware {
    typealias Context = APIContext
    let sessions: SessionStore

    func authenticate(request: Request, context: APIContext) async throws -> Caller? {
        guard let header = request.headers[.authorization] else { return nil }
        let parts = header.split(separator: " ", maxSplits: 1)
        guard parts.count == 2, parts[0].lowercased() == "bearer", !parts[1].isEmpty, parts[1].count <= 200 else { return nil }
        guard let (session, user) = try await sessions.find(tokenHash: SessionStore.tokenHash(String(parts[1]))) else { return nil }
        return Caller(user: user, sessionID: session.id)
    }
}
