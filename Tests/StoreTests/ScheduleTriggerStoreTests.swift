import Foundation
import HarrowTestSupport
import PostgresNIO
import Testing

@testable import Store

@Suite struct ScheduleTriggerStoreTests {
    static func utc(_ text: String) throws -> Date {
        try Date(text, strategy: .iso8601)
    }

    static func fires(_ spec: String, in zone: String = "UTC", after: String, count: Int = 5) throws -> [Date] {
        let timeZone = try #require(TimeZone(identifier: zone))
        return try CronSpec(spec, timeZone: timeZone).nextFireTimes(after: try utc(after), count: count)
    }

    @Test func cronSpecsParseTheirFieldsAndRefuseWhatIsOutOfRange() throws {
        for spec in ["*/15 * * * *", "0 9-17/2 * * mon-fri", "0 0 1,15 * *", "0 0 * JAN,jul sun", "5 4 * * 7", " 0  0\t* * * "] {
            _ = try CronSpec(spec)
        }
        #expect(try CronSpec(" 0  0\t* * * ").text == "0 0 * * *")
        let invalid = [
            "", "* * * *", "* * * * * *", "60 * * * *", "* 24 * * *", "* * 0 * *", "* * 32 * *", "* * * 13 *", "* * * * 8",
            "*/0 * * * *", "5-1 * * * *", "a * * * *", "1/5 * * * *", "-1 * * * *", "1,,2 * * * *", "* * * foo *", "0 0 30 2 *",
            "0 0 31 4,6,9,11 *",
        ]
        for spec in invalid {
            let error = #expect(throws: StoreError.self, "\(spec)") { try CronSpec(spec) }
            #expect(error?.code == .invalid && error?.field == "cron", "\(spec)")
        }
        let range = #expect(throws: StoreError.self) { try CronSpec("99 * * * *") }
        #expect(range?.message.contains("minute") == true && range?.message.contains("99") == false)
    }

    @Test func nextFireTimesInUTCAcrossMonthEndsAndLeapDays() throws {
        #expect(
            try Self.fires("*/15 * * * *", after: "2025-01-01T00:07:30Z")
                == ["00:15", "00:30", "00:45", "01:00", "01:15"].map { try Self.utc("2025-01-01T\($0):00Z") })
        // The 31st exists in seven months only.
        #expect(
            try Self.fires("0 0 31 * *", after: "2025-01-31T12:00:00Z")
                == ["2025-03-31", "2025-05-31", "2025-07-31", "2025-08-31", "2025-10-31"].map { try Self.utc("\($0)T00:00:00Z") })
        #expect(
            try Self.fires("0 12 29 2 *", after: "2025-01-01T00:00:00Z", count: 2)
                == [try Self.utc("2028-02-29T12:00:00Z"), try Self.utc("2032-02-29T12:00:00Z")])
        // Both day fields restricted: the 13th or a Friday. June 2025: Fri 6, Fri 13, Fri 20.
        #expect(
            try Self.fires("0 0 13 * 5", after: "2025-06-01T00:00:00Z", count: 3)
                == ["2025-06-06", "2025-06-13", "2025-06-20"].map { try Self.utc("\($0)T00:00:00Z") })
        // Strictly after: a fire time equal to `after` is not repeated.
        #expect(try Self.fires("0 0 * * *", after: "2025-01-01T00:00:00Z", count: 1) == [try Self.utc("2025-01-02T00:00:00Z")])
        #expect(try CronSpec("* * * * *").nextFireTimes(after: Date(), count: 0).isEmpty)
    }

    /// Europe/Berlin springs forward on 2025-03-30 (02:00 CET → 03:00 CEST) and falls back on
    /// 2025-10-26 (03:00 CEST → 02:00 CET).
    @Test func nextFireTimesAcrossDaylightSavingTime() throws {
        // A daily job in the skipped hour runs when the clocks jump, not never.
        #expect(
            try Self.fires("30 2 * * *", in: "Europe/Berlin", after: "2025-03-29T00:00:00Z", count: 3)
                == ["2025-03-29T01:30:00Z", "2025-03-30T01:00:00Z", "2025-03-31T00:30:00Z"].map(Self.utc))
        // ... and once, at the first 02:30, when the hour repeats.
        #expect(
            try Self.fires("30 2 * * *", in: "Europe/Berlin", after: "2025-10-25T12:00:00Z", count: 2)
                == ["2025-10-26T00:30:00Z", "2025-10-27T01:30:00Z"].map(Self.utc))
        // An hourly job keeps its interval: both 02:30s in the fall, no 02:30 in the spring.
        #expect(
            try Self.fires("30 * * * *", in: "Europe/Berlin", after: "2025-10-25T23:45:00Z", count: 3)
                == ["2025-10-26T00:30:00Z", "2025-10-26T01:30:00Z", "2025-10-26T02:30:00Z"].map(Self.utc))
        #expect(
            try Self.fires("30 * * * *", in: "Europe/Berlin", after: "2025-03-30T00:00:00Z", count: 3)
                == ["2025-03-30T00:30:00Z", "2025-03-30T01:30:00Z", "2025-03-30T02:30:00Z"].map(Self.utc))
        // Weekdays at 09:00 in New York: EST on Friday, EDT from Monday (DST began Sunday).
        #expect(
            try Self.fires("0 9 * * 1-5", in: "America/New_York", after: "2025-03-07T13:00:00Z", count: 2)
                == ["2025-03-07T14:00:00Z", "2025-03-10T13:00:00Z"].map(Self.utc))
    }

    /// A schedule needs a live job of its project, exactly one of a cron spec and a time, and a
    /// known time zone.
    @Test func schedulesNeedALiveJobAndOneValidSpec() async throws {
        try await Stores.with("schedule_create") { stores in
            let (ada, project, other) = try await stores.automationProjects()
            let job = try await stores.seedJob(in: project)
            let foreignJob = try await stores.seedJob(in: other)
            let nightly = try await stores.schedules.create(
                project: project, job: job, cron: " 0  3 * * * ", runAt: nil, timeZone: "Europe/Berlin", description: " nightly ",
                actor: ada.id)
            #expect(nightly.cron == "0 3 * * *" && nightly.timeZone == "Europe/Berlin" && nightly.description == "nightly")
            #expect(nightly.createdBy == ada.id && nightly.runAt == nil && nightly.disabledAt == nil)
            let next = nightly.nextFireTimes(after: try Self.utc("2025-07-01T12:00:00Z"), count: 5)
            let tomorrow = try Self.utc("2025-07-02T01:00:00Z")
            #expect(next.first == tomorrow && next.count == 5)
            let once = try await stores.schedules.create(
                project: project, job: job, cron: nil, runAt: try Self.utc("2030-01-01T00:00:00Z"), actor: nil)
            let before = try Self.utc("2029-01-01T00:00:00Z")
            let after = try Self.utc("2031-01-01T00:00:00Z")
            #expect(once.timeZone == "UTC" && once.nextFireTimes(after: before, count: 5) == [once.runAt])
            #expect(once.nextFireTimes(after: after, count: 5).isEmpty)

            let invalid: [(cron: String?, runAt: Date?, zone: String, field: String)] = [
                ("0 3 * * *", Date(), "UTC", "cron"), (nil, nil, "UTC", "cron"), ("  ", nil, "UTC", "cron"),
                ("0 25 * * *", nil, "UTC", "cron"),
                ("0 3 * * *", nil, "Mars/Olympus_Mons", "time_zone"), ("0 3 * * *", nil, "", "time_zone"),
            ]
            for (cron, runAt, zone, field) in invalid {
                let error = await #expect(throws: StoreError.self) {
                    try await stores.schedules.create(project: project, job: job, cron: cron, runAt: runAt, timeZone: zone, actor: nil)
                }
                #expect(error?.code == .invalid && error?.field == field, "\(String(describing: cron)) \(zone)")
            }
            for missing in [UUID(), foreignJob] {
                await #expect(throws: StoreError.notFound("job")) {
                    try await stores.schedules.create(project: project, job: missing, cron: "* * * * *", runAt: nil, actor: nil)
                }
            }
            try await stores.archiveSeededJob(job, project: project)
            await #expect(throws: StoreError.notFound("job")) {
                try await stores.schedules.create(project: project, job: job, cron: "* * * * *", runAt: nil, actor: nil)
            }
            #expect(
                try await stores.activityNames(project: project).filter { $0.hasPrefix("schedule.") } == [
                    "schedule.created", "schedule.created",
                ])
        }
    }

    /// Schedules are updated, disabled with a reason, enabled again while their job is live,
    /// listed by project and by job, and archived.
    @Test func schedulesAreUpdatedDisabledEnabledListedAndArchived() async throws {
        try await Stores.with("schedule_lifecycle") { stores in
            let (ada, project, other) = try await stores.automationProjects()
            let build = try await stores.seedJob(in: project)
            let deploy = try await stores.seedJob(in: project)
            var ofBuild: [UUID] = []
            for minute in 0..<3 {
                ofBuild.append(
                    try await stores.schedules.create(project: project, job: build, cron: "\(minute) * * * *", runAt: nil, actor: nil).id)
            }
            let ofDeploy = try await stores.schedules.create(project: project, job: deploy, cron: "0 0 * * *", runAt: nil, actor: nil)
            let byJob = try await stores.allPages(limit: 2) { try await stores.schedules.list(project: project, job: build, page: $0) }
            #expect(byJob.items.map(\.id) == ofBuild && byJob.pages == 2)
            let all = try await stores.allPages(limit: 3) { try await stores.schedules.list(project: project, page: $0) }
            #expect(all.items.map(\.id) == ofBuild + [ofDeploy.id])
            #expect(try await stores.schedules.list(project: other, page: try PageRequest()).items.isEmpty)

            let runAt = try Self.utc("2030-06-01T08:00:00Z")
            let updated = try await stores.schedules.update(
                ofDeploy.id, project: project, cron: nil, runAt: runAt, timeZone: "Asia/Tokyo", actor: ada.id)
            #expect(updated.cron == nil && updated.runAt == runAt && updated.timeZone == "Asia/Tokyo")
            let bad = await #expect(throws: StoreError.self) {
                try await stores.schedules.update(ofDeploy.id, project: project, cron: "* * *", runAt: nil, actor: nil)
            }
            #expect(bad?.field == "cron")
            await #expect(throws: StoreError.notFound("schedule")) {
                try await stores.schedules.update(ofDeploy.id, project: other, cron: "* * * * *", runAt: nil, actor: nil)
            }

            let disabled = try await stores.schedules.disable(ofBuild[0], project: project, reason: " maintenance ", actor: ada.id)
            #expect(disabled.disabledAt != nil && disabled.disabledReason == "maintenance")
            #expect(disabled.nextFireTimes(after: Date(), count: 5).isEmpty)
            let enabled = try await stores.schedules.enable(ofBuild[0], project: project, actor: ada.id)
            #expect(enabled.disabledAt == nil && enabled.disabledReason == nil)
            await #expect(throws: StoreError.notFound("schedule")) {
                try await stores.schedules.enable(UUID(), project: project, actor: nil)
            }

            // Archiving the job disables its schedules; they stay disabled while it is archived.
            try await stores.archiveSeededJob(build, project: project)
            #expect(try await stores.schedules.find(ofBuild[1], project: project).disabledReason == "job archived")
            let orphan = await #expect(throws: StoreError.self) {
                try await stores.schedules.enable(ofBuild[1], project: project, actor: nil)
            }
            #expect(orphan?.code == .conflict)

            try await stores.schedules.archive(ofDeploy.id, project: project, actor: ada.id)
            await #expect(throws: StoreError.notFound("schedule")) { try await stores.schedules.find(ofDeploy.id, project: project) }
            #expect(try await stores.schedules.find(ofDeploy.id, project: project, includeArchived: true).archivedAt != nil)
            await #expect(throws: StoreError.notFound("schedule")) {
                try await stores.schedules.archive(ofDeploy.id, project: project, actor: nil)
            }
            await #expect(throws: StoreError.notFound("schedule")) {
                try await stores.schedules.disable(ofDeploy.id, project: project, reason: "x", actor: nil)
            }
            #expect(
                try await stores.activityNames(project: project).filter { $0.hasPrefix("schedule.") }.suffix(4)
                    == ["schedule.updated", "schedule.disabled", "schedule.enabled", "schedule.archived"])
        }
    }

    /// Triggers tie a live repository to a live job of the same project, with a ref pattern
    /// that compiles; a repository's triggers are its live ones.
    @Test func gitTriggersNeedParentsOfTheirProjectAndAPatternThatCompiles() async throws {
        try await Stores.with("git_triggers") { stores in
            let (ada, project, other) = try await stores.automationProjects()
            let job = try await stores.seedJob(in: project)
            let foreignJob = try await stores.seedJob(in: other)
            let repository = try await stores.repositories.create(project: project, url: "git@github.com:acme/web.git", actor: ada.id)
            let foreignRepository = try await stores.repositories.create(
                project: other, url: "git@github.com:acme/other.git", actor: ada.id)

            let main = try await stores.gitTriggers.create(
                project: project, repository: repository.id, job: job, name: "main", refPattern: "refs/heads/main", changeType: .change,
                actor: ada.id)
            #expect(main.refPattern == "refs/heads/main" && main.changeType == .change && main.repositoryID == repository.id)
            let tags = try await stores.gitTriggers.create(
                project: project, repository: repository.id, job: job, name: "tags", refPattern: #"refs/tags/v\d+"#, changeType: .add,
                actor: nil)
            let fallback = try await stores.gitTriggers.create(
                project: project, repository: repository.id, job: job, name: "any", changeType: .remove, actor: nil)
            #expect(fallback.refPattern == ".*")

            for pattern in ["refs/(heads", "[", "", "*main"] {
                let error = await #expect(throws: StoreError.self) {
                    try await stores.gitTriggers.create(
                        project: project, repository: repository.id, job: job, name: "bad", refPattern: pattern, changeType: .add,
                        actor: nil)
                }
                #expect(error?.code == .invalid && error?.field == "ref_pattern", "\(pattern)")
            }
            await #expect(throws: StoreError.notFound("repository")) {
                try await stores.gitTriggers.create(
                    project: project, repository: foreignRepository.id, job: job, name: "x", changeType: .add, actor: nil)
            }
            await #expect(throws: StoreError.notFound("job")) {
                try await stores.gitTriggers.create(
                    project: project, repository: repository.id, job: foreignJob, name: "x", changeType: .add, actor: nil)
            }
            // The composite keys refuse what a store would let through.
            let crossProject = await #expect(throws: StoreError.self) {
                try await stores.write(
                    """
                    INSERT INTO git_triggers (project_id, repository_id, job_id, name, change_type)
                    VALUES (\(project), \(foreignRepository.id), \(job), 'x', 'add')
                    """)
            }
            #expect(crossProject?.code == .notFound && crossProject?.constraint == "git_triggers_repository_id_fkey")

            let renamed = try await stores.gitTriggers.update(
                tags.id, project: project, name: "releases", refPattern: "refs/tags/.*", changeType: .change, actor: ada.id)
            #expect(renamed.name == "releases" && renamed.changeType == .change)
            await #expect(throws: StoreError.notFound("git trigger")) {
                try await stores.gitTriggers.update(tags.id, project: other, name: "x", refPattern: ".*", changeType: .add, actor: nil)
            }
            let listed = try await stores.allPages(limit: 2) { try await stores.gitTriggers.list(project: project, page: $0) }
            #expect(listed.items.map(\.id) == [main.id, tags.id, fallback.id] && listed.pages == 2)

            try await stores.gitTriggers.archive(fallback.id, project: project, actor: ada.id)
            #expect(try await stores.gitTriggers.triggers(forRepository: repository.id).map(\.id) == [main.id, tags.id])
            await #expect(throws: StoreError.notFound("git trigger")) { try await stores.gitTriggers.find(fallback.id, project: project) }
            await #expect(throws: StoreError.notFound("git trigger")) {
                try await stores.gitTriggers.archive(fallback.id, project: project, actor: nil)
            }

            // Archiving the repository archives its triggers; archived repositories take no new ones.
            try await stores.repositories.archive(repository.id, project: project, actor: ada.id)
            #expect(try await stores.gitTriggers.triggers(forRepository: repository.id).isEmpty)
            await #expect(throws: StoreError.notFound("repository")) {
                try await stores.gitTriggers.create(
                    project: project, repository: repository.id, job: job, name: "x", changeType: .add, actor: nil)
            }
            #expect(
                try await stores.activityNames(project: project).filter { $0.hasPrefix("git_trigger.") }
                    == ["git_trigger.created", "git_trigger.created", "git_trigger.created", "git_trigger.updated", "git_trigger.archived"])
        }
    }
}
