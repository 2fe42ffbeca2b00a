import Crypto
import Foundation
import HTTPTypes
import HarrowTestSupport
import JobContracts
import PostgresNIO
import Queue
import Store
import Testing
import WorkerPool

@testable import Jobs

/// `post-webhook` on a real worker, Postgres and Redis, against a local receiver.
@Suite struct WebhookPosterTests {
    static let route = "hooks/in"

    static func event(_ harness: JobsHarness) -> PostWebhook.Event {
        let operation = UUID()
        return PostWebhook.Event(
            activity: "operation.failed", occurredAt: "2026-12-06T10:00:00Z", projectID: harness.project, project: "Web",
            jobID: UUID(), job: "deploy", operationID: operation, status: "failed", exitStatus: 3, failureReason: "script_failed",
            link: "https://harrow.example.com/projects/p/operations/o", text: "deploy in Web: failed (exit 3)")
    }

    /// A worker whose webhooks may reach loopback (the receiver is there), unless `allowPrivate`
    /// is false; `body` gets a webhook notifier for `url` and its secret.
    static func with(
        _ name: String, url: String, allowPrivate: Bool = true,
        _ body: @Sendable (JobsHarness, Notifier, String) async throws -> Void
    ) async throws {
        try await JobsHarness.withPlatformJobs(name, configure: { $0.webhooksAllowPrivate = allowPrivate }) { harness in
            let (notifier, secret) = try await WebhookNotifierSecrets(
                client: harness.database, keyring: harness.keyring, logger: harness.logger
            ).create(project: harness.project, name: "chat", url: url, actor: nil)
            try await body(harness, notifier, secret)
        }
    }

    static func header(_ request: GitHubStandIn.Recorded, _ name: String) -> String? {
        request.headers[HTTPField.Name(name)!]
    }

    @Test func aNotificationIsPostedSignedAndRecorded() async throws {
        try await GitHubStandIn.with(route: Self.route) { receiver, base in
            try await Self.with("webhook_posted", url: "\(base)/\(Self.route)?channel=ops") { harness, notifier, secret in
                let event = Self.event(harness)
                let job = try await harness.jobQueue.enqueue(PostWebhook(notifierID: notifier.id, event: event))
                try await eventually("the notification arrives") { await receiver.requests.count == 1 }
                let request = try #require(await receiver.requests.first)
                #expect(request.path == "/\(Self.route)")
                #expect(request.headers[.contentType] == "application/json")
                #expect(Self.header(request, "X-Harrow-Event") == "operation.failed")
                #expect(Self.header(request, "X-Harrow-Delivery") == job.id)
                let timestamp = try #require(Self.header(request, "X-Harrow-Timestamp"))
                #expect(abs((Int(timestamp) ?? 0) - Int(Date().timeIntervalSince1970)) < 120)
                // The receiver's check: HMAC-SHA256 of "<timestamp>.<body>" keyed with the secret's text.
                let mac = HMAC<SHA256>.authenticationCode(
                    for: Array("\(timestamp).".utf8) + request.raw, using: SymmetricKey(data: Array(secret.utf8)))
                #expect(Self.header(request, "X-Harrow-Signature") == "sha256=" + mac.map { String(format: "%02x", $0) }.joined())
                #expect(request.body["activity"] == "operation.failed")
                #expect(request.body["operation_id"] == event.operationID.uuidString.lowercased())
                #expect(request.body["project_id"] == harness.project.uuidString.lowercased())
                #expect(request.body["text"] == "deploy in Web: failed (exit 3)")
                let object = try #require(try JSONSerialization.jsonObject(with: Data(request.raw)) as? [String: Any])
                #expect(object["exit_status"] as? Int == 3)
                try await eventually("the delivery is recorded") {
                    try await JobRuns.outcome(of: job.id, client: harness.database, logger: harness.logger) == "delivered"
                }
            }
        }
    }

    /// A 500 is tried again with the same delivery id; a 400 and a redirect are dead-lettered
    /// with the status, and the redirect is not followed.
    @Test func serverErrorsRetryAndRefusalsAndRedirectsAreDeadLettered() async throws {
        try await GitHubStandIn.with(route: Self.route) { receiver, base in
            await receiver.script([
                .init(status: .internalServerError), .init(status: .ok), .init(status: .badRequest),
                .init(status: .found, headers: [.location: "\(base)/elsewhere"]),
            ])
            try await Self.with("webhook_retries", url: "\(base)/\(Self.route)") { harness, notifier, _ in
                let first = try await harness.jobQueue.enqueue(PostWebhook(notifierID: notifier.id, event: Self.event(harness)))
                try await eventually("retried after the 500", timeout: .seconds(60)) { await receiver.requests.count == 2 }
                let deliveries = await receiver.requests.map { Self.header($0, "X-Harrow-Delivery") }
                #expect(deliveries == [first.id, first.id])

                _ = try await harness.jobQueue.enqueue(PostWebhook(notifierID: notifier.id, event: Self.event(harness)))
                _ = try await harness.jobQueue.enqueue(PostWebhook(notifierID: notifier.id, event: Self.event(harness)))
                var dead: [DeadLetter] = []
                try await eventually("the 400 and the redirect are dead") {
                    dead = try await harness.jobQueue.deadLetters(queue: "webhooks")
                    return dead.count == 2
                }
                let errors = dead.map(\.error).sorted()
                #expect(errors[0].contains("answered 302") && errors[0].contains("redirects are not followed"), "\(errors[0])")
                #expect(errors[1].contains("answered 400"), "\(errors[1])")
                #expect(await receiver.requests.allSatisfy { $0.path == "/\(Self.route)" })
                #expect(await receiver.requests.count == 4)
            }
        }
    }

    /// By default a webhook may not reach loopback or private addresses, by address or by a
    /// name that resolves there: dead-lettered before any request.
    @Test func privateAddressesAreRefusedByDefault() async throws {
        try await GitHubStandIn.with(route: Self.route) { receiver, base in
            let port = try #require(URLComponents(string: base)?.port)
            try await Self.with("webhook_private", url: "\(base)/\(Self.route)", allowPrivate: false) { harness, notifier, _ in
                let secrets = WebhookNotifierSecrets(client: harness.database, keyring: harness.keyring, logger: harness.logger)
                let (byName, _) = try await secrets.create(
                    project: harness.project, name: "by name", url: "http://localhost:\(port)/\(Self.route)", actor: nil)
                for id in [notifier.id, byName.id] {
                    _ = try await harness.jobQueue.enqueue(PostWebhook(notifierID: id, event: Self.event(harness)))
                }
                var dead: [DeadLetter] = []
                try await eventually("both are dead") {
                    dead = try await harness.jobQueue.deadLetters(queue: "webhooks")
                    return dead.count == 2
                }
                for letter in dead { #expect(letter.error.contains("--webhook-allow-private"), "\(letter.error)") }
                #expect(await receiver.requests.isEmpty)
            }
        }
    }

    /// An archived notifier sends nothing; its queued jobs end quietly.
    @Test func anArchivedNotifierSendsNothing() async throws {
        try await GitHubStandIn.with(route: Self.route) { receiver, base in
            try await Self.with("webhook_archived", url: "\(base)/\(Self.route)") { harness, notifier, _ in
                try await NotifierStore(client: harness.database, logger: harness.logger).archive(
                    notifier.id, project: harness.project, actor: nil)
                let job = try await harness.jobQueue.enqueue(PostWebhook(notifierID: notifier.id, event: Self.event(harness)))
                try await eventually("the job ends") {
                    try await JobRuns.outcome(of: job.id, client: harness.database, logger: harness.logger) == "skipped"
                }
                #expect(await receiver.requests.isEmpty)
                #expect(try await harness.jobQueue.deadLetters(queue: "webhooks").isEmpty)
            }
        }
    }

    @Test(arguments: [
        ("8.8.8.8", true), ("10.1.2.3", false), ("127.0.0.1", false), ("169.254.169.254", false), ("172.16.0.1", false),
        ("172.32.0.1", true), ("192.168.1.1", false), ("100.64.0.1", false), ("0.0.0.0", false), ("224.0.0.1", false),
        ("2606:4700::1111", true), ("::1", false), ("::", false), ("fd00::1", false), ("fe80::1", false), ("ff02::1", false),
        ("::ffff:127.0.0.1", false), ("::ffff:8.8.8.8", true), ("64:ff9b::a00:1", false), ("2002:a00:1::", false),
        ("2001:db8::1", false), ("64:ff9b:1::a00:1", false), ("::ffff:0:a00:1", false), ("2001::1", false), ("3fff::1", false),
        ("2001:4860::8888", true),
    ])
    func addressesArePublicOrNot(address: String, isPublic: Bool) async throws {
        let resolved = try await WebhookAddressPolicy.resolve(address)
        #expect(resolved.count == 1)
        #expect(resolved.first?.isPublic == isPublic, "\(address)")
    }
}
