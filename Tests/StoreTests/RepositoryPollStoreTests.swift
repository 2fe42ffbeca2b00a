import Foundation
import HarrowTestSupport
import PostgresNIO
import Testing

@testable import Store

/// Git polling's records: which repositories are due (each due poll queued once however many
/// pollers look), and what a poll records in one transaction: refs, ref activities, and the
/// operations git triggers start.
@Suite struct RepositoryPollStoreTests {
    static let main = "refs/heads/main"
    static let a = String(repeating: "a", count: 40)
    static let b = String(repeating: "b", count: 40)
    static let c = String(repeating: "c", count: 40)

    /// A repository of a project with a job to trigger.
    struct Fixture {
        let stores: Stores
        let project: UUID
        let repository: UUID
        let job: UUID
        var polls: RepositoryPollStore { RepositoryPollStore(client: stores.client, logger: stores.logger) }

        init(_ stores: Stores) async throws {
            self.stores = stores
            let (user, project, _) = try await stores.automationProjects()
            self.project = project
            repository = try await stores.repositories.create(project: project, url: "https://git.example.com/acme/web.git", actor: user.id)
                .id
            job = try await stores.seedJob(in: project)
        }

        func trigger(_ pattern: String, _ type: GitTrigger.ChangeType) async throws -> GitTrigger {
            try await stores.gitTriggers.create(
                project: project, repository: repository, job: job, name: "on \(type) \(pattern)", refPattern: pattern, changeType: type,
                actor: nil)
        }

        /// The git-triggered operations, oldest first, with their parameters.
        func triggered() async throws -> [[String: String]] {
            try await stores.client.withConnection { connection in
                try await connection.all(
                    "SELECT parameters::text FROM operations WHERE reason = 'git_trigger' ORDER BY created_at, parameters->>'ref'",
                    logger: stores.logger,
                    { try [String: String](jsonObject: try $0.decode(String.self)) })
            }
        }

        func outbox(_ type: String) async throws -> Int {
            try await stores.count("SELECT count(*)::int8 FROM outbox WHERE type = \(type)")
        }

        func activities(_ name: String) async throws -> [[String: String]] {
            try await stores.client.withConnection { connection in
                try await connection.all(
                    "SELECT payload::text FROM activities WHERE name = \(name) ORDER BY id", logger: stores.logger,
                    { try [String: String](jsonObject: try $0.decode(String.self)) })
            }
        }
    }

    /// A repository nobody watches is not polled; a git trigger schedules it at once, the
    /// claim queues one poll and plans the next an interval ± 10% later; a claim right after
    /// finds nothing due.
    @Test func aTriggerSchedulesPollsAndAClaimQueuesOne() async throws {
        try await Stores.with("poll_claim") { stores in
            let fixture = try await Fixture(stores)
            #expect(try await fixture.polls.claimDue().queued.isEmpty)
            #expect(try await stores.repositories.find(fixture.repository, project: fixture.project).nextPollAt == nil)
            _ = try await fixture.trigger("^refs/heads/main$", .change)
            let claim = try await fixture.polls.claimDue()
            #expect(claim.queued == [fixture.repository])
            #expect(try await fixture.outbox("poll-repo") == 1)
            let next = try #require(try await stores.repositories.find(fixture.repository, project: fixture.project).nextPollAt)
            #expect(next.timeIntervalSinceNow > 50 && next.timeIntervalSinceNow < 67, "60 s ± 10%: \(next.timeIntervalSinceNow)")
            let again = try await fixture.polls.claimDue()
            #expect(again.queued.isEmpty)
            let wait = try #require(again.nextDueIn)
            #expect(wait > .seconds(50) && wait <= .seconds(66))
            #expect(try await fixture.outbox("poll-repo") == 1)
        }
    }

    /// A due repository whose triggers are all archived, and whose refresh is over, is no
    /// longer scheduled; a refresh queues a poll at once and keeps it polled.
    @Test func unwatchedRepositoriesStopAndARefreshPollsNow() async throws {
        try await Stores.with("poll_unwatched") { stores in
            let fixture = try await Fixture(stores)
            let trigger = try await fixture.trigger(".*", .add)
            try await stores.gitTriggers.archive(trigger.id, project: fixture.project, actor: nil)
            let claim = try await fixture.polls.claimDue()
            #expect(claim.queued.isEmpty && claim.unscheduled == [fixture.repository])
            #expect(try await stores.repositories.find(fixture.repository, project: fixture.project).nextPollAt == nil)

            try await fixture.polls.refresh(fixture.repository, project: fixture.project)
            #expect(try await fixture.outbox("poll-repo") == 1)
            try await stores.write("UPDATE repositories SET next_poll_at = now() - interval '1 second'")
            #expect(try await fixture.polls.claimDue().queued == [fixture.repository], "refreshed: still polled")
            await #expect(throws: StoreError.notFound("repository")) { try await fixture.polls.refresh(UUID(), project: fixture.project) }
        }
    }

    /// Many pollers claiming the same 40 due repositories at once queue each poll once.
    @Test func racingPollersQueueEachDuePollOnce() async throws {
        try await Stores.with("poll_race") { stores in
            let fixture = try await Fixture(stores)
            for index in 0..<40 {
                let repository = try await stores.repositories.create(
                    project: fixture.project, url: "https://git.example.com/acme/r\(index).git", actor: nil)
                _ = try await stores.gitTriggers.create(
                    project: fixture.project, repository: repository.id, job: fixture.job, name: "t\(index)", changeType: .add, actor: nil)
            }
            let polls = fixture.polls
            let claimed = try await withThrowingTaskGroup(of: [UUID].self) { group in
                for _ in 0..<8 { group.addTask { try await polls.claimDue(limit: 7).queued } }
                var all: [UUID] = []
                for try await queued in group { all += queued }
                return all
            }
            var everything = claimed
            for _ in 0..<10 {
                let more = try await polls.claimDue(limit: 7).queued
                if more.isEmpty { break }
                everything += more
            }
            #expect(everything.count == 40 && Set(everything).count == 40)
            #expect(try await fixture.outbox("poll-repo") == 40)
        }
    }

    /// The first listing is silent; later ones record each change once (a repeated listing, as
    /// a redelivered job makes, records nothing new), and triggers fire for changes of their
    /// type whose ref matches the pattern as a whole: `^refs/heads/main$` and `main` never fire
    /// for `refs/heads/main2`, and `main` not even for `refs/heads/main`.
    @Test func listingsRecordChangesAndFireMatchingTriggersOnce() async throws {
        try await Stores.with("poll_record") { stores in
            let fixture = try await Fixture(stores)
            let onMain = try await fixture.trigger("^refs/heads/main$", .change)
            _ = try await fixture.trigger("main", .change)
            let onTags = try await fixture.trigger("refs/tags/.*", .add)
            let onRemoval = try await fixture.trigger("refs/tags/.*", .remove)
            let polls = fixture.polls

            let first = try #require(try await polls.record(fixture.repository, .refs([Self.main: Self.a, "refs/heads/main2": Self.a])))
            #expect(first.firstListing && first.changes.isEmpty && first.operations.isEmpty)
            #expect(try await fixture.triggered().isEmpty)
            #expect(try await fixture.activities("repository.ref-added").isEmpty)

            // main moved twice since (a → b → c): one change, to c.
            let moved = try #require(
                try await polls.record(fixture.repository, .refs([Self.main: Self.c, "refs/heads/main2": Self.b, "refs/tags/v1": Self.b])))
            #expect(moved.operations.count == 2)
            let id = fixture.repository.uuidString.lowercased()
            #expect(
                try await fixture.triggered() == [
                    ["ref": Self.main, "sha": Self.c, "previous_sha": Self.a, "repository_id": id],
                    ["ref": "refs/tags/v1", "sha": Self.b, "previous_sha": "", "repository_id": id],
                ])
            #expect(Set(moved.operations.map(\.jobID)) == [fixture.job])
            #expect(moved.operations.allSatisfy { $0.reason == .gitTrigger && $0.status == .queued })
            #expect(try await fixture.outbox("run-operation") == 2, "each operation's run-operation job, in the same transaction")
            #expect(
                try await fixture.activities("repository.ref-changed") == [
                    ["repository_id": id, "ref": Self.main, "sha": Self.c, "previous_sha": Self.a],
                    ["repository_id": id, "ref": "refs/heads/main2", "sha": Self.b, "previous_sha": Self.a],
                ])
            #expect(try await fixture.activities("repository.ref-added").count == 1)

            let repeated = try #require(
                try await polls.record(fixture.repository, .refs([Self.main: Self.c, "refs/heads/main2": Self.b, "refs/tags/v1": Self.b])))
            #expect(repeated.changes.isEmpty && repeated.operations.isEmpty)
            #expect(try await fixture.triggered().count == 2)

            let removed = try #require(try await polls.record(fixture.repository, .refs([Self.main: Self.c, "refs/heads/main2": Self.b])))
            #expect(removed.changes == [RefChange(ref: "refs/tags/v1", type: .remove, sha: "", previousSHA: Self.b)])
            #expect(try await fixture.triggered().last == ["ref": "refs/tags/v1", "sha": "", "previous_sha": Self.b, "repository_id": id])
            #expect(try await fixture.activities("repository.ref-removed").count == 1)
            _ = (onMain, onTags, onRemoval)
        }
    }

    /// A stored pattern that no longer compiles (written before validation, say) is skipped
    /// with a log line; the other triggers still fire and the poll is recorded.
    @Test func aBrokenStoredPatternIsSkipped() async throws {
        try await Stores.with("poll_broken") { stores in
            let fixture = try await Fixture(stores)
            let broken = try await fixture.trigger(".*", .change)
            _ = try await fixture.trigger(".*", .change)
            try await stores.write("UPDATE git_triggers SET ref_pattern = '([' WHERE id = \(broken.id)")
            _ = try await fixture.polls.record(fixture.repository, .refs([Self.main: Self.a]))
            let outcome = try #require(try await fixture.polls.record(fixture.repository, .refs([Self.main: Self.b])))
            #expect(outcome.brokenTriggers == [broken.id])
            #expect(outcome.operations.count == 1)
            #expect(try await stores.repositories.find(fixture.repository, project: fixture.project).refs == [Self.main: Self.b])
        }
    }

    /// Accessibility: the first failure and each transition are activities, a repeated failure
    /// is not; a failure before any listing does not make the first listing report changes.
    @Test func accessibilityIsReportedOnTransitionsOnly() async throws {
        try await Stores.with("poll_access") { stores in
            let fixture = try await Fixture(stores)
            _ = try await fixture.trigger(".*", .add)
            for _ in 0..<3 { _ = try await fixture.polls.record(fixture.repository, .failed("connection refused")) }
            #expect(try await fixture.activities("repository.inaccessible").count == 1)
            #expect(try await fixture.activities("repository.inaccessible").first?["reason"] == "connection refused")
            let back = try #require(try await fixture.polls.record(fixture.repository, .refs([Self.main: Self.a])))
            #expect(back.firstListing && back.operations.isEmpty, "refs never listed before: silent")
            #expect(try await fixture.activities("repository.accessible").count == 1)
            _ = try await fixture.polls.record(fixture.repository, .failed("connection refused"))
            _ = try await fixture.polls.record(fixture.repository, .refs([Self.main: Self.a]))
            #expect(try await fixture.activities("repository.inaccessible").count == 2)
            #expect(try await fixture.activities("repository.accessible").count == 2)
        }
    }

    /// A new URL is another repository: its first listing is silent again.
    @Test func aNewURLForgetsTheRefs() async throws {
        try await Stores.with("poll_url") { stores in
            let fixture = try await Fixture(stores)
            _ = try await fixture.trigger(".*", .add)
            _ = try await fixture.polls.record(fixture.repository, .refs([Self.main: Self.a]))
            _ = try await stores.repositories.update(
                fixture.repository, project: fixture.project, url: "https://git.example.com/acme/other.git", actor: nil)
            let outcome = try #require(try await fixture.polls.record(fixture.repository, .refs(["refs/heads/other": Self.b])))
            #expect(outcome.firstListing && outcome.operations.isEmpty)
            await #expect(throws: StoreError.self) {
                try await stores.repositories.update(fixture.repository, project: fixture.project, pollIntervalSeconds: 5, actor: nil)
            }
            let slower = try await stores.repositories.update(
                fixture.repository, project: fixture.project, pollIntervalSeconds: 600, actor: nil)
            #expect(slower.pollIntervalSeconds == 600)
        }
    }
}
