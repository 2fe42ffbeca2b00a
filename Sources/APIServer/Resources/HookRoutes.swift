import Crypto
import Foundation
import HTTPTypes
import Hummingbird
import NIOCore
import Store

/// `POST /hooks/{slug}`: the receiving end of a webhook. No login: the sender proves it knows
/// the webhook's signing secret with `X-Harrow-Signature: sha256=<hex HMAC-SHA256 of the raw
/// body>`. A missing or wrong signature is 401 and nothing is recorded; a valid one runs the
/// webhook's job (an operation with reason `webhook`) and answers 202.
struct HookRoutes: Sendable {
    let webhooks: WebhookStore
    let operations: OperationStore
    let configuration: APIConfiguration

    static let signatureHeader = HTTPField.Name("X-Harrow-Signature")!

    struct Accepted: ResponseEncodable {
        var operationId: UUID
    }

    func addRoutes(to router: some RouterMethods<APIContext>) {
        router.post("hooks/:slug") { request, context -> EditedResponse<Accepted> in
            let slug = try context.parameters.require("slug")
            let body: ByteBuffer
            do {
                body = try await request.body.collect(upTo: configuration.bodyLimit)
            } catch is NIOTooManyBytesError {
                throw Problem.tooLarge(limit: configuration.bodyLimit)
            }
            let unauthorized = Problem(
                type: Problem.base + "bad-signature", title: "Unauthorized", status: 401,
                detail: "the request needs a valid X-Harrow-Signature: sha256=<hex HMAC-SHA256 of the body>")
            guard let signature = request.headers[Self.signatureHeader], let mac = Self.hexBytes(signature, prefix: "sha256=") else {
                throw unauthorized
            }
            // An unknown slug answers like a bad signature: the endpoint does not confirm slugs.
            guard let (webhook, secret) = try? await webhooks.find(slug: slug),
                HMAC<SHA256>.isValidAuthenticationCode(
                    mac, authenticating: Array(body.readableBytesView), using: SymmetricKey(data: Array(secret.utf8)))
            else {
                throw unauthorized
            }
            let operation = try await operations.create(
                job: webhook.jobID, project: webhook.projectID, reason: .webhook, requestedBy: nil,
                parameters: ["webhook_id": webhook.id.uuidString.lowercased()])
            return EditedResponse(status: .accepted, response: Accepted(operationId: operation.id))
        }
    }

    static func hexBytes(_ text: String, prefix: String) -> [UInt8]? {
        guard text.hasPrefix(prefix) else { return nil }
        let hex = Array(text.dropFirst(prefix.count).utf8)
        guard hex.count == 64 else { return nil }
        var bytes: [UInt8] = []
        bytes.reserveCapacity(32)
        var index = 0
        while index < hex.count {
            guard let high = Self.nibble(hex[index]), let low = Self.nibble(hex[index + 1]) else { return nil }
            bytes.append(high << 4 | low)
            index += 2
        }
        return bytes
    }

    private static func nibble(_ character: UInt8) -> UInt8? {
        switch character {
        case UInt8(ascii: "0")...UInt8(ascii: "9"): character - UInt8(ascii: "0")
        case UInt8(ascii: "a")...UInt8(ascii: "f"): character - UInt8(ascii: "a") + 10
        case UInt8(ascii: "A")...UInt8(ascii: "F"): character - UInt8(ascii: "A") + 10
        default: nil
        }
    }
}
