import Foundation
import HTTPTypes
import Hummingbird
import Logging

/// Gives every request an id: the caller's `X-Request-Id` when it is short and printable, else a
/// new one. It is in every log line of the request and in the response's `X-Request-Id`.
struct RequestIDMiddleware: RouterMiddleware {
    typealias Context = APIContext
    static let header = HTTPField.Name("X-Request-Id")!

    func handle(_ request: Request, context: APIContext, next: (Request, APIContext) async throws -> Response) async throws -> Response {
        var context = context
        let given = request.headers[Self.header].flatMap { value in
            value.count <= 100 && value.unicodeScalars.allSatisfy { $0.isASCII && $0.value > 32 && $0.value < 127 } ? value : nil
        }
        let id = given ?? UUID().uuidString.lowercased()
        context.requestID = id
        context.logger[metadataKey: "request_id"] = .string(id)
        var response = try await next(request, context)
        response.headers[Self.header] = id
        return response
    }
}
