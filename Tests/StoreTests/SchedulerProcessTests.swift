import Foundation
import HarrowTestSupport
import PostgresNIO
import Testing

@testable import Store

/// Schedules fired by real `worker` processes, as users run them: each runs a scheduler, and
/// however many race, each schedule fires once.
@Suite struct SchedulerProcessTests {
    @Test func threeWorkersRacingForOneHundredDueSchedulesFireEachOnce() async throws {
        try await TestDatabase.withDatabase("proc_scheduler") { client, configuration in
            let logger = TestRedis.logger("harrow.test.store")
            try await Migrator(client: client, logger: logger).migrate()
            let stores = Stores(client: client, logger: logger)
            let (_, project, _) = try await stores.automationProjects()
            let job = try await stores.seedJob(in: project)
            let prefix = TestRedis.uniqueKeyPrefix("proc-scheduler")
            // Due a few seconds after the workers start, so all three are waiting for them.
            let due = Date().addingTimeInterval(6)
            var ids: Set<String> = []
            for _ in 0..<100 {
                let schedule = try await stores.schedules.create(project: project, job: job, cron: nil, runAt: due, actor: nil)
                ids.insert(schedule.id.uuidString.lowercased())
            }
            // The `keys` queue only: the queued operations stay queued, nothing runs them.
            let workers = try (0..<3).map { _ in
                try RunningExecutable(
                    "worker", ["--queues", "keys", "--redis-url", TestRedis.url, "--key-prefix", prefix],
                    environment: ProcessDatabaseTests.environment(configuration, key: Stores.automationKeyring.current.base64))
            }
            defer { for worker in workers { worker.signal(SIGKILL) } }

            try await eventually("every schedule fired", timeout: .seconds(90)) {
                try await ScheduleFirerTests.scheduled(stores, job: job).count >= 100
            }
            // Time for a second firing, if there were to be one.
            try await Task.sleep(for: .seconds(2))
            let fired = try await ScheduleFirerTests.scheduled(stores, job: job)
            #expect(fired.count == 100 && Set(fired) == ids, "fired \(fired.count) times")
            #expect(
                try await stores.count("SELECT count(*)::int8 FROM schedules WHERE disabled_reason = 'ran once' AND next_fire_at IS NULL")
                    == 100)
            for worker in workers {
                worker.signal(SIGTERM)
                #expect(try await worker.waitForExit() == 0, "\(worker.log().suffix(2000))")
            }
            _ = try await TestRedis.withClient { redis in try await TestRedis.deleteKeys(prefix: prefix, on: redis) }
        }
    }
}
