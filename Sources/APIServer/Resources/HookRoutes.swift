import Foundation
import HTTPTypes
import Hummingbird
import Logging
import NIOCore
import Store

/// `POST /hooks/{slug}`: the receiving end of a webhook. No login: the sender proves it knows
/// the webhook's signing secret, in Harrow's format or GitHub's (``SignedDelivery``). A valid
/// request runs the webhook's job (an operation with reason `webhook`) and answers 202
/// `{operation_id}`; nothing else records anything:
///
/// - no signature, a wrong one, or an unknown slug: 401, the same answer for all three, so the
///   endpoint confirms no slugs; the webhook not readable (the database away): 503;
/// - Harrow's timestamp more than ``timestampTolerance`` off the server's clock: 401
///   `stale-timestamp` (said only to a sender whose signature is good);
/// - GitHub's format with a body that is not a JSON object: 415 (see ``receive(_:context:)``);
/// - GitHub's `ping`, and a push that deletes a ref: 204, no run;
/// - no delivery id: 400; more than the webhook's requests per minute: 429 with `Retry-After`;
/// - a delivery id the webhook had in the last 24 hours, or the very same signed request again
///   (a replay under a new delivery id): 409 `duplicate-delivery`. A 409, not a 2xx with the
///   first answer: the sender learns that this request started nothing, and an earlier attempt
///   that failed (5xx) never counts, since its marks are taken back, so a retry of a failed
///   delivery goes through.
///
/// The marks are set only after the signature is verified, so no one without the secret can
/// spend a sender's delivery ids.
struct HookRoutes: Sendable {
    let webhooks: WebhookStore
    let operations: OperationStore
    let deliveries: WebhookDeliveries
    let configuration: APIConfiguration

    /// How far Harrow's signed timestamp may be from the server's clock, either way.
    static let timestampTolerance = 300
    /// How long a delivery id is remembered (GitHub redelivers for days only on request).
    static let deliveryLifetime = 86_400

    struct Accepted: ResponseEncodable {
        var operationId: UUID
    }

    /// The problem types of a refused signature: 401s that come without a `WWW-Authenticate`
    /// challenge, since a bearer token would not help.
    static let signatureProblemTypes: Set<String> = [Problem.base + "bad-signature", Problem.base + "stale-timestamp"]

    static let unauthorized = Problem(
        type: Problem.base + "bad-signature", title: "Unauthorized", status: 401,
        detail: """
            the request needs X-Harrow-Signature: sha256=<hex HMAC-SHA256 of "<X-Harrow-Timestamp>.<body>"> with \
            X-Harrow-Timestamp: <unix seconds>, or GitHub's X-Hub-Signature-256: sha256=<hex HMAC-SHA256 of the body>
            """)

    func addRoutes(to router: some RouterMethods<APIContext>) {
        router.post("hooks/:slug") { request, context -> Response in
            try await receive(request, context: context)
        }
    }

    func receive(_ request: Request, context: APIContext) async throws -> Response {
        let slug = try context.parameters.require("slug")
        let body: ByteBuffer
        do {
            body = try await request.body.collect(upTo: configuration.bodyLimit)
        } catch is NIOTooManyBytesError {
            throw Problem.tooLarge(limit: configuration.bodyLimit)
        }
        guard let delivery = SignedDelivery(headers: request.headers, body: body) else { throw Self.unauthorized }
        // What GitHub's format signs must be a JSON object: what Harrow's signs starts with
        // digits, so a captured Harrow-format request cannot be sent again as GitHub's (whose
        // signature covers no time) with "<timestamp>.<body>" as its body.
        var gitHubPayload: [String: Any] = [:]
        if case .gitHub = delivery.format {
            guard let object = try? JSONSerialization.jsonObject(with: Data(body.readableBytesView)) as? [String: Any] else {
                throw Problem(
                    type: Problem.base + "unsupported-media-type", title: "Unsupported media type", status: 415,
                    detail: "a GitHub delivery must be a JSON object: set the webhook's content type to application/json")
            }
            gitHubPayload = object
        }
        let webhook: Webhook
        let secret: String
        do {
            (webhook, secret) = try await webhooks.find(slug: slug)
        } catch let error as StoreError where error.code == .notFound {
            // An unknown slug answers like a bad signature: the endpoint does not confirm slugs.
            throw Self.unauthorized
        } catch {
            context.logger.error("webhook: the webhook cannot be read", metadata: ["error": "\(String(reflecting: error))"])
            throw Problem.unavailable("the webhook cannot be checked right now; send the delivery again later")
        }
        guard delivery.isSigned(by: secret) else { throw Self.unauthorized }
        if let age = delivery.age(now: Date()), abs(age) > Self.timestampTolerance {
            throw Problem(
                type: Problem.base + "stale-timestamp", title: "Unauthorized", status: 401,
                detail: """
                    X-Harrow-Timestamp is \(abs(age)) s \(age > 0 ? "behind" : "ahead of") the server's clock; at most \
                    \(Self.timestampTolerance) s are allowed: sign each request when sending it, with a clock in sync
                    """)
        }

        var parameters = ["webhook_id": webhook.id.uuidString.lowercased()]
        var signatureLifetime = 2 * Self.timestampTolerance + 60
        if case .gitHub(let event) = delivery.format {
            // GitHub checks a new webhook with a ping: the signature is good, nothing is to run.
            if event == "ping" { return Response(status: .noContent) }
            guard let eventParameters = Self.gitHubParameters(event: event, payload: gitHubPayload) else {
                return Response(status: .noContent)
            }
            parameters.merge(eventParameters) { current, _ in current }
            // GitHub's signature covers no time: the same body is a replay for as long as an id is.
            signatureLifetime = Self.deliveryLifetime
        }
        guard let deliveryID = delivery.deliveryID, !deliveryID.isEmpty else {
            throw Problem.badRequest("\(delivery.deliveryHeaderName) is required: an id of the delivery, the same when it is retried")
        }
        guard deliveryID.utf8.count <= SignedDelivery.longestDeliveryID else {
            throw Problem.badRequest("\(delivery.deliveryHeaderName) must be at most \(SignedDelivery.longestDeliveryID) bytes")
        }

        let admission: WebhookDeliveries.Admission
        do {
            admission = try await deliveries.admit(
                webhook: webhook.id,
                marks: [
                    .init(kind: "delivery", value: deliveryID, seconds: Self.deliveryLifetime),
                    .init(kind: "signature", value: Hex.encode(delivery.mac), seconds: signatureLifetime),
                ])
        } catch {
            // Without the marks a duplicate cannot be told: refuse, and let the sender retry.
            context.logger.error("webhook: deliveries cannot be checked", metadata: ["error": "\(error)"])
            throw Problem.unavailable("the webhook cannot be checked right now; send the delivery again later")
        }
        let reservation: WebhookDeliveries.Reservation
        switch admission {
        case .admitted(let admitted):
            reservation = admitted
        case .rateLimited(let retryAfter):
            throw Problem(
                type: Problem.base + "rate-limited", title: "Too many requests", status: 429,
                detail: "this webhook takes \(configuration.webhookRequestsPerMinute) deliveries a minute; try again in \(retryAfter) s",
                retryAfter: retryAfter)
        case .duplicate:
            throw Problem.conflict(
                "this delivery was received before (its \(delivery.deliveryHeaderName), or the same signed request): it starts nothing again",
                type: "duplicate-delivery")
        }

        let operation: Store.Operation
        do {
            operation = try await operations.create(
                job: webhook.jobID, project: webhook.projectID, reason: .webhook, requestedBy: nil, parameters: parameters)
        } catch {
            // Nothing was recorded: give the delivery back, so the sender's retry is not a duplicate.
            do {
                try await deliveries.release(reservation)
            } catch let releaseError {
                context.logger.error(
                    "webhook: a failed delivery's marks stay for a day",
                    metadata: ["error": "\(releaseError)", "delivery": "\(deliveryID)"])
            }
            if error is StoreError { throw error }
            context.logger.error("webhook: the operation cannot be recorded", metadata: ["error": "\(String(reflecting: error))"])
            throw Problem.unavailable("the operation cannot be recorded right now; send the delivery again later")
        }
        return try EditedResponse(status: .accepted, response: Accepted(operationId: operation.id)).response(
            from: request, context: context)
    }

    /// The operation's parameters for a GitHub event; `nil` for one that runs nothing. A push
    /// gives `ref` (what was pushed: every repository is checked out at it) and `sha` (its new
    /// commit); a push that deletes its ref runs nothing. Other events run the job with
    /// `github_event` alone.
    static func gitHubParameters(event: String, payload push: [String: Any]) -> [String: String]? {
        var parameters: [String: String] = [:]
        if !event.isEmpty, event.utf8.count <= 100 { parameters["github_event"] = event }
        guard event == "push" else { return parameters }
        if push["deleted"] as? Bool == true { return nil }
        if let ref = push["ref"] as? String, ref.hasPrefix("refs/"), ref.utf8.count <= 1024, !ref.utf8.contains(0) {
            parameters["ref"] = ref
        }
        if let sha = push["after"] as? String, [40, 64].contains(sha.count), sha.allSatisfy(\.isHexDigit),
            sha.contains(where: { $0 != "0" })
        {
            parameters["sha"] = sha.lowercased()
        }
        return parameters
    }
}
