import Foundation
import HarrowTestSupport
import Jobs
import PostgresNIO
import Store
import Testing

/// The scheduler as a service: it sleeps until the nearest fire time and a change to the
/// schedules wakes it, so a schedule made while it sleeps still fires on time.
@Suite struct SchedulerTests {
    @Test func aScheduleMadeWhileTheSchedulerSleepsFiresOnTime() async throws {
        try await TestDatabase.withDatabase("scheduler_wake") { client, _ in
            let logger = TestRedis.logger("harrow.test.scheduler")
            try await Migrator(client: client, logger: logger).migrate()
            let job = try await Self.seedJob(client, logger: logger)
            // Without the notification it would sleep ten minutes.
            let scheduler = Scheduler(client: client, options: Scheduler.Options(longestSleep: .seconds(600)), logger: logger)
            let running = Task { try await scheduler.run() }
            defer { running.cancel() }
            try await Task.sleep(for: .seconds(1))

            let schedules = ScheduleStore(client: client, logger: logger)
            let schedule = try await schedules.create(
                project: job.project, job: job.id, cron: nil, runAt: Date().addingTimeInterval(1), actor: nil)
            try await eventually("the schedule fired", timeout: .seconds(60)) {
                try await client.value(
                    "SELECT count(*)::int8 FROM operations WHERE parameters->>'schedule_id' = \(schedule.id.uuidString.lowercased())",
                    as: Int.self) == 1
            }
            #expect(try await schedules.find(schedule.id, project: job.project).disabledReason == "ran once")
        }
    }

    /// Postgres dropping every connection (a restart, a failover) costs the scheduler its
    /// pool and its LISTEN: it reconnects, listens again, and a schedule made after that still
    /// fires on time, though it would sleep ten minutes without the notification.
    @Test func theSchedulerComesBackAfterItsConnectionsAreDropped() async throws {
        try await TestDatabase.withDatabase("scheduler_dropped") { client, configuration in
            let logger = TestRedis.logger("harrow.test.scheduler")
            try await Migrator(client: client, logger: logger).migrate()
            let job = try await Self.seedJob(client, logger: logger)
            // A turn caught on a dropped connection can hang in PostgresNIO for good: abandoned
            // after 10 s here (2 minutes by default).
            let scheduler = Scheduler(
                client: client, options: Scheduler.Options(longestSleep: .seconds(600), turnDeadline: .seconds(10)), logger: logger)
            let running = Task { try await scheduler.run() }
            defer { running.cancel() }
            let schedules = ScheduleStore(client: client, logger: logger)
            let first = try await schedules.create(
                project: job.project, job: job.id, cron: nil, runAt: Date().addingTimeInterval(1), actor: nil)
            try await eventually("the first schedule fired", timeout: .seconds(60)) {
                try await Self.fired(first.id, client) == 1
            }

            // Every backend of this database but the one asking goes: the scheduler's pool and
            // its listener's connection among them.
            let dropped = try await client.value(
                """
                SELECT count(pg_terminate_backend(pid))::int8 FROM pg_stat_activity
                WHERE datname = \(configuration.database) AND pid <> pg_backend_pid()
                """, as: Int.self)
            #expect((dropped ?? 0) >= 1)

            // The test's own calls share the pool: the first to lease a connection the drop
            // killed gets the server's FATAL, as any client would; it tries again.
            var made: Schedule?
            for _ in 0..<40 where made == nil {
                made = try? await schedules.create(
                    project: job.project, job: job.id, cron: nil, runAt: Date().addingTimeInterval(2), actor: nil)
                if made == nil { try await Task.sleep(for: .milliseconds(250)) }
            }
            let second = try #require(made, "a schedule could not be made after the drop")
            try await eventually("the schedule made after the drop fired", timeout: .seconds(90)) {
                (try? await Self.fired(second.id, client)) == 1
            }
            #expect(try await Self.fired(first.id, client) == 1)
        }
    }

    static func fired(_ schedule: UUID, _ client: PostgresClient) async throws -> Int {
        try await client.value(
            "SELECT count(*)::int8 FROM operations WHERE parameters->>'schedule_id' = \(schedule.uuidString.lowercased())", as: Int.self)
            ?? 0
    }

    /// A project with a live job, as raw rows.
    static func seedJob(_ client: PostgresClient, logger: Logger) async throws -> (project: UUID, id: UUID) {
        let user = try await UserStore(client: client, logger: logger).create(
            email: "sched-\(TestRedis.randomHex())@example.com", name: "Sched", passwordHash: "$2b$12$hash")
        let organization = try await OrganizationStore(client: client, logger: logger).create(name: "Acme", owner: user.id)
        let project = try await ProjectStore(client: client, logger: logger).create(
            organization: organization.id, name: "Web", actor: user.id)
        let task = UUID()
        let job = UUID()
        try await client.query("INSERT INTO tasks (id, project_id, name, script) VALUES (\(task), \(project.id), 'build', 'make')")
        try await client.query(
            """
            INSERT INTO jobs (id, project_id, task_id, environment_id, name)
            SELECT \(job), \(project.id), \(task), id, 'build' FROM environments WHERE project_id = \(project.id) AND is_default
            """)
        return (project.id, job)
    }
}
