import Foundation
import HarrowTestSupport
import NIOCore
import PostgresNIO
import Testing

@testable import Store

@Suite struct WebhookNotifierStoreTests {
    /// The signing secret is shown on creation and rotation only, sealed at rest, and opened
    /// for the endpoint by slug while the webhook is live.
    @Test func aWebhookShowsItsSecretOnceAndOpensBySlugWhileLive() async throws {
        try await Stores.with("webhook_secret") { stores in
            let (ada, project, other) = try await stores.automationProjects()
            let job = try await stores.seedJob(in: project)
            let (webhook, secret) = try await stores.webhooks.create(project: project, job: job, name: " deploy ", actor: ada.id)
            let urlSafe = CharacterSet(charactersIn: "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-_")
            #expect(webhook.name == "deploy" && webhook.slug.count == 22 && webhook.slug.unicodeScalars.allSatisfy(urlSafe.contains))
            #expect(secret.count == 43 && secret.unicodeScalars.allSatisfy(urlSafe.contains))
            let record = String(decoding: try JSONEncoder().encode(webhook), as: UTF8.self)
            #expect(!record.contains(secret), "the record does not carry the secret")
            let stored = try #require(
                try await stores.client.value(
                    "SELECT signing_secret_ciphertext FROM webhooks WHERE id = \(webhook.id)", as: ByteBuffer.self))
            #expect(!Array(stored.readableBytesView).containsSubsequence(Array(secret.utf8)))

            let received = try await stores.webhooks.find(slug: webhook.slug)
            #expect(received.webhook == webhook && received.signingSecret == secret)
            #expect(try await stores.webhooks.find(webhook.id, project: project) == webhook)
            await #expect(throws: StoreError.notFound("webhook")) { try await stores.webhooks.find(webhook.id, project: other) }
            await #expect(throws: StoreError.notFound("webhook")) { try await stores.webhooks.find(slug: "nothing-here") }

            let rotated = try await stores.webhooks.rotateSecret(webhook.id, project: project, actor: ada.id)
            #expect(rotated != secret && rotated.count == 43)
            #expect(try await stores.webhooks.find(slug: webhook.slug).signingSecret == rotated)
            await #expect(throws: StoreError.notFound("webhook")) {
                try await stores.webhooks.rotateSecret(webhook.id, project: other, actor: nil)
            }

            try await stores.webhooks.archive(webhook.id, project: project, actor: ada.id)
            await #expect(throws: StoreError.notFound("webhook")) { try await stores.webhooks.find(slug: webhook.slug) }
            await #expect(throws: StoreError.notFound("webhook")) {
                try await stores.webhooks.rotateSecret(webhook.id, project: project, actor: nil)
            }
            await #expect(throws: StoreError.notFound("webhook")) {
                try await stores.webhooks.archive(webhook.id, project: project, actor: nil)
            }
            #expect(
                try await stores.activityNames(project: project).filter { $0.hasPrefix("webhook.") }
                    == ["webhook.created", "webhook.secret_rotated", "webhook.archived"])
        }
    }

    /// Webhooks hang off live jobs of their project; slugs are unique; lists page.
    @Test func webhooksNeedALiveJobOfTheProjectAndUniqueSlugs() async throws {
        try await Stores.with("webhook_rules") { stores in
            let (ada, project, other) = try await stores.automationProjects()
            let job = try await stores.seedJob(in: project)
            let foreignJob = try await stores.seedJob(in: other)
            for missing in [UUID(), foreignJob] {
                await #expect(throws: StoreError.notFound("job")) {
                    try await stores.webhooks.create(project: project, job: missing, name: "hook", actor: nil)
                }
            }
            let invalid = await #expect(throws: StoreError.self) {
                try await stores.webhooks.create(project: project, job: job, name: " ", actor: nil)
            }
            #expect(invalid?.field == "name")

            var fixed = stores.webhooks
            fixed.makeSlug = { "taken" }
            _ = try await fixed.create(project: project, job: job, name: "first", actor: ada.id)
            let duplicate = await #expect(throws: StoreError.self) {
                try await fixed.create(project: project, job: job, name: "second", actor: nil)
            }
            #expect(duplicate?.code == .duplicate && duplicate?.field == "slug" && duplicate?.constraint == "webhooks_slug_key")

            var created: [UUID] = []
            for index in 0..<4 {
                created.append(try await stores.webhooks.create(project: project, job: job, name: "h\(index)", actor: nil).webhook.id)
            }
            let listed = try await stores.allPages(limit: 2) { try await stores.webhooks.list(project: project, page: $0) }
            #expect(listed.items.map(\.id).suffix(4) == created[...] && listed.items.count == 5 && listed.pages == 3)

            // Archiving the job archives its webhooks: their endpoints stop answering.
            let slug = try await stores.webhooks.find(created[0], project: project).slug
            try await stores.archiveSeededJob(job, project: project)
            await #expect(throws: StoreError.notFound("webhook")) { try await stores.webhooks.find(slug: slug) }
            await #expect(throws: StoreError.notFound("job")) {
                try await stores.webhooks.create(project: project, job: job, name: "late", actor: nil)
            }
        }
    }

    /// Recipients are email addresses, 1 to 50, deduplicated; errors name the position, not
    /// the address.
    @Test func notifiersValidateTheirRecipients() async throws {
        try await Stores.with("notifiers") { stores in
            let (ada, project, other) = try await stores.automationProjects()
            let notifier = try await stores.notifiers.create(
                project: project, name: "Ops", recipients: [" ops@example.com", "OPS@example.com", "dev@example.org"], actor: ada.id)
            #expect(notifier.kind == .email && notifier.recipients == ["ops@example.com", "dev@example.org"])
            #expect(try await stores.notifiers.find(notifier.id, project: project) == notifier)
            await #expect(throws: StoreError.notFound("notifier")) { try await stores.notifiers.find(notifier.id, project: other) }

            let fifty = (0..<50).map { "user\($0)@example.com" }
            _ = try await stores.notifiers.create(project: project, name: "Many", recipients: fifty, actor: nil)
            let invalidLists: [[String]] = [
                [], fifty + ["one-too-many@example.com"], ["ops@example.com", "not an address"], ["@example.com"], ["ops@localhost"],
                ["a@b@example.com"], ["ops@example..com"],
            ]
            for recipients in invalidLists {
                let error = await #expect(throws: StoreError.self) {
                    try await stores.notifiers.create(project: project, name: "Bad", recipients: recipients, actor: nil)
                }
                #expect(error?.code == .invalid && error?.field == "recipients", "\(recipients.prefix(2))")
                #expect(error?.message.contains("@") == false, "no address in the message")
            }
            await #expect(throws: StoreError.notFound("project")) {
                try await stores.notifiers.create(project: UUID(), name: "Lost", recipients: ["a@example.com"], actor: nil)
            }

            let updated = try await stores.notifiers.update(
                notifier.id, project: project, name: "Ops team", recipients: ["oncall@example.com"], actor: ada.id)
            #expect(updated.name == "Ops team" && updated.recipients == ["oncall@example.com"])
            await #expect(throws: StoreError.notFound("notifier")) {
                try await stores.notifiers.update(notifier.id, project: other, name: "x", recipients: ["a@example.com"], actor: nil)
            }
            let listed = try await stores.allPages(limit: 1) { try await stores.notifiers.list(project: project, page: $0) }
            #expect(listed.items.map(\.name) == ["Ops team", "Many"] && listed.pages == 2)

            try await stores.notifiers.archive(notifier.id, project: project, actor: ada.id)
            await #expect(throws: StoreError.notFound("notifier")) { try await stores.notifiers.find(notifier.id, project: project) }
            await #expect(throws: StoreError.notFound("notifier")) {
                try await stores.notifiers.archive(notifier.id, project: project, actor: nil)
            }
            #expect(
                try await stores.activityNames(project: project).filter { $0.hasPrefix("notifier.") }
                    == ["notifier.created", "notifier.created", "notifier.updated", "notifier.archived"])
        }
    }

    /// Rules send the activities their glob matches: project-wide ones always, a job's only for
    /// that job; rules of an archived notifier or job stop matching.
    @Test func notificationRulesMatchActivitiesByGlob() async throws {
        try await Stores.with("notification_rules") { stores in
            let (ada, project, other) = try await stores.automationProjects()
            let build = try await stores.seedJob(in: project)
            let deploy = try await stores.seedJob(in: project)
            let foreignJob = try await stores.seedJob(in: other)
            let ops = try await stores.notifiers.create(project: project, name: "Ops", recipients: ["ops@example.com"], actor: ada.id)
            let foreignNotifier = try await stores.notifiers.create(
                project: other, name: "Ops", recipients: ["ops@example.com"], actor: nil)

            let everything = try await stores.notificationRules.create(
                project: project, notifier: ops.id, job: nil, activityPattern: "operation.*", actor: ada.id)
            let buildFailures = try await stores.notificationRules.create(
                project: project, notifier: ops.id, job: build, activityPattern: "operation.failed", actor: nil)
            let deployAny = try await stores.notificationRules.create(
                project: project, notifier: ops.id, job: deploy, activityPattern: "*.?imed_out", actor: nil)

            let rules = stores.notificationRules
            #expect(
                try await rules.matching(activity: "operation.failed", project: project, job: build).map(\.id) == [
                    everything.id, buildFailures.id,
                ])
            #expect(try await rules.matching(activity: "operation.failed", project: project, job: deploy).map(\.id) == [everything.id])
            #expect(
                try await rules.matching(activity: "operation.timed_out", project: project, job: deploy).map(\.id) == [
                    everything.id, deployAny.id,
                ])
            #expect(try await rules.matching(activity: "schedule.timed_out", project: project, job: nil).isEmpty)
            #expect(try await rules.matching(activity: "operation.failed", project: other, job: build).isEmpty)

            for pattern in ["", "Operation.*", "operation failed", "operation.[a]", String(repeating: "a", count: 201)] {
                let error = await #expect(throws: StoreError.self) {
                    try await rules.create(project: project, notifier: ops.id, job: nil, activityPattern: pattern, actor: nil)
                }
                #expect(error?.code == .invalid && error?.field == "activity_pattern", "\(pattern)")
            }
            await #expect(throws: StoreError.notFound("notifier")) {
                try await rules.create(project: project, notifier: foreignNotifier.id, job: nil, activityPattern: "*", actor: nil)
            }
            await #expect(throws: StoreError.notFound("job")) {
                try await rules.create(project: project, notifier: ops.id, job: foreignJob, activityPattern: "*", actor: nil)
            }
            await #expect(throws: StoreError.notFound("job")) {
                try await rules.update(buildFailures.id, project: project, job: foreignJob, activityPattern: "*", actor: nil)
            }

            let widened = try await rules.update(
                buildFailures.id, project: project, job: nil, activityPattern: "operation.fail*", actor: ada.id)
            #expect(widened.jobID == nil && widened.activityPattern == "operation.fail*")
            await #expect(throws: StoreError.notFound("notification rule")) { try await rules.find(widened.id, project: other) }
            let listed = try await stores.allPages(limit: 2) { try await rules.list(project: project, page: $0) }
            #expect(listed.items.map(\.id) == [everything.id, buildFailures.id, deployAny.id] && listed.pages == 2)

            // Archiving a job archives its rules; archiving a notifier archives the rest.
            try await stores.archiveSeededJob(deploy, project: project)
            #expect(try await rules.matching(activity: "operation.timed_out", project: project, job: deploy).map(\.id) == [everything.id])
            try await rules.archive(everything.id, project: project, actor: ada.id)
            await #expect(throws: StoreError.notFound("notification rule")) {
                try await rules.archive(everything.id, project: project, actor: nil)
            }
            try await stores.notifiers.archive(ops.id, project: project, actor: ada.id)
            #expect(try await rules.matching(activity: "operation.failed", project: project, job: build).isEmpty)
            await #expect(throws: StoreError.notFound("notifier")) {
                try await rules.create(project: project, notifier: ops.id, job: nil, activityPattern: "*", actor: nil)
            }
            #expect(try await rules.find(widened.id, project: project, includeArchived: true).archivedAt != nil)
        }
    }

    @Test func globsMatchWholeNames() {
        let cases: [(pattern: String, name: String, matches: Bool)] = [
            ("operation.*", "operation.failed", true), ("operation.*", "operation.", true), ("operation.*", "operations.failed", false),
            ("*", "", true), ("*.archived", "job.archived", true), ("*.archived", "job.archived.x", false), ("a*b*c", "aXbYbZc", true),
            ("a*b*c", "aXbYbZ", false), ("?", "", false), ("schedule.?isabled", "schedule.disabled", true), ("job", "job.archived", false),
        ]
        for (pattern, name, matches) in cases {
            #expect(
                NotificationRule.glob(Array(pattern.unicodeScalars), matches: Array(name.unicodeScalars)) == matches, "\(pattern) \(name)")
        }
    }
}
