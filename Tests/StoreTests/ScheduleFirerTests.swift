import Foundation
import HarrowTestSupport
import PostgresNIO
import Testing

@testable import Store

/// Due schedules fire in Postgres, exactly once however many firers race, with their
/// operation, its outbox job and the activities in one transaction; edits, disabling and
/// archiving take effect at once.
@Suite struct ScheduleFirerTests {
    static func utc(_ text: String) throws -> Date { try Date(text, strategy: .iso8601) }

    /// Operations of `job` queued by schedules, with their `schedule_id` parameter.
    static func scheduled(_ stores: Stores, job: UUID) async throws -> [String] {
        let rows = try await stores.client.query(
            "SELECT parameters->>'schedule_id' FROM operations WHERE job_id = \(job) AND reason = 'schedule' ORDER BY created_at",
            logger: stores.logger)
        var ids: [String] = []
        for try await id in rows.decode(String.self) { ids.append(id) }
        return ids
    }

    @Test func aOneTimeScheduleFiresOnceWithItsJobAndIsDisabled() async throws {
        try await Stores.with("firer_once") { stores in
            let (ada, project, _) = try await stores.automationProjects()
            let job = try await stores.seedJob(in: project)
            // Whole seconds: Postgres keeps microseconds.
            let at = Date(timeIntervalSince1970: (Date().timeIntervalSince1970 + 3600).rounded())
            let schedule = try await stores.schedules.create(project: project, job: job, cron: nil, runAt: at, actor: ada.id)
            #expect(schedule.nextFireAt == at && schedule.catchUp == .once && schedule.overlap == .allow)
            let firer = ScheduleFirer(client: stores.client, logger: stores.logger)

            #expect(try await firer.fireDue(now: at.addingTimeInterval(-1)).outcomes.isEmpty, "not due yet")
            #expect(try await firer.nextDue() == at)
            let outcomes = try await firer.fireDue(now: at.addingTimeInterval(1)).outcomes
            #expect(outcomes.count == 1 && outcomes[0].operationID != nil && outcomes[0].nextFireAt == nil)
            #expect(try await firer.fireDue(now: at.addingTimeInterval(120)).outcomes.isEmpty, "fired once")

            #expect(try await Self.scheduled(stores, job: job) == [schedule.id.uuidString.lowercased()])
            let operation = try await stores.operations.find(try #require(outcomes[0].operationID))
            #expect(operation.reason == .schedule && operation.status == .queued && operation.requestedBy == nil)
            #expect(try await stores.count("SELECT count(*)::int8 FROM outbox WHERE id = \(operation.id)") == 1)
            let after = try await stores.schedules.find(schedule.id, project: project)
            #expect(after.disabledAt != nil && after.disabledReason == "ran once" && after.nextFireAt == nil)
            let names = try await stores.activityNames(project: project)
            #expect(names.suffix(2) == ["operation.queued", "schedule.disabled"])
            #expect(try await firer.nextDue() == nil)

            // Enabling it again after its time is refused rather than firing it again.
            await #expect(throws: StoreError(.conflict, "the schedule's time has passed: give it a new run_at")) {
                try await stores.schedules.enable(schedule.id, project: project, actor: nil, now: at.addingTimeInterval(120))
            }
        }
    }

    /// 100 due schedules, 4 firers at once on their own connections: 100 operations, one per
    /// schedule.
    @Test func racingFirersFireEachScheduleOnce() async throws {
        try await Stores.with("firer_race") { stores in
            let (_, project, _) = try await stores.automationProjects()
            let job = try await stores.seedJob(in: project)
            let start = try Self.utc("2030-01-01T00:00:00Z")
            var ids: Set<String> = []
            for index in 0..<100 {
                let schedule = try await stores.schedules.create(
                    project: project, job: job, cron: index.isMultiple(of: 2) ? "* * * * *" : nil,
                    runAt: index.isMultiple(of: 2) ? nil : start, actor: nil)
                ids.insert(schedule.id.uuidString.lowercased())
            }
            // Every recurring one is due at 00:00 too.
            try await stores.write("UPDATE schedules SET next_fire_at = \(start) WHERE cron IS NOT NULL")
            let now = start.addingTimeInterval(10)
            let outcomes = try await withThrowingTaskGroup(of: [ScheduleFirer.Outcome].self) { group in
                for _ in 0..<4 {
                    group.addTask { try await ScheduleFirer(client: stores.client, logger: stores.logger).fireDue(now: now).outcomes }
                }
                return try await group.reduce(into: []) { $0 += $1 }
            }
            #expect(outcomes.count == 100)
            let fired = try await Self.scheduled(stores, job: job)
            #expect(fired.count == 100 && Set(fired) == ids)
            #expect(try await ScheduleFirer(client: stores.client, logger: stores.logger).fireDue(now: now).outcomes.isEmpty)
            #expect(
                try await stores.count("SELECT count(*)::int8 FROM schedules WHERE cron IS NOT NULL AND next_fire_at = \(start + 60)")
                    == 50)
        }
    }

    @Test func editingDisablingAndArchivingTakeEffectAtOnce() async throws {
        try await Stores.with("firer_edits") { stores in
            let (_, project, _) = try await stores.automationProjects()
            let job = try await stores.seedJob(in: project)
            let firer = ScheduleFirer(client: stores.client, logger: stores.logger)
            let hourly = try await stores.schedules.create(project: project, job: job, cron: "0 * * * *", runAt: nil, actor: nil)
            let first = try #require(hourly.nextFireAt)
            #expect(first > Date() && first <= Date().addingTimeInterval(3600))

            // An edit recomputes the next time; the old one never fires.
            let edited = try await stores.schedules.update(
                hourly.id, project: project, cron: "0 0 1 1 *", runAt: nil, timeZone: "Europe/Berlin", actor: nil)
            let newYear = try #require(edited.nextFireAt)
            #expect(newYear > first.addingTimeInterval(3600))
            #expect(try await firer.fireDue(now: first.addingTimeInterval(1)).outcomes.isEmpty)

            // Disabled: not fired even when its time has come; enabled: from its next time.
            _ = try await stores.schedules.disable(hourly.id, project: project, reason: "paused", actor: nil)
            #expect(try await stores.schedules.find(hourly.id, project: project).nextFireAt == nil)
            #expect(try await firer.fireDue(now: newYear.addingTimeInterval(1)).outcomes.isEmpty)
            let enabled = try await stores.schedules.enable(hourly.id, project: project, actor: nil)
            #expect(enabled.nextFireAt == newYear)

            // The job archived: its schedules are disabled in the same transaction.
            try await stores.archiveSeededJob(job, project: project)
            #expect(try await firer.fireDue(now: newYear.addingTimeInterval(1)).outcomes.isEmpty)
            let archived = try await stores.schedules.find(hourly.id, project: project)
            #expect(archived.disabledReason == "job archived" && archived.nextFireAt == nil)
            #expect(try await Self.scheduled(stores, job: job).isEmpty)
        }
    }

    @Test func missedTimesAreRecordedAndOverlapSkipWaitsForThePreviousRun() async throws {
        try await Stores.with("firer_missed") { stores in
            let (_, project, _) = try await stores.automationProjects()
            let job = try await stores.seedJob(in: project)
            let firer = ScheduleFirer(client: stores.client, logger: stores.logger)
            let start = try Self.utc("2030-01-01T10:00:00Z")
            let none = try await stores.schedules.create(
                project: project, job: job, cron: "0 * * * *", runAt: nil, catchUp: .none, overlap: .allow, actor: nil)
            let once = try await stores.schedules.create(
                project: project, job: job, cron: "0 * * * *", runAt: nil, catchUp: .once, overlap: .skip, actor: nil)
            try await stores.write("UPDATE schedules SET next_fire_at = \(start)")

            // Down from 10:00 to 12:30: three hourly times missed.
            let outcomes = try await firer.fireDue(now: start.addingTimeInterval(2.5 * 3600)).outcomes
            #expect(outcomes.count == 2 && outcomes.allSatisfy { $0.missed == 3 })
            #expect(try await Self.scheduled(stores, job: job) == [once.id.uuidString.lowercased()])
            #expect(
                try await stores.count("SELECT count(*)::int8 FROM activities WHERE name = 'schedule.missed' AND payload->>'count' = '3'")
                    == 2)
            let thirteen = try Self.utc("2030-01-01T13:00:00Z")
            #expect(outcomes.allSatisfy { $0.nextFireAt == thirteen })

            // At 13:00 the `skip` schedule's previous run is still queued: skipped, and its time moves on.
            let atThirteen = try await firer.fireDue(now: thirteen).outcomes
            #expect(atThirteen.count == 2)
            #expect(atThirteen.first { $0.scheduleID == once.id }?.skipped == true)
            #expect(atThirteen.first { $0.scheduleID == none.id }?.operationID != nil)
            #expect(try await stores.count("SELECT count(*)::int8 FROM activities WHERE name = 'schedule.skipped'") == 1)
            #expect(try await stores.schedules.find(once.id, project: project).nextFireAt == thirteen + 3600)
        }
    }

    @Test func schedulesFromBeforeTheSchedulerGetTheirFirstTime() async throws {
        try await Stores.with("firer_backfill") { stores in
            let (_, project, _) = try await stores.automationProjects()
            let job = try await stores.seedJob(in: project)
            let schedule = try await stores.schedules.create(project: project, job: job, cron: "30 4 * * *", runAt: nil, actor: nil)
            try await stores.write("UPDATE schedules SET next_fire_at = NULL")
            let firer = ScheduleFirer(client: stores.client, logger: stores.logger)
            let now = try Self.utc("2030-06-01T12:00:00Z")
            #expect(try await firer.backfillNextFireTimes(now: now) == 1)
            #expect(try await stores.schedules.find(schedule.id, project: project).nextFireAt == (try Self.utc("2030-06-02T04:30:00Z")))
            #expect(try await firer.backfillNextFireTimes(now: now) == 0)
        }
    }
}

/// What the review of the scheduler found, each pinned.
@Suite struct ScheduleFirerEdgeTests {
    /// A one-time schedule skipped for overlap is not reported as having run.
    @Test func aSkippedOneTimeScheduleSaysItWasSkipped() async throws {
        try await Stores.with("firer_skip_once") { stores in
            let (_, project, _) = try await stores.automationProjects()
            let job = try await stores.seedJob(in: project)
            _ = try await stores.operations.create(job: job, reason: .user, requestedBy: nil)
            let at = try ScheduleFirerTests.utc("2030-01-01T00:00:00Z")
            let once = try await stores.schedules.create(
                project: project, job: job, cron: nil, runAt: at, overlap: .skip, actor: nil)
            let outcomes = try await ScheduleFirer(client: stores.client, logger: stores.logger).fireDue(now: at).outcomes
            #expect(outcomes.count == 1 && outcomes[0].skipped)
            let after = try await stores.schedules.find(once.id, project: project)
            #expect(after.disabledReason == "skipped: the previous run had not finished")
        }
    }

    /// An edit that leaves the times alone keeps a pending fire; one that changes them does not.
    @Test func anEditThatKeepsTheTimesKeepsAPendingFire() async throws {
        try await Stores.with("firer_edit_keep") { stores in
            let (_, project, _) = try await stores.automationProjects()
            let job = try await stores.seedJob(in: project)
            let hourly = try await stores.schedules.create(project: project, job: job, cron: "0 * * * *", runAt: nil, actor: nil)
            let pending = try ScheduleFirerTests.utc("2020-01-01T10:00:00Z")
            try await stores.write("UPDATE schedules SET next_fire_at = \(pending)")
            let described = try await stores.schedules.update(
                hourly.id, project: project, cron: "0 * * * *", runAt: nil, description: "still hourly", catchUp: .none, actor: nil)
            #expect(described.nextFireAt == pending && described.catchUp == .none)
            let moved = try await stores.schedules.update(hourly.id, project: project, cron: "30 * * * *", runAt: nil, actor: nil)
            #expect(try #require(moved.nextFireAt) > Date())
        }
    }

    /// Migration 8 on a database with one-time schedules whose time passed while nothing fired
    /// schedules: they are disabled, not run months late; future ones are due at their time.
    @Test func theMigrationDisablesOneTimeSchedulesWhoseTimePassed() async throws {
        try await TestDatabase.withDatabase("firer_migration") { client, _ in
            let logger = TestRedis.logger("harrow.test.store")
            try await Migrator(client: client, migrations: Migration.all.filter { $0.version < 8 }, logger: logger).migrate()
            let stores = Stores(client: client, logger: logger)
            let (_, project, _) = try await stores.automationProjects()
            let job = try await stores.seedJob(in: project)
            let future = try ScheduleFirerTests.utc("2100-01-01T00:00:00Z")
            for runAt in [try ScheduleFirerTests.utc("2020-01-01T00:00:00Z"), future] {
                try await stores.write("INSERT INTO schedules (project_id, job_id, run_at) VALUES (\(project), \(job), \(runAt))")
            }
            try await Migrator(client: client, logger: logger).migrate()
            #expect(
                try await stores.count(
                    "SELECT count(*)::int8 FROM schedules WHERE disabled_reason = 'its time passed before schedules fired' AND next_fire_at IS NULL"
                ) == 1)
            #expect(try await stores.count("SELECT count(*)::int8 FROM schedules WHERE next_fire_at = \(future)") == 1)
        }
    }
}
