import Foundation
import HarrowTestSupport
import PostgresNIO
import Testing

@testable import Store

/// Notifiers of kind `job`: a matching rule runs another job of the project, in the transaction
/// that records the triggering operation's end, and a loop stops after five links.
@Suite struct ChainedJobTests {
    /// Claims and ends `operation` as `status`; the operation as it ended.
    static func finish(_ operation: UUID, _ status: Store.Operation.Status, _ stores: Stores) async throws -> Store.Operation {
        _ = try await stores.operations.claim(operation, runner: "test", lease: .seconds(60), publicURL: "http://localhost")
        return try await stores.operations.complete(
            operation, runner: "test", outcome: .init(status: status, exitStatus: status == .succeeded ? 0 : 1), log: nil,
            publicURL: "http://localhost")
    }

    /// The operations of `job` a notification queued.
    static func chained(_ stores: Stores, job: UUID) async throws -> [Store.Operation] {
        try await stores.client.read { connection in
            try await connection.all(
                """
                SELECT \(unescaped: OperationStore.columns) FROM operations WHERE job_id = \(job) AND reason = 'notification'
                ORDER BY created_at
                """, logger: stores.logger, { try OperationStore.record($0).item })
        }
    }

    @Test func aJobNotifierRunsTheChainedJobWhenItsRuleMatches() async throws {
        try await Stores.with("chained_job") { stores in
            let (ada, project, other) = try await stores.automationProjects()
            let build = try await stores.seedJob(in: project)
            let cleanup = try await stores.seedJob(in: project)
            let notifier = try await stores.notifiers.create(project: project, name: "cleanup", target: .job(cleanup), actor: ada.id)
            #expect(notifier.kind == .job && notifier.jobID == cleanup && notifier.recipients.isEmpty)
            _ = try await stores.notificationRules.create(
                project: project, notifier: notifier.id, job: build, activityPattern: "operation.failed", actor: ada.id)

            // A success matches no rule; a failure starts the chained job with its trigger's id.
            let passed = try await stores.operations.create(job: build, reason: .user, requestedBy: ada.id)
            _ = try await Self.finish(passed.id, .succeeded, stores)
            #expect(try await Self.chained(stores, job: cleanup).isEmpty)
            let failed = try await stores.operations.create(job: build, reason: .user, requestedBy: ada.id)
            _ = try await Self.finish(failed.id, .failed, stores)
            let runs = try await Self.chained(stores, job: cleanup)
            #expect(runs.count == 1)
            #expect(
                runs.first?.parameters == [
                    "triggering_operation_id": failed.id.uuidString.lowercased(), "chain_depth": "1",
                    "chain_root_id": failed.id.uuidString.lowercased(),
                ])
            #expect(try await stores.count("SELECT count(*)::int8 FROM outbox WHERE id = \(try #require(runs.first?.id))") == 1)

            // A job notifier needs a live job of its own project.
            let foreign = try await stores.seedJob(in: other)
            for job in [foreign, UUID()] {
                await #expect(throws: StoreError.notFound("job")) {
                    try await stores.notifiers.create(project: project, name: "x", target: .job(job), actor: nil)
                }
            }
            // Archiving the chained job archives the notifier and its rules.
            try await stores.archiveSeededJob(cleanup, project: project)
            #expect(try await stores.notifiers.find(notifier.id, project: project, includeArchived: true).archivedAt != nil)
            #expect(try await stores.count("SELECT count(*)::int8 FROM notification_rules WHERE archived_at IS NULL") == 0)
            let again = try await stores.operations.create(job: build, reason: .user, requestedBy: ada.id)
            _ = try await Self.finish(again.id, .failed, stores)
            #expect(try await Self.chained(stores, job: cleanup).count == 1)
        }
    }

    /// A starts B when it fails and B starts A: the sixth link is not queued, and an activity
    /// says why.
    @Test func aLoopStopsAfterFiveLinks() async throws {
        try await Stores.with("chained_loop") { stores in
            let (ada, project, _) = try await stores.automationProjects()
            let first = try await stores.seedJob(in: project)
            let second = try await stores.seedJob(in: project)
            for (from, to) in [(first, second), (second, first)] {
                let notifier = try await stores.notifiers.create(project: project, name: "next", target: .job(to), actor: ada.id)
                _ = try await stores.notificationRules.create(
                    project: project, notifier: notifier.id, job: from, activityPattern: "operation.*", actor: ada.id)
            }
            var current = try await stores.operations.create(job: first, reason: .user, requestedBy: ada.id)
            var links = 0
            while true {
                let ended = try await Self.finish(current.id, .failed, stores)
                let next = try await stores.client.read { connection in
                    try await connection.first(
                        """
                        SELECT \(unescaped: OperationStore.columns) FROM operations
                        WHERE parameters->>'triggering_operation_id' = \(ended.id.uuidString.lowercased())
                        """, logger: stores.logger, { try OperationStore.record($0).item })
                }
                guard let next else { break }
                links += 1
                #expect(next.reason == .notification && next.parameters["chain_depth"] == "\(links)")
                current = next
                if links > 10 { break }
            }
            #expect(links == OperationConsequences.longestChain)
            let stopped = try await stores.client.value(
                "SELECT payload->>'depth' FROM activities WHERE name = 'notification.chain_stopped'", as: String.self)
            #expect(stopped == "6")
        }
    }

    /// A depth given by hand cannot overflow or lengthen a chain, and notifiers that fan out
    /// stop at the chain's size limit.
    @Test func handGivenDepthsAndFanOutAreBounded() async throws {
        try await Stores.with("chained_bounds") { stores in
            let (ada, project, _) = try await stores.automationProjects()
            let first = try await stores.seedJob(in: project)
            var targets: [UUID] = []
            for _ in 0..<10 {
                let target = try await stores.seedJob(in: project)
                targets.append(target)
                let notifier = try await stores.notifiers.create(project: project, name: "fan", target: .job(target), actor: ada.id)
                _ = try await stores.notificationRules.create(
                    project: project, notifier: notifier.id, job: nil, activityPattern: "operation.failed", actor: ada.id)
            }
            let huge = try await stores.operations.create(
                job: first, reason: .user, requestedBy: ada.id, parameters: ["chain_depth": "\(Int.max)"])
            _ = try await Self.finish(huge.id, .failed, stores)
            #expect(try await stores.count("SELECT count(*)::int8 FROM operations WHERE reason = 'notification'") == 0)
            #expect(try await stores.count("SELECT count(*)::int8 FROM activities WHERE name = 'notification.chain_stopped'") == 10)

            // From depth 0: 10 at the first link, then 10 × 10 would follow; the chain stops at 25.
            let root = try await stores.operations.create(job: first, reason: .user, requestedBy: ada.id)
            _ = try await Self.finish(root.id, .failed, stores)
            var chained: [Store.Operation] = []
            for target in targets { chained += try await Self.chained(stores, job: target) }
            #expect(chained.count == 10)
            for operation in chained { _ = try await Self.finish(operation.id, .failed, stores) }
            #expect(
                try await stores.count("SELECT count(*)::int8 FROM operations WHERE reason = 'notification'")
                    == OperationConsequences.largestChain)
        }
    }
}
