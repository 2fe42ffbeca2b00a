import Foundation
import HTTPTypes
import Hummingbird
import HummingbirdAuth
import Logging
import NIOCore
import Store

/// Who is calling: the user behind a valid bearer token, and that token's session.
public struct Caller: Sendable {
    public var user: User
    public var sessionID: UUID
}

/// The request context of every route: the caller once authenticated, the request id, and the
/// client's address (for rate limits and the session list).
public struct APIContext: AuthRequestContext, RequestContext {
    public var coreContext: CoreRequestContextStorage
    public var identity: Caller?
    public var requestID: String
    /// The peer's address, or the one trusted proxies forwarded for (`ClientAddressMiddleware`).
    public var clientAddress: String?

    public init(source: ApplicationRequestContextSource) {
        coreContext = .init(source: source)
        identity = nil
        requestID = ""
        clientAddress = source.channel.remoteAddress?.ipAddress
    }

    /// Responses in snake_case JSON with ISO 8601 dates.
    public var responseEncoder: JSONEncoder { .api }

    /// The caller, or 401.
    public func caller() throws -> Caller {
        guard let identity else { throw Problem.unauthorized() }
        return identity
    }
}
