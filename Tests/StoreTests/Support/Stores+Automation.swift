import Foundation
import HarrowTestSupport
import PostgresNIO

@testable import Store

/// The stores of keys, repositories, schedules, triggers, webhooks, notifications, operations
/// and activities, with the fixtures their tests share.
extension Stores {
    /// One keyring for the test run, so that what one store value seals another opens.
    static let automationKeyring = SecretKeyring(current: .generate())

    var sshKeys: SSHKeyStore { SSHKeyStore(client: client, keyring: Self.automationKeyring, logger: logger) }
    var repositories: RepositoryStore { RepositoryStore(client: client, logger: logger) }
    var schedules: ScheduleStore { ScheduleStore(client: client, logger: logger) }
    var gitTriggers: GitTriggerStore { GitTriggerStore(client: client, logger: logger) }
    var webhooks: WebhookStore { WebhookStore(client: client, keyring: Self.automationKeyring, logger: logger) }
    var notifiers: NotifierStore { NotifierStore(client: client, logger: logger) }
    var notificationRules: NotificationRuleStore { NotificationRuleStore(client: client, logger: logger) }
    var operations: OperationStore { OperationStore(client: client, logger: logger) }
    var activities: ActivityStore { ActivityStore(client: client, logger: logger) }

    /// A user and two projects of an organization they own: `project` to work in, `other` to
    /// refer to from it.
    func automationProjects() async throws -> (user: User, project: UUID, other: UUID) {
        let user = try await self.user()
        let organization = try await organizations.create(name: "Acme", owner: user.id)
        let project = try await projects.create(organization: organization.id, name: "Web", actor: user.id)
        let other = try await projects.create(organization: organization.id, name: "Other", actor: user.id)
        return (user, project.id, other.id)
    }

    /// A live job of `project` and its task, in the project's default environment, written as
    /// raw rows (jobs have a store of their own, not under test here).
    func seedJob(in project: UUID, timeLimitSeconds: Int = 900) async throws -> UUID {
        let task = UUID()
        let job = UUID()
        try await write("INSERT INTO tasks (id, project_id, name, script) VALUES (\(task), \(project), 'build', 'make')")
        try await write(
            """
            INSERT INTO jobs (id, project_id, task_id, environment_id, name, time_limit_seconds)
            SELECT \(job), \(project), \(task), id, 'build', \(Int32(timeLimitSeconds))
            FROM environments WHERE project_id = \(project) AND is_default
            """)
        return job
    }

    /// Archives a job the way its store does, with the cascade to what would run it.
    func archiveSeededJob(_ job: UUID, project: UUID) async throws {
        try await client.write(logger: logger) { connection in
            try await Archiver.archiveJob(job, project: project, actor: nil, on: connection, logger: logger)
        }
    }

    /// How many rows a `count(*)::int8` query counts.
    func count(_ query: PostgresQuery) async throws -> Int {
        try await client.value(query, as: Int.self) ?? 0
    }

}

extension Array where Element: Equatable {
    /// Whether `part` occurs in the array as a run of consecutive elements.
    func containsSubsequence(_ part: [Element]) -> Bool {
        guard !part.isEmpty, part.count <= count else { return part.isEmpty }
        return (0...(count - part.count)).contains { Array(self[$0..<($0 + part.count)]) == part }
    }
}
