import Foundation
import HTTPTypes
import Hummingbird
import NIOCore
import Store

/// A request body the API accepts: decoded strictly, so a misspelled field is an error rather
/// than silently ignored.
protocol RequestBody: Decodable, Sendable {
    /// Every field the body may have.
    static var fields: Set<String> { get }
}

extension Request {
    /// The body as `T`: `application/json` (else 415), at most `limit` bytes (else 413), a JSON
    /// object (else 400) without unknown fields (else 400); a missing or mistyped field is a 422
    /// naming it.
    func json<T: RequestBody>(_ type: T.Type, limit: Int) async throws -> T {
        guard let contentType = headers[.contentType], let media = MediaType(from: contentType), media.isType(.applicationJson) else {
            throw Problem.unsupportedMediaType()
        }
        let buffer: ByteBuffer
        do {
            buffer = try await body.collect(upTo: limit)
        } catch is NIOTooManyBytesError {
            throw Problem.tooLarge(limit: limit)
        }
        let data = Data(buffer.readableBytesView)
        guard let object = (try? JSONSerialization.jsonObject(with: data)) as? [String: Any] else {
            throw Problem.badRequest("the body must be a JSON object")
        }
        let unknown = Set(object.keys).subtracting(T.fields)
        if !unknown.isEmpty {
            throw Problem.badRequest("unknown field(s): \(unknown.sorted().joined(separator: ", "))")
        }
        if let field = Self.fieldWithNUL(in: object) {
            throw Problem.invalid([Problem.FieldError(field: field, message: "must not contain NUL characters")])
        }
        do {
            return try JSONDecoder.api.decode(T.self, from: data)
        } catch let DecodingError.keyNotFound(key, _) {
            throw Problem.invalid([Problem.FieldError(field: key.stringValue, message: "is required")])
        } catch let DecodingError.typeMismatch(expected, context) {
            let field = context.codingPath.map(\.stringValue).joined(separator: ".")
            throw Problem.invalid([Problem.FieldError(field: field, message: "must be \(Self.describe(expected))")])
        } catch let DecodingError.valueNotFound(expected, context) {
            let field = context.codingPath.map(\.stringValue).joined(separator: ".")
            throw Problem.invalid([Problem.FieldError(field: field, message: "must be \(Self.describe(expected)), not null")])
        } catch let DecodingError.dataCorrupted(context) {
            let field = context.codingPath.map(\.stringValue).joined(separator: ".")
            throw Problem.invalid([Problem.FieldError(field: field.isEmpty ? "body" : field, message: "has the wrong form")])
        }
    }

    /// The path of the first string (key or value) holding U+0000, which Postgres text cannot
    /// store: refused here with the field's name rather than by the database.
    private static func fieldWithNUL(in value: Any, path: String = "") -> String? {
        switch value {
        case let text as String:
            return text.unicodeScalars.contains("\0") ? (path.isEmpty ? "body" : path) : nil
        case let object as [String: Any]:
            for (key, member) in object {
                let memberPath = path.isEmpty ? key : "\(path).\(key)"
                if key.unicodeScalars.contains("\0") { return path.isEmpty ? "body" : path }
                if let found = fieldWithNUL(in: member, path: memberPath) { return found }
            }
            return nil
        case let array as [Any]:
            for (index, element) in array.enumerated() {
                if let found = fieldWithNUL(in: element, path: "\(path)[\(index)]") { return found }
            }
            return nil
        default:
            return nil
        }
    }

    private static func describe(_ type: Any.Type) -> String {
        switch type {
        case is String.Type: "a string"
        case is Int.Type: "an integer"
        case is Bool.Type: "true or false"
        default: "a value of another type"
        }
    }
}

extension JSONDecoder {
    static let api: JSONDecoder = {
        let decoder = JSONDecoder()
        decoder.dateDecodingStrategy = .iso8601
        decoder.keyDecodingStrategy = .convertFromSnakeCase
        return decoder
    }()
}

extension JSONEncoder {
    static let api: JSONEncoder = {
        let encoder = JSONEncoder()
        encoder.dateEncodingStrategy = .iso8601
        encoder.keyEncodingStrategy = .convertToSnakeCase
        encoder.outputFormatting = [.sortedKeys, .withoutEscapingSlashes]
        return encoder
    }()
}

/// A page of records as the API sends it: `{"items": [...], "next_cursor": "..." | null}`.
struct PageBody<Item: Encodable & Sendable>: ResponseEncodable, Sendable {
    var items: [Item]
    var nextCursor: String?

    init(_ page: Page<Item>) {
        items = page.items
        nextCursor = page.nextCursor
    }

    enum CodingKeys: String, CodingKey {
        case items, nextCursor
    }

    func encode(to encoder: any Encoder) throws {
        var container = encoder.container(keyedBy: CodingKeys.self)
        try container.encode(items, forKey: .items)
        try container.encode(nextCursor, forKey: .nextCursor)
    }
}

extension Request {
    /// `limit` and `cursor` from the query string.
    func pageRequest() throws -> PageRequest {
        let parameters = uri.queryParameters
        var limit = 50
        if let text = parameters["limit"] {
            guard let value = Int(text) else { throw Problem.invalid([Problem.FieldError(field: "limit", message: "must be an integer")]) }
            limit = value
        }
        return try PageRequest(limit: limit, cursor: parameters["cursor"].map(String.init))
    }
}
