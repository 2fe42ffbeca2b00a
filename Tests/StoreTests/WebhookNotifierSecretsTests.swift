import Foundation
import HarrowTestSupport
import NIOCore
import PostgresNIO
import Testing

@testable import Store

/// Notifiers of kind `webhook`: their URL, their signing secret (shown once, sealed at rest,
/// rotated), and the `post-webhook` jobs a matching rule queues.
@Suite struct WebhookNotifierSecretsTests {
    static func secrets(_ stores: Stores) -> WebhookNotifierSecrets {
        WebhookNotifierSecrets(client: stores.client, keyring: Stores.automationKeyring, logger: stores.logger)
    }

    @Test func aWebhookNotifierKeepsItsSecretSealedAndOpensItWhileLive() async throws {
        try await Stores.with("notifier_webhook") { stores in
            let (ada, project, other) = try await stores.automationProjects()
            let secrets = Self.secrets(stores)
            let (notifier, secret) = try await secrets.create(
                project: project, name: "chat", url: " https://hooks.example.com/T1/B2?token=x ", actor: ada.id)
            // Shown as its origin: the path and query of a chat service's URL are its credential.
            #expect(notifier.kind == .webhook && notifier.url == "https://hooks.example.com/…")
            #expect(notifier.recipients.isEmpty && notifier.jobID == nil && secret.count == 43)
            let stored = try #require(
                try await stores.client.value(
                    "SELECT signing_secret_ciphertext FROM notifiers WHERE id = \(notifier.id)", as: ByteBuffer.self))
            #expect(!Array(stored.readableBytesView).containsSubsequence(Array(secret.utf8)))
            #expect(
                try await secrets.target(of: notifier.id) == .init(url: "https://hooks.example.com/T1/B2?token=x", signingSecret: secret))
            let read = try await stores.notifiers.find(notifier.id, project: project)
            #expect(!String(decoding: try JSONEncoder().encode(read), as: UTF8.self).contains("token=x"))

            // A rename without a URL keeps the stored one.
            _ = try await stores.notifiers.update(notifier.id, project: project, name: "chat ops", target: .webhook(nil), actor: ada.id)
            #expect(try await secrets.target(of: notifier.id)?.url == "https://hooks.example.com/T1/B2?token=x")

            // Its URL may change (the secret stays); its kind may not, nor another's become it.
            let moved = try await stores.notifiers.update(
                notifier.id, project: project, name: "chat", target: .webhook("http://hooks.example.com/new"), actor: ada.id)
            #expect(moved.url == "http://hooks.example.com/…")
            #expect(try await secrets.target(of: notifier.id)?.url == "http://hooks.example.com/new")
            #expect(try await secrets.target(of: notifier.id)?.signingSecret == secret)
            await #expect(throws: StoreError.self) {
                try await stores.notifiers.update(
                    notifier.id, project: project, name: "chat", target: .email(["a@example.com"]), actor: nil)
            }
            let mail = try await stores.notifiers.create(project: project, name: "mail", recipients: ["a@example.com"], actor: nil)
            await #expect(throws: StoreError.self) {
                try await stores.notifiers.update(mail.id, project: project, name: "m", target: .webhook("https://x.example"), actor: nil)
            }
            await #expect(throws: StoreError.self) {
                try await stores.notifiers.create(project: project, name: "w", target: .webhook("https://x.example"), actor: nil)
            }

            let rotated = try await secrets.rotateSecret(notifier.id, project: project, actor: ada.id)
            #expect(rotated != secret && rotated.count == 43)
            #expect(try await secrets.target(of: notifier.id)?.signingSecret == rotated)
            await #expect(throws: StoreError.notFound("webhook notifier")) {
                try await secrets.rotateSecret(notifier.id, project: other, actor: nil)
            }
            await #expect(throws: StoreError.notFound("webhook notifier")) {
                try await secrets.rotateSecret(mail.id, project: project, actor: nil)
            }

            // Rotating the master key re-seals it.
            let next = SecretKeyring(current: .generate(), old: [Stores.automationKeyring.current])
            let outcome = try await SecretRotation(client: stores.client, keyring: next, logger: stores.logger).run()
            #expect(outcome.rewritten["notifiers"] == 1 && outcome.isComplete)
            let reopened = WebhookNotifierSecrets(client: stores.client, keyring: next, logger: stores.logger)
            #expect(try await reopened.target(of: notifier.id)?.signingSecret == rotated)

            try await stores.notifiers.archive(notifier.id, project: project, actor: ada.id)
            #expect(try await reopened.target(of: notifier.id) == nil)
            #expect(try await reopened.target(of: mail.id) == nil)
        }
    }

    @Test(arguments: [
        ("https://hooks.example.com", "https://hooks.example.com"), ("https://hooks.example.com/", "https://hooks.example.com/"),
        ("http://10.0.0.1:8080/in?x=1", "http://10.0.0.1:8080/…"), ("https://[::1]:9/a", "https://[::1]:9/…"),
    ])
    func urlsAreShownAsTheirOrigin(url: String, shown: String) {
        #expect(Notifier.shownURL(url) == shown)
    }

    @Test(arguments: [
        "", "hooks.example.com/x", "ftp://example.com/x", "file:///etc/passwd", "https://", "https://user:pw@example.com/",
        "https://example.com/#frag", "https://exa mple.com/", "https://example.com/\u{7}", "javascript:alert(1)",
        "https://example.com/" + String(repeating: "a", count: 2000),
    ])
    func badURLsAreRefused(url: String) async throws {
        try await Stores.with("notifier_webhook_url") { stores in
            let (_, project, _) = try await stores.automationProjects()
            await #expect(throws: StoreError.self) {
                try await Self.secrets(stores).create(project: project, name: "w", url: url, actor: nil)
            }
            #expect(try await stores.count("SELECT count(*)::int8 FROM notifiers") == 0)
        }
    }

    /// A failure matching a rule of a webhook notifier queues one `post-webhook` job (however
    /// many rules match) with the operation's event and no log line.
    @Test func aMatchingRuleQueuesOneDelivery() async throws {
        try await Stores.with("notifier_webhook_rule") { stores in
            let (ada, project, _) = try await stores.automationProjects()
            let build = try await stores.seedJob(in: project)
            let (notifier, _) = try await Self.secrets(stores).create(
                project: project, name: "chat", url: "https://hooks.example.com/x", actor: ada.id)
            for pattern in ["operation.failed", "operation.*"] {
                _ = try await stores.notificationRules.create(
                    project: project, notifier: notifier.id, job: nil, activityPattern: pattern, actor: ada.id)
            }
            let failed = try await stores.operations.create(job: build, reason: .user, requestedBy: ada.id)
            _ = try await ChainedJobTests.finish(failed.id, .failed, stores)
            let payloads = try await stores.client.read { connection in
                try await connection.all(
                    "SELECT payload FROM outbox WHERE type = 'post-webhook'", logger: stores.logger, { try $0.decode(String.self) })
            }
            #expect(payloads.count == 1)
            let text = try #require(payloads.first)
            let payload = try #require(try JSONSerialization.jsonObject(with: Data(text.utf8)) as? [String: Any])
            #expect(payload["notifier_id"] as? String == notifier.id.uuidString.lowercased())
            let event = try #require(payload["event"] as? [String: Any])
            #expect(event["activity"] as? String == "operation.failed")
            #expect(event["operation_id"] as? String == failed.id.uuidString.lowercased())
            #expect(event["status"] as? String == "failed" && event["exit_status"] as? Int == 1)
            #expect((event["text"] as? String)?.contains("failed (exit 1)") == true)
            #expect(event["log_tail"] == nil)
        }
    }
}
