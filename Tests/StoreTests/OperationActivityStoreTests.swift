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

    /// queued → running (claimed by one runner, under a lease) → succeeded | failed | timed_out;
    /// queued | running → canceled. Only the runner holding an operation records its end; a
    /// claim finds an operation held elsewhere, over, or lost with its runner.
    @Test func runsFollowTheStateMachine() async throws {
        try await Stores.with("operation_states") { stores in
            let (ada, project, other) = try await stores.automationProjects()
            let job = try await stores.seedJob(in: project)
            let operations = stores.operations
            let url = "http://harrow.test"
            let lease = Duration.seconds(60)

            let first = try await operations.create(job: job, reason: .webhook, requestedBy: nil)
            let early = await #expect(throws: StoreError.self) {
                try await operations.complete(
                    first.id, runner: "w1", outcome: .init(status: .succeeded, exitStatus: 0), log: nil, publicURL: url)
            }
            #expect(early?.code == .conflict)
            guard case .claimed(let running) = try await operations.claim(first.id, runner: "w1", lease: lease, publicURL: url) else {
                Issue.record("the first claim did not claim")
                return
            }
            #expect(running.status == .running && running.startedAt != nil && running.runner == "w1")
            #expect((running.leaseExpiresAt ?? .distantPast) > Date())
            #expect(try await operations.claim(first.id, runner: "w2", lease: lease, publicURL: url) == .heldElsewhere(runner: "w1"))
            #expect(try await operations.renewLease(first.id, runner: "w1", lease: lease) == .running)
            #expect(try await operations.renewLease(first.id, runner: "w2", lease: lease) == nil)
            let notFinal = await #expect(throws: StoreError.self) {
                try await operations.complete(first.id, runner: "w1", outcome: .init(status: .running), log: nil, publicURL: url)
            }
            #expect(notFinal?.code == .invalid && notFinal?.field == "status")
            let stranger = await #expect(throws: StoreError.self) {
                try await operations.complete(
                    first.id, runner: "w2", outcome: .init(status: .succeeded, exitStatus: 0), log: nil, publicURL: url)
            }
            #expect(stranger?.code == .conflict)
            let done = try await operations.complete(
                first.id, runner: "w1",
                outcome: .init(status: .succeeded, exitStatus: 0, checkouts: ["web": String(repeating: "a", count: 40)]),
                log: nil, publicURL: url)
            #expect(done.status == .succeeded && done.exitStatus == 0 && done.finishedAt != nil && done.checkouts["web"]?.count == 40)
            #expect(try await operations.claim(first.id, runner: "w2", lease: lease, publicURL: url) == .over(done))
            let late = await #expect(throws: StoreError.self) { try await operations.cancel(first.id, project: project, actor: ada.id) }
            #expect(late?.code == .conflict && late?.message.contains("succeeded") == true)

            // Canceled while queued: its job finds it over and never starts it.
            let second = try await operations.create(job: job, reason: .user, requestedBy: ada.id)
            await #expect(throws: StoreError.notFound("operation")) { try await operations.cancel(second.id, project: other, actor: nil) }
            let canceled = try await operations.cancel(second.id, project: project, actor: ada.id)
            #expect(canceled.status == .canceled && canceled.canceledAt != nil && canceled.startedAt == nil)
            #expect(try await operations.claim(second.id, runner: "w1", lease: lease, publicURL: url) == .over(canceled))

            let third = try await operations.create(job: job, reason: .gitTrigger, requestedBy: nil)
            _ = try await operations.claim(third.id, runner: "w1", lease: lease, publicURL: url)
            let timedOut = try await operations.complete(
                third.id, runner: "w1", outcome: .init(status: .timedOut, exitStatus: 143), log: nil, publicURL: url)
            #expect(timedOut.status == .timedOut && timedOut.exitStatus == 143 && timedOut.reason == .gitTrigger)
            let fourth = try await operations.create(job: job, reason: .notification, requestedBy: nil)
            _ = try await operations.claim(fourth.id, runner: "w1", lease: lease, publicURL: url)
            let failed = try await operations.complete(
                fourth.id, runner: "w1", outcome: .init(status: .failed, exitStatus: 2, failureReason: .scriptFailed), log: nil,
                publicURL: url)
            #expect(failed.exitStatus == 2 && failed.failureReason == .scriptFailed)
            let outOfRange = await #expect(throws: StoreError.self) {
                try await operations.complete(
                    fourth.id, runner: "w1", outcome: .init(status: .failed, exitStatus: Int(Int32.max) + 1), log: nil, publicURL: url)
            }
            #expect(outOfRange?.field == "exit_status")

            // Canceled while running: the runner learns it when it renews, and its end keeps the status.
            let fifth = try await operations.create(job: job, reason: .retry, requestedBy: nil)
            _ = try await operations.claim(fifth.id, runner: "w1", lease: lease, publicURL: url)
            let stopping = try await operations.cancel(fifth.id, project: project, actor: nil)
            #expect(stopping.status == .canceled && stopping.startedAt != nil && stopping.finishedAt == nil)
            #expect(try await operations.renewLease(fifth.id, runner: "w1", lease: lease) == .canceled)
            let stopped = try await operations.complete(
                fifth.id, runner: "w1", outcome: .init(status: .failed, exitStatus: 143), log: nil, publicURL: url)
            #expect(stopped.status == .canceled && stopped.finishedAt != nil && stopped.exitStatus == 143)

            // A runner that gives the operation back before its script started: claimed again later.
            let sixth = try await operations.create(job: job, reason: .user, requestedBy: nil)
            _ = try await operations.claim(sixth.id, runner: "w1", lease: lease, publicURL: url)
            #expect(try await operations.release(sixth.id, runner: "w1"))
            #expect(try await operations.find(sixth.id).status == .queued)
            #expect(try await operations.release(sixth.id, runner: "w1") == false)
            guard case .claimed = try await operations.claim(sixth.id, runner: "w2", lease: lease, publicURL: url) else {
                Issue.record("a released operation was not claimed again")
                return
            }

            // A runner whose lease ran out: the next delivery fails the operation, never reruns it.
            let seventh = try await operations.create(job: job, reason: .user, requestedBy: nil)
            _ = try await operations.claim(seventh.id, runner: "w1", lease: .milliseconds(1), publicURL: url)
            try await Task.sleep(for: .milliseconds(20))
            guard case .lost(let lost) = try await operations.claim(seventh.id, runner: "w2", lease: lease, publicURL: url) else {
                Issue.record("an expired lease was not found lost")
                return
            }
            #expect(lost.status == .failed && lost.failureReason == .workerLost && lost.runner == "w1" && lost.finishedAt != nil)
            #expect(try await operations.renewLease(seventh.id, runner: "w1", lease: lease) == nil)
            #expect(try await operations.claim(seventh.id, runner: "w3", lease: lease, publicURL: url) == .over(lost))

            await #expect(throws: StoreError.notFound("operation")) {
                try await operations.claim(UUID(), runner: "w1", lease: lease, publicURL: url)
            }
            #expect(
                try await stores.activityNames(project: project).filter { $0.hasPrefix("operation.") } == [
                    "operation.queued", "operation.started", "operation.succeeded", "operation.queued", "operation.canceled",
                    "operation.queued", "operation.started", "operation.timed_out", "operation.queued", "operation.started",
                    "operation.failed", "operation.queued", "operation.started", "operation.canceled", "operation.queued",
                    "operation.started", "operation.started", "operation.queued", "operation.started", "operation.failed",
                ])
        }
    }

    /// Runs whose worker died are failed by the sweep once their lease ran out, each once
    /// however many sweep; a finished operation is retried as a new one with its parameters.
    @Test func lostRunsAreSweptAndFinishedOnesRetried() async throws {
        try await Stores.with("operation_sweep") { stores in
            let (ada, project, _) = try await stores.automationProjects()
            let job = try await stores.seedJob(in: project)
            let operations = stores.operations
            let url = "http://harrow.test"
            var lost: [UUID] = []
            for _ in 0..<5 {
                let operation = try await operations.create(job: job, reason: .user, requestedBy: nil, parameters: ["tier": "web"])
                _ = try await operations.claim(operation.id, runner: "dead", lease: .milliseconds(1), publicURL: url)
                lost.append(operation.id)
            }
            let live = try await operations.create(job: job, reason: .user, requestedBy: nil)
            _ = try await operations.claim(live.id, runner: "alive", lease: .seconds(60), publicURL: url)
            try await Task.sleep(for: .milliseconds(20))
            let swept = try await withThrowingTaskGroup(of: [Store.Operation].self) { group in
                for _ in 0..<3 { group.addTask { try await operations.failLostRuns(publicURL: url) } }
                var all: [Store.Operation] = []
                for try await batch in group { all += batch }
                return all
            }
            #expect(Set(swept.map(\.id)) == Set(lost) && swept.count == lost.count)
            #expect(swept.allSatisfy { $0.status == .failed && $0.failureReason == .workerLost })
            #expect(try await operations.find(live.id).status == .running)

            let queued = try await operations.create(job: job, reason: .user, requestedBy: nil)
            let early = await #expect(throws: StoreError.self) { try await operations.retry(queued.id, project: project, actor: ada.id) }
            #expect(early?.code == .conflict)
            let again = try await operations.retry(lost[0], project: project, actor: ada.id)
            #expect(again.reason == .retry && again.retryOf == lost[0] && again.parameters == ["tier": "web"] && again.status == .queued)
            #expect(again.requestedBy == ada.id)
            #expect(try await stores.count("SELECT count(*)::int8 FROM outbox WHERE id = \(again.id)") == 1)
        }
    }

    /// Two workers that claim the same operation at once: exactly one runs it; two ends
    /// recorded for the same run: exactly one is.
    @Test func racingClaimsAndEndsHaveExactlyOneWinner() async throws {
        try await Stores.with("operation_race") { stores in
            let (_, project, _) = try await stores.automationProjects()
            let job = try await stores.seedJob(in: project)
            let operations = stores.operations
            let url = "http://harrow.test"
            for _ in 0..<10 {
                let operation = try await operations.create(job: job, reason: .schedule, requestedBy: nil)
                let claims = try await withThrowingTaskGroup(of: OperationStore.Claim.self) { group in
                    for index in 0..<2 {
                        group.addTask { try await operations.claim(operation.id, runner: "w\(index)", lease: .seconds(60), publicURL: url) }
                    }
                    var claims: [OperationStore.Claim] = []
                    for try await claim in group { claims.append(claim) }
                    return claims
                }
                let winners = claims.compactMap { claim -> String? in
                    if case .claimed(let operation) = claim { return operation.runner }
                    return nil
                }
                #expect(winners.count == 1)
                let runner = try #require(winners.first)
                let ends = try await Self.race(2) { _ in
                    try await operations.complete(
                        operation.id, runner: runner, outcome: .init(status: .succeeded, exitStatus: 0), log: nil, publicURL: url)
                }
                #expect(ends.wins == 1 && ends.conflicts == 1)
            }
            #expect(try await stores.count("SELECT count(*)::int8 FROM activities WHERE name = 'operation.started'") == 10)
            #expect(try await stores.count("SELECT count(*)::int8 FROM activities WHERE name = 'operation.succeeded'") == 10)
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
