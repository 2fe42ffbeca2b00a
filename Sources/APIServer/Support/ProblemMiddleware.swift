import Foundation
import HTTPTypes
import Hummingbird
import Logging
import Store

/// Turns every error into an RFC 9457 `application/problem+json` response: ours, the store's,
/// Hummingbird's own (unknown routes, oversized bodies), and anything unexpected, which becomes
/// a 500 that names the request id and is logged in full. No response carries SQL, a stack or
/// a secret.
struct ProblemMiddleware: RouterMiddleware {
    typealias Context = APIContext
    /// The largest request body, named in every 413 whichever layer refused the body.
    let bodyLimit: Int

    func handle(_ request: Request, context: APIContext, next: (Request, APIContext) async throws -> Response) async throws -> Response {
        do {
            return try await next(request, context)
        } catch {
            let problem = Self.problem(for: error, requestID: context.requestID, logger: context.logger, bodyLimit: bodyLimit)
            return problem.response()
        }
    }

    /// The problem document of `error`. Errors of the framework keep their status but not their
    /// text, which may quote what the client sent (a path value) or describe internals.
    static func problem(for error: any Error, requestID: String, logger: Logger, bodyLimit: Int) -> Problem {
        if let error = error as? any HTTPResponseError, error.status == .contentTooLarge {
            return Problem.tooLarge(limit: bodyLimit)
        }
        switch error {
        case let problem as Problem:
            return problem
        case let error as StoreError:
            switch error.code {
            case .duplicate: return Problem.conflict(error.message, type: "duplicate")
            case .notFound: return Problem.notFound(error.message)
            case .conflict: return Problem.conflict(error.message)
            case .forbidden: return Problem.forbidden(error.message)
            case .quotaExceeded: return Problem.quotaExceeded(error.message, limit: error.limit)
            case .invalid: return Problem.invalid([Problem.FieldError(field: error.field ?? "body", message: error.message)])
            default:
                logger.error("store error", metadata: ["error": "\(error)"])
                return Problem.internalError(requestID: requestID)
            }
        case let error as HTTPError:
            switch error.status {
            case .notFound: return Problem.notFound()
            case .unauthorized: return Problem.unauthorized()
            case .badRequest: return Problem.badRequest("the request is malformed")
            default:
                return Problem(
                    type: Problem.base + "http-\(error.status.code)", title: error.status.reasonPhrase, status: error.status.code,
                    detail: error.status.reasonPhrase)
            }
        case let error as any HTTPResponseError:
            return Problem(
                type: Problem.base + "http-\(error.status.code)", title: error.status.reasonPhrase, status: error.status.code,
                detail: error.status.reasonPhrase)
        default:
            logger.error("unexpected error", metadata: ["error": "\(String(reflecting: error))"])
            return Problem.internalError(requestID: requestID)
        }
    }
}

extension Problem: ResponseGenerator {
    /// The problem as `application/problem+json`, with `Retry-After` when it says.
    public func response(from request: Request, context: some RequestContext) throws -> Response {
        response()
    }

    func response() -> Response {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys, .withoutEscapingSlashes]
        let body = (try? encoder.encode(self)) ?? Data(#"{"status":500}"#.utf8)
        var headers: HTTPFields = [.contentType: "application/problem+json"]
        if let retryAfter { headers[.retryAfter] = "\(retryAfter)" }
        // A webhook's 401 asks for a signature, not a bearer token: no challenge to answer.
        if status == 401, !HookRoutes.signatureProblemTypes.contains(type) { headers[.wwwAuthenticate] = "Bearer" }
        if status == 426 { headers[.upgrade] = "websocket" }
        return Response(
            status: HTTPResponse.Status(code: status), headers: headers, body: ResponseBody(byteBuffer: ByteBuffer(bytes: body)))
    }
}
