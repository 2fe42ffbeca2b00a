import Foundation
import HarrowTestSupport
import PostgresNIO
import Testing

@testable import Store

@Suite struct TaskJobStoreTests {
    @Test func tasksAreCreatedFoundUpdatedListedAndArchived() async throws {
        try await Stores.with("task_crud") { stores in
            let (ada, _, project) = try await stores.ownedProject()
            let build = try await stores.tasks.create(project: project.id, name: " build ", script: "make\nmake test\n", actor: ada.id)
            #expect(build.name == "build" && build.script == "make\nmake test\n" && build.projectID == project.id)
            #expect(try await stores.tasks.find(build.id, project: project.id) == build)

            let edited = try await stores.tasks.update(build.id, project: project.id, script: "make all", actor: ada.id)
            #expect(edited.name == "build" && edited.script == "make all")
            let renamed = try await stores.tasks.update(build.id, project: project.id, name: "compile", actor: ada.id)
            #expect(renamed.name == "compile" && renamed.script == "make all")
            // Renaming a task to its own name is no duplicate.
            _ = try await stores.tasks.update(build.id, project: project.id, name: "compile", actor: ada.id)

            var created = [build.id]
            for index in 0..<4 {
                created.append(try await stores.tasks.create(project: project.id, name: "T\(index)", script: "true", actor: ada.id).id)
            }
            let read = try await stores.allPages(limit: 2) { try await stores.tasks.list(project: project.id, page: $0) }
            #expect(read.items.map(\.id) == created && read.pages == 3)

            try await stores.tasks.archive(build.id, project: project.id, actor: ada.id)
            await #expect(throws: StoreError.notFound("task")) { try await stores.tasks.find(build.id, project: project.id) }
            #expect(try await stores.tasks.find(build.id, project: project.id, includeArchived: true).archivedAt != nil)
            #expect(try await stores.tasks.list(project: project.id, page: try PageRequest()).items.count == 4)
            #expect(
                try await stores.activityNames(project: project.id).filter { $0.hasPrefix("task.") }.prefix(4) == [
                    "task.created", "task.updated", "task.updated", "task.updated",
                ])
            #expect(try await stores.activityNames(project: project.id).last == "task.archived")
        }
    }

    @Test func taskFailurePaths() async throws {
        try await Stores.with("task_failures") { stores in
            let (ada, organization, project) = try await stores.ownedProject()
            let other = try await stores.projects.create(organization: organization.id, name: "Other", actor: ada.id)
            let build = try await stores.tasks.create(project: project.id, name: "build", script: "make", actor: ada.id)

            for (name, script, field) in [("", "make", "name"), ("x", "  \n", "script"), ("x", "a\u{0}b", "script")] {
                let invalid = await #expect(throws: StoreError.self) {
                    try await stores.tasks.create(project: project.id, name: name, script: script, actor: ada.id)
                }
                #expect(invalid?.code == .invalid && invalid?.field == field)
            }
            let duplicate = await #expect(throws: StoreError.self) {
                try await stores.tasks.create(project: project.id, name: "build", script: "other", actor: ada.id)
            }
            #expect(duplicate?.code == .duplicate && duplicate?.field == "name")
            let test = try await stores.tasks.create(project: project.id, name: "test", script: "make test", actor: ada.id)
            let renamedOnto = await #expect(throws: StoreError.self) {
                try await stores.tasks.update(test.id, project: project.id, name: "build", actor: ada.id)
            }
            #expect(renamedOnto?.code == .duplicate)
            // The same name in another project is fine.
            _ = try await stores.tasks.create(project: other.id, name: "build", script: "make", actor: ada.id)

            await #expect(throws: StoreError.notFound("task")) { try await stores.tasks.find(build.id, project: other.id) }
            await #expect(throws: StoreError.notFound("task")) { try await stores.tasks.find(UUID(), project: project.id) }
            await #expect(throws: StoreError.notFound("task")) {
                try await stores.tasks.update(build.id, project: other.id, script: "rm -rf /", actor: ada.id)
            }
            await #expect(throws: StoreError.notFound("task")) {
                try await stores.tasks.archive(build.id, project: other.id, actor: ada.id)
            }
            await #expect(throws: StoreError.notFound("project")) {
                try await stores.tasks.create(project: UUID(), name: "x", script: "true", actor: ada.id)
            }

            try await stores.tasks.archive(build.id, project: project.id, actor: ada.id)
            await #expect(throws: StoreError.notFound("task")) {
                try await stores.tasks.archive(build.id, project: project.id, actor: ada.id)
            }
            await #expect(throws: StoreError.notFound("task")) {
                try await stores.tasks.update(build.id, project: project.id, script: "x", actor: ada.id)
            }
            _ = try await stores.tasks.create(project: project.id, name: "build", script: "make", actor: ada.id)

            try await stores.projects.archive(project.id, actor: ada.id)
            await #expect(throws: StoreError.notFound("project")) {
                try await stores.tasks.create(project: project.id, name: "late", script: "true", actor: ada.id)
            }
            await #expect(throws: StoreError.notFound("task")) { try await stores.tasks.find(test.id, project: project.id) }
        }
    }

    /// The schema has no unique index on task names: the store's check under the project's
    /// lock keeps concurrent creations of one name to a single task.
    @Test func concurrentCreationsOfOneNameLeaveOneTask() async throws {
        try await Stores.with("task_race") { stores in
            let (ada, _, project) = try await stores.ownedProject()
            let outcomes = try await withThrowingTaskGroup(of: StoreError.Code?.self) { group in
                for _ in 0..<6 {
                    group.addTask {
                        do {
                            _ = try await stores.tasks.create(project: project.id, name: "build", script: "make", actor: ada.id)
                            return nil
                        } catch let error as StoreError {
                            return error.code
                        }
                    }
                }
                return try await group.reduce(into: [StoreError.Code?]()) { $0.append($1) }
            }
            #expect(outcomes.filter { $0 == nil }.count == 1)
            #expect(outcomes.filter { $0 == .duplicate }.count == 5)
        }
    }

    @Test func jobsAreCreatedFoundUpdatedAndListed() async throws {
        try await Stores.with("job_crud") { stores in
            let (ada, _, project) = try await stores.ownedProject()
            let environment = try await stores.defaultEnvironment(of: project.id)
            let staging = try await stores.environments.create(project: project.id, name: "staging", actor: ada.id)
            let task = try await stores.tasks.create(project: project.id, name: "deploy", script: "./deploy", actor: ada.id)
            let job = try await stores.jobs.create(
                project: project.id, name: "deploy", task: task.id, environment: environment.id, actor: ada.id)
            #expect(job.timeLimitSeconds == 900 && job.taskID == task.id && job.environmentID == environment.id)
            #expect(try await stores.jobs.find(job.id, project: project.id) == job)

            let moved = try await stores.jobs.update(
                job.id, project: project.id, environment: staging.id, timeLimitSeconds: 60, actor: ada.id)
            #expect(moved.environmentID == staging.id && moved.timeLimitSeconds == 60 && moved.name == "deploy" && moved.taskID == task.id)

            var created = [job.id]
            for index in 0..<4 {
                created.append(
                    try await stores.jobs.create(
                        project: project.id, name: "J\(index)", task: task.id, environment: staging.id, timeLimitSeconds: 3600,
                        actor: ada.id
                    ).id)
            }
            let read = try await stores.allPages(limit: 3) { try await stores.jobs.list(project: project.id, page: $0) }
            #expect(read.items.map(\.id) == created && read.pages == 2)
            #expect(read.items.last?.timeLimitSeconds == 3600)
            #expect(
                try await stores.activityNames(project: project.id).filter { $0.hasPrefix("job.") }.prefix(2) == [
                    "job.created", "job.updated",
                ])
        }
    }

    /// A job's task and environment are live rows of its own project; anything else is not
    /// found, naming the field.
    @Test func jobFailurePaths() async throws {
        try await Stores.with("job_failures") { stores in
            let (ada, organization, project) = try await stores.ownedProject()
            let environment = try await stores.defaultEnvironment(of: project.id)
            let task = try await stores.tasks.create(project: project.id, name: "build", script: "make", actor: ada.id)
            let other = try await stores.projects.create(organization: organization.id, name: "Other", actor: ada.id)
            let foreignEnvironment = try await stores.defaultEnvironment(of: other.id)
            let foreignTask = try await stores.tasks.create(project: other.id, name: "build", script: "make", actor: ada.id)
            let taskID = task.id
            let environmentID = environment.id
            func create(
                _ name: String = "job", task: UUID? = nil, environment: UUID? = nil, timeLimit: Int = 900
            ) async throws
                -> JobDefinition
            {
                try await stores.jobs.create(
                    project: project.id, name: name, task: task ?? taskID, environment: environment ?? environmentID,
                    timeLimitSeconds: timeLimit, actor: ada.id)
            }

            let references: [(task: UUID?, environment: UUID?, field: String)] = [
                (foreignTask.id, nil, "task_id"), (UUID(), nil, "task_id"), (nil, foreignEnvironment.id, "environment_id"),
                (nil, UUID(), "environment_id"),
            ]
            for (task, environment, field) in references {
                let missing = await #expect(throws: StoreError.self) { try await create(task: task, environment: environment) }
                #expect(missing?.code == .notFound && missing?.field == field)
            }
            for limit in [0, -5, Int(Int32.max) + 1] {
                let invalid = await #expect(throws: StoreError.self) { try await create(timeLimit: limit) }
                #expect(invalid?.code == .invalid && invalid?.field == "time_limit_seconds")
            }
            let empty = await #expect(throws: StoreError.self) { try await create(" ") }
            #expect(empty?.field == "name")
            await #expect(throws: StoreError.notFound("project")) {
                try await stores.jobs.create(project: UUID(), name: "x", task: task.id, environment: environment.id, actor: nil)
            }

            let job = try await create()
            let duplicate = await #expect(throws: StoreError.self) { try await create() }
            #expect(duplicate?.code == .duplicate && duplicate?.field == "name")
            await #expect(throws: StoreError.notFound("job")) { try await stores.jobs.find(job.id, project: other.id) }
            await #expect(throws: StoreError.notFound("job")) { try await stores.jobs.find(UUID(), project: project.id) }
            await #expect(throws: StoreError.notFound("job")) { try await stores.jobs.archive(job.id, project: other.id, actor: nil) }
            let crossUpdate = await #expect(throws: StoreError.self) {
                try await stores.jobs.update(job.id, project: project.id, task: foreignTask.id, actor: ada.id)
            }
            #expect(crossUpdate?.code == .notFound && crossUpdate?.field == "task_id")
            let zero = await #expect(throws: StoreError.self) {
                try await stores.jobs.update(job.id, project: project.id, timeLimitSeconds: 0, actor: ada.id)
            }
            #expect(zero?.field == "time_limit_seconds")

            // Archived tasks and environments take no new jobs.
            let old = try await stores.tasks.create(project: project.id, name: "old", script: "true", actor: ada.id)
            try await stores.tasks.archive(old.id, project: project.id, actor: ada.id)
            let archivedTask = await #expect(throws: StoreError.self) { try await create("j2", task: old.id) }
            #expect(archivedTask?.code == .notFound && archivedTask?.field == "task_id")
            let retired = try await stores.environments.create(project: project.id, name: "retired", actor: ada.id)
            try await stores.environments.archive(retired.id, project: project.id, actor: ada.id)
            let archivedEnvironment = await #expect(throws: StoreError.self) { try await create("j2", environment: retired.id) }
            #expect(archivedEnvironment?.code == .notFound && archivedEnvironment?.field == "environment_id")
            let archivedUpdate = await #expect(throws: StoreError.self) {
                try await stores.jobs.update(job.id, project: project.id, environment: retired.id, actor: ada.id)
            }
            #expect(archivedUpdate?.field == "environment_id")

            // The composite foreign keys, the schema's own guard, report the same fields.
            #expect(StoreError.constraintMessages["jobs_task_id_fkey"]?.field == "task_id")
            #expect(StoreError.constraintMessages["jobs_environment_id_fkey"]?.field == "environment_id")
        }
    }

    /// Archiving a job disables its schedules; a task is not archived while live jobs run it.
    @Test func archivingAJobDisablesItsSchedulesAndFreesItsTask() async throws {
        try await Stores.with("job_archive") { stores in
            let (ada, _, project) = try await stores.ownedProject()
            let environment = try await stores.defaultEnvironment(of: project.id)
            let task = try await stores.tasks.create(project: project.id, name: "backup", script: "./backup", actor: ada.id)
            let job = try await stores.jobs.create(
                project: project.id, name: "nightly", task: task.id, environment: environment.id, actor: ada.id)
            try await stores.write("INSERT INTO schedules (project_id, job_id, cron) VALUES (\(project.id), \(job.id), '0 3 * * *')")

            let inUse = await #expect(throws: StoreError.self) {
                try await stores.tasks.archive(task.id, project: project.id, actor: ada.id)
            }
            #expect(inUse?.code == .conflict)
            #expect(try await stores.tasks.find(task.id, project: project.id).archivedAt == nil, "the refusal rolled back")

            try await stores.jobs.archive(job.id, project: project.id, actor: ada.id)
            await #expect(throws: StoreError.notFound("job")) { try await stores.jobs.find(job.id, project: project.id) }
            await #expect(throws: StoreError.notFound("job")) { try await stores.jobs.archive(job.id, project: project.id, actor: ada.id) }
            await #expect(throws: StoreError.notFound("job")) {
                try await stores.jobs.update(job.id, project: project.id, name: "x", actor: ada.id)
            }
            let reason = try await stores.client.value(
                "SELECT disabled_reason FROM schedules WHERE job_id = \(job.id) AND disabled_at IS NOT NULL", as: String.self)
            #expect(reason == "job archived")
            #expect(try await stores.activityNames(project: project.id).last == "job.archived")

            // The name is free again, and the task can go now.
            _ = try await stores.jobs.create(
                project: project.id, name: "nightly", task: task.id, environment: environment.id, actor: ada.id)
            let again = await #expect(throws: StoreError.self) {
                try await stores.tasks.archive(task.id, project: project.id, actor: ada.id)
            }
            #expect(again?.code == .conflict)
            let live = try #require(try await stores.jobs.list(project: project.id, page: try PageRequest()).items.first)
            try await stores.jobs.archive(live.id, project: project.id, actor: ada.id)
            try await stores.tasks.archive(task.id, project: project.id, actor: ada.id)
        }
    }
}
