import Foundation
import HTTPTypes
import Hummingbird
import JobContracts
import PostgresNIO
import Store

/// What starts and reports a project's work: repositories and their deploy keys, SSH keys,
/// schedules, git triggers, webhooks, notifiers and notification rules, and the activity feed.
struct AutomationRoutes: Sendable {
    let repositories: RepositoryStore
    let keys: SSHKeyStore
    let schedules: ScheduleStore
    let triggers: GitTriggerStore
    let webhooks: WebhookStore
    let notifiers: NotifierStore
    let webhookNotifiers: WebhookNotifierSecrets
    let rules: NotificationRuleStore
    let activities: ActivityStore
    let database: PostgresClient
    let access: Access
    let configuration: APIConfiguration

    struct RepositoryBody: RequestBody {
        static let fields: Set<String> = ["url", "name", "known_hosts", "poll_interval_seconds"]
        var url: String?
        var name: String?
        var knownHosts: String?
        var pollIntervalSeconds: Int?
    }

    struct KeyBody: RequestBody {
        static let fields: Set<String> = ["name", "algorithm"]
        var name: String
        var algorithm: SSHKey.Algorithm?
    }

    struct ScheduleBody: RequestBody {
        static let fields: Set<String> = ["job_id", "cron", "run_at", "time_zone", "description", "catch_up", "overlap"]
        var jobId: UUID?
        var cron: String?
        var runAt: Date?
        var timeZone: String?
        var description: String?
        var catchUp: Schedule.CatchUp?
        var overlap: Schedule.Overlap?
    }

    struct ReasonBody: RequestBody {
        static let fields: Set<String> = ["reason"]
        var reason: String?
    }

    struct TriggerBody: RequestBody {
        static let fields: Set<String> = ["repository_id", "job_id", "name", "ref_pattern", "change_type"]
        var repositoryId: UUID?
        var jobId: UUID?
        var name: String
        var refPattern: String?
        var changeType: GitTrigger.ChangeType
    }

    struct WebhookBody: RequestBody {
        static let fields: Set<String> = ["job_id", "name"]
        var jobId: UUID
        var name: String
    }

    struct NotifierBody: RequestBody {
        static let fields: Set<String> = ["name", "kind", "recipients", "job_id", "url"]
        var name: String
        var kind: Notifier.Kind?
        var recipients: [String]?
        var jobId: UUID?
        var url: String?

        /// What the notifier does: `email` (the default) takes `recipients`, `job` a `job_id`,
        /// `webhook` a `url`, and none takes another's field. For an update, `current` fills
        /// what the body leaves out, as long as the kind stays.
        func target(current: Notifier? = nil) throws -> NotifierStore.Target {
            let kind = kind ?? current?.kind ?? .email
            let same = current?.kind == kind
            let others: [(String, Bool, Notifier.Kind)] = [
                ("recipients", !(recipients ?? []).isEmpty, .email), ("job_id", jobId != nil, .job), ("url", url != nil, .webhook),
            ]
            if let (field, _, owner) = others.first(where: { $0.1 && $0.2 != kind }) {
                throw Problem.invalid([Problem.FieldError(field: field, message: "is for notifiers of kind \(owner.rawValue)")])
            }
            switch kind {
            case .email: return .email(try Fields.required(recipients ?? (same ? current?.recipients : nil), "recipients"))
            case .job: return .job(try Fields.required(jobId ?? (same ? current?.jobID : nil), "job_id"))
            // Shown as its origin only: an update without `url` keeps the stored one.
            case .webhook: return .webhook(same ? url : try Fields.required(url, "url"))
            }
        }
    }

    /// A notifier as created: a webhook notifier's signing secret, shown this once, with it.
    struct NotifierCreated: ResponseEncodable {
        var notifier: Notifier
        var signingSecret: String?

        enum CodingKeys: String, CodingKey {
            case signingSecret
        }

        func encode(to encoder: any Encoder) throws {
            try notifier.encode(to: encoder)
            var container = encoder.container(keyedBy: CodingKeys.self)
            try container.encodeIfPresent(signingSecret, forKey: .signingSecret)
        }
    }

    struct RuleBody: RequestBody {
        static let fields: Set<String> = ["notifier_id", "job_id", "activity_pattern"]
        var notifierId: UUID?
        var jobId: UUID?
        var activityPattern: String
    }

    /// A schedule with the next five times it fires.
    struct ScheduleView: ResponseEncodable {
        var schedule: Schedule
        var nextFireTimes: [Date]

        init(_ schedule: Schedule) {
            self.schedule = schedule
            nextFireTimes = schedule.nextFireTimes(after: Date(), count: 5)
        }

        enum CodingKeys: String, CodingKey {
            case nextFireTimes
        }

        func encode(to encoder: any Encoder) throws {
            try schedule.encode(to: encoder)
            var container = encoder.container(keyedBy: CodingKeys.self)
            try container.encode(nextFireTimes, forKey: .nextFireTimes)
        }
    }

    /// The next fire times of a cron spec not yet saved.
    struct SchedulePreview: ResponseEncodable {
        var nextFireTimes: [Date]
    }

    /// A repository with the public part of its deploy key (to install at the git host).
    struct RepositoryView: ResponseEncodable {
        struct DeployKey: Encodable, Sendable {
            var id: UUID
            var status: SSHKey.Status
            var publicKey: String?
            var fingerprint: String?
        }

        var repository: Repository
        var deployKey: DeployKey?

        enum CodingKeys: String, CodingKey {
            case deployKey
        }

        func encode(to encoder: any Encoder) throws {
            try repository.encode(to: encoder)
            var container = encoder.container(keyedBy: CodingKeys.self)
            try container.encode(deployKey, forKey: .deployKey)
        }
    }

    /// The repositories of `project` with their deploy keys, read in one query.
    func views(_ repositories: [Repository], project: UUID) async throws -> [RepositoryView] {
        let deployKeys = try await keys.find(repositories.compactMap(\.credentialID), project: project)
        return repositories.map { repository in
            let key = repository.credentialID.flatMap { deployKeys[$0] }
            return RepositoryView(
                repository: repository,
                deployKey: key.map {
                    RepositoryView.DeployKey(id: $0.id, status: $0.status, publicKey: $0.publicKey, fingerprint: $0.fingerprint)
                })
        }
    }

    func view(_ repository: Repository) async throws -> RepositoryView {
        try await views([repository], project: repository.projectID)[0]
    }

    struct WebhookCreated: ResponseEncodable {
        var webhook: Webhook
        /// Shown once: only its ciphertext is kept.
        var signingSecret: String
    }

    struct Secret: ResponseEncodable {
        var signingSecret: String
    }

    func addRoutes(to router: some RouterMethods<APIContext>) {
        let limit = configuration.bodyLimit
        let project = router.group("projects/:project")

        // Repositories: creating one makes its deploy key (generate-key through the outbox).
        project.get("repositories") { request, context -> PageBody<RepositoryView> in
            let (project, _) = try await context.project(.read, access: access)
            let page = try await repositories.list(project: project, page: try request.pageRequest())
            return PageBody(Page(items: try await views(page.items, project: project), nextCursor: page.nextCursor))
        }
        project.post("repositories") { request, context -> EditedResponse<RepositoryView> in
            let (project, caller) = try await context.project(.writeRepositories, access: access)
            let body = try await request.json(RepositoryBody.self, limit: limit)
            let repository = try await repositories.create(
                project: project, url: try Fields.required(body.url, "url"), name: body.name, knownHosts: body.knownHosts ?? "",
                pollIntervalSeconds: body.pollIntervalSeconds, actor: caller.user.id)
            return EditedResponse(status: .created, response: try await view(repository))
        }
        project.get("repositories/:repository") { _, context -> RepositoryView in
            let (project, _) = try await context.project(.read, access: access)
            return try await view(try await repositories.find(try context.id("repository"), project: project))
        }
        project.patch("repositories/:repository") { request, context -> RepositoryView in
            let (project, caller) = try await context.project(.writeRepositories, access: access)
            let body = try await request.json(RepositoryBody.self, limit: limit)
            return try await view(
                try await repositories.update(
                    try context.id("repository"), project: project, url: body.url, name: body.name, knownHosts: body.knownHosts,
                    pollIntervalSeconds: body.pollIntervalSeconds, actor: caller.user.id))
        }
        project.delete("repositories/:repository") { _, context -> HTTPResponse.Status in
            let (project, caller) = try await context.project(.archive, access: access)
            try await repositories.archive(try context.id("repository"), project: project, actor: caller.user.id)
            return .noContent
        }
        project.post("repositories/:repository/refresh") { _, context -> HTTPResponse.Status in
            let (project, _) = try await context.project(.runJobs, access: access)
            // Polls now, in a worker (never here), and keeps polling for a while without triggers.
            try await RepositoryPollStore(client: database, logger: context.logger).refresh(try context.id("repository"), project: project)
            return .accepted
        }

        // SSH keys: the public part only.
        project.get("ssh-keys") { request, context -> PageBody<SSHKey> in
            let (project, _) = try await context.project(.read, access: access)
            return PageBody(try await keys.list(project: project, page: try request.pageRequest()))
        }
        project.post("ssh-keys") { request, context -> EditedResponse<SSHKey> in
            let (project, caller) = try await context.project(.writeSecrets, access: access)
            let body = try await request.json(KeyBody.self, limit: limit)
            return EditedResponse(
                status: .created,
                response: try await keys.create(
                    project: project, name: body.name, algorithm: body.algorithm ?? .ed25519, actor: caller.user.id))
        }
        project.get("ssh-keys/:key") { _, context -> SSHKey in
            let (project, _) = try await context.project(.read, access: access)
            return try await keys.find(try context.id("key"), project: project)
        }
        project.delete("ssh-keys/:key") { _, context -> HTTPResponse.Status in
            let (project, caller) = try await context.project(.archive, access: access)
            try await keys.archive(try context.id("key"), project: project, actor: caller.user.id)
            return .noContent
        }

        // Schedules, with their next five fire times.
        project.get("schedules") { request, context -> PageBody<ScheduleView> in
            let (project, _) = try await context.project(.read, access: access)
            let page = try await schedules.list(project: project, page: try request.pageRequest())
            return PageBody(Page(items: page.items.map(ScheduleView.init), nextCursor: page.nextCursor))
        }
        // The next fire times of a cron spec as it is typed, before it is saved.
        project.get("schedule-preview") { request, context -> SchedulePreview in
            _ = try await context.project(.read, access: access)
            let cron = request.uri.queryParameters["cron"].map(String.init) ?? ""
            let zone = request.uri.queryParameters["time_zone"].map(String.init) ?? "UTC"
            guard cron.utf8.count <= 200, zone.utf8.count <= 100 else {
                throw Problem.invalid([Problem.FieldError(field: cron.utf8.count > 200 ? "cron" : "time_zone", message: "is too long")])
            }
            return SchedulePreview(nextFireTimes: try ScheduleStore.preview(cron: cron, timeZone: zone))
        }
        project.post("schedules") { request, context -> EditedResponse<ScheduleView> in
            let (project, caller) = try await context.project(.manageSchedules, access: access)
            let body = try await request.json(ScheduleBody.self, limit: limit)
            let schedule = try await schedules.create(
                project: project, job: try Fields.required(body.jobId, "job_id"), cron: body.cron, runAt: body.runAt,
                timeZone: body.timeZone ?? "UTC", description: body.description, catchUp: body.catchUp ?? .once,
                overlap: body.overlap ?? .allow, actor: caller.user.id)
            return EditedResponse(status: .created, response: ScheduleView(schedule))
        }
        project.get("schedules/:schedule") { _, context -> ScheduleView in
            let (project, _) = try await context.project(.read, access: access)
            return ScheduleView(try await schedules.find(try context.id("schedule"), project: project))
        }
        project.patch("schedules/:schedule") { request, context -> ScheduleView in
            let (project, caller) = try await context.project(.manageSchedules, access: access)
            let body = try await request.json(ScheduleBody.self, limit: limit)
            try Fields.unchangeable(body.jobId, "job_id")
            // What the body leaves out stays as it is; a cron spec replaces a time and back.
            let current = try await schedules.find(try context.id("schedule"), project: project)
            let keepsWhen = body.cron == nil && body.runAt == nil
            return ScheduleView(
                try await schedules.update(
                    current.id, project: project, cron: keepsWhen ? current.cron : body.cron,
                    runAt: keepsWhen ? current.runAt : body.runAt, timeZone: body.timeZone ?? current.timeZone,
                    description: body.description ?? current.description, catchUp: body.catchUp ?? current.catchUp,
                    overlap: body.overlap ?? current.overlap, actor: caller.user.id))
        }
        project.post("schedules/:schedule/disable") { request, context -> ScheduleView in
            let (project, caller) = try await context.project(.manageSchedules, access: access)
            let reason = request.headers[.contentType] == nil ? nil : try await request.json(ReasonBody.self, limit: limit).reason
            return ScheduleView(
                try await schedules.disable(
                    try context.id("schedule"), project: project, reason: reason ?? "disabled by a user", actor: caller.user.id))
        }
        project.post("schedules/:schedule/enable") { _, context -> ScheduleView in
            let (project, caller) = try await context.project(.manageSchedules, access: access)
            return ScheduleView(try await schedules.enable(try context.id("schedule"), project: project, actor: caller.user.id))
        }
        project.delete("schedules/:schedule") { _, context -> HTTPResponse.Status in
            let (project, caller) = try await context.project(.manageSchedules, access: access)
            try await schedules.archive(try context.id("schedule"), project: project, actor: caller.user.id)
            return .noContent
        }

        // Git triggers
        project.get("triggers") { request, context -> PageBody<GitTrigger> in
            let (project, _) = try await context.project(.read, access: access)
            return PageBody(try await triggers.list(project: project, page: try request.pageRequest()))
        }
        project.post("triggers") { request, context -> EditedResponse<GitTrigger> in
            let (project, caller) = try await context.project(.writeTriggers, access: access)
            let body = try await request.json(TriggerBody.self, limit: limit)
            let trigger = try await triggers.create(
                project: project, repository: try Fields.required(body.repositoryId, "repository_id"),
                job: try Fields.required(body.jobId, "job_id"), name: body.name, refPattern: body.refPattern ?? ".*",
                changeType: body.changeType, actor: caller.user.id)
            return EditedResponse(status: .created, response: trigger)
        }
        project.get("triggers/:trigger") { _, context -> GitTrigger in
            let (project, _) = try await context.project(.read, access: access)
            return try await triggers.find(try context.id("trigger"), project: project)
        }
        project.patch("triggers/:trigger") { request, context -> GitTrigger in
            let (project, caller) = try await context.project(.writeTriggers, access: access)
            let body = try await request.json(TriggerBody.self, limit: limit)
            try Fields.unchangeable(body.repositoryId, "repository_id")
            try Fields.unchangeable(body.jobId, "job_id")
            // A pattern the body leaves out stays: falling back to ".*" made a renamed trigger
            // fire on every ref.
            let current = try await triggers.find(try context.id("trigger"), project: project)
            return try await triggers.update(
                current.id, project: project, name: body.name, refPattern: body.refPattern ?? current.refPattern,
                changeType: body.changeType, actor: caller.user.id)
        }
        project.delete("triggers/:trigger") { _, context -> HTTPResponse.Status in
            let (project, caller) = try await context.project(.archive, access: access)
            try await triggers.archive(try context.id("trigger"), project: project, actor: caller.user.id)
            return .noContent
        }

        // Webhooks: the signing secret is shown once, on creation or rotation.
        project.get("webhooks") { request, context -> PageBody<Webhook> in
            let (project, _) = try await context.project(.read, access: access)
            return PageBody(try await webhooks.list(project: project, page: try request.pageRequest()))
        }
        project.post("webhooks") { request, context -> EditedResponse<WebhookCreated> in
            let (project, caller) = try await context.project(.writeWebhooks, access: access)
            let body = try await request.json(WebhookBody.self, limit: limit)
            let (webhook, secret) = try await webhooks.create(project: project, job: body.jobId, name: body.name, actor: caller.user.id)
            return EditedResponse(status: .created, response: WebhookCreated(webhook: webhook, signingSecret: secret))
        }
        project.get("webhooks/:webhook") { _, context -> Webhook in
            let (project, _) = try await context.project(.read, access: access)
            return try await webhooks.find(try context.id("webhook"), project: project)
        }
        project.post("webhooks/:webhook/rotate") { _, context -> Secret in
            let (project, caller) = try await context.project(.writeWebhooks, access: access)
            return Secret(
                signingSecret: try await webhooks.rotateSecret(try context.id("webhook"), project: project, actor: caller.user.id))
        }
        project.delete("webhooks/:webhook") { _, context -> HTTPResponse.Status in
            let (project, caller) = try await context.project(.archive, access: access)
            try await webhooks.archive(try context.id("webhook"), project: project, actor: caller.user.id)
            return .noContent
        }

        // Notifiers and notification rules
        project.get("notifiers") { request, context -> PageBody<Notifier> in
            let (project, _) = try await context.project(.read, access: access)
            return PageBody(try await notifiers.list(project: project, page: try request.pageRequest()))
        }
        project.post("notifiers") { request, context -> EditedResponse<NotifierCreated> in
            let (project, caller) = try await context.project(.manageNotificationRules, access: access)
            let body = try await request.json(NotifierBody.self, limit: limit)
            let target = try body.target()
            if case .webhook(let url) = target {
                // Where notifications go, signed with a secret: a manager's call, as for
                // incoming webhooks.
                _ = try await context.project(.writeWebhooks, access: access)
                let (notifier, secret) = try await webhookNotifiers.create(
                    project: project, name: body.name, url: try Fields.required(url, "url"), actor: caller.user.id)
                return EditedResponse(status: .created, response: NotifierCreated(notifier: notifier, signingSecret: secret))
            }
            let notifier = try await notifiers.create(project: project, name: body.name, target: target, actor: caller.user.id)
            return EditedResponse(status: .created, response: NotifierCreated(notifier: notifier))
        }
        project.post("notifiers/:notifier/rotate") { _, context -> Secret in
            let (project, caller) = try await context.project(.writeWebhooks, access: access)
            return Secret(
                signingSecret: try await webhookNotifiers.rotateSecret(try context.id("notifier"), project: project, actor: caller.user.id))
        }
        project.get("notifiers/:notifier") { _, context -> Notifier in
            let (project, _) = try await context.project(.read, access: access)
            return try await notifiers.find(try context.id("notifier"), project: project)
        }
        project.patch("notifiers/:notifier") { request, context -> Notifier in
            let (project, caller) = try await context.project(.manageNotificationRules, access: access)
            let body = try await request.json(NotifierBody.self, limit: limit)
            let current = try await notifiers.find(try context.id("notifier"), project: project)
            if current.kind == .webhook { _ = try await context.project(.writeWebhooks, access: access) }
            return try await notifiers.update(
                current.id, project: project, name: body.name, target: try body.target(current: current), actor: caller.user.id)
        }
        project.delete("notifiers/:notifier") { _, context -> HTTPResponse.Status in
            let (project, caller) = try await context.project(.manageNotificationRules, access: access)
            try await notifiers.archive(try context.id("notifier"), project: project, actor: caller.user.id)
            return .noContent
        }
        project.get("notification-rules") { request, context -> PageBody<NotificationRule> in
            let (project, _) = try await context.project(.read, access: access)
            return PageBody(try await rules.list(project: project, page: try request.pageRequest()))
        }
        project.post("notification-rules") { request, context -> EditedResponse<NotificationRule> in
            let (project, caller) = try await context.project(.manageNotificationRules, access: access)
            let body = try await request.json(RuleBody.self, limit: limit)
            let rule = try await rules.create(
                project: project, notifier: try Fields.required(body.notifierId, "notifier_id"), job: body.jobId,
                activityPattern: body.activityPattern, actor: caller.user.id)
            return EditedResponse(status: .created, response: rule)
        }
        project.get("notification-rules/:rule") { _, context -> NotificationRule in
            let (project, _) = try await context.project(.read, access: access)
            return try await rules.find(try context.id("rule"), project: project)
        }
        project.patch("notification-rules/:rule") { request, context -> NotificationRule in
            let (project, caller) = try await context.project(.manageNotificationRules, access: access)
            let body = try await request.json(RuleBody.self, limit: limit)
            try Fields.unchangeable(body.notifierId, "notifier_id")
            return try await rules.update(
                try context.id("rule"), project: project, job: body.jobId, activityPattern: body.activityPattern, actor: caller.user.id)
        }
        project.delete("notification-rules/:rule") { _, context -> HTTPResponse.Status in
            let (project, caller) = try await context.project(.manageNotificationRules, access: access)
            try await rules.archive(try context.id("rule"), project: project, actor: caller.user.id)
            return .noContent
        }

        // The activity feed, newest first.
        project.get("activities") { request, context -> PageBody<Activity> in
            let (project, _) = try await context.project(.read, access: access)
            return PageBody(try await activities.list(project: project, page: try request.pageRequest()))
        }
    }
}
