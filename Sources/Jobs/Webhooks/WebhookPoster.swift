import AsyncHTTPClient
import Crypto
import Foundation
import JobContracts
import Logging
import NIOCore
import NIOHTTP1
import PostgresNIO
import Store
import WorkerPool

/// Handles `post-webhook`: POSTs a notification to a webhook notifier's URL as JSON, signed as
/// incoming webhooks are, so one receiver can check both:
///
/// - `X-Harrow-Signature: sha256=<hex HMAC-SHA256 of "<timestamp>.<body>">`, keyed with the
///   notifier's secret; `X-Harrow-Timestamp: <unix seconds>`;
/// - `X-Harrow-Delivery: <job id>`, the same on every retry, for the receiver to drop repeats;
///   `X-Harrow-Event: <activity>`.
///
/// The host must resolve to public addresses only (``WebhookAddressPolicy``); a plain `http`
/// URL is sent to the address that was checked, so a second lookup cannot point elsewhere
/// (with `https`, the certificate must match the name, which a rebound address cannot
/// show). Redirects are not followed. 2xx is delivered; 408, 429 and 5xx, a timeout or a
/// refused connection are retried (`Retry-After` up to an hour is honoured); any other
/// answer, and a refused address, is a permanent failure with the receiver's status.
public struct WebhookPoster: Sendable {
    /// Redirects are answers (a redirect could lead to a private address), compressed bodies
    /// are not asked for, and a receiver gets 10 s to accept and 15 s to answer.
    static let httpClient = HTTPClient(
        eventLoopGroupProvider: .singleton,
        configuration: HTTPClient.Configuration(
            redirectConfiguration: .disallow, timeout: .init(connect: .seconds(10), read: .seconds(15)), decompression: .disabled))

    /// A delivery that may succeed later (the contract's backoff applies).
    struct Failure: Error, CustomStringConvertible {
        var message: String
        var description: String { message }
    }

    let secrets: WebhookNotifierSecrets
    let policy: WebhookAddressPolicy
    let database: PostgresClient

    public init(secrets: WebhookNotifierSecrets, policy: WebhookAddressPolicy, database: PostgresClient) {
        self.secrets = secrets
        self.policy = policy
        self.database = database
    }

    /// Registers the handler for ``PostWebhook``.
    public func register(in registry: inout JobRegistry) throws {
        try registry.register(PostWebhook.self) { job, context in try await run(job, context: context) }
    }

    func run(_ job: PostWebhook, context: JobContext) async throws {
        let logger = context.logger
        if try await JobRuns.outcome(of: context.id, client: database, logger: logger) != nil {
            logger.info("post-webhook: delivered already; nothing to do")
            return
        }
        guard let target = try await secrets.target(of: job.notifierID) else {
            logger.info("post-webhook: the notifier is archived or no webhook any more; nothing sent")
            try await JobRuns.record(context.id, type: PostWebhook.name, outcome: "skipped", client: database, logger: logger)
            return
        }
        let body = try Self.body(of: job.event)
        let request = try await request(to: target, body: body, event: job.event.activity, delivery: context.id)
        let response: HTTPClientResponse
        do {
            response = try await Self.httpClient.execute(request, timeout: .seconds(25))
        } catch {
            throw Failure(message: "post-webhook: \(Self.host(of: target.url)): \(error)")
        }
        // The answer is read only to free the connection; what a receiver says is not stored.
        _ = try? await response.body.collect(upTo: 64 << 10)
        let status = Int(response.status.code)
        switch status {
        case 200..<300:
            try await JobRuns.record(context.id, type: PostWebhook.name, outcome: "delivered", client: database, logger: logger)
            logger.info("post-webhook: delivered", metadata: ["status": "\(status)", "host": "\(Self.host(of: target.url))"])
        case 408, 429, 500..<600:
            let message = "post-webhook: the receiver answered \(status)"
            if let wait = Self.retryAfter(response.headers) { throw JobFailure.retry(after: wait, message) }
            throw Failure(message: message)
        default:
            throw JobFailure.permanent(
                "post-webhook: the receiver answered \(status)\(300..<400 ~= status ? " (redirects are not followed)" : "")")
        }
    }

    /// The signed request, to the checked address for `http`.
    func request(
        to target: WebhookNotifierSecrets.Target, body: [UInt8], event: String, delivery: String
    ) async throws
        -> HTTPClientRequest
    {
        guard var components = URLComponents(string: target.url), let host = components.host else {
            throw JobFailure.permanent("post-webhook: the notifier's URL does not parse")
        }
        let addresses: [IPAddress]
        do {
            addresses = try await policy.addresses(of: host)
        } catch let refusal as WebhookAddressPolicy.Refusal {
            throw JobFailure.permanent("post-webhook: \(refusal)")
        } catch let failure as WebhookAddressPolicy.LookupFailure {
            throw Failure(message: "post-webhook: \(failure)")
        }
        var url = target.url
        var hostHeader: String?
        if components.scheme?.lowercased() == "http", let address = addresses.first {
            hostHeader = components.port.map { "\(host):\($0)" } ?? host
            // A dotted quad or a bracketed IPv6 address, which a URL's host always takes.
            components.percentEncodedHost = address.urlHost
            // Fail closed: sent by name, the URL would be looked up again, past the check.
            guard let pinned = components.string else {
                throw JobFailure.permanent("post-webhook: the notifier's URL cannot be sent to its checked address")
            }
            url = pinned
        }
        var request = HTTPClientRequest(url: url)
        request.method = .POST
        if let hostHeader { request.headers.replaceOrAdd(name: "Host", value: hostHeader) }
        let timestamp = String(Int(Date().timeIntervalSince1970))
        request.headers.add(name: "Content-Type", value: "application/json")
        request.headers.add(name: "User-Agent", value: "harrow-webhook")
        request.headers.add(name: "X-Harrow-Event", value: event)
        request.headers.add(name: "X-Harrow-Delivery", value: delivery)
        request.headers.add(name: "X-Harrow-Timestamp", value: timestamp)
        request.headers.add(
            name: "X-Harrow-Signature", value: Self.signature(secret: target.signingSecret, timestamp: timestamp, body: body))
        request.body = .bytes(ByteBuffer(bytes: body))
        return request
    }

    /// `sha256=` and the hex HMAC-SHA256 of `<timestamp>.<body>` keyed with the secret's text.
    static func signature(secret: String, timestamp: String, body: [UInt8]) -> String {
        var signed = Array("\(timestamp).".utf8)
        signed.append(contentsOf: body)
        let mac = HMAC<SHA256>.authenticationCode(for: signed, using: SymmetricKey(data: Array(secret.utf8)))
        return "sha256=" + mac.map { String(format: "%02x", $0) }.joined()
    }

    static func body(of event: PostWebhook.Event) throws -> [UInt8] {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys, .withoutEscapingSlashes]
        return Array(try encoder.encode(event))
    }

    /// The host alone, for log lines: a URL's path or query may hold a token (Slack's do).
    static func host(of url: String) -> String {
        URLComponents(string: url)?.host ?? "?"
    }

    /// `Retry-After` in seconds, up to an hour.
    static func retryAfter(_ headers: HTTPHeaders) -> Duration? {
        guard let text = headers.first(name: "Retry-After"), let seconds = Int(text.trimmingCharacters(in: .whitespaces)),
            (0...3600).contains(seconds)
        else { return nil }
        return .seconds(seconds)
    }
}
