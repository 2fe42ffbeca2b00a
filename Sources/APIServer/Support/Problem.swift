import Foundation

/// An RFC 9457 problem document (`application/problem+json`): what every error of the API looks
/// like. `type` is a stable URI per kind of problem; `detail` is for people; `errors` lists the
/// fields at fault for a 422.
public struct Problem: Error, Sendable, Hashable, Codable {
    public struct FieldError: Sendable, Hashable, Codable {
        public var field: String
        public var message: String

        public init(field: String, message: String) {
            self.field = field
            self.message = message
        }
    }

    public var type: String
    public var title: String
    public var status: Int
    public var detail: String
    public var errors: [FieldError]?
    /// For a `quota-exceeded` 403, the limit reached: `max-organizations-per-user`, …
    public var limit: String?
    /// Seconds to wait before retrying, sent as `Retry-After` (not part of the document).
    public var retryAfter: Int?

    enum CodingKeys: String, CodingKey {
        case type, title, status, detail, errors, limit
    }

    public init(
        type: String, title: String, status: Int, detail: String, errors: [FieldError]? = nil, limit: String? = nil,
        retryAfter: Int? = nil
    ) {
        self.type = type
        self.title = title
        self.status = status
        self.detail = detail
        self.errors = errors
        self.limit = limit
        self.retryAfter = retryAfter
    }

    static let base = "https://harrow.dev/problems/"

    public static func badRequest(_ detail: String) -> Problem {
        Problem(type: base + "bad-request", title: "Bad request", status: 400, detail: detail)
    }

    public static func unauthorized(_ detail: String = "a valid bearer token is required") -> Problem {
        Problem(type: base + "unauthorized", title: "Unauthorized", status: 401, detail: detail)
    }

    public static func forbidden(_ detail: String) -> Problem {
        Problem(type: base + "forbidden", title: "Forbidden", status: 403, detail: detail)
    }

    /// The caller holds as many as one of their quotas allows (`limit` names it); platform admins
    /// have none.
    public static func quotaExceeded(_ detail: String, limit: String?) -> Problem {
        Problem(type: base + "quota-exceeded", title: "Quota exceeded", status: 403, detail: detail, limit: limit)
    }

    public static func notFound(_ detail: String = "no such resource") -> Problem {
        Problem(type: base + "not-found", title: "Not found", status: 404, detail: detail)
    }

    public static func methodNotAllowed(_ detail: String) -> Problem {
        Problem(type: base + "method-not-allowed", title: "Method not allowed", status: 405, detail: detail)
    }

    public static func conflict(_ detail: String, type: String = "conflict") -> Problem {
        Problem(type: base + type, title: "Conflict", status: 409, detail: detail)
    }

    public static func tooLarge(limit: Int) -> Problem {
        Problem(
            type: base + "payload-too-large", title: "Payload too large", status: 413, detail: "the body must be at most \(limit) bytes")
    }

    public static func unsupportedMediaType() -> Problem {
        Problem(
            type: base + "unsupported-media-type", title: "Unsupported media type", status: 415,
            detail: "send the body as application/json")
    }

    public static func invalid(_ errors: [FieldError], detail: String? = nil) -> Problem {
        Problem(
            type: base + "validation", title: "Invalid input", status: 422,
            detail: detail ?? errors.map { "\($0.field): \($0.message)" }.joined(separator: "; "), errors: errors)
    }

    public static func tooManyRequests(retryAfter: Int) -> Problem {
        Problem(
            type: base + "rate-limited", title: "Too many requests", status: 429,
            detail: "too many attempts; try again in \(retryAfter) s", retryAfter: retryAfter)
    }

    public static func unavailable(_ detail: String) -> Problem {
        Problem(type: base + "unavailable", title: "Service unavailable", status: 503, detail: detail)
    }

    public static func internalError(requestID: String) -> Problem {
        Problem(
            type: base + "internal", title: "Internal server error", status: 500,
            detail: "something went wrong on our side; quote request id \(requestID) when you report it")
    }
}
