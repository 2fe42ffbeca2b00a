import Foundation
import HarrowTestSupport
import PostgresNIO
import Testing

@testable import Store

@Suite struct OperationActivityStoreTests {
    /// Queuing records the operation with the job's time limit and, in the same transaction,
    /// its queue job under the operation's id; a job that cannot run records neither.
    @Test func anOperationIsQueuedTogetherWithItsQueueJob() async throws {
        try await Stores.with("operation_create") { stores in
            let (ada, project, other) = try await stores.automationProjects()
            let job = try await stores.seedJob(in: project, timeLimitSeconds: 120)
            let operation = try await stores.operations.create(
                job: job, project: project, reason: .user, requestedBy: ada.id, parameters: ["branch": "main", "dry_run": "true"])
            #expect(operation.status == .queued && operation.reason == .user && operation.requestedBy == ada.id)
            #expect(operation.timeLimitSeconds == 120 && operation.parameters == ["branch": "main", "dry_run": "true"])
            #expect(operation.projectID == project && operation.jobID == job && operation.startedAt == nil)
            let outbox = try await stores.client.query(
                "SELECT queue, type, payload FROM outbox WHERE id = \(operation.id)")
            var rows: [(String, String, String)] = []
            for try await row in outbox.decode((String, String, String).self) { rows.append(row) }
            #expect(rows.count == 1)
            #expect(rows.first?.0 == "operations" && rows.first?.1 == "run-operation")
            #expect(rows.first?.2 == #"{"operation_id":"\#(operation.id.uuidString.lowercased())"}"#)
            #expect(try await stores.operations.find(operation.id) == operation)
            #expect(try await stores.operations.find(operation.id, project: project) == operation)
            await #expect(throws: StoreError.notFound("operation")) { try await stores.operations.find(operation.id, project: other) }

            // A scheduled run names no user; a later change of the job's limit does not touch it.
            try await stores.write("UPDATE jobs SET time_limit_seconds = 60 WHERE id = \(job)")
            let scheduled = try await stores.operations.create(job: job, reason: .schedule, requestedBy: nil)
            #expect(scheduled.timeLimitSeconds == 60 && scheduled.requestedBy == nil && scheduled.parameters.isEmpty)
            #expect(try await stores.operations.find(operation.id).timeLimitSeconds == 120)

            let foreignJob = try await stores.seedJob(in: other)
            for missing in [UUID(), foreignJob] {
                await #expect(throws: StoreError.notFound("job")) {
                    try await stores.operations.create(job: missing, project: project, reason: .user, requestedBy: nil)
                }
            }
            let tooMany = Dictionary(uniqueKeysWithValues: (0...100).map { ("p\($0)", "v") })
            for parameters in [tooMany, ["": "v"], ["name": String(repeating: "x", count: 65_537)]] {
                let error = await #expect(throws: StoreError.self) {
                    try await stores.operations.create(job: job, reason: .user, requestedBy: nil, parameters: parameters)
                }
                #expect(error?.code == .invalid && error?.field == "parameters")
            }
            try await stores.archiveSeededJob(job, project: project)
            await #expect(throws: StoreError.notFound("job")) {
                try await stores.operations.create(job: job, reason: .retry, requestedBy: nil)
            }
            #expect(try await stores.count("SELECT count(*)::int8 FROM outbox WHERE type = 'run-operation'") == 2)
            #expect(try await stores.count("SELECT count(*)::int8 FROM operations") == 2)
            let actor = try await stores.client.value(
                "SELECT actor_id FROM activities WHERE name = 'operation.queued' ORDER BY id LIMIT 1", as: UUID.self)
            #expect(actor == ada.id)
        }
    }

    /// queued → running → succeeded | failed | timed_out, queued | running → canceled; any
    /// other transition is a conflict that names the status found.
    @Test func transitionsFollowTheStateMachine() async throws {
        try await Stores.with("operation_states") { stores in
            let (ada, project, other) = try await stores.automationProjects()
            let job = try await stores.seedJob(in: project)
            let operations = stores.operations

            let first = try await operations.create(job: job, reason: .webhook, requestedBy: nil)
            let early = await #expect(throws: StoreError.self) {
                try await operations.finish(first.id, status: .succeeded, exitStatus: 0, logLocation: nil)
            }
            #expect(early?.code == .conflict && early?.message.contains("queued") == true)
            let running = try await operations.start(first.id)
            #expect(running.status == .running && running.startedAt != nil)
            let twice = await #expect(throws: StoreError.self) { try await operations.start(first.id) }
            #expect(twice?.code == .conflict && twice?.message == "the operation is running, not queued")
            let notFinal = await #expect(throws: StoreError.self) {
                try await operations.finish(first.id, status: .running, exitStatus: nil, logLocation: nil)
            }
            #expect(notFinal?.code == .invalid && notFinal?.field == "status")
            let done = try await operations.finish(first.id, status: .succeeded, exitStatus: 0, logLocation: " logs/1.log ")
            #expect(done.status == .succeeded && done.exitStatus == 0 && done.logLocation == "logs/1.log" && done.finishedAt != nil)
            #expect(done.status.isFinal && !Store.Operation.Status.running.isFinal)
            let late = await #expect(throws: StoreError.self) { try await operations.cancel(first.id, project: project, actor: ada.id) }
            #expect(late?.code == .conflict && late?.message.contains("succeeded") == true)

            let second = try await operations.create(job: job, reason: .user, requestedBy: ada.id)
            await #expect(throws: StoreError.notFound("operation")) { try await operations.cancel(second.id, project: other, actor: nil) }
            let canceled = try await operations.cancel(second.id, project: project, actor: ada.id)
            #expect(canceled.status == .canceled && canceled.canceledAt != nil && canceled.startedAt == nil)
            let revived = await #expect(throws: StoreError.self) { try await operations.start(second.id) }
            #expect(revived?.message.contains("canceled") == true)

            let third = try await operations.create(job: job, reason: .gitTrigger, requestedBy: nil)
            _ = try await operations.start(third.id)
            let timedOut = try await operations.finish(third.id, status: .timedOut, exitStatus: nil, logLocation: nil)
            #expect(timedOut.status == .timedOut && timedOut.exitStatus == nil && timedOut.reason == .gitTrigger)
            let fourth = try await operations.create(job: job, reason: .notification, requestedBy: nil)
            _ = try await operations.start(fourth.id)
            #expect(try await operations.finish(fourth.id, status: .failed, exitStatus: 2, logLocation: nil).exitStatus == 2)
            let stopped = try await operations.cancel(
                try await operations.start(try await operations.create(job: job, reason: .retry, requestedBy: nil).id).id, project: project,
                actor: nil)
            #expect(stopped.status == .canceled && stopped.startedAt != nil)

            await #expect(throws: StoreError.notFound("operation")) { try await operations.start(UUID()) }
            await #expect(throws: StoreError.notFound("operation")) {
                try await operations.finish(UUID(), status: .failed, exitStatus: 1, logLocation: nil)
            }
            let outOfRange = await #expect(throws: StoreError.self) {
                try await operations.finish(fourth.id, status: .failed, exitStatus: Int(Int32.max) + 1, logLocation: nil)
            }
            #expect(outOfRange?.field == "exit_status")
            #expect(
                try await stores.activityNames(project: project).filter { $0.hasPrefix("operation.") } == [
                    "operation.queued", "operation.started", "operation.succeeded", "operation.queued", "operation.canceled",
                    "operation.queued", "operation.started", "operation.timed_out", "operation.queued", "operation.started",
                    "operation.failed", "operation.queued", "operation.started", "operation.canceled",
                ])
        }
    }

    /// Two workers that take the same operation at once: exactly one starts it, the other gets
    /// a conflict; the same for a finish racing a cancel.
    @Test func racingTransitionsHaveExactlyOneWinner() async throws {
        try await Stores.with("operation_race") { stores in
            let (_, project, _) = try await stores.automationProjects()
            let job = try await stores.seedJob(in: project)
            let operations = stores.operations
            for _ in 0..<10 {
                let operation = try await operations.create(job: job, reason: .schedule, requestedBy: nil)
                let starts = try await Self.race(2) { _ in try await operations.start(operation.id) }
                #expect(starts.wins == 1 && starts.conflicts == 1)
                let ends = try await Self.race(2) { index in
                    index == 0
                        ? try await operations.finish(operation.id, status: .succeeded, exitStatus: 0, logLocation: nil)
                        : try await operations.cancel(operation.id, project: project, actor: nil)
                }
                #expect(ends.wins == 1 && ends.conflicts == 1)
            }
            #expect(try await stores.count("SELECT count(*)::int8 FROM activities WHERE name = 'operation.started'") == 10)
        }
    }

    /// Runs `body` `count` times concurrently; counts successes and conflicts (any other error
    /// fails the test).
    static func race(
        _ count: Int, _ body: @escaping @Sendable (Int) async throws -> Store.Operation
    ) async throws -> (wins: Int, conflicts: Int) {
        try await withThrowingTaskGroup(of: Bool.self) { group in
            for index in 0..<count {
                group.addTask {
                    do {
                        _ = try await body(index)
                        return true
                    } catch let error as StoreError where error.code == .conflict {
                        return false
                    }
                }
            }
            var wins = 0
            var conflicts = 0
            for try await won in group { if won { wins += 1 } else { conflicts += 1 } }
            return (wins, conflicts)
        }
    }

    /// Operations list newest first, by project and by job; keyset pages hold every operation
    /// once, and one queued while pages are read does not shift them.
    @Test func operationsListNewestFirstInStablePages() async throws {
        try await Stores.with("operation_pages") { stores in
            let (_, project, other) = try await stores.automationProjects()
            let build = try await stores.seedJob(in: project)
            let deploy = try await stores.seedJob(in: project)
            var created: [UUID] = []
            for index in 0..<7 {
                created.append(
                    try await stores.operations.create(job: index.isMultiple(of: 2) ? build : deploy, reason: .user, requestedBy: nil).id)
            }
            var seen: [UUID] = []
            var cursor: String?
            var pages = 0
            repeat {
                let page = try await stores.operations.list(project: project, page: try PageRequest(limit: 3, cursor: cursor))
                seen += page.items.map(\.id)
                cursor = page.nextCursor
                pages += 1
                if pages == 1 { _ = try await stores.operations.create(job: build, reason: .user, requestedBy: nil) }
            } while cursor != nil
            #expect(seen == created.reversed() && pages == 3)

            let ofBuild = try await stores.allPages(limit: 2) { try await stores.operations.list(project: project, job: build, page: $0) }
            #expect(ofBuild.items.count == 5 && ofBuild.items.allSatisfy { $0.jobID == build })
            #expect(zip(ofBuild.items, ofBuild.items.dropFirst()).allSatisfy { $0.createdAt >= $1.createdAt })
            #expect(try await stores.operations.list(project: other, page: try PageRequest()).items.isEmpty)
            #expect(try await stores.operations.list(project: other, job: build, page: try PageRequest()).items.isEmpty)
            let bad = await #expect(throws: StoreError.self) {
                try await stores.operations.list(project: project, page: try PageRequest(cursor: "garbage"))
            }
            #expect(bad?.field == "cursor")
        }
    }

    /// A project's activities, newest first, paged by id; payloads come back as strings.
    @Test func activitiesListNewestFirstByID() async throws {
        try await Stores.with("activities") { stores in
            let (ada, project, other) = try await stores.automationProjects()
            let job = try await stores.seedJob(in: project)
            for _ in 0..<4 { _ = try await stores.operations.create(job: job, reason: .user, requestedBy: ada.id) }
            try await stores.write(
                """
                INSERT INTO activities (name, payload, project_id) VALUES ('custom.event', '{"count": 3, "ok": true, "note": "hi"}', \(project))
                """)
            let listed = try await stores.allPages(limit: 2) { try await stores.activities.list(project: project, page: $0) }
            #expect(listed.items.map(\.name) == ["custom.event"] + Array(repeating: "operation.queued", count: 4) + ["project.created"])
            #expect(listed.pages == 3)
            #expect(zip(listed.items, listed.items.dropFirst()).allSatisfy { $0.id > $1.id })
            #expect(listed.items.allSatisfy { $0.projectID == project })
            #expect(listed.items[0].payload == ["count": "3", "ok": "true", "note": "hi"])
            let queued = listed.items[1]
            #expect(
                queued.actorID == ada.id && queued.payload["job_id"] == job.uuidString.lowercased() && queued.payload["reason"] == "user")

            let first = try await stores.activities.list(project: project, page: try PageRequest(limit: 1))
            #expect(first.nextCursor == String(listed.items[0].id))
            #expect(try await stores.activities.list(project: other, page: try PageRequest()).items.map(\.name) == ["project.created"])
            for cursor in ["abc", "-5", "0", ""] {
                let error = await #expect(throws: StoreError.self) {
                    try await stores.activities.list(project: project, page: try PageRequest(cursor: cursor))
                }
                #expect(error?.code == .invalid && error?.field == "cursor", "\(cursor)")
            }
        }
    }
}
